"""Loggers under Celery's names: ``get_task_logger(__name__)`` and ``get_logger(name)``.

A task logger is the logger ``name`` whose parent is the ``canvas.task`` logger, so a worker's
``worker_task_log_format`` applies to it and each record carries ``task_id`` and ``task_name``
(``???`` outside a task, as in Celery).
"""

from __future__ import annotations

import io
import logging
import threading

from canvas.request import current_request

#: the parent of every task logger; the worker gives it ``worker_task_log_format``
TASK_LOGGER = "canvas.task"


class TaskContext(logging.Filter):
    """Adds the running task's ``task_id`` and ``task_name`` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request()
        if not hasattr(record, "task_id"):
            record.task_id = (request.id if request else None) or "???"
        if not hasattr(record, "task_name"):
            record.task_name = (request.task if request else None) or "???"
        return True


def get_logger(name: str) -> logging.Logger:
    """A plain logger (Celery's ``celery.utils.log.get_logger``)."""
    return logging.getLogger(name)


def get_task_logger(name: str) -> logging.Logger:
    """The logger a task module uses: records carry the running task's id and name."""
    if name == TASK_LOGGER:
        raise RuntimeError(f"Logger name {name!r} is reserved for the parent of task loggers")
    logger = logging.getLogger(name)
    logger.parent = logging.getLogger(TASK_LOGGER)
    # On the logger itself: a filter runs only where a record is made (and on handlers).
    if not any(isinstance(f, TaskContext) for f in logger.filters):
        logger.addFilter(TaskContext())
    return logger


class LoggingProxy(io.TextIOBase):
    """A file that writes each line to ``logger`` (``worker_redirect_stdouts``: ``print()`` in a
    task becomes a log record, at ``worker_redirect_stdouts_level``)."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING) -> None:
        self.logger = logger
        self.level = level
        self._buffer = ""
        self._writing = threading.local()

    def write(self, text: str) -> int:
        if getattr(self._writing, "on", False):
            return len(text)  # a handler that prints would loop: drop the echo
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        self._writing.on = True
        try:
            for line in lines:
                if line.strip():
                    self.logger.log(self.level, line.rstrip())
        finally:
            self._writing.on = False
        return len(text)

    def flush(self) -> None:
        if self._buffer.strip():
            pending, self._buffer = self._buffer, ""
            self.write(pending + "\n")

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


__all__ = ["TASK_LOGGER", "LoggingProxy", "TaskContext", "get_logger", "get_task_logger"]
