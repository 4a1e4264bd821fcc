"""Celery's worker signals, each sent where Celery sends it, seen through a real in-process
worker (``start_worker``) and the worker's logging set-up."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from canvas import Task, signals
from canvas.contrib.testing.app import TestApp
from canvas.contrib.testing.worker import start_worker
from canvas.core.worker import setup_logging


@pytest.fixture
def heard() -> Iterator[dict[str, list[dict[str, Any]]]]:
    names = [
        "celeryd_init",
        "celeryd_after_setup",
        "import_modules",
        "worker_init",
        "worker_ready",
        "task_internal_error",
        "worker_shutdown",
    ]
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    receivers = []
    for name in names:

        def receiver(sender: Any = None, name: str = name, **kwargs: Any) -> None:
            seen[name].append({"sender": sender, **kwargs})

        getattr(signals, name).connect(receiver)
        receivers.append((name, receiver))
    yield seen
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def test_a_worker_sends_celerys_start_up_and_task_signals(heard: Any) -> None:
    app = TestApp()

    class Broken(Task):
        def on_success(self, *args: Any) -> None:
            raise RuntimeError("handler bug")

    @app.task(base=Broken)
    def one() -> int:
        return 1

    with start_worker(app) as worker:
        assert one.delay().get(timeout=10) == 1
    for name in ("celeryd_init", "celeryd_after_setup", "import_modules", "worker_ready"):
        assert len(heard[name]) == 1, name
    assert heard["celeryd_init"][0]["sender"] == worker.hostname
    assert heard["celeryd_init"][0]["conf"] is app.conf
    assert heard["import_modules"][0]["sender"] is app
    assert heard["task_internal_error"][0]["task_id"]
    assert len(heard["worker_shutdown"]) == 1


def test_setup_logging_receivers_take_over_and_after_setup_signals_follow() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    calls: list[str] = []

    def take_over(**kwargs: Any) -> None:
        calls.append("setup_logging")

    def after(logger: logging.Logger, **kwargs: Any) -> None:
        calls.append(f"after:{logger.name}")

    try:
        signals.after_setup_logger.connect(after)
        signals.after_setup_task_logger.connect(after)
        setup_logging("INFO", None, {"worker_hijack_root_logger": False})
        assert calls == ["after:root", "after:canvas.task"]
        signals.setup_logging.connect(take_over)
        calls.clear()
        setup_logging("INFO", None, {})
        assert calls == ["setup_logging"]  # the receiver configured logging; canvas did not
    finally:
        for signal, receiver in (
            (signals.setup_logging, take_over),
            (signals.after_setup_logger, after),
            (signals.after_setup_task_logger, after),
        ):
            signal.disconnect(receiver)
        root.handlers[:] = before[0]
        root.setLevel(before[1])
        task_logger = logging.getLogger("canvas.task")
        task_logger.handlers[:] = []
        task_logger.propagate = True


def test_send_event_reaches_a_receiver() -> None:
    app = TestApp()
    got: list[dict[str, Any]] = []

    @app.task(bind=True)
    def progress(self: Task) -> None:
        self.send_event("task-progress", current=3, total=10)

    def keep(event: dict[str, Any]) -> None:
        if event["type"] == "task-progress":
            got.append(event)

    receiver = app.events.Receiver(None, handlers={"*": keep})
    receiver.subscribe()
    with start_worker(app):
        result = progress.delay()
        result.get(timeout=10)
        for _ in receiver.itercapture(timeout=10, wakeup=False):
            if got:
                break
    assert got and got[0]["uuid"] == result.id and got[0]["current"] == 3
