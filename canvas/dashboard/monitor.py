"""The dashboard's model: workers, tasks, queues, workflows and beat entries, kept fresh.

Two threads feed it, so that no web request ever waits on a broker or a store:

* the **events feed** (``canvas.dashboard.feed``) hands every worker event to ``on_event``,
  which updates an ``app.events.State`` (Celery's API: ``workers``, ``tasks``), the metrics,
  per-worker success/failure counts and the list of followed workflows;
* the **refresher** reads, every ``interval`` seconds, queue depths from the transport (the app's
  queues and those the workers' heartbeats name) and followed workflows from the result store,
  and every ``slow_interval`` seconds the beat entries.

``snapshot()`` assembles what the page shows from those caches; its ``version`` changes exactly
when something the page shows changed, so the event stream sends a snapshot only then.
Task arguments are shown as ``argsrepr``/``kwargsrepr``, which is all events carry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from canvas import states
from canvas.core import metas
from canvas.dashboard import periodic, queues
from canvas.dashboard.feed import EventFeed
from canvas.dashboard.metrics import EVENT_STATES, Metrics
from canvas.dashboard.workflows import WorkflowBoard

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.events.state import State, Task

logger = logging.getLogger("canvas.dashboard")

#: seconds between refreshes of queues and workflows
INTERVAL = 1.0
#: seconds between reads of beat entries
SLOW_INTERVAL = 5.0
#: seconds over which task rates are averaged
RATE_WINDOW = 10.0
#: tasks returned by a search at most
TASKS_SHOWN = 200


class Monitor:
    """What the page shows; ``start()`` runs the refresher and the events feed."""

    def __init__(
        self,
        app: Canvas,
        *,
        queue_names: Iterable[str] = (),
        beat_store: str | None = None,
        interval: float = INTERVAL,
        slow_interval: float = SLOW_INTERVAL,
        events: bool = True,
    ) -> None:
        self.app = app
        self.interval = interval
        self.slow_interval = slow_interval
        self.beat_store = beat_store
        self.queue_names = queues.configured_queues(app, queue_names)
        self.board = WorkflowBoard(app)
        self.metrics = Metrics(self.snapshot)
        self.state: State | None = app.events.State() if events else None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._feed: EventFeed | None = None
        self._outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._entered: Counter[str] = Counter()  # tasks seen entering each state
        self._rate_samples: deque[tuple[float, Counter[str]]] = deque()
        self._events_seen = 0
        self._events_lag: float | None = None
        self._last_event_at: float | None = None
        self.events_error: str | None = None if events else "events are off (--no-events)"
        self._queues: list[queues.QueueDepth] = []
        self._beat: list[periodic.PeriodicEntry] = []
        self._slow_at = 0.0
        self._changes = 0
        self._shown: Any = None

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the refresher and, when events are on, the feed (both daemon threads)."""
        self._stop.clear()
        self._spawn("canvas-dashboard-refresh", self._refresh_loop)
        if self.state is not None:
            self._feed = EventFeed(self.app, self.on_event, self._feed_status)
            self._spawn("canvas-dashboard-events", self._feed.run)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._feed is not None:
            self._feed.close()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _feed_status(self, error: str | None) -> None:
        with self._lock:
            self.events_error = error

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.refresh()
            except Exception:  # a refresh must never kill the loop; the next one tries again
                logger.exception("dashboard: refresh failed")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def refresh(self, *, slow: bool | None = None) -> None:
        """One round of reads (the refresher's body; tests call it directly)."""
        depths = queues.depths(self.app, self.watched_queues())
        self.board.refresh()
        now = time.monotonic()
        if slow or (slow is None and now - self._slow_at >= self.slow_interval):
            self._slow_at = now
            beat = periodic.entries(self.app, self.beat_store)
            with self._lock:
                self._beat = beat
        with self._lock:
            self._log_queue_changes(depths)
            self._queues = depths
            self._rate_samples.append((now, Counter(self._entered)))
            while self._rate_samples and now - self._rate_samples[0][0] > RATE_WINDOW:
                self._rate_samples.popleft()

    def _log_queue_changes(self, depths: list[queues.QueueDepth]) -> None:
        """Log a queue that cannot be read once when it fails and once when it recovers."""
        before = {q.name: q.error for q in self._queues}
        for queue in depths:
            if queue.error and not before.get(queue.name):
                logger.warning("dashboard: cannot read queue %s: %s", queue.name, queue.error)
            elif before.get(queue.name) and not queue.error:
                logger.info("dashboard: queue %s can be read again", queue.name)

    # -- events --------------------------------------------------------------------------------
    def on_event(self, event: Mapping[str, Any]) -> None:
        """Apply one worker event (a Celery-shaped dict) to the state, metrics and counters."""
        kind = str(event.get("type") or "")
        received = time.time()
        with self._lock:
            assert self.state is not None, "on_event needs events on"
            self.state.event(dict(event))
            self._events_seen += 1
            self._last_event_at = received
            stamp = event.get("timestamp")
            if isinstance(stamp, int | float):
                self._events_lag = max(0.0, received - float(stamp))
            task_name = None
            if kind.startswith("task-"):
                task = self.state.tasks.get(str(event.get("uuid")))
                task_name = (task.name if task is not None else None) or event.get("name")
                state = EVENT_STATES.get(kind)
                if state is not None:
                    self._entered[state] += 1
                host = event.get("hostname")
                if host and kind in ("task-succeeded", "task-failed"):
                    self._outcomes[str(host)][kind[5:]] += 1
            self.metrics.observe(event, task_name)
        workflow = event.get("workflow")
        if isinstance(workflow, str) and workflow:
            self.board.follow_known(workflow)

    def watched_queues(self) -> list[str]:
        """The app's queues, those given with ``-Q``, and those workers say they consume."""
        names = set(self.queue_names)
        if self.state is not None:
            with self._lock:
                for worker in list(self.state.workers.values()):
                    names.update(str(q) for q in worker.queues or ())
        return sorted(names)

    # -- what the page reads -------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything the page's live view shows; ``version`` changes when any of it does."""
        with self._lock:
            body = {
                "workers": self.workers(),
                "queues": [q.as_dict() for q in self._queues],
                "workflows": self.board.summaries(),
                "beat": [e.as_dict() for e in self._beat],
                "tasks": self.task_counts(),
                "events": {
                    "on": self.state is not None,
                    "error": self.events_error,
                    "seen": self._events_seen,
                    "lag": self._events_lag,
                },
                "events_lag": self._events_lag,
            }
            if body != self._shown:
                self._shown = body
                self._changes += 1
            return {**body, "version": self._changes, "now": time.time()}

    def workers(self) -> list[dict[str, Any]]:
        """Every worker the events named: online, heartbeat age, pool, load, processed/failed."""
        if self.state is None:
            return []
        found = []
        with self._lock:
            for hostname, worker in sorted(self.state.workers.items()):
                beats = list(worker.heartbeats)
                outcomes = self._outcomes.get(hostname, Counter())
                found.append(
                    {
                        "hostname": hostname,
                        "online": worker.alive,
                        "heartbeat": beats[-1] if beats else None,
                        "pool": worker.pool,
                        "concurrency": worker.concurrency,
                        "queues": list(worker.queues or ()),
                        "loadavg": list(worker.loadavg or ()),
                        "active": worker.active,
                        "processed": worker.processed,
                        "succeeded": outcomes["succeeded"],
                        "failed": outcomes["failed"],
                        "software": " ".join(
                            str(v)
                            for v in (
                                worker.sw_ident,
                                worker.sw_ver,
                            )
                            if v
                        ),
                    }
                )
        return found

    def task_counts(self) -> dict[str, Any]:
        """Tasks the state holds per state now, and per-second rates of entering each state."""
        if self.state is None:
            return {"by_state": {}, "rates": {}}
        with self._lock:
            by_state = Counter(t.state for t in self.state.tasks.values())
            rates: dict[str, float] = {}
            if len(self._rate_samples) >= 2:
                (t0, c0), (t1, c1) = self._rate_samples[0], self._rate_samples[-1]
                span = t1 - t0
                if span > 0:
                    rates = {s: round((c1[s] - c0[s]) / span, 2) for s in c1}
        return {"by_state": dict(by_state), "rates": rates}

    def tasks(
        self, query: str = "", state: str = "", limit: int = TASKS_SHOWN
    ) -> list[dict[str, Any]]:
        """Tasks matching ``query`` (part of an id or a name) and ``state``, newest first.

        An id that the events never named is looked up in the result store, so a task sent
        before the dashboard started can still be found (and revoked).
        """
        query = query.strip()
        wanted = state.strip().upper()
        found: list[dict[str, Any]] = []
        if self.state is not None:
            with self._lock:
                tasks = list(self.state.tasks.items())
            for uuid, task in tasks:
                name = task.name or ""
                if query and query not in uuid and query.lower() not in name.lower():
                    continue
                if wanted and task.state != wanted:
                    continue
                found.append(_task_row(uuid, task))
        found.sort(key=lambda t: t["timestamp"] or 0.0, reverse=True)
        if query and not any(t["id"] == query for t in found) and _looks_like_id(query):
            stored = self._stored_task(query)
            if stored is not None and (not wanted or stored["state"] == wanted):
                found.insert(0, stored)
        return found[:limit]

    def _stored_task(self, task_id: str) -> dict[str, Any] | None:
        try:
            meta = metas.decode(self.app.backend.get([task_id])[0])
        except Exception:
            return None
        if meta is None:
            return None
        return {
            "id": task_id,
            "name": meta.get("name"),
            "state": str(meta.get("status") or states.PENDING),
            "args": None,
            "kwargs": None,
            "worker": meta.get("worker"),
            "received": None,
            "started": None,
            "timestamp": None,
            "runtime": meta.get("runtime"),
            "retries": meta.get("retries"),
            "exception": None,
            "workflow": meta.get("workflow"),
            "source": "result store",
        }


def _task_row(uuid: str, task: Task) -> dict[str, Any]:
    return {
        "id": uuid,
        "name": task.name,
        "state": task.state,
        "args": task.argsrepr,
        "kwargs": task.kwargsrepr,
        "worker": task.worker.hostname if task.worker is not None else None,
        "received": task.received,
        "started": task.started,
        "timestamp": task.timestamp,
        "runtime": task.runtime,
        "retries": task.retries,
        "exception": task.exception,
        "workflow": task.workflow,
        "source": "events",
    }


def _looks_like_id(text: str) -> bool:
    return len(text) >= 8 and " " not in text


__all__ = ["INTERVAL", "Monitor", "RATE_WINDOW", "SLOW_INTERVAL", "TASKS_SHOWN"]
