"""An in-memory picture of the cluster built from events: ``app.events.State`` (Celery's).

    state = app.events.State()
    app.events.Receiver(None, handlers={"*": state.event}).capture(limit=100)
    state.workers["canvas@host"].alive, state.tasks[task_id].state

Workers, tasks (the latest ``max_tasks_in_memory``, default 10,000) and, canvas's own, workflows
with their progress. Events may arrive out of order (two processes, one clock each): a task that
reached a final state keeps it when an older event of it arrives late, and only takes the fields
it did not have yet. ``event()`` is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from canvas import states
from canvas.events.event import HEARTBEAT_INTERVAL, group_from

#: a worker is alive while its last heartbeat is younger than this many intervals (Celery's 2)
HEARTBEAT_EXPIRE_WINDOW = 2.0
_TASK_STATE = {
    "task-sent": states.PENDING,
    "task-received": states.RECEIVED,
    "task-started": states.STARTED,
    "task-succeeded": states.SUCCESS,
    "task-failed": states.FAILURE,
    "task-retried": states.RETRY,
    "task-revoked": states.REVOKED,
    "task-rejected": states.REJECTED,
}
#: fields an event writes into a Task of the same name; others stay in ``Task.extra``
_TASK_FIELDS = (
    "name",
    "args",
    "kwargs",
    "eta",
    "expires",
    "retries",
    "result",
    "exception",
    "traceback",
    "runtime",
    "exchange",
    "routing_key",
    "queue",
    "root_id",
    "parent_id",
    "workflow",
    "client",
    "terminated",
    "signum",
    "expired",
    "requeue",
)


class Worker:
    """One worker as its events describe it."""

    heartbeat_max = 4

    def __init__(self, hostname: str, **fields: Any) -> None:
        self.hostname = hostname
        self.pid: int | None = None
        self.freq: float = HEARTBEAT_INTERVAL
        self.heartbeats: list[float] = []
        self.clock = 0
        self.active: int | None = None
        self.processed: int | None = None
        self.loadavg: list[float] | None = None
        self.sw_ident: str | None = None
        self.sw_ver: str | None = None
        self.sw_sys: str | None = None
        #: canvas's own heartbeat fields: pool, concurrency, queues
        self.pool: str | None = None
        self.concurrency: int | None = None
        self.queues: list[str] | None = None
        self.offline_at: float | None = None
        self.update(fields)

    def update(self, fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if key in _WORKER_FIELDS:
                setattr(self, key, value)

    def event(self, type: str, timestamp: float, fields: dict[str, Any]) -> None:
        self.update(fields)
        if type == "worker-offline":
            self.heartbeats.clear()
            self.offline_at = timestamp
            return
        self.offline_at = None
        self.heartbeats.append(timestamp)
        self.heartbeats.sort()
        del self.heartbeats[: -self.heartbeat_max]

    @property
    def heartbeat_expires(self) -> float | None:
        if not self.heartbeats:
            return None
        return self.heartbeats[-1] + float(self.freq or HEARTBEAT_INTERVAL) * (
            HEARTBEAT_EXPIRE_WINDOW
        )

    @property
    def alive(self) -> bool:
        expires = self.heartbeat_expires
        return expires is not None and time.time() < expires

    @property
    def status_string(self) -> str:
        return "ONLINE" if self.alive else "OFFLINE"

    @property
    def id(self) -> tuple[str, int | None]:
        return self.hostname, self.pid

    def __repr__(self) -> str:
        return f"<Worker: {self.hostname} ({self.status_string} clock:{self.clock})>"


_WORKER_FIELDS = frozenset(
    ["pid", "freq", "clock", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"]
    + ["pool", "concurrency", "queues"]
)


class Task:
    """One task as its events describe it; the times of each event by name (``received``...)."""

    def __init__(self, uuid: str) -> None:
        self.uuid = uuid
        self.state = states.PENDING
        self.name: str | None = None
        self.args: str | None = None
        self.kwargs: str | None = None
        self.eta: Any = None
        self.expires: Any = None
        self.retries: int | None = None
        self.result: str | None = None
        self.exception: str | None = None
        self.traceback: str | None = None
        self.runtime: float | None = None
        self.exchange: str | None = None
        self.routing_key: str | None = None
        self.queue: str | None = None
        self.root_id: str | None = None
        self.parent_id: str | None = None
        self.workflow: str | None = None
        self.client: str | None = None
        self.terminated: bool | None = None
        self.signum: Any = None
        self.expired: bool | None = None
        self.requeue: bool | None = None
        self.worker: Worker | None = None
        self.timestamp: float | None = None
        self.clock = 0
        self.sent: float | None = None
        self.received: float | None = None
        self.started: float | None = None
        self.succeeded: float | None = None
        self.failed: float | None = None
        self.retried: float | None = None
        self.revoked: float | None = None
        self.rejected: float | None = None

    @property
    def id(self) -> str:
        return self.uuid

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES

    @property
    def argsrepr(self) -> str | None:
        """The arguments as the sender showed them (events carry nothing else)."""
        return self.args

    @property
    def kwargsrepr(self) -> str | None:
        return self.kwargs

    def event(self, type: str, timestamp: float, fields: dict[str, Any]) -> None:
        new_state = _TASK_STATE.get(type)
        kind = type.split("-", 1)[1] if "-" in type else type
        if kind in _TIME_FIELDS:
            setattr(self, kind, timestamp)
        late = self.ready and new_state not in states.READY_STATES
        for key in _TASK_FIELDS:
            if key in fields and fields[key] is not None:
                if not late or getattr(self, key) is None:
                    setattr(self, key, fields[key])
        if new_state is not None and not late:
            self.state = new_state
            self.timestamp = timestamp
            self.clock = int(fields.get("clock") or self.clock)

    def info(self, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The task's fields that are set, as a dict (what a monitor shows)."""
        wanted = fields or ("name", "state", *_TASK_FIELDS)
        out = {k: getattr(self, k, None) for k in wanted}
        return {k: v for k, v in out.items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        data = {"uuid": self.uuid, **self.info()}
        data["worker"] = self.worker.hostname if self.worker else None
        for name in _TIME_FIELDS:
            data[name] = getattr(self, name)
        data["timestamp"] = self.timestamp
        return data

    def __repr__(self) -> str:
        return f"<Task: {self.name}({self.uuid}) {self.state} clock:{self.clock}>"


_TIME_FIELDS = frozenset(
    ["sent", "received", "started", "succeeded", "failed", "retried", "revoked", "rejected"]
)


class Workflow:
    """A workflow: its tasks seen so far and, after ``workflow-started``, its size."""

    def __init__(self, id: str) -> None:
        self.id = id
        self.name: str | None = None
        self.total: int | None = None
        self.state = states.PENDING
        self.started: float | None = None
        self.finished: float | None = None
        self.tasks: dict[str, Task] = {}

    @property
    def done(self) -> int:
        """How many of its tasks reached a final state."""
        return sum(1 for t in self.tasks.values() if t.ready)

    @property
    def progress(self) -> float | None:
        """Done tasks over all tasks (``None`` until the size is known); 1.0 once finished."""
        if self.finished is not None:
            return 1.0
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self.tasks.values():
            counts[task.state] = counts.get(task.state, 0) + 1
        return counts

    def __repr__(self) -> str:
        return f"<Workflow: {self.id} {self.state} {self.done}/{self.total}>"


class State:
    """Workers, tasks and workflows from events; feed it with ``state.event``."""

    def __init__(
        self,
        callback: Callable[[State, dict[str, Any]], Any] | None = None,
        max_workers_in_memory: int = 5000,
        max_tasks_in_memory: int = 10000,
        max_workflows_in_memory: int = 1000,
        **celery_options: Any,
    ) -> None:
        self.event_callback = callback
        self.max_workers_in_memory = max_workers_in_memory
        self.max_tasks_in_memory = max_tasks_in_memory
        self.max_workflows_in_memory = max_workflows_in_memory
        self.workers: OrderedDict[str, Worker] = OrderedDict()
        self.tasks: OrderedDict[str, Task] = OrderedDict()
        self.workflows: OrderedDict[str, Workflow] = OrderedDict()
        self.event_count = 0
        self.task_count = 0
        self._seen_types: set[str] = set()
        self._mutex = threading.RLock()

    # -- feeding -------------------------------------------------------------------------------
    def event(self, event: dict[str, Any]) -> tuple[Any, str] | None:
        """Apply one event; returns ``(object, kind)`` as Celery's does, or ``None``."""
        with self._mutex:
            self.event_count += 1
            type = str(event.get("type", ""))
            group = group_from(type)
            if group == "worker":
                result: tuple[Any, str] | None = (self._worker_event(type, event), type)
            elif group == "task":
                result = (self._task_event(type, event), type)
            elif group == "workflow":
                result = (self._workflow_event(type, event), type)
            else:
                result = None
        if self.event_callback is not None:
            self.event_callback(self, event)
        return result

    def _timestamp(self, event: dict[str, Any]) -> float:
        return float(event.get("timestamp") or event.get("local_received") or time.time())

    def get_or_create_worker(self, hostname: str, **fields: Any) -> tuple[Worker, bool]:
        worker = self.workers.get(hostname)
        if worker is not None:
            worker.update(fields)
            self.workers.move_to_end(hostname)
            return worker, False
        worker = self.workers[hostname] = Worker(hostname, **fields)
        _trim(self.workers, self.max_workers_in_memory)
        return worker, True

    def get_or_create_task(self, uuid: str) -> tuple[Task, bool]:
        task = self.tasks.get(uuid)
        if task is not None:
            self.tasks.move_to_end(uuid)
            return task, False
        task = self.tasks[uuid] = Task(uuid)
        self.task_count += 1
        _trim(self.tasks, self.max_tasks_in_memory)
        return task, True

    def get_or_create_workflow(self, id: str) -> Workflow:
        workflow = self.workflows.get(id)
        if workflow is None:
            workflow = self.workflows[id] = Workflow(id)
            _trim(self.workflows, self.max_workflows_in_memory)
        return workflow

    def _worker_event(self, type: str, event: dict[str, Any]) -> Worker | None:
        hostname = event.get("hostname")
        if not isinstance(hostname, str):
            return None
        worker, _ = self.get_or_create_worker(hostname)
        worker.event(type, self._timestamp(event), event)
        return worker

    def _task_event(self, type: str, event: dict[str, Any]) -> Task | None:
        uuid = event.get("uuid")
        if not isinstance(uuid, str):
            return None
        task, _ = self.get_or_create_task(uuid)
        task.event(type, self._timestamp(event), event)
        hostname = event.get("hostname")
        if type != "task-sent" and isinstance(hostname, str):
            task.worker, _ = self.get_or_create_worker(hostname)
        elif type == "task-sent" and isinstance(hostname, str):
            task.client = task.client or hostname
        if task.name:
            self._seen_types.add(task.name)
        if task.workflow:
            self.get_or_create_workflow(task.workflow).tasks[uuid] = task
        return task

    def _workflow_event(self, type: str, event: dict[str, Any]) -> Workflow | None:
        id = event.get("workflow")
        if not isinstance(id, str):
            return None
        workflow = self.get_or_create_workflow(id)
        timestamp = self._timestamp(event)
        if type == "workflow-started":
            workflow.started = timestamp
            workflow.name = event.get("name") or workflow.name
            if isinstance(event.get("nodes"), int):
                workflow.total = event["nodes"]
            if workflow.finished is None:
                workflow.state = states.STARTED
        elif type == "workflow-finished":
            workflow.finished = timestamp
            workflow.state = str(event.get("state") or states.SUCCESS)
        return workflow

    def clear(self, ready: bool = True) -> None:
        """Forget finished tasks and workflows (all of them when ``ready`` is false)."""
        with self._mutex:
            if ready:
                for uuid in [u for u, t in self.tasks.items() if t.ready]:
                    del self.tasks[uuid]
                for id in [i for i, w in self.workflows.items() if w.finished is not None]:
                    del self.workflows[id]
            else:
                self.tasks.clear()
                self.workflows.clear()
            self.event_count = 0
            self.task_count = len(self.tasks)

    clear_tasks = clear

    # -- reading -------------------------------------------------------------------------------
    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, Task]]:
        with self._mutex:
            items = list(self.tasks.items())
        yield from items[:limit] if limit else items

    def tasks_by_time(
        self, limit: int | None = None, reverse: bool = True
    ) -> Iterator[tuple[str, Task]]:
        """``(uuid, task)`` by the time of the task's latest event, newest first."""
        with self._mutex:
            items = sorted(
                self.tasks.items(), key=lambda item: item[1].timestamp or 0.0, reverse=reverse
            )
        yield from items[:limit] if limit else items

    tasks_by_timestamp = tasks_by_time

    def tasks_by_type(self, name: str, limit: int | None = None) -> list[tuple[str, Task]]:
        found = [(u, t) for u, t in self.tasks_by_time() if t.name == name]
        return found[:limit] if limit else found

    def tasks_by_worker(self, hostname: str, limit: int | None = None) -> list[tuple[str, Task]]:
        found = [
            (u, t) for u, t in self.tasks_by_time() if t.worker and t.worker.hostname == hostname
        ]
        return found[:limit] if limit else found

    def task_types(self) -> list[str]:
        return sorted(self._seen_types)

    def alive_workers(self) -> list[Worker]:
        with self._mutex:
            return [w for w in self.workers.values() if w.alive]

    def __repr__(self) -> str:
        return f"<State: events={self.event_count} tasks={self.task_count}>"


def _trim(mapping: OrderedDict[str, Any], limit: int) -> None:
    while len(mapping) > limit:
        mapping.popitem(last=False)
