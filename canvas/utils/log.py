"""Loggers under Celery's names: ``get_task_logger(__name__)`` and ``get_logger(name)``.

A task logger is the logger ``name`` whose parent is the ``canvas.task`` logger, so a worker's
``worker_task_log_format`` applies to it and each record carries ``task_id`` and ``task_name``
(``???`` outside a task, as in Celery).
"""

from __future__ import annotations

import logging

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


__all__ = ["TASK_LOGGER", "TaskContext", "get_logger", "get_task_logger"]
