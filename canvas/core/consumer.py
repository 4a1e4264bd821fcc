"""Handling one delivery: decode, check, run, record, wire, settle the message.

Every path ends with the message settled exactly once: acked, requeued, parked (countdown/ETA,
acked after it is safely in the store), or dead-lettered with a reason. A message that cannot be
run (unknown task, undecodable body, disallowed content type, delivered too many times) goes to
the dead-letter queue and the worker carries on.

Logs show ``argsrepr``/``kwargsrepr`` when the sender gave them, never the real arguments then.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from canvas import dag, signals, signing, states
from canvas.backends.rpc import replying_for
from canvas.core import complete, envelope, messages, metas, protocol, ratelimit, replace
from canvas.core.envelope import BadMessage, printable
from canvas.core.execute import (
    IGNORED,
    REJECTED,
    REPLACED,
    RETRY,
    Outcome,
    errback_takes_request,
    run_call,
)
from canvas.core.messages import Lineage
from canvas.core.monitor import TaskMonitor
from canvas.exceptions import (
    PayloadTooLarge,
    SoftTimeLimitExceeded,
    TaskRejectedError,
    TaskRevokedError,
    WorkerLostError,
)
from canvas.request import Request
from canvas.signature import shorten
from canvas.stamping import revoke_keys
from canvas.transports.base import Delivery, OutgoingMessage
from canvas.transports.outage import is_outage

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.task import Task

logger = logging.getLogger("canvas.worker")

#: an ETA closer than this runs at once rather than taking a trip through the store
ETA_SLACK = 0.005
#: longest repr of a result in the log line of a success (Celery's ``resultrepr_maxsize``)
RESULT_REPR_MAXSIZE = 1024


class Handler:
    """Runs deliveries for one consumer; ``on_park(due)`` tells the worker's timer, ``monitor``
    hears each step of a task's life and knows the revoked ids."""

    def __init__(
        self,
        app: Canvas,
        hostname: str,
        on_park: Any = None,
        soft_limits: bool = False,
        monitor: TaskMonitor | None = None,
    ) -> None:
        self.app = app
        self.monitor = monitor if monitor is not None else TaskMonitor(app, hostname)
        #: SIGALRM-based soft time limits work only in a process's main thread
        self.soft_limits = soft_limits
        self.hostname = hostname
        self.on_park = on_park
        self.accept = protocol.accepted_content_types(signing.accepted(app.conf))
        self.max_deliveries = int(app.conf.worker_max_deliveries or 0)
        self.max_payload = int(app.conf.task_max_payload_bytes or 0)
        #: (workflow, node id, spec) of the delivery being handled, read when it was claimed
        self.claimed: tuple[str, str, bytes | None] | None = None
        #: the delivery counter that the delivery being handled added one to, if any
        self.counted: str | None = None

    def handle(self, delivery: Delivery) -> None:
        """Run one delivery. An outage that stops it takes back its count of deliveries (see
        ``canvas.transports.outage``) before the error reaches the worker, which requeues it."""
        self.claimed = self.counted = None
        try:
            # What it records, and the messages it sends, go back to its client (rpc://).
            with replying_for(delivery.headers):
                self._handle(delivery)
        except Exception as exc:
            if self.counted is not None and is_outage(exc):
                self._uncount(self.counted)
            raise

    def _handle(self, delivery: Delivery) -> None:
        if delivery.error is not None:
            return self.dead_letter(delivery, f"cannot decode message: {delivery.error}")
        try:
            headers = envelope.check(delivery.headers)
            envelope.check_size(delivery.body, self.max_payload)
        except BadMessage as exc:
            return self.dead_letter(delivery, str(exc))
        name, task_id = headers["task"], headers["id"]
        task = self.app.tasks.get(name)
        if task is None:
            signals.task_unknown.send(sender=self, name=name, id=task_id, message=delivery)
            return self.dead_letter(delivery, f"unknown task {name!r}")
        track_started = task.track_started
        if track_started is None:
            track_started = self.app.conf.task_track_started
        # Counted before any step that can fail (a store read, a corrupted record), so that a
        # message failing there too ends in the dead-letter queue instead of coming back.
        if delivery.redelivered and self.max_deliveries and self._too_many(task_id):
            return self.dead_letter(
                delivery,
                f"delivered more than worker_max_deliveries={self.max_deliveries} times "
                "(it may be killing its worker, or failing before it runs)",
            )
        # A redelivered call may have finished before its worker died (and a duplicate message
        # may arrive after its twin ran): look before running, and before overwriting a final
        # state with STARTED. A plain first delivery skips the read.
        if (delivery.redelivered or track_started) and self.already_done(delivery):
            return None
        if self.monitor.is_revoked(task_id) or any(
            self.monitor.is_revoked(key) for key in revoke_keys(headers.get("stamps"))
        ):
            return self.revoke(delivery, task, "revoked")
        now = time.time()
        expires = headers.get("expires")
        if expires is not None and now >= float(expires):
            return self.revoke(delivery, task, "expired")
        eta = headers.get("eta")
        if eta is not None and float(eta) > now + ETA_SLACK:
            return self.park(delivery, float(eta))
        limit = task.rate_limit or self.app.conf.get("task_default_rate_limit")
        if limit and headers.get(ratelimit.SLOT_HEADER) is None:
            slot = ratelimit.slots.take(name, limit, now)
            if slot > now + ETA_SLACK:
                return self.park(delivery, slot, {ratelimit.SLOT_HEADER: slot})
        try:
            args, kwargs = protocol.decode_body(delivery.body, delivery.content_type, self.accept)
        except Exception as exc:
            return self.dead_letter(delivery, f"cannot decode body: {exc}")
        if headers.get("workflow") and not delivery.redelivered and self.duplicate(delivery):
            return None
        self.run(delivery, task, args, kwargs)

    # -- running ----------------------------------------------------------------------------
    def run(self, delivery: Delivery, task: Task, args: list[Any], kwargs: dict[str, Any]) -> None:
        headers = delivery.headers
        request = self.request(delivery, task, args, kwargs)
        acks_late = task.acks_late if task.acks_late is not None else self.app.conf.task_acks_late
        if not acks_late:
            delivery.ack()
        if logger.isEnabledFor(logging.INFO):  # the args' repr costs more than the log call
            # Celery's shadow: the name logs show (it came in a message: escaped)
            shown = envelope.printable(str(headers.get("shadow") or task.name))
            logger.info("Task %s[%s] received: %s", shown, request.id, _shown_args(request))
        signals.task_received.send(sender=self, request=request)
        self.monitor.received(request, delivery.queue, delivery.redelivered)
        if (
            task.track_started
            if task.track_started is not None
            else self.app.conf.task_track_started
        ):
            self.app.backend.store(
                request.id or "",
                states.STARTED,
                metas.encode(
                    metas.make_meta(
                        request.id or "",
                        states.STARTED,
                        {"pid": os.getpid(), "hostname": self.hostname},
                        task=task.name,
                        worker=self.hostname,
                        workflow=request.workflow,
                        extra={"started_at": time.time()},
                    )
                ),
            )
        errback = headers.get("errback_for")
        if errback:
            args = self.errback_args(task, args, json.loads(errback))
        soft = self.soft_limit(task, headers) if self.soft_limits else None
        self.monitor.started(request, acknowledged=not acks_late)
        if soft:
            signal.setitimer(signal.ITIMER_REAL, soft)
        try:
            outcome = run_call(task, request, args, kwargs)
        except (SystemExit, KeyboardInterrupt) as exc:
            if not acks_late:  # its message is gone: say why before this process exits
                self.lost(request, task, exc)
            raise  # acks_late: the message comes back, and is dead-lettered if it keeps at it
        finally:
            if soft:
                signal.setitimer(signal.ITIMER_REAL, 0)
        # An acked call's successors are lost if this process dies, confirmed or not: what it
        # publishes need not wait for the broker's confirm (read later, refusals logged).
        confirms = self.app.transport.defer_confirms() if not acks_late else nullcontext()
        try:
            with confirms:
                self.record(delivery, task, request, outcome, settled=not acks_late)
        finally:
            self.monitor.finished(request, outcome)
        if acks_late:
            if outcome.state == REJECTED:
                return  # settled by record()
            if outcome.state == states.FAILURE and not self.acks_on_failure(task):
                # As in Celery: the failure is recorded, and the message goes to the
                # dead-letter queue instead of being acked.
                delivery.reject(
                    requeue=False, reason="task failed (acks_on_failure_or_timeout off)"
                )
                return
            delivery.ack()

    def lost(self, request: Request, task: Task, exc: BaseException) -> None:
        """Record ``WorkerLostError`` for an acked call that ends its process (``sys.exit()``
        in a task): otherwise nothing would ever settle it and its caller would wait for ever."""
        shown = f"{task.name}[{envelope.printable(request.id)}]"
        lost = WorkerLostError(f"{shown} raised {type(exc).__name__}: its process exited")
        logger.error("Task %s", lost)
        try:
            self.finish(request, task, states.FAILURE, Outcome(states.FAILURE, exc=lost), exc=lost)
        except Exception:
            logger.exception("Could not record that %s was lost", shown)

    def acks_on_failure(self, task: Task) -> bool:
        own = task.acks_on_failure_or_timeout
        return bool(self.app.conf.task_acks_on_failure_or_timeout if own is None else own)

    def soft_limit(self, task: Task, headers: dict[str, Any]) -> float | None:
        limit = headers.get("soft_time_limit") or task.soft_time_limit
        limit = limit or self.app.conf.task_soft_time_limit
        return float(limit) if limit else None

    def request(
        self, delivery: Delivery, task: Task, args: list[Any], kwargs: dict[str, Any]
    ) -> Request:
        h = delivery.headers
        return Request(
            id=h["id"],
            task=task.name,
            args=args,
            kwargs=kwargs,
            retries=int(h.get("retries") or 0),
            eta=h.get("eta"),
            expires=h.get("expires"),
            root_id=h.get("root_id"),
            parent_id=h.get("parent_id"),
            group=h.get("group"),
            workflow=h.get("workflow"),
            hostname=self.hostname,
            delivery_info={
                "redelivered": bool(delivery.redelivered),
                "routing_key": delivery.queue,
                "queue": delivery.queue,
                "priority": h.get("priority"),
            },
            headers=dict(h),
            argsrepr=h.get("argsrepr"),
            kwargsrepr=h.get("kwargsrepr"),
            origin=h.get("origin"),
            called_directly=False,
            timelimit=(h.get("time_limit"), h.get("soft_time_limit")),
            stamps=dict(h.get("stamps") or {}),
            stamped_headers=list(h.get("stamped_headers") or ()),
        )

    def errback_args(self, task: Task, args: list[Any], about: dict[str, Any]) -> list[Any]:
        """New-style errbacks get ``(request, exc, traceback)``; old style keep the task id."""
        if not errback_takes_request(task) or not args:
            return args
        failed = Request(id=about.get("id"), task=about.get("task"), called_directly=False)
        stored = about.get("exc")
        exc = metas.exception_from_dict(self.app, stored if isinstance(stored, dict) else {})
        return [failed, exc, about.get("traceback"), *args[1:]]

    # -- outcomes ---------------------------------------------------------------------------
    def record(
        self,
        delivery: Delivery,
        task: Task,
        request: Request,
        outcome: Outcome,
        settled: bool = False,
    ) -> None:
        """Act on how the call ended; ``settled`` says the message was acked before it ran."""
        assert request.id is not None
        name = envelope.printable(str(request.headers.get("shadow") or task.name))
        shown = f"{name}[{envelope.printable(request.id)}]"
        if outcome.state == states.SUCCESS:
            if logger.isEnabledFor(logging.INFO):
                limit = int(getattr(task, "resultrepr_maxsize", None) or RESULT_REPR_MAXSIZE)
                logger.info(
                    "Task %s succeeded in %.4fs: %s",
                    shown,
                    outcome.runtime,
                    shorten(outcome.value, limit),
                )
            self.finish(request, task, states.SUCCESS, outcome, result=outcome.value)
        elif outcome.state == RETRY:
            logger.info("Task %s retry: %s", shown, outcome.exc)
            self.retry(delivery, task, request, outcome)
        elif outcome.state == REJECTED:
            assert outcome.reject is not None
            reason = str(outcome.reject.reason)
            if settled:
                # As in Celery: Reject acts on the message only with acks_late.
                logger.warning(
                    "Task %s raised Reject but its message was acked before it ran "
                    "(acks_late is off): nothing requeued or dead-lettered",
                    shown,
                )
            elif outcome.reject.requeue:
                logger.info("Task %s rejected, requeued: %s", shown, reason)
                delivery.reject(requeue=True, reason=reason)
            else:
                logger.warning("Task %s rejected to the dead-letter queue: %s", shown, reason)
                delivery.reject(requeue=False, reason=reason)
            if settled or not outcome.reject.requeue:
                signals.task_rejected.send(sender=self, message=delivery, exc=outcome.reject)
                rejected = TaskRejectedError(f"{shown} rejected: {reason}")
                self.finish(request, task, states.REJECTED, outcome, exc=rejected)
        elif outcome.state == IGNORED:
            logger.info("Task %s ignored", shown)
            if request.workflow:
                # Ignore leaves a plain task's state alone; a workflow node must still settle,
                # or everything after it would wait for ever.
                ignored = TaskRevokedError(f"{shown} raised Ignore inside a workflow")
                self.finish(request, task, states.REVOKED, outcome, exc=ignored)
        elif outcome.state == REPLACED:
            assert outcome.replace is not None
            logger.info("Task %s replaced by %r", shown, outcome.replace)
            replace.replace_node(self.app, request, outcome.replace)
        else:
            exc = outcome.exc
            if task.throws and isinstance(exc, tuple(task.throws)):
                # As in Celery: an expected error (``throws``) is logged without its traceback.
                logger.info("Task %s raised expected: %s: %s", shown, type(exc).__name__, exc)
            else:
                logger.error(
                    "Task %s raised unexpected: %s: %s\n%s",
                    shown,
                    type(exc).__name__,
                    exc,
                    (outcome.traceback or "").rstrip(),
                )
            self.finish(request, task, states.FAILURE, outcome, exc=outcome.exc)

    def finish(
        self,
        request: Request,
        task: Task,
        state: str,
        outcome: Outcome,
        result: Any = None,
        exc: BaseException | None = None,
    ) -> None:
        """Store the outcome; inside a workflow also wire the successors it makes ready."""
        assert request.id is not None
        meta = metas.make_meta(
            request.id,
            state,
            result,
            exc=exc,
            traceback=outcome.traceback,
            task=task.name,
            worker=self.hostname,
            retries=request.retries,
            runtime=outcome.runtime,
            workflow=request.workflow,
            extra={
                **(_extended(request) if self.app.conf.result_extended else {}),
                **_children(request),
            },
        )
        meta = self.storable(meta, f"{task.name}[{envelope.printable(request.id)}]")
        if request.workflow:
            self.settle_node(request, meta)
            return
        ignore = request.headers.get("ignore_result")
        if ignore is None:
            ignore = task.ignore_result
        if ignore is None:
            ignore = self.app.conf.task_ignore_result
        keep_errors = task.store_errors_even_if_ignored
        if keep_errors is None:
            keep_errors = self.app.conf.task_store_errors_even_if_ignored
        if ignore and not (state != states.SUCCESS and keep_errors):
            return
        self.app.backend.store(request.id, state, metas.encode(meta))

    def storable(self, meta: dict[str, Any], shown: str) -> dict[str, Any]:
        """``meta``, or a FAILURE naming why it cannot be stored: a result that cannot be
        encoded, or one over ``result_max_payload_bytes``. Either way the call ran once and
        ends settled, instead of failing after its message was acked (lost, or run again)."""
        try:
            size = len(metas.encode(meta))
        except Exception as exc:
            error: Exception = TypeError(f"{shown}: cannot store its result: {exc}")
        else:
            limit = int(self.app.conf.get("result_max_payload_bytes") or 0)
            if not limit or size <= limit:
                return meta
            error = PayloadTooLarge(
                f"{shown}: its result is {size} bytes encoded, over "
                f"result_max_payload_bytes={limit}. Return a storage key instead of the data."
            )
        logger.error("Task %s: %s", shown, error)
        failed = metas.make_meta(
            str(meta.get("task_id")),
            states.FAILURE,
            exc=error,
            task=meta.get("name"),
            worker=meta.get("worker"),
            retries=int(meta.get("retries") or 0),
            runtime=meta.get("runtime"),
            workflow=meta.get("workflow"),
        )
        return failed

    def lineage(self, request: Request) -> Lineage:
        """What the calls this one makes ready inherit: its root, and its priority when the
        app says so (``task_inherit_parent_priority``)."""
        inherit = self.app.conf.task_inherit_parent_priority
        priority = request.delivery_info.get("priority") if inherit else None
        return Lineage(request.root_id or request.id, request.id, priority)

    def node(self, request: Request) -> dag.Node:
        """The node ``request`` runs; ``UnreadableNode`` when its stored record is bad."""
        assert request.workflow is not None and request.id is not None
        claimed = self.claimed
        if claimed is not None and claimed[:2] == (request.workflow, request.id):
            spec = claimed[2]  # read with the claim of this very run (a task's spec is fixed)
        else:
            spec = self.app.backend.node_specs(request.workflow, [request.id])[0]
        if spec is None:
            # The workflow expired from the store: finish as a plain task would.
            return dag.Node(request.id, dag.TASK, request.task)
        return complete.load_node(spec)

    def settle_node(self, request: Request, meta: dict[str, Any]) -> None:
        """Record a workflow node's outcome and wire what it makes ready. A node whose own
        record is unreadable settles as FAILURE naming why (it cannot be wired as stored)."""
        assert request.workflow is not None and request.id is not None
        try:
            node = self.node(request)
        except complete.UnreadableNode as exc:
            logger.error("Task %s: %s", envelope.printable(request.id), exc)
            node = dag.Node(request.id, dag.TASK, request.task)
            meta = complete.unreadable_outcome(request.workflow, request.id, exc, request.task)
        complete.settle(self.app, request.workflow, node, meta, self.lineage(request))

    def retry(self, delivery: Delivery, task: Task, request: Request, outcome: Outcome) -> None:
        """Publish the same call again (same id, retries + 1) and record RETRY."""
        assert outcome.retry is not None and request.id is not None
        retry = outcome.retry
        headers = dict(delivery.headers)
        headers.pop(ratelimit.SLOT_HEADER, None)  # the next run takes a slot of its own
        headers["retries"] = request.retries + 1
        eta = retry.eta
        countdown = retry.countdown
        headers["eta"] = eta if eta is not None else time.time() + float(countdown or 0)
        new_args = retry.call_args
        new_kwargs = retry.call_kwargs
        body, content_type = delivery.body, delivery.content_type
        if isinstance(new_args, list) or isinstance(new_kwargs, dict):
            body, content_type = protocol.encode_body(
                new_args if isinstance(new_args, list) else request.args,
                new_kwargs if isinstance(new_kwargs, dict) else request.kwargs,
                signing.body_serializer(self.app.conf, self.app.conf.task_serializer),
            )
        meta = metas.make_meta(
            request.id,
            states.RETRY,
            exc=outcome.exc,
            task=task.name,
            worker=self.hostname,
            retries=request.retries,
            workflow=request.workflow,
        )
        self.app.backend.store(request.id, states.RETRY, metas.encode(meta))
        messages.publish(
            self.app,
            [OutgoingMessage(delivery.queue, body, headers, content_type)],
        )

    def revoke(self, delivery: Delivery, task: Task, why: str) -> None:
        request = self.request(delivery, task, [], {})
        logger.info("Task %s[%s] %s: not run (REVOKED)", task.name, request.id, why)
        delivery.ack()
        expired = why == "expired"
        signals.task_revoked.send(
            sender=self, request=request, terminated=False, signum=None, expired=expired
        )
        exc = TaskRevokedError(f"{task.name}[{request.id}] {why}")
        self.finish(request, task, states.REVOKED, Outcome(states.REVOKED, exc=exc), exc=exc)
        self.monitor.task_revoked(request, expired=expired)

    def park(
        self, delivery: Delivery, eta: float, extra_headers: dict[str, Any] | None = None
    ) -> None:
        """Hand a countdown/ETA message to the store until it is due, then ack it."""
        record = protocol.internal.dumps(
            {
                "queue": delivery.queue,
                "body": delivery.body,
                "headers": {**delivery.headers, **(extra_headers or {})},
                "content_type": delivery.content_type,
            }
        )
        key = f"{delivery.headers['id']}:{delivery.headers.get('retries') or 0}"
        self.app.backend.schedule(key, eta, record, space=self.app.transport.space)
        delivery.ack()
        self.monitor.parked(delivery.headers, delivery.queue, eta)
        if self.on_park is not None:
            self.on_park(eta)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Reject to the dead-letter queue; a workflow node also fails, so nothing waits on it."""
        headers = delivery.headers
        logger.error(
            "Message %s (task %s) from %s dead-lettered: %s",
            envelope.printable(headers.get("id")),
            envelope.printable(headers.get("task")),
            envelope.printable(delivery.queue),
            envelope.printable(reason, 1000),
        )
        delivery.reject(requeue=False, reason=reason)
        workflow, task_id = headers.get("workflow"), headers.get("id")
        if isinstance(workflow, str) and workflow and isinstance(task_id, str) and task_id:
            request = Request(id=task_id, task=str(headers.get("task")), workflow=workflow)
            exc = TaskRejectedError(f"{headers.get('task')}[{task_id}] dead-lettered: {reason}")
            meta = metas.make_meta(
                task_id, states.REJECTED, exc=exc, task=request.task, workflow=workflow
            )
            request.root_id = headers.get("root_id")
            self.settle_node(request, meta)

    def duplicate(self, delivery: Delivery) -> bool:
        """A second first-delivery of one workflow node run: ack it, its twin owns the run.

        Re-wiring after a crash (``already_done``) may publish a successor that was in fact
        published already; the first of the two copies to arrive claims the run. Redeliveries
        of a claimed copy (its worker died) are not duplicates and run.
        """
        headers = delivery.headers
        workflow, task_id = str(headers.get("workflow")), str(headers["id"])
        # Per workflow: a frozen signature sent in two canvases runs in both (as in Celery).
        # The workflow id is the key's hash tag: on Redis Cluster it lives beside the workflow.
        key = f"claim:{{{workflow}}}:{task_id}:{headers.get('retries') or 0}"
        # The node's spec comes with the claim (one round trip); finish() uses it.
        count, spec = self.app.backend.claim_node(
            workflow, task_id, key, self.app.conf.result_expires
        )
        self.claimed = (workflow, task_id, spec)
        if count <= 1:
            return False
        logger.info("Task %s: a duplicate message of a claimed run, not run", headers["id"])
        delivery.ack()
        return True

    def already_done(self, delivery: Delivery) -> bool:
        """The call's outcome is already stored: ack, and re-wire its successors (its worker may
        have died between recording the outcome and publishing them)."""
        task_id = str(delivery.headers.get("id"))
        meta = metas.decode(self.app.backend.get([task_id])[0])
        if not meta or meta.get("status") not in states.READY_STATES:
            return False
        workflow = delivery.headers.get("workflow")
        if meta.get("workflow") != workflow and (workflow or meta.get("workflow")):
            # The same task id run by another canvas (a frozen signature sent twice): this
            # one's outcome is not recorded yet.
            return False
        logger.info("Task %s delivered again, already %s: not run again", task_id, meta["status"])
        if isinstance(workflow, str):
            headers = delivery.headers
            root = headers.get("root_id") or task_id
            complete.rewire(self.app, workflow, task_id, Lineage(root, task_id))
        delivery.ack()
        return True

    def _too_many(self, task_id: str) -> bool:
        key = f"deliveries:{task_id}"
        count = self.app.backend.incr(key, self.app.conf.result_expires)
        self.counted = key
        return count >= self.max_deliveries

    def _uncount(self, key: str) -> None:
        """Best effort: a store that is down for this write too leaves one count standing."""
        try:
            self.app.backend.incr(key, self.app.conf.result_expires, by=-1)
        except Exception as exc:
            logger.debug("Could not take back the delivery count %s: %s", key, exc)


def release_due(app: Canvas, now: float, lease: float = 30.0) -> int:
    """Publish parked messages that are due; the store's lease covers a crash in between."""
    space = app.transport.space
    claimed = app.backend.claim_due(now, lease, space=space)
    if not claimed:
        return 0
    messages = []
    for key, payload in claimed:
        try:
            record = protocol.internal.loads(payload)
            messages.append(
                OutgoingMessage(
                    str(record["queue"]),
                    bytes(record["body"]),
                    dict(record["headers"]),
                    str(record["content_type"]),
                )
            )
        except Exception as exc:  # a corrupted record must not stop the timer for the others
            logger.error("Parked message %s is unreadable, dropped: %r", printable(key), exc)
    app.transport.publish(messages)
    app.backend.ack_scheduled([key for key, _ in claimed], space=space)
    return len(claimed)


def raise_soft_limit(signum: int, frame: Any) -> None:
    """SIGALRM handler: the soft time limit passed; the task may catch this and clean up."""
    raise SoftTimeLimitExceeded("soft time limit exceeded")


def _shown_args(request: Request) -> str:
    args = request.argsrepr if request.argsrepr is not None else shorten(request.args, 200)
    kwargs = request.kwargsrepr if request.kwargsrepr is not None else shorten(request.kwargs, 200)
    return f"args={args} kwargs={kwargs}"


def _children(request: Request) -> dict[str, Any]:
    """Celery's ``children``: the handles of what the call sent while it ran (``trail``)."""
    if not request.children:
        return {}
    return {"children": [child.as_tuple() for child in request.children]}


def _extended(request: Request) -> dict[str, Any]:
    """``result_extended``: the call's arguments as logs show them, and the beat entry."""
    return {
        "args": request.argsrepr if request.argsrepr is not None else repr(tuple(request.args)),
        "kwargs": request.kwargsrepr if request.kwargsrepr is not None else repr(request.kwargs),
        "periodic_task_name": request.headers.get("periodic_task_name"),
        "queue": request.delivery_info.get("queue"),
    }
