"""Signals with Celery's names: ``@task_prerun.connect`` and friends.

A receiver is called as ``receiver(sender=..., signal=..., **kwargs)``. A receiver that raises is
logged and does not stop the others or the task: signals observe, they do not steer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("canvas.signals")

Receiver = Callable[..., Any]


class Signal:
    """A named hook; ``connect`` works bare, with arguments, and with ``sender=`` filtering."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: list[tuple[Receiver, Any]] = []
        self._lock = threading.Lock()

    def connect(self, receiver: Receiver | None = None, *, sender: Any = None, **_: Any) -> Any:
        def register(func: Receiver) -> Receiver:
            with self._lock:
                if all(r is not func for r, _ in self._receivers):
                    self._receivers.append((func, sender))
            return func

        return register(receiver) if receiver is not None else register

    def disconnect(self, receiver: Receiver) -> None:
        with self._lock:
            self._receivers = [(r, s) for r, s in self._receivers if r is not receiver]

    def send(self, sender: Any = None, **kwargs: Any) -> list[tuple[Receiver, Any]]:
        replies = []
        for receiver, wanted in list(self._receivers):
            if wanted is not None and wanted is not sender and wanted != getattr(sender, "name", 0):
                continue
            try:
                replies.append((receiver, receiver(sender=sender, signal=self, **kwargs)))
            except Exception as exc:
                logger.exception("Signal %s receiver %r raised", self.name, receiver)
                replies.append((receiver, exc))
        return replies

    def __repr__(self) -> str:
        return f"<Signal {self.name}>"


before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_failure = Signal("task_failure")
task_retry = Signal("task_retry")
task_revoked = Signal("task_revoked")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
beat_init = Signal("beat_init")
# worker start-up, logging and shutdown (sent where Celery sends them; see docs/migrating.md)
celeryd_init = Signal("celeryd_init")
celeryd_after_setup = Signal("celeryd_after_setup")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")
import_modules = Signal("import_modules")
heartbeat_sent = Signal("heartbeat_sent")
task_internal_error = Signal("task_internal_error")
worker_shutting_down = Signal("worker_shutting_down")
worker_process_shutdown = Signal("worker_process_shutdown")
beat_embedded_init = Signal("beat_embedded_init")
