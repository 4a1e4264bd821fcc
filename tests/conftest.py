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
from urllib.parse import unquote, urlsplit, urlunsplit

import amqp
import pytest

ROOT = Path(__file__).resolve().parent.parent
CANVAS = [sys.executable, "-m", "canvas.cli.main"]

# The one naming scheme for the servers the suite talks to: CANVAS_TEST_REDIS, CANVAS_TEST_AMQP
# and CANVAS_TEST_POSTGRES. Point them elsewhere (another Redis port, a RabbitMQ vhost, another
# database) to run two suites side by side without one consuming the other's messages.
REDIS_URL = os.environ.get("CANVAS_TEST_REDIS", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("CANVAS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_URL = os.environ.get("CANVAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "postgresql": 5432}


def redis_db(db: int) -> str:
    """``REDIS_URL``'s server with another database number (tests that need one of their own)."""
    parts = urlsplit(REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str) -> None:
    """Fail (not skip) with a clear message: the suite promises real services."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.split("+")[0], 0)
    if not _answers(host, port):
        pytest.fail(
            f"{name} is not answering on {host}:{port} ({url}). Start it (scripts/services.sh "
            "does), or point CANVAS_TEST_REDIS / CANVAS_TEST_AMQP / CANVAS_TEST_POSTGRES at one "
            "that runs, and run the tests again.",
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


def amqp_connection() -> amqp.Connection:
    """A py-amqp connection to ``AMQP_URL`` (for tests that look at queues directly)."""
    parts = urlsplit(AMQP_URL)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    conn = amqp.Connection(
        f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost,
        connect_timeout=2,
    )
    conn.connect()
    return conn


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
