"""Celery's ``rpc://`` result backend: results sent as messages to the client that sent the task.

What goes where:

* Each client process (one per app) has a reply queue, ``canvas.rpc.<client id>``
  (``canvas.transports.base.reply_queue``), on the app's own broker: RabbitMQ, Redis, Redis
  Cluster or the embedded one, through the transport like any queue. Every task message it sends
  names that queue in its ``reply_to`` header; so does every message a worker sends while it
  handles one (a workflow's next step, a retry), which keeps the caller's queue.
* The worker publishes each state of the task (``STARTED``, ``RETRY``, custom states, then its
  outcome) to that queue instead of storing it. The client reads its queue when it asks for a
  result and keeps every meta it reads, so a result read while waiting for another is there when
  asked for. Only that client receives them: another process gets ``PENDING``, and its ``get``
  times out, as in Celery.
* Workflows (chain, group, chord), countdown/ETA messages, revokes, beat's lease and counters
  need state that every worker reaches: the state store, ``inner`` (the Redis broker's database when
  the broker is Redis, else a SQLite file on this machine). A workflow node's outcome is
  recorded there, where its successors are wired from it, and sent as a reply too.
* With a state store on this machine (``local``), a worker handed a node of a workflow that its
  machine's store does not hold fails the node with an error that names the fix, and sends it
  with a ``workflow_lost`` header: the client that waits on any node of that workflow gets that
  error rather than waiting for ever. A group of plain calls needs no state: it is sent as plain
  calls then (``canvas.core.dispatch.start_flat``), and runs on any machine.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import msgpack

from canvas.backends.base import UNREADABLE_SPEC, Backend, Fired
from canvas.backends.wrapped import WrappedBackend
from canvas.transports.base import (
    Consumer,
    Delivery,
    OutgoingMessage,
    Transport,
    is_reply_queue,
    reply_queue,
)
from canvas.transports.outage import is_outage

logger = logging.getLogger("canvas.rpc")

#: the reply queue of the message being handled in this context (a worker's): the results it
#: records, and the messages it sends, go back to that message's client; ``""`` when nobody
#: waits (a message sent without one, beat's sends); ``None`` outside both: a client's own
replying_to: ContextVar[str | None] = ContextVar("canvas_replying_to", default=None)
#: reply header naming the workflow whose state a worker did not find (see the module docstring)
LOST_HEADER = "workflow_lost"
#: replies a client takes from its queue in one go
_PREFETCH = 32


def is_rpc_url(url: object) -> bool:
    return str(url or "").startswith("rpc://")


@contextlib.contextmanager
def replying_for(headers: Mapping[str, Any]) -> Iterator[None]:
    """Within this block, results and sent messages go to ``headers``' ``reply_to`` (if any)."""
    route = headers.get("reply_to")
    token = replying_to.set(route if isinstance(route, str) and is_reply_queue(route) else "")
    try:
        yield
    finally:
        replying_to.reset(token)


@contextlib.contextmanager
def without_replies() -> Iterator[None]:
    """Within this block, messages sent ask for no replies (nobody waits on them: beat)."""
    token = replying_to.set("")
    try:
        yield
    finally:
        replying_to.reset(token)


class RpcBackend(WrappedBackend):
    """Task results as reply messages; everything else in the state store (``inner``), which
    ``WrappedBackend`` forwards to."""

    def __init__(
        self, state: Backend, transport: Callable[[], Transport], local: bool = False
    ) -> None:
        super().__init__(state, url="rpc://")
        self.transport = transport
        #: the state store is a file on this machine: workers elsewhere cannot see workflows
        self.local = local
        self.queue = reply_queue(uuid.uuid4().hex)
        #: task id -> (when read, status, meta), oldest first: what this client read so far
        self._replies: dict[str, tuple[float, str, bytes]] = {}
        #: workflow id -> the failure its worker sent when it did not find the workflow
        self._lost: dict[str, bytes] = {}
        self._lock = threading.Lock()  # one reader of the reply queue at a time
        self._consumer: Consumer | None = None
        self._sent = False
        #: workflows this worker refused a node of (``_or_lost``): their failures say so
        self._missing: set[str] = set()

    # -- where replies go --------------------------------------------------------------------
    def reply_to(self) -> str | None:
        """The ``reply_to`` of a message sent now: the handled message's client inside a
        worker (none if it had none), none from beat, else this client's own queue."""
        routed = replying_to.get()
        if routed is not None:
            return routed or None
        if not self._sent:
            # Consume from the first send on, as Celery does: the queue exists before any
            # reply is published to it, and lives (unexpired) as long as this client does.
            with self._lock:
                self._open()
            self._sent = True
        return self.queue

    def _reply(self, task_id: str, status: str, meta: bytes, lost: str | None = None) -> None:
        route = replying_to.get()
        if not route:
            return  # sent without reply_to (by an app without rpc://): nobody to tell
        headers: dict[str, Any] = {"id": task_id, "status": status}
        if lost:
            headers[LOST_HEADER] = lost
        self.transport().publish([OutgoingMessage(route, meta, headers)])

    # -- task meta ---------------------------------------------------------------------------
    def store(self, task_id: str, status: str, meta: bytes) -> None:
        self._reply(task_id, status, meta)

    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        if self._sent:
            self._drain(0.0)
        found = [self._known(t) for t in task_ids]
        missing = [t for t, value in zip(task_ids, found, strict=True) if value is None]
        if not missing:
            return found
        # Workflow nodes are recorded in the state store too (read there by workers, and by
        # any client when that store is shared).
        stored = dict(zip(missing, self.inner.get(missing), strict=True))
        return [v if v is not None else stored[t] for t, v in zip(task_ids, found, strict=True)]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        latest = self.get([task_id])[0]
        while latest is None or not self.is_ready(_status(latest)):
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                return latest
            if self._sent:
                self._drain(left)
                latest = self.get([task_id])[0]
            else:  # this client sent nothing: only a shared state store can have it
                latest = self.inner.wait(task_id, left) or latest
        return latest

    def forget_many(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            self._replies.pop(task_id, None)
        self.inner.forget_many(task_ids)

    def _known(self, task_id: str) -> bytes | None:
        held = self._replies.get(task_id)
        if held is not None:
            return held[2]
        for workflow_id, failure in list(self._lost.items()):
            if self.inner.node_specs(workflow_id, [task_id])[0] is not None:
                return failure  # a node of a workflow that cannot finish: its error
        return None

    # -- reading the reply queue ---------------------------------------------------------------
    def _drain(self, timeout: float) -> None:
        """Take every reply waiting (waiting up to ``timeout`` seconds for the first).

        A consumer whose connection broke (a broker restart, a failover, a reset socket) is
        closed, and a new one reads the same queue, where the replies sent meanwhile wait: kept,
        the broken one would read nothing for good. One new one per call; if that one breaks
        too, the error is raised (and the next call opens another)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            for retry in (False, True):
                consumer = self._open()
                try:
                    delivery = consumer.get(timeout)
                    while delivery is not None:
                        self._take(delivery)
                        delivery = consumer.get(0)
                    return
                except Exception as exc:
                    if not is_outage(exc):
                        raise  # a bug, not a broken connection
                    self._drop()
                    if retry:
                        raise
                    logger.warning(
                        "Reply queue %s: its connection broke (%s: %s); reconnecting",
                        self.queue,
                        type(exc).__name__,
                        exc,
                    )
                timeout = max(0.0, deadline - time.monotonic())

    def _open(self) -> Consumer:
        """The consumer of this client's reply queue (made once; hold ``_lock``)."""
        if self._consumer is None:
            self._consumer = self.transport().consumer([self.queue], prefetch=_PREFETCH)
        return self._consumer

    def _drop(self) -> None:
        """Close a broken consumer (hold ``_lock``): replies it held unacked go back to the
        queue, for the next one."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):  # its connection is gone already
                consumer.close()

    def _take(self, delivery: Delivery) -> None:
        headers = delivery.headers
        task_id, status = headers.get("id"), headers.get("status")
        delivery.ack()  # kept in memory from here: a reply is read once, by its client
        if (
            delivery.error is not None
            or not isinstance(task_id, str)
            or not isinstance(status, str)
        ):
            logger.warning(
                "Unreadable reply on %s dropped: %s", self.queue, delivery.error or headers
            )
            return
        held = self._replies.get(task_id)
        if held is None or not self.is_ready(held[1]):  # the first outcome stays
            self._replies.pop(task_id, None)  # re-inserted last: the dict stays oldest first
            self._replies[task_id] = (time.monotonic(), status, delivery.body)
        lost = headers.get(LOST_HEADER)
        if isinstance(lost, str) and lost:
            self._lost[lost] = delivery.body
        self._prune()

    def _prune(self) -> None:
        """Forget replies older than ``result_expires`` that nobody asked for."""
        horizon = time.monotonic() - self.expires
        for task_id, (when, _, _) in list(self._replies.items()):
            if when >= horizon:
                break
            self._replies.pop(task_id, None)  # forget() may have taken it meanwhile

    # -- workflows: in the state store, outcomes replied too ---------------------------------
    def node_specs(self, workflow_id: str, node_ids: Sequence[str]) -> list[bytes | None]:
        specs = self.inner.node_specs(workflow_id, node_ids)
        return [self._or_lost(workflow_id, spec) for spec in specs]

    def claim_node(
        self, workflow_id: str, node_id: str, key: str, ttl: float
    ) -> tuple[int, bytes | None]:
        count, spec = self.inner.claim_node(workflow_id, node_id, key, ttl)
        return count, self._or_lost(workflow_id, spec)

    def _or_lost(self, workflow_id: str, spec: bytes | None) -> bytes | None:
        """A spec this worker's machine-local store does not have, while it handles a message
        that a client waits on: a refusal naming the fix (the node fails with it)."""
        if spec is not None or not self.local or not replying_to.get():
            return spec
        self._missing.add(workflow_id)
        reason = (
            f"workflow {workflow_id} is not in this worker's store ({self.inner.url}). With "
            "result_backend='rpc://' and a broker that is not Redis, workflow state (chain, "
            "group, chord) is kept in a SQLite file on each machine, so a workflow runs only on "
            "workers of the machine that sent it. Set result_backend to a store every worker "
            "reaches (redis://... or db+postgresql://...)."
        )
        return UNREADABLE_SPEC + reason.encode()

    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        fired = self.inner.complete(workflow_id, node_id, status, meta)
        lost = workflow_id if workflow_id in self._missing else None
        self._reply(node_id, status, meta, lost)
        return fired

    def close(self) -> None:
        with self._lock:
            consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None:
                consumer.close()
        finally:
            super().close()

    def __repr__(self) -> str:
        return f"<RpcBackend {self.queue} state={self.inner!r}>"


def _status(meta: bytes) -> str:
    """The ``status`` of an encoded meta (a msgpack dict, as every store keeps it)."""
    try:
        decoded = msgpack.unpackb(meta, raw=False, strict_map_key=False)
    except Exception:
        return ""
    return str(decoded.get("status") or "") if isinstance(decoded, dict) else ""
