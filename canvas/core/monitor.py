"""What one consuming process tells about each task: to its supervisor, and as events.

The delivery handler (``canvas.core.consumer``) calls a ``TaskMonitor`` at each step of a task's
life. The monitor reports the step to the worker's supervisor (``canvas.core.worker_state``: the
answers to ``inspect``) and, when task events are on (``worker -E``), sends Celery's task event
for it (``task-received``, ``task-started``, ``task-succeeded`` with ``runtime``, ``task-failed``
with ``exception`` and ``traceback``, ``task-retried``, ``task-rejected``, ``task-revoked``).
Arguments and results appear only as bounded reprs, and only ``argsrepr``/``kwargsrepr`` when the
sender gave them.

The supervisor steers the process through ``apply``: new revokes, events on or off, a task's rate
or time limit, the queues to consume, stop. The monitor holds what the handler checks before
running a task: ``is_revoked``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from canvas import states
from canvas.core import metas, protocol, ratelimit
from canvas.core.revoked import Revoked
from canvas.events.dispatcher import EventDispatcher
from canvas.events.event import short_repr
from canvas.transports.base import OutgoingMessage

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.core.execute import Outcome
    from canvas.request import Request

logger = logging.getLogger("canvas.worker")

Report = Callable[[dict[str, Any]], None]
#: seconds a consuming process keeps task events before publishing them as one batch
EVENT_FLUSH_INTERVAL = 0.1
_FINISHED_EVENTS = {
    states.SUCCESS: "task-succeeded",
    states.FAILURE: "task-failed",
    states.RETRY: "task-retried",
    states.REJECTED: "task-rejected",
}


class TaskMonitor:
    """One consuming process's reporter; ``report`` carries a dict to the supervisor."""

    def __init__(
        self,
        app: Canvas,
        hostname: str,
        report: Report | None = None,
        *,
        revoked: Revoked | None = None,
        queues: list[str] | None = None,
        send_events: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.app = app
        self.hostname = hostname
        self.report = report
        self.revoked = revoked if revoked is not None else Revoked()
        #: the queues to consume; ``queues_version`` counts the supervisor's changes to them
        self.queues = list(queues or [])
        self.queues_version = 0
        #: set by a "stop" order: the process finishes its task and stops fetching
        self.stop = stop if stop is not None else threading.Event()
        #: task info between received and started (a dict: threads share one monitor)
        self._pending: dict[str, dict[str, Any]] = {}
        self._sinks_cache: dict[str, list[str]] = {}
        self._finished: dict[str, bool] = {}
        self.events = EventDispatcher(
            hostname=hostname,
            enabled=send_events,
            app=app,
            groups=["task", "workflow"],
            flush_interval=EVENT_FLUSH_INTERVAL,
        )

    # -- steps of a task's life ---------------------------------------------------------------
    def is_revoked(self, task_id: str) -> bool:
        return task_id in self.revoked

    def received(self, request: Request, queue: str, redelivered: bool) -> None:
        # The supervisor hears of the task when it starts, a moment later (one report, not two:
        # a pool process takes one message at a time, so "reserved" is only ever that moment).
        info = task_info(request, self.hostname, queue, redelivered)
        if len(self._pending) > 1000:  # started() never came for some (an error between)
            self._pending.clear()
        self._pending[str(request.id)] = info
        if self.events.enabled:
            self.events.send(
                "task-received",
                uuid=request.id,
                name=request.task,
                args=info["args"],
                kwargs=info["kwargs"],
                root_id=request.root_id,
                parent_id=request.parent_id,
                retries=request.retries,
                eta=request.eta,
                expires=request.expires,
                queue=queue,
                workflow=request.workflow,
            )

    def started(self, request: Request, acknowledged: bool) -> None:
        pid = os.getpid()
        info = self._pending.pop(str(request.id), None)
        self._report(
            {
                "op": "started",
                "id": request.id,
                "pid": pid,
                "time_start": time.time(),
                "acknowledged": acknowledged,
                "info": info,
            }
        )
        if self.events.enabled:
            self.events.send(
                "task-started",
                uuid=request.id,
                pid=pid,
                name=request.task,
                workflow=request.workflow,
            )

    def finished(self, request: Request, outcome: Outcome) -> None:
        """The call ended: any outcome, including a retry (the task comes back later)."""
        self._report(
            {"op": "finished", "id": request.id, "name": request.task, "state": outcome.state}
        )
        event = _FINISHED_EVENTS.get(outcome.state)
        if event is None or not self.events.enabled:
            return
        fields: dict[str, Any] = {"uuid": request.id, "name": request.task}
        if request.workflow:
            fields["workflow"] = request.workflow
        if outcome.state == states.SUCCESS:
            fields.update(result=short_repr(outcome.value), runtime=outcome.runtime)
        elif outcome.state == states.REJECTED:
            fields["requeue"] = bool(outcome.reject and outcome.reject.requeue)
        else:
            fields.update(exception=short_repr(outcome.exc), traceback=outcome.traceback)
        self.events.send(event, **fields)
        if request.workflow and outcome.state != states.RETRY and request.id:
            self.workflow_settled(request.workflow, request.id, outcome.state)

    def workflow_settled(self, workflow: str, node_id: str, state: str) -> None:
        """After a node of ``workflow`` settled: send ``workflow-finished`` once every end node
        of it is settled (with events on). A node that failed may have settled all that came
        after it, so then the ends are looked at too; otherwise only when it is an end."""
        if not self.events.enabled or workflow in self._finished:
            return
        try:
            sinks = self._sinks(workflow)
            if not sinks or (state == states.SUCCESS and node_id not in sinks):
                return
            ends = [metas.decode(m) for m in self.app.backend.get(sinks)]
        except Exception as exc:  # a store hiccup costs an event, never the task
            logger.debug("Could not look at the end of workflow %s: %s", workflow, exc)
            return
        if any(m is None or m.get("status") not in states.READY_STATES for m in ends):
            return
        failed = [str(m.get("status")) for m in ends if m and m.get("status") != states.SUCCESS]
        self._finished[workflow] = True
        while len(self._finished) > 1000:
            self._finished.pop(next(iter(self._finished)))
        self.events.send(
            "workflow-finished", workflow=workflow, state=failed[0] if failed else states.SUCCESS
        )

    def _sinks(self, workflow: str) -> list[str]:
        sinks = self._sinks_cache.get(workflow)
        if sinks is None:
            raw = self.app.backend.workflow_info(workflow)
            info = protocol.internal.loads(raw) if raw is not None else {}
            sinks = [str(s) for s in info.get("sinks") or ()]
            self._sinks_cache[workflow] = sinks
            while len(self._sinks_cache) > 256:
                self._sinks_cache.pop(next(iter(self._sinks_cache)))
        return sinks

    def task_revoked(
        self,
        request: Request,
        *,
        expired: bool = False,
        terminated: bool = False,
        signum: str | None = None,
    ) -> None:
        """The task ended REVOKED without running (call after its outcome is recorded)."""
        self._report({"op": "revoked", "id": request.id, "name": request.task})
        if self.events.enabled:
            self.events.send(
                "task-revoked",
                uuid=request.id,
                name=request.task,
                terminated=terminated,
                signum=signum,
                expired=expired,
                workflow=request.workflow,
            )
            if request.workflow and request.id:
                self.workflow_settled(request.workflow, request.id, states.REVOKED)

    def parked(self, headers: Mapping[str, Any], queue: str, eta: float) -> None:
        """A countdown/ETA message went to the store until it is due (its body undecoded)."""
        info = {
            "id": headers.get("id"),
            "name": headers.get("task"),
            "args": headers.get("argsrepr"),
            "kwargs": headers.get("kwargsrepr"),
            "type": headers.get("task"),
            "hostname": self.hostname,
            "delivery_info": {"routing_key": queue, "priority": headers.get("priority")},
            "workflow": headers.get("workflow"),
        }
        priority = headers.get("priority")
        self._report(
            {
                "op": "parked",
                "id": headers.get("id"),
                "info": info,
                "eta": eta,
                "priority": priority,
            }
        )

    # -- orders from the supervisor -----------------------------------------------------------
    def apply(self, command: Mapping[str, Any]) -> None:
        """Act on one order from the supervisor (see the module docstring)."""
        op = command.get("op")
        if op == "revoke":
            self.revoked.update((str(t), float(at)) for t, at in command.get("items") or ())
        elif op == "events":
            self.events.enabled = bool(command.get("enabled"))
        elif op == "queues":
            self.queues = [str(q) for q in command.get("queues") or ()]
            self.queues_version += 1
        elif op == "task_option":
            task = self.app.tasks.get(str(command.get("task")))
            if task is not None:
                for key, value in dict(command.get("options") or {}).items():
                    setattr(task, key, value)
        elif op == "rate_share":
            ratelimit.slots.processes = max(1, int(command.get("processes") or 1))
        elif op == "stop":
            self.stop.set()
        else:
            logger.warning("Unknown order from the supervisor: %r", op)

    def close(self) -> None:
        """Publish the events still buffered."""
        self.events.close()

    def ended(self, task_id: str) -> None:
        """A call left without an outcome of its own (``sys.exit()`` in a pool thread; the
        handler recorded what it could): it no longer counts as running, for ``inspect
        active`` and for the autoscaler's demand."""
        self._report({"op": "ended", "id": task_id})

    def _report(self, report: dict[str, Any]) -> None:
        if self.report is None:
            return
        try:
            self.report(report)
        except Exception as exc:  # the supervisor is gone or its pipe full: the task goes on
            logger.debug("Could not report %s to the supervisor: %s", report.get("op"), exc)


def task_info(request: Request, hostname: str, queue: str, redelivered: bool) -> dict[str, Any]:
    """Celery's task info (``inspect active``), arguments as reprs, plus ``workflow``."""
    args = (
        request.argsrepr if request.argsrepr is not None else short_repr(tuple(request.args or ()))
    )
    kwargs = request.kwargsrepr if request.kwargsrepr is not None else short_repr(request.kwargs)
    return {
        "id": request.id,
        "name": request.task,
        "args": args,
        "kwargs": kwargs,
        "type": request.task,
        "hostname": hostname,
        "time_start": None,
        "acknowledged": False,
        "delivery_info": {
            "exchange": "",
            "routing_key": queue,
            "priority": (request.headers or {}).get("priority"),
            "redelivered": redelivered,
        },
        "worker_pid": None,
        "workflow": request.workflow,
        # where its outcome goes with rpc://, if its process dies before it settles
        "reply_to": (request.headers or {}).get("reply_to"),
    }


_announcers: weakref.WeakKeyDictionary[Any, EventDispatcher] = weakref.WeakKeyDictionary()


def _announcer(app: Canvas) -> EventDispatcher:
    dispatcher = _announcers.get(app)
    if dispatcher is None:
        hostname = f"{os.getpid()}@{socket.gethostname()}"
        dispatcher = EventDispatcher(hostname=hostname, app=app, groups=["task", "workflow"])
        _announcers[app] = dispatcher
    return dispatcher


def announce_sent(app: Canvas, messages: Sequence[OutgoingMessage]) -> None:
    """``task-sent`` for each message, as one batch (``task_send_sent_event``)."""
    events = []
    for message in messages:
        h = message.headers
        args, kwargs = h.get("argsrepr"), h.get("kwargsrepr")
        if args is None or kwargs is None:
            try:
                accept = frozenset([message.content_type])
                real_args, real_kwargs = protocol.decode_body(
                    message.body, message.content_type, accept
                )
            except Exception:
                real_args, real_kwargs = [], {}
            args = args if args is not None else short_repr(tuple(real_args))
            kwargs = kwargs if kwargs is not None else short_repr(real_kwargs)
        events.append(
            (
                "task-sent",
                {
                    "uuid": h.get("id"),
                    "name": h.get("task"),
                    "args": args,
                    "kwargs": kwargs,
                    "retries": h.get("retries"),
                    "eta": h.get("eta"),
                    "expires": h.get("expires"),
                    "queue": message.queue,
                    "exchange": "",
                    "routing_key": message.queue,
                    "root_id": h.get("root_id"),
                    "parent_id": h.get("parent_id"),
                    "workflow": h.get("workflow"),
                },
            )
        )
    _announcer(app).send_batch(events)


def announce_workflow(app: Canvas, workflow: str, nodes: int, name: str | None) -> None:
    """``workflow-started``, when a client starts a stored workflow (``task_send_sent_event``)."""
    _announcer(app).send("workflow-started", workflow=workflow, nodes=nodes, name=name)
