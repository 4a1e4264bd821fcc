"""A real ``canvas worker`` subprocess for integration tests, and an app that talks to it.

``start(app_module, make_app, broker, backend, directory)`` starts ``canvas -A <app_module> worker
-c 2 -P prefork`` on a queue of its own, with the session directory in ``CANVAS_IT_DIR`` (where the
worker's tasks append their record files), and builds the same app in the test process. Waits
are on conditions with deadlines; a dead worker fails the wait at once with its log tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kombu.connection import Connection

from canvas import Canvas
from canvas.backends.redis import RedisBackend

ROOT = Path(__file__).resolve().parents[2]
CANVAS = str(Path(sys.executable).with_name("canvas"))

#: seconds a whole workflow may take before a test fails (nothing here takes a tenth of it)
DEADLINE = 30.0


def read_records(directory: Path, name: str) -> list[dict[str, Any]]:
    path = directory / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def append_record(name: str, record: dict[str, Any]) -> None:
    """Append one JSON line to a record file of the session (no-op outside a test worker)."""
    directory = os.environ.get("CANVAS_IT_DIR")
    if not directory:
        return
    line = (json.dumps(record, default=repr) + "\n").encode()
    fd = os.open(Path(directory) / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@dataclass
class WorkerHarness:
    """One running worker and an app that talks to it."""

    name: str
    app: Canvas
    directory: Path
    process: subprocess.Popen[bytes]
    log: Path
    broker: str | None
    backend: str | None
    sent: list[Any] = field(default_factory=list)

    def records(self, name: str) -> list[dict[str, Any]]:
        return read_records(self.directory, name)

    def send(self, canvas: Any, *args: Any, **options: Any) -> Any:
        result = canvas.apply_async(args, **options)
        self.sent.append(result)
        return result

    def wait_for(self, what: str, condition: Callable[[], Any], timeout: float = DEADLINE) -> Any:
        """Return ``condition()`` once truthy; fail with the worker's log tail at the deadline."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            value = condition()
            if value:
                return value
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: timed out waiting for {what}\n{self.tail()}")
            # Only a back-off between looks at a file the worker appends to.
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def clean_up(self) -> None:
        """Forget what the tests wrote, delete the session's queues, close the app."""
        clean_up_after(self.app, self.sent, self.broker)


def clean_up_after(app: Canvas, sent: list[Any], broker: str | None) -> None:
    """Forget the results of ``sent`` and their workflows, drop the default queue and its
    dead letters, close ``app``: what a test session of real workers leaves behind."""
    ids: list[str] = []
    workflows: set[str] = set()
    for result in sent:
        with contextlib.suppress(Exception):
            view = result.workflow
            workflows.add(view.id)
            ids.extend(n.node.id for n in view.nodes())
        ids.append(result.id)
    with contextlib.suppress(Exception):
        app.backend.forget_many([i for i in ids if i])
    store = app.backend
    if isinstance(store, RedisBackend):  # a workflow's hash has no expiry of its own to wait on
        client = store._conn().client
        for workflow_id in workflows:
            client.delete(store._workflow_key(workflow_id))
    queue = str(app.conf.task_default_queue)
    if broker and broker.startswith("amqp"):
        with Connection(broker) as conn:
            channel = conn.channel()
            for name in (queue, queue + ".dlq"):
                with contextlib.suppress(Exception):
                    channel.queue_delete(name)
    elif broker:
        for name in (queue, queue + ".dlq"):
            with contextlib.suppress(Exception):
                app.transport.purge(name)
    app.close()


def start(
    name: str,
    app_module: str,
    make_app: Callable[[str | None, str | None, str, str], Canvas],
    broker: str | None,
    backend: str | None,
    directory: Path,
) -> WorkerHarness:
    """Start a worker for ``app_module`` on a queue of its own; build the same app here."""
    queue = f"canvas-it-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CANVAS_IT_BROKER": broker or "",
        "CANVAS_IT_BACKEND": backend or "",
        "CANVAS_IT_QUEUE": queue,
        "CANVAS_IT_DIR": str(directory),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = directory / "worker.log"
    command = [CANVAS, "-A", app_module, "worker", "-l", "INFO"]
    command += ["-c", "2", "-P", "prefork", "-f", str(log)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    app = make_app(broker, backend, queue, str(directory))
    return WorkerHarness(name, app, directory, process, log, broker, backend)
