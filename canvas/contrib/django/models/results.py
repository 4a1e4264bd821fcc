"""Task and group results, as django-celery-results names them, written by canvas's store.

Rows are written by ``canvas.contrib.django.store`` (never by the ORM on the worker's hot path);
read them as usual: ``TaskResult.objects.filter(status="FAILURE")``. ``canvas_meta`` is the
record canvas itself reads back; the other columns are filled from it in the same statement.
Differences from django-celery-results: ``date_done`` is empty until the task is ready (theirs is
the time of the last write), ``result`` is always JSON, and ``workflow_id`` and ``expires_at``
are canvas's.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import models

from canvas import states

__all__ = ["ALL_STATES", "TASK_STATE_CHOICES", "GroupResult", "TaskResult"]

ALL_STATES = sorted(states.ALL_STATES)
TASK_STATE_CHOICES = sorted(zip(ALL_STATES, ALL_STATES, strict=True))


def default_expiry() -> float:
    """Rows made through the ORM count for a day, as ``result_expires`` does by default."""
    return time.time() + 86400.0


class TaskResult(models.Model):
    """One task's state and result."""

    task_id = models.CharField("task id", max_length=255, unique=True)
    periodic_task_name = models.CharField(
        "periodic task name", max_length=255, null=True, help_text="The beat entry that sent it."
    )
    task_name = models.CharField("task name", max_length=255, null=True)
    task_args = models.TextField(
        "positional arguments", null=True, help_text="Their repr, with result_extended."
    )
    task_kwargs = models.TextField(
        "keyword arguments", null=True, help_text="Their repr, with result_extended."
    )
    status = models.CharField(
        "state", max_length=50, default=states.PENDING, choices=TASK_STATE_CHOICES
    )
    worker = models.CharField("worker", max_length=100, null=True, default=None)
    content_type = models.CharField("result content type", max_length=128)
    content_encoding = models.CharField("result encoding", max_length=64)
    result = models.TextField("result", null=True, default=None, editable=False)
    date_created = models.DateTimeField("created", auto_now_add=True)
    date_started = models.DateTimeField("started", null=True, default=None)
    date_done = models.DateTimeField("done", null=True, default=None)
    traceback = models.TextField("traceback", blank=True, null=True)
    meta = models.TextField(
        "other details", null=True, default=None, editable=False, help_text="JSON."
    )
    workflow_id = models.CharField("workflow", max_length=255, null=True)
    canvas_meta = models.BinaryField("canvas record", null=True, editable=False)
    expires_at = models.FloatField(default=default_expiry, db_index=True, editable=False)

    class Meta:
        ordering = ["-date_done", "-date_created"]
        verbose_name = "task result"
        verbose_name_plural = "task results"
        indexes = [
            models.Index(fields=["task_name"], name="canvas_tr_task_name"),
            models.Index(fields=["status"], name="canvas_tr_status"),
            models.Index(fields=["worker"], name="canvas_tr_worker"),
            models.Index(fields=["date_created"], name="canvas_tr_date_created"),
            models.Index(fields=["date_done"], name="canvas_tr_date_done"),
            models.Index(fields=["periodic_task_name"], name="canvas_tr_periodic"),
            models.Index(fields=["workflow_id"], name="canvas_tr_workflow"),
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task_name": self.task_name,
            "task_args": self.task_args,
            "task_kwargs": self.task_kwargs,
            "status": self.status,
            "result": self.result,
            "date_done": self.date_done,
            "traceback": self.traceback,
            "meta": self.meta,
            "worker": self.worker,
        }

    def __str__(self) -> str:
        return f"<Task: {self.task_id} ({self.status})>"


class GroupResult(models.Model):
    """A group (or a chord's header) of a workflow; ``result`` is its members' ids as JSON."""

    group_id = models.CharField("group id", max_length=255, unique=True)
    date_created = models.DateTimeField("created", auto_now_add=True)
    date_done = models.DateTimeField("done", null=True, default=None)
    content_type = models.CharField("result content type", max_length=128)
    content_encoding = models.CharField("result encoding", max_length=64)
    result = models.TextField("member task ids", null=True, default=None, editable=False)
    workflow_id = models.CharField("workflow", max_length=255, null=True)
    expires_at = models.FloatField(default=default_expiry, db_index=True, editable=False)

    class Meta:
        ordering = ["-date_created"]
        verbose_name = "group result"
        verbose_name_plural = "group results"
        indexes = [
            models.Index(fields=["date_created"], name="canvas_gr_date_created"),
            models.Index(fields=["date_done"], name="canvas_gr_date_done"),
        ]

    def as_dict(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "result": self.result, "date_done": self.date_done}

    def __str__(self) -> str:
        return f"<Group: {self.group_id}>"
