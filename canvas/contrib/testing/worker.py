"""``start_worker(app)``: a real worker in the test process, for as long as a ``with`` block.

It is the ``threads`` pool of ``canvas worker`` (the same consumers, timer, remote control and
signals), run on a background thread and without signal handlers, so a test sends tasks and
waits for their results while it runs. Use an app on ``memory://`` (``TestApp``) or any broker.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from canvas.app import Canvas
from canvas.core.worker import Worker, WorkerOptions


class TestWorkController(Worker):
    """A ``threads``-pool worker that can run off the main thread and be stopped by a call."""

    def __init__(self, app: Canvas, options: WorkerOptions) -> None:
        super().__init__(app, options)
        self.ready = threading.Event()
        self._stop_event: threading.Event | None = None
        self.error: BaseException | None = None

    def _install_simple_signals(self, stop: threading.Event) -> None:
        self._stop_event = stop  # no signal handlers: only the main thread may install them

    def _ready(self) -> None:
        super()._ready()
        self.ready.set()

    def run(self) -> None:
        try:
            self.start()
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            raise

    def reload(self) -> None:
        """Celery's ``celery_worker.reload()``: nothing to do, tasks are looked up per call."""

    def stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()
        wake = getattr(self, "wake", None)
        if wake is not None:
            wake.set()


@contextmanager
def start_worker(
    app: Canvas,
    concurrency: int = 1,
    pool: str = "threads",
    loglevel: str | int | None = None,
    logfile: str | None = None,
    queues: Sequence[str] = (),
    hostname: str | None = None,
    perform_ping_check: bool = True,
    ping_task_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
    **kwargs: Any,
) -> Iterator[TestWorkController]:
    """Run a worker for ``app`` while the block runs; it is ready when the block starts.

    Celery's ``pool='solo'`` and ``'prefork'`` run as ``threads`` here: a test process cannot
    give its main thread (or a fork) to the worker. ``loglevel``, ``logfile`` and the ping
    check are accepted for Celery's signature; the worker is ready before the block starts.
    """
    options = WorkerOptions(
        queues=list(queues),
        concurrency=concurrency,
        pool="threads",
        hostname=hostname or f"gen{os.getpid()}@{socket.gethostname()}",
    )
    worker = TestWorkController(app, options)
    thread = threading.Thread(target=worker.run, name="canvas-test-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(ping_task_timeout):
        worker.stop()
        raise TimeoutError(f"the test worker was not ready within {ping_task_timeout}s")
    if worker.error is not None:
        raise RuntimeError(f"the test worker failed to start: {worker.error}") from worker.error
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(shutdown_timeout)
        if thread.is_alive():
            raise RuntimeError(f"the test worker did not stop within {shutdown_timeout}s")


__all__ = ["TestWorkController", "start_worker"]
