"""Tasks for ``test_render_live``: the workflow app, on the embedded broker in a test's tmp dir.

CANVAS_RENDER_DIR: the directory of the embedded queue and result store (each test its own).
``gate`` holds its worker thread until a file appears, so a test can draw a run in progress.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from canvas import Canvas

app = Canvas(
    "render_tasks",
    embedded_dir=os.environ["CANVAS_RENDER_DIR"],
    task_default_queue="render",
    set_as_current=False,
)
app.conf.task_track_started = True


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@app.task
def boom(value: object) -> None:
    raise ValueError(f"boom on {value!r}")


@app.task
def log_error(*args: object) -> str:
    return "logged"


@app.task
def gate(path: str, timeout: float = 30.0) -> str:
    """Wait for ``path`` to exist (the test opens the gate), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} was never opened")
        time.sleep(0.01)
    return "open"
