"""Shared fixtures: real servers (fail, never skip, when one is down) and real workers.

Helpers live in ``tests/support``; this file only turns them into fixtures.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import check_amqp, check_postgres, check_redis
from tests.support.workers import CANVAS, ROOT, WorkerProcess


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (``CANVAS_TEST_REDIS``), checked once per session."""
    return check_redis()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The test RabbitMQ (``CANVAS_TEST_AMQP``), checked once per session."""
    return check_amqp()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL (``CANVAS_TEST_POSTGRES``), checked once per session."""
    return check_postgres()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers: ``start_worker(app_module, *args, env={...}, cwd=...)``."""
    started: list[WorkerProcess] = []

    def start(
        app_module: str,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready: bool = True,
    ) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd or ROOT), str(ROOT)])}
        full_env.update(env or {})
        argv = [*CANVAS, "-A", app_module, "worker", "-l", "INFO", *args]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=cwd or ROOT,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(proc, log, full_env)
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        try:
            worker.stop(timeout=10)
        finally:
            worker.kill()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used a worker harness (fixture ``h``) shows the worker's log tail:
    a result that never came says why only there."""
    outcome: Any = yield
    report = outcome.get_result()
    harness = getattr(item, "funcargs", {}).get("h")
    tail = getattr(harness, "tail", None)
    if report.when == "call" and report.failed and callable(tail):
        try:
            report.sections.append(("worker log (its last lines)", tail()))
        except OSError as exc:
            report.sections.append(("worker log", f"unreadable: {exc}"))
