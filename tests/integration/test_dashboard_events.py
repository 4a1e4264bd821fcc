"""The dashboard's model and ``canvas events``' view, fed by the events of a real worker on Redis.

The monitor subscribes as ``canvas dashboard`` does; a real worker runs a workflow. What the
page and the terminal show must follow: the worker online with its pool, the workflow followed
by itself and finished, tasks found by name with their ``argsrepr``, rates and ``/metrics``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from canvas import chord, states
from canvas.dashboard import terminal
from canvas.dashboard.monitor import Monitor
from tests.support.dashboard import APP_DIR, APP_MODULE, DashEnv, imported_app
from tests.support.servers import REDIS_URL, require_service
from tests.support.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path) -> DashEnv:
    require_service("Redis", REDIS_URL)
    queue = f"dash-{uuid.uuid4().hex[:8]}"
    return DashEnv(tmp_path, broker=REDIS_URL, backend=REDIS_URL, queue=queue)


@pytest.fixture
def tasks(env: DashEnv) -> Iterator[ModuleType]:
    with imported_app(env) as module:
        yield module


@pytest.fixture
def worker(env: DashEnv, start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker(
        APP_MODULE,
        "-P",
        "threads",
        "-c",
        "3",
        "-n",
        f"{env.queue}@%h",
        env=env.variables(),
        cwd=APP_DIR,
    )


@pytest.fixture
def monitor(tasks: ModuleType) -> Iterator[Monitor]:
    watching = Monitor(tasks.app, interval=0.2)
    watching.start()
    try:
        yield watching
    finally:
        watching.stop()


def mine(snapshot: Mapping[str, Any], env: DashEnv) -> list[dict[str, Any]]:
    return [w for w in snapshot["workers"] if w["hostname"].startswith(env.queue + "@")]


def test_the_model_follows_a_real_worker_and_its_workflow(
    tasks: ModuleType, monitor: Monitor, worker: WorkerProcess, env: DashEnv
) -> None:
    # Given the monitor subscribed, When a worker comes online, Then it is listed with its pool
    [online] = wait_for(lambda: mine(monitor.snapshot(), env), 30, "the worker's heartbeat")
    assert online["online"] is True
    assert (online["pool"], online["concurrency"]) == ("threads", 3)
    assert env.queue in monitor.watched_queues()
    # When a workflow runs, Then it is followed without anyone opening it, to its end
    result = (
        tasks.add.s(1, 2) | chord([tasks.add.s(i) for i in range(3)], tasks.tsum.s())
    ).apply_async()
    assert result.get(timeout=30) == 3 * 3 + 3

    def finished() -> dict[str, Any] | None:
        flows = {w["id"]: w for w in monitor.snapshot()["workflows"]}
        flow = flows.get(result.id)
        return flow if flow and flow["finished"] else None

    flow = wait_for(finished, 30, "the workflow to be followed to its end")
    assert (flow["state"], flow["done"], flow["total"]) == (states.SUCCESS, 5, 5)
    # And its tasks are found by name, with arguments only as argsrepr
    found = wait_for(
        lambda: [t for t in monitor.tasks("tsum") if t["state"] == states.SUCCESS],
        30,
        "tsum's success event",
    )
    assert found[0]["args"] == "([3, 4, 5],)"
    assert found[0]["worker"] == online["hostname"] and found[0]["workflow"] == result.id
    by_id = monitor.tasks(result.id)
    assert [t["id"] for t in by_id] == [result.id]
    # And the counts, rates and metrics agree
    counts = monitor.task_counts()
    assert counts["by_state"][states.SUCCESS] >= 5
    monitor.refresh()
    assert monitor.task_counts()["rates"].get(states.SUCCESS, 0) > 0
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(monitor.metrics.render().decode())
        for s in family.samples
    }
    assert (
        samples[("canvas_tasks_total", (("name", "dashboard_tasks.add"), ("state", "SUCCESS")))]
        == 4
    )
    assert samples[("canvas_task_runtime_seconds_count", (("name", "dashboard_tasks.tsum"),))] == 1
    assert samples[("canvas_workers_online", ())] >= 1
    assert samples[("canvas_events_lag_seconds", ())] >= 0


def test_the_terminal_view_draws_the_worker_and_a_running_workflow(
    tasks: ModuleType, worker: WorkerProcess, env: DashEnv, tmp_path: Path
) -> None:
    # Given a workflow held at a gate, so it is running while the view draws
    gate = tmp_path / "gate"
    result = (tasks.gate.s(str(gate)) | tasks.add.s("!")).apply_async()
    console = Console(record=True, width=150, color_system=None, force_terminal=False)
    stop = threading.Event()

    def running_and_online(snapshot: Mapping[str, Any]) -> bool:
        flows = [w for w in snapshot["workflows"] if w["id"] == result.id]
        return bool(mine(snapshot, env)) and bool(flows) and flows[0]["state"] == states.STARTED

    timer = threading.Timer(60, stop.set)  # a deadline, not a wait: the view stops on its own
    timer.start()
    try:
        last = terminal.run(
            tasks.app, interval=0.2, console=console, until=running_and_online, stop=stop
        )
    finally:
        timer.cancel()
        gate.touch()
    assert running_and_online(last), "the view gave up before the workflow ran"
    frame = console.export_text()
    line = next(x for x in frame.splitlines() if result.id[:8] in x)
    assert "dashboard_tasks.gate → dashboard_tasks.add (2 tasks)" in line and "0/2" in line
    assert "STARTED" in line
    worker_line = next(x for x in frame.splitlines() if f"{env.queue}@" in x)
    assert "online" in worker_line and "threads × 3" in worker_line
    assert result.get(timeout=30) == "open!"
