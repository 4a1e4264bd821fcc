"""Workflows as canvas's store keeps them, and the store's other engine tables.

These rows are the engine's state: ``canvas.contrib.django.store`` writes them in its own
transactions (the atomic join lives in ``WorkflowNode.n_done`` and ``NodeInput``). Read them, and
let expiry or ``manage.py canvas_cleanup`` delete them; editing them by hand can stall a workflow.
``spec``, ``info`` and ``payload`` are canvas's msgpack records; ``Workflow.view(app)`` reads a
workflow back with every node's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

from canvas.contrib.django.models.results import default_expiry

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.core.workflow_view import WorkflowView

__all__ = ["Counter", "Lease", "NodeInput", "ScheduledMessage", "Workflow", "WorkflowNode"]


class Workflow(models.Model):
    """A compiled workflow, saved once when it was sent."""

    id = models.CharField("workflow id", max_length=255, primary_key=True)
    info = models.BinaryField(editable=False)
    date_created = models.DateTimeField("created", null=True, db_index=True)
    expires_at = models.FloatField(default=default_expiry, db_index=True, editable=False)

    class Meta:
        ordering = ["-date_created"]
        verbose_name = "workflow"
        verbose_name_plural = "workflows"

    def view(self, app: Canvas) -> WorkflowView:
        """Every node with its state, as ``canvas status`` and ``canvas render --id`` read it."""
        return app.workflow(self.id)

    def __str__(self) -> str:
        return str(self.id)


class WorkflowNode(models.Model):
    """One node of a workflow: its spec, successors and how many of its inputs are done."""

    workflow_id = models.CharField(max_length=255)
    node_id = models.CharField(max_length=255)
    seq = models.IntegerField()
    spec = models.BinaryField(editable=False)
    successors = models.TextField()
    n_inputs = models.IntegerField()
    n_done = models.IntegerField()
    done = models.BooleanField()
    expires_at = models.FloatField(default=default_expiry, db_index=True, editable=False)

    class Meta:
        ordering = ["workflow_id", "seq"]
        verbose_name = "workflow node"
        constraints = [
            models.UniqueConstraint(fields=["workflow_id", "node_id"], name="canvas_node_key")
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id}/{self.node_id}"


class NodeInput(models.Model):
    """An input already counted for a node: what makes marking it done idempotent."""

    workflow_id = models.CharField(max_length=255)
    node_id = models.CharField(max_length=255)
    input_id = models.CharField(max_length=255)
    expires_at = models.FloatField(default=default_expiry, db_index=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workflow_id", "node_id", "input_id"], name="canvas_input_key"
            )
        ]


class ScheduledMessage(models.Model):
    """A countdown/ETA message parked until ``due`` (epoch seconds)."""

    key = models.CharField(max_length=255, primary_key=True)
    due = models.FloatField(db_index=True)
    payload = models.BinaryField(editable=False)
    expires_at = models.FloatField(default=default_expiry, db_index=True, editable=False)


class Lease(models.Model):
    """A named lease, such as beat's leader lease."""

    name = models.CharField(max_length=255, primary_key=True)
    owner = models.CharField(max_length=255)
    expires_at = models.FloatField(db_index=True)


class Counter(models.Model):
    """An expiring counter, such as beat's claim on one slot of an entry."""

    key = models.CharField(max_length=255, primary_key=True)
    value = models.BigIntegerField()
    expires_at = models.FloatField(db_index=True)
