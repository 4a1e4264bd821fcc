"""Tasks for the dashboard tests, run by real workers; configured from the environment.

CANVAS_DASH_DIR      the test's directory: the embedded queue and store when no broker is given
CANVAS_DASH_BROKER   broker URL (empty: the embedded one under CANVAS_DASH_DIR)
CANVAS_DASH_BACKEND  result store URL (empty: the app's default for that broker)
CANVAS_DASH_QUEUE    the queue of this test

``gate`` holds its worker until a file appears, so a test can look at a run in progress;
``sleepy`` runs long enough to be revoked with terminate.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from canvas import Canvas

app = Canvas(
    "dashboard_tasks",
    broker=os.environ.get("CANVAS_DASH_BROKER") or None,
    backend=os.environ.get("CANVAS_DASH_BACKEND") or None,
    embedded_dir=str(Path(os.environ["CANVAS_DASH_DIR"]) / "embedded"),
    task_default_queue=os.environ.get("CANVAS_DASH_QUEUE", "dashboard"),
    set_as_current=False,
    task_track_started=True,
    task_send_sent_event=True,
    worker_send_task_events=True,
    result_expires=900,
    worker_prefetch_multiplier=1,
)
app.conf.beat_schedule = {
    "tick-every-minute": {"task": "dashboard_tasks.add", "schedule": 60.0, "args": (1, 1)},
}


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@app.task
def gate(path: str, timeout: float = 60.0) -> str:
    """Wait for ``path`` to exist (the test opens the gate), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} was never opened")
        time.sleep(0.01)
    return "open"


@app.task
def hold(value: int, path: str) -> int:
    """``value`` once ``path`` exists: a chord member that waits for the test."""
    gate(path)
    return value


@app.task
def sleepy(seconds: float) -> str:
    """A long task: revoked with terminate, its process is signalled long before it returns."""
    time.sleep(seconds)
    return "slept"
