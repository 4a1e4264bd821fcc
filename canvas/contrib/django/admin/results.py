"""Results in the admin: task and group results, and workflows drawn as ``canvas render`` does.

Everything here is read-only (the worker writes it); deleting a task result forgets it. A
workflow's page shows its graph coloured by state, read from the result store through the
project's app, and the table of its nodes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from canvas import dag
from canvas.contrib.django.models import GroupResult, TaskResult, Workflow, WorkflowNode
from canvas.contrib.django.project import project_app
from canvas.exceptions import CanvasError
from canvas.visualize.dot import STATE_COLORS, pipe, to_dot
from canvas.visualize.text import runtime_text

__all__ = ["GroupResultAdmin", "TaskResultAdmin", "WorkflowAdmin", "workflow_svg"]


class ReadOnly(admin.ModelAdmin):
    """Rows the store writes: viewed and deleted here, never added or edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _workflow_link(workflow_id: str | None) -> str:
    if not workflow_id:
        return "-"
    url = reverse("admin:canvas_django_workflow_change", args=[workflow_id])
    return format_html('<a href="{}">{}</a>', url, workflow_id)


@admin.register(TaskResult)
class TaskResultAdmin(ReadOnly):
    date_hierarchy = "date_done"
    list_display = (
        "task_id",
        "task_name",
        "status",
        "date_done",
        "worker",
        "task_args",
        "task_kwargs",
        "periodic_task_name",
    )
    list_filter = ("status", "date_done", "date_created", "task_name", "periodic_task_name")
    search_fields = ("task_id", "task_name", "workflow_id", "periodic_task_name")
    fieldsets = (
        (None, {"fields": ("task_id", "task_name", "status", "worker", "workflow")}),
        ("Arguments", {"fields": ("task_args", "task_kwargs", "periodic_task_name")}),
        ("Result", {"fields": ("result", "traceback_text", "meta", "content_type")}),
        ("Times", {"fields": ("date_created", "date_started", "date_done")}),
    )
    readonly_fields = (
        "task_id",
        "task_name",
        "status",
        "worker",
        "workflow",
        "task_args",
        "task_kwargs",
        "periodic_task_name",
        "result",
        "traceback_text",
        "meta",
        "content_type",
        "date_created",
        "date_started",
        "date_done",
    )

    @admin.display(description="workflow")
    def workflow(self, obj: TaskResult) -> str:
        return _workflow_link(obj.workflow_id)

    @admin.display(description="traceback")
    def traceback_text(self, obj: TaskResult) -> str:
        if not obj.traceback:
            return "-"
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', obj.traceback)


@admin.register(GroupResult)
class GroupResultAdmin(ReadOnly):
    date_hierarchy = "date_created"
    list_display = ("group_id", "date_created", "workflow")
    search_fields = ("group_id", "workflow_id")
    readonly_fields = ("group_id", "date_created", "date_done", "result", "workflow")
    fields = readonly_fields

    @admin.display(description="workflow")
    def workflow(self, obj: GroupResult) -> str:
        return _workflow_link(obj.workflow_id)


@admin.register(Workflow)
class WorkflowAdmin(ReadOnly):
    date_hierarchy = "date_created"
    list_display = ("id", "date_created", "node_count", "states")
    search_fields = ("id",)
    fields = ("id", "date_created", "graph", "nodes", "task_results")
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a workflow's rows go together, by expiry or canvas_cleanup

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        page = list(changelist.result_list)
        ids = [w.id for w in page]
        sizes = dict(
            WorkflowNode.objects.filter(workflow_id__in=ids)
            .values_list("workflow_id")
            .annotate(n=Count("id"))
        )
        counted: dict[str, Counter[str]] = defaultdict(Counter)
        for workflow_id, status, n in (
            TaskResult.objects.filter(workflow_id__in=ids)
            .values_list("workflow_id", "status")
            .annotate(n=Count("id"))
        ):
            counted[workflow_id][status] += n
        for workflow in page:
            workflow.node_total = sizes.get(workflow.id, 0)
            workflow.state_counts = counted[workflow.id]
        return changelist

    @admin.display(description="nodes")
    def node_count(self, obj: Workflow) -> int:
        return int(getattr(obj, "node_total", 0))

    @admin.display(description="states")
    def states(self, obj: Workflow) -> str:
        counts: Counter[str] = getattr(obj, "state_counts", None) or Counter()
        return format_html_join(
            " ",
            '<span style="background:{}; padding:0 4px; border-radius:3px">{} {}</span>',
            ((STATE_COLORS.get(s, "#fff"), n, s) for s, n in sorted(counts.items())),
        )

    @admin.display(description="graph")
    def graph(self, obj: Workflow) -> SafeString:
        return workflow_svg(obj.id)

    @admin.display(description="nodes")
    def nodes(self, obj: Workflow) -> str:
        rows = [
            (item.node.id, item.node.task or item.node.kind, item.state, runtime_text(item.runtime))
            for item in obj.view(project_app()).nodes()
            if item.node.kind != dag.ERRBACK or item.meta is not None
        ]
        body = format_html_join(
            "", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
        )
        return format_html(
            "<table><tr><th>node</th><th>task</th><th>state</th><th>runtime</th></tr>{}</table>",
            body,
        )

    @admin.display(description="task results")
    def task_results(self, obj: Workflow) -> str:
        url = reverse("admin:canvas_django_taskresult_changelist")
        return format_html(
            '<a href="{}?workflow_id={}">every result of this workflow</a>', url, obj.id
        )


def workflow_svg(workflow_id: str) -> SafeString:
    """The workflow drawn as ``canvas render --id`` draws it, as inline SVG.

    Graphviz escapes every label it writes, and the DOT labels are escaped before that, so task
    arguments cannot inject markup. Without the ``dot`` program the DOT source is shown instead.
    """
    try:
        source = to_dot(project_app().workflow(workflow_id))
    except (CanvasError, LookupError, ValueError) as exc:
        return format_html("<p>Cannot read this workflow: {}</p>", exc)
    try:
        svg = pipe(source, "svg").decode()
    except CanvasError as exc:  # no Graphviz here
        return format_html("<p>{}</p><pre>{}</pre>", exc, source)
    start = svg.find("<svg")
    return mark_safe(f'<div style="overflow:auto">{svg[start:]}</div>')
