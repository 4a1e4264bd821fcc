"""The result store contract: task results, workflow graphs, join counters, delayed messages.

A store keeps four kinds of record, every one with an expiry (``expires`` seconds):

* **task meta** – one msgpack-encoded dict per task id (``status``, ``result``, ``traceback``,
  ``date_done``, ...). The store treats it as opaque bytes plus its ``status`` string.
* **workflows** – a compiled workflow saved once: per node an opaque spec, its successor ids and
  the number of inputs it waits for.
* **join state** – which inputs of a node are done. ``complete`` marks them atomically and
  idempotently, so a node that runs twice wires its successors once.
* **delayed messages** – countdown/ETA messages parked until due, claimed with a lease so that a
  worker dying between claim and publish loses nothing.

Plus a named lease (``acquire_lease``) that beat uses to elect one leader, and the ids of
revoked tasks (``add_revoked``/``revoked_since``), kept for their own time to live so that a worker
started later still refuses them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from canvas import states
from canvas.backends.celery_api import CeleryResultAPI

#: the number of inputs a join is stored with until ``update_join`` gives the real one (a chord
#: header still being read from a generator): completed inputs are counted, none can fire it
OPEN_JOIN = 2**31 - 1


#: what a store hands out in place of a node spec it cannot vouch for (it failed verification):
#: ``canvas.core.complete.load_node`` refuses it, naming the reason that follows the marker
UNREADABLE_SPEC = b"\x00canvas-unreadable\x00"


@dataclass(frozen=True)
class NodeRecord:
    """One workflow node as stored: ``spec`` is opaque to the store."""

    id: str
    spec: bytes
    successors: tuple[str, ...]
    n_inputs: int


@dataclass(frozen=True)
class Fired:
    """A successor whose last input just completed: the caller must publish or resolve it."""

    id: str
    spec: bytes


class Backend(CeleryResultAPI, ABC):
    """A result store chosen by URL scheme (see ``canvas.backends``), with Celery's methods."""

    #: the options this store reads (``result_backend_transport_options`` may set them)
    OPTIONS: ClassVar[frozenset[str]] = frozenset({"expires"})

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})
        #: seconds every record lives; ``result_expires``
        self.expires: float = float(self.options.get("expires", 86400.0))

    # -- task meta ---------------------------------------------------------------------------
    @abstractmethod
    def store(self, task_id: str, status: str, meta: bytes) -> None:
        """Write a task's meta and wake anyone waiting on it."""

    @abstractmethod
    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        """The metas of ``task_ids`` in order; ``None`` where nothing is stored."""

    @abstractmethod
    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until the task's status is in ``READY_STATES``; its meta, or ``None`` on timeout.

        Stores that can notify (Redis pub/sub) must not busy-poll.
        """

    def forget(self, task_id: str | Sequence[str]) -> None:
        """Delete a task's meta: Celery's ``backend.forget(task_id)`` (a list of ids deletes
        each, as ``forget_many``)."""
        self.forget_many([task_id] if isinstance(task_id, str) else list(task_id))

    @abstractmethod
    def forget_many(self, task_ids: Sequence[str]) -> None:
        """Delete task metas."""

    # -- workflows ---------------------------------------------------------------------------
    @abstractmethod
    def save_workflow(self, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes) -> None:
        """Store a compiled workflow once (or add nodes to it: ``replace`` grows a workflow)."""

    @abstractmethod
    def workflow_info(self, workflow_id: str) -> bytes | None:
        """The ``info`` blob saved with the workflow, ``None`` if unknown or expired."""

    @abstractmethod
    def workflow_nodes(self, workflow_id: str) -> list[NodeRecord]:
        """Every node of a workflow (for render and status; not on the hot path)."""

    @abstractmethod
    def node_specs(self, workflow_id: str, node_ids: Sequence[str]) -> list[bytes | None]:
        """Specs of some nodes, in order."""

    @abstractmethod
    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        """Record a node's terminal meta and mark it done as an input of each successor.

        One atomic operation. The first terminal meta of a node wins (a second run's meta is
        dropped), and a successor is returned exactly once: by the call that completed its last
        input. Calling it twice for one node returns nothing the second time.
        """

    def update_join(self, workflow_id: str, node: NodeRecord) -> list[Fired]:
        """Replace a stored join's record (its spec, successors and number of inputs) while its
        inputs may be completing: a chord header read from a generator, closed once the
        generator is exhausted, or a member added by ``add_to_chord``. The inputs done so far
        count; the join is returned here if they are all done already, otherwise by the
        ``complete`` of its last input: once either way, atomically with ``complete``.

        Optional: a store without it cannot grow a running chord (``NotImplementedError``).
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot grow a running chord's join (add_to_chord, chord "
            "headers given as generators); use the Redis, SQL or in-memory store."
        )

    # -- delayed messages --------------------------------------------------------------------
    # ``space`` names the broker a parked message returns to (``Transport.space``): apps on
    # different brokers may share one store, and a message released by a worker of another
    # broker would be published where nobody consumes it.
    @abstractmethod
    def schedule(self, key: str, due: float, payload: bytes, space: str = "") -> None:
        """Park ``payload`` until the epoch time ``due``; ``key`` is unique (the task id)."""

    @abstractmethod
    def claim_due(
        self, now: float, lease: float, limit: int = 100, space: str = ""
    ) -> list[tuple[str, bytes]]:
        """Take up to ``limit`` payloads of ``space`` due by ``now``; they reappear after
        ``lease`` seconds unless ``ack_scheduled`` removes them first."""

    @abstractmethod
    def ack_scheduled(self, keys: Sequence[str], space: str = "") -> None:
        """Remove claimed payloads once they were published."""

    @abstractmethod
    def next_due(self, space: str = "") -> float | None:
        """Epoch time of the earliest parked payload of ``space``, ``None`` when there is none."""

    # -- leases ------------------------------------------------------------------------------
    @abstractmethod
    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``owner``; false if someone else holds it."""

    @abstractmethod
    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it."""

    # -- counters ----------------------------------------------------------------------------
    @abstractmethod
    def incr(self, key: str, ttl: float, by: int = 1) -> int:
        """Atomically add ``by`` (one) to a counter that expires ``ttl`` seconds after its first
        use, and return the new value."""

    def claim_node(
        self, workflow_id: str, node_id: str, key: str, ttl: float
    ) -> tuple[int, bytes | None]:
        """``incr(key, ttl)`` and the node's spec (``None`` if unknown): what a worker reads
        before it runs a workflow node. A store may do both in one round trip (Redis does)."""
        return self.incr(key, ttl), self.node_specs(workflow_id, [node_id])[0]

    # -- revokes -----------------------------------------------------------------------------
    def add_revoked(self, task_ids: Sequence[str], ttl: float) -> None:
        """Remember ``task_ids`` as revoked now, for ``ttl`` seconds (an id added again is
        kept from its latest revoke)."""
        raise NotImplementedError(
            f"The result store {type(self).__name__} does not keep revokes: they reach running "
            "workers only. Use a Redis or SQL store, or worker --statedb."
        )

    def revoked_since(self, since: float) -> list[tuple[str, float]]:
        """``(task id, revoked at)`` of the revokes made at or after ``since`` (epoch seconds)
        that have not expired, oldest first."""
        raise NotImplementedError(f"The result store {type(self).__name__} does not keep revokes.")

    def reply_to(self) -> str | None:
        """Where the results of a message sent now come back as messages (``rpc://``: a reply
        queue, named in the message's ``reply_to`` header); ``None`` for a store."""
        return None

    def close(self) -> None:
        """Release connections."""

    @staticmethod
    def is_ready(status: str) -> bool:
        return status in states.READY_STATES
