"""Prometheus metrics for ``/metrics``: tasks, runtimes, queues, workers and the events lag.

=====================================  =========  ==============================================
``canvas_tasks_total{name,state}``     counter    tasks seen entering a state (from task events)
``canvas_task_runtime_seconds{name}``  histogram  runtimes of succeeded tasks (``task-succeeded``)
``canvas_events_total{type}``          counter    events received, by type
``canvas_events_lag_seconds``          gauge      receive time minus send time of the last event
``canvas_queue_depth{queue}``          gauge      messages waiting in a queue
``canvas_dead_letters{queue}``         gauge      messages in a queue's dead-letter queue
``canvas_workers_online``              gauge      workers whose heartbeat is recent
``canvas_workflows{state}``            gauge      followed workflows by overall state
=====================================  =========  ==============================================

Counters start when the dashboard starts (Prometheus' ``rate()`` handles restarts). Gauges are
read from the dashboard's last refresh at scrape time, so a scrape never waits on a broker.
Every metric lives in the dashboard's own registry, never the process-wide default one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: the state a task event moves a task into, as Celery's ``State`` reads them
EVENT_STATES = {
    "task-sent": "PENDING",
    "task-received": "RECEIVED",
    "task-started": "STARTED",
    "task-succeeded": "SUCCESS",
    "task-failed": "FAILURE",
    "task-retried": "RETRY",
    "task-revoked": "REVOKED",
    "task-rejected": "REJECTED",
}
#: runtime buckets in seconds: web-request-sized tasks up to batch jobs
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Gauges(Collector):
    """Gauges computed at scrape time from what ``read`` returns (the monitor's last refresh)."""

    def __init__(self, read: Callable[[], Mapping[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        now = self.read()
        depth = GaugeMetricFamily(
            "canvas_queue_depth", "Messages waiting in a queue", labels=["queue"]
        )
        dead = GaugeMetricFamily(
            "canvas_dead_letters", "Messages in a queue's dead-letter queue", labels=["queue"]
        )
        for queue in now.get("queues", ()):
            if queue.get("depth") is not None:
                depth.add_metric([queue["name"]], queue["depth"])
            if queue.get("dead_letters") is not None:
                dead.add_metric([queue["name"]], queue["dead_letters"])
        yield depth
        yield dead
        online = sum(1 for w in now.get("workers", ()) if w.get("online"))
        yield GaugeMetricFamily(
            "canvas_workers_online", "Workers with a recent heartbeat", value=online
        )
        flows = GaugeMetricFamily(
            "canvas_workflows", "Followed workflows by overall state", labels=["state"]
        )
        by_state: dict[str, int] = {}
        for flow in now.get("workflows", ()):
            by_state[flow["state"]] = by_state.get(flow["state"], 0) + 1
        for state, count in sorted(by_state.items()):
            flows.add_metric([state], count)
        yield flows
        lag = now.get("events_lag")
        if lag is not None:
            yield GaugeMetricFamily(
                "canvas_events_lag_seconds",
                "Receive time minus send time of the last event",
                value=lag,
            )


class Metrics:
    """The dashboard's registry: ``observe`` each event, ``render`` at scrape time."""

    def __init__(self, read: Callable[[], Mapping[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.tasks = Counter(
            "canvas_tasks",
            "Tasks seen entering a state, by task name and state",
            ["name", "state"],
            registry=self.registry,
        )
        self.runtime = Histogram(
            "canvas_task_runtime_seconds",
            "Runtime of succeeded tasks",
            ["name"],
            buckets=RUNTIME_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "canvas_events", "Events received, by type", ["type"], registry=self.registry
        )
        self.registry.register(Gauges(read))

    def observe(self, event: Mapping[str, Any], task_name: str | None) -> None:
        """Count one event; ``task_name`` from the events state (a ``task-succeeded`` has none)."""
        kind = str(event.get("type") or "unknown")
        self.events.labels(kind).inc()
        state = EVENT_STATES.get(kind)
        if state is None:
            return
        name = task_name or "unknown"
        self.tasks.labels(name, state).inc()
        runtime = event.get("runtime")
        if kind == "task-succeeded" and isinstance(runtime, int | float):
            self.runtime.labels(name).observe(float(runtime))

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data


__all__ = ["CONTENT_TYPE", "EVENT_STATES", "Gauges", "Metrics"]
