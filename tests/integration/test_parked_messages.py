"""Countdown/ETA messages parked in a shared result store return to the broker they came from.

Two apps on two brokers may keep results in one Redis. A parked message released by the other
app's worker would be published to a broker where nobody consumes it: lost.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from canvas import Canvas
from tests.support.seed import SEED_DIR
from tests.support.servers import REDIS_URL, require_service
from tests.support.workers import CANVAS, ROOT, WorkerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def two_brokers(tmp_path: Path) -> Iterator[list[tuple[Canvas, WorkerProcess]]]:
    require_service("Redis", REDIS_URL)
    run = uuid.uuid4().hex[:8]
    started: list[tuple[Canvas, WorkerProcess]] = []
    try:
        for name in ("a", "b"):
            broker = f"embedded://{tmp_path / name / 'broker.db'}"
            queue = f"parked-{name}-{run}"  # each worker consumes its own app's queue only
            env = {
                **os.environ,
                "CANVAS_TEST_BROKER": broker,
                "CANVAS_TEST_BACKEND": REDIS_URL,
                "CANVAS_TEST_QUEUE": queue,
                "CANVAS_TEST_STATE": str(tmp_path / "state"),
                "PYTHONPATH": os.pathsep.join([str(SEED_DIR), str(ROOT)]),
            }
            log = tmp_path / f"worker-{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [*CANVAS, "--app=tasks", "worker", "-c", "1", "--loglevel=INFO"],
                    cwd=SEED_DIR,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            worker = WorkerProcess(proc, log)
            app = Canvas(main="tasks", broker=broker, backend=REDIS_URL, task_default_queue=queue)
            started.append((app, worker))
            worker.wait_ready()
        yield started
    finally:
        for app, worker in started:
            worker.stop(10)
            worker.kill()
            app.close()


def test_each_worker_releases_only_its_own_brokers_countdowns(
    two_brokers: list[tuple[Canvas, WorkerProcess]],
) -> None:
    # Given two workers on two brokers sharing one result store, each sent countdown calls
    results = [
        app.send_task("tasks.add", (i, n), countdown=0.5)
        for n, (app, _) in enumerate(two_brokers)
        for i in range(5)
    ]
    # Then every call runs: none is released into the other broker, where nobody consumes it
    assert [r.get(timeout=30) for r in results] == [i + n for n in range(2) for i in range(5)]
