"""``/metrics``: what each event counts, and the gauges read from the dashboard's last refresh."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from canvas.dashboard.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_task_events_count_tasks_by_name_and_state_and_runtimes() -> None:
    metrics = Metrics(dict)
    # Given a task's life as events (a task-succeeded names no task: the state gives the name)
    metrics.observe({"type": "task-received", "uuid": "a", "name": "proj.add"}, "proj.add")
    metrics.observe({"type": "task-started", "uuid": "a"}, "proj.add")
    metrics.observe({"type": "task-succeeded", "uuid": "a", "runtime": 0.2}, "proj.add")
    metrics.observe({"type": "task-failed", "uuid": "b"}, None)
    metrics.observe({"type": "worker-heartbeat", "hostname": "w1"}, None)
    found = samples(metrics)
    # Then each state entered is counted under the task's name
    assert found[("canvas_tasks_total", (("name", "proj.add"), ("state", "RECEIVED")))] == 1
    assert found[("canvas_tasks_total", (("name", "proj.add"), ("state", "SUCCESS")))] == 1
    assert found[("canvas_tasks_total", (("name", "unknown"), ("state", "FAILURE")))] == 1
    # And the runtime lands in its bucket
    assert found[("canvas_task_runtime_seconds_count", (("name", "proj.add"),))] == 1
    assert (
        found[("canvas_task_runtime_seconds_bucket", (("le", "0.25"), ("name", "proj.add")))] == 1
    )
    assert found[("canvas_task_runtime_seconds_bucket", (("le", "0.1"), ("name", "proj.add")))] == 0
    # And every event by its type
    assert found[("canvas_events_total", (("type", "worker-heartbeat"),))] == 1
    assert found[("canvas_events_total", (("type", "task-succeeded"),))] == 1


def test_gauges_are_read_from_the_last_refresh_at_scrape_time() -> None:
    now: dict[str, Any] = {
        "queues": [
            {"name": "canvas", "depth": 7, "dead_letters": 2},
            {"name": "down", "depth": None, "dead_letters": None},  # broker did not answer
        ],
        "workers": [{"online": True}, {"online": False}, {"online": True}],
        "workflows": [{"state": "STARTED"}, {"state": "SUCCESS"}, {"state": "STARTED"}],
        "events_lag": 0.25,
    }
    found = samples(Metrics(lambda: now))
    assert found[("canvas_queue_depth", (("queue", "canvas"),))] == 7
    assert found[("canvas_dead_letters", (("queue", "canvas"),))] == 2
    assert ("canvas_queue_depth", (("queue", "down"),)) not in found
    assert found[("canvas_workers_online", ())] == 2
    assert found[("canvas_workflows", (("state", "STARTED"),))] == 2
    assert found[("canvas_events_lag_seconds", ())] == 0.25
    # A new refresh shows at the next scrape
    now["queues"][0]["depth"] = 0
    now["events_lag"] = None
    found = samples(Metrics(lambda: now))
    assert found[("canvas_queue_depth", (("queue", "canvas"),))] == 0
    assert ("canvas_events_lag_seconds", ()) not in found


def test_each_dashboard_has_its_own_registry() -> None:
    first, second = Metrics(dict), Metrics(dict)
    first.observe({"type": "task-failed"}, "t")
    assert ("canvas_tasks_total", (("name", "t"), ("state", "FAILURE"))) not in samples(second)
