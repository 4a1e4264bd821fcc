"""Shared test fixtures: real services (fail, never skip, when one is down) and real workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CANVAS = [sys.executable, "-m", "canvas.cli.main"]

REDIS_URL = os.environ.get("CANVAS_TEST_REDIS", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("CANVAS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_URL = os.environ.get("CANVAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    """Fail (not skip) with a clear message: the suite promises real services."""
    if not _answers(port):
        pytest.fail(
            f"{name} is not answering on 127.0.0.1:{port}. Start it (scripts/services.sh does) "
            "and run the tests again.",
            pytrace=False,
        )


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class WorkerProcess:
    """A real ``canvas worker`` started from the CLI; its log is kept for assertions."""

    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()}")
            return " ready." in self.output()

        wait_for(ready, timeout, "the worker to be ready")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


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
