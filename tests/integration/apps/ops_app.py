"""The app of the operations tests (remote control, revoke, events), run by real workers.

Configured from the environment: ``CANVAS_OPS_BROKER`` / ``CANVAS_OPS_BACKEND`` (empty: the
embedded default), ``CANVAS_OPS_QUEUE``, ``CANVAS_OPS_DIR`` (where tasks leave marks the tests
read: ``<key>.started``, ``<key>.finished``), ``CANVAS_OPS_EXCHANGE`` (the control and event
topics' prefix, unique per test, so that no other test's worker answers).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from canvas import Canvas
from canvas.core.panel import control_command

DIR = Path(os.environ.get("CANVAS_OPS_DIR", "/tmp/canvas-ops"))
EXCHANGE = os.environ.get("CANVAS_OPS_EXCHANGE", "canvas-ops")

app = Canvas(
    "ops",
    broker=os.environ.get("CANVAS_OPS_BROKER") or None,
    backend=os.environ.get("CANVAS_OPS_BACKEND") or None,
    task_default_queue=os.environ.get("CANVAS_OPS_QUEUE", "ops"),
    embedded_dir=str(DIR / "embedded"),
    control_exchange=EXCHANGE,
    event_exchange=EXCHANGE + "ev",
    worker_lease_seconds=5.0,
)


def mark(name: str) -> None:
    DIR.mkdir(parents=True, exist_ok=True)
    with open(DIR / name, "a") as out:
        out.write(f"{os.getpid()}\n")


@app.task(name="ops.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="ops.tsum")
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@app.task(name="ops.work", acks_late=True)
def work(key: str, seconds: float) -> str:
    """Marks ``<key>.started``, works ``seconds`` (in short sleeps), marks ``<key>.finished``."""
    mark(f"{key}.started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    mark(f"{key}.finished")
    return key


@app.task(name="ops.acked_work")
def acked_work(key: str, seconds: float) -> str:
    """``work`` with its message acked as it starts (Celery's default)."""
    return str(work(key, seconds))


@app.task(name="ops.hold", acks_late=True)
def hold(key: str) -> int:
    """Marks ``<key>.started`` and holds its process until the test writes ``<key>.release``
    (or a minute passed); returns its pid."""
    mark(f"{key}.started")
    deadline = time.monotonic() + 60
    while not (DIR / f"{key}.release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


@app.task(name="ops.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@control_command(args=[("n", int)], signature="[N=1]")
def ops_double(state: Any, n: int = 1) -> dict[str, Any]:
    """A custom remote-control command, as a project would add one."""
    return {"ok": n * 2, "from": state.hostname}
