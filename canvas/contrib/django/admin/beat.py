"""Periodic tasks in the admin: edit them, run them now, enable and disable, see the next run.

A running ``DatabaseScheduler`` picks changes up within ``beat_max_loop_interval``. The form
checks what beat would otherwise find out at firing time: that the task is registered (with the
closest name when it is not), that arguments are JSON, and that a workflow is a signature's
``to_dict()`` that compiles.
"""

from __future__ import annotations

import difflib
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from canvas.contrib.django.entries import check_workflow, next_run, send_now
from canvas.contrib.django.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)
from canvas.contrib.django.project import project_app

__all__ = ["PeriodicTaskAdmin", "PeriodicTaskForm"]


class TaskNameInput(forms.TextInput):
    """A text box that suggests the app's registered task names."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({**(attrs or {}), "list": "canvas-tasks", "size": 60})

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> str:
        app = project_app()
        app.finalize()
        names = sorted((n,) for n in app.tasks if not n.startswith("canvas."))
        options = format_html_join("", '<option value="{}">', names)
        box = super().render(name, value, attrs, renderer)
        return format_html('{}<datalist id="canvas-tasks">{}</datalist>', box, options)


class PeriodicTaskForm(forms.ModelForm):
    class Meta:
        model = PeriodicTask
        exclude: tuple[str, ...] = ()
        widgets = {"task": TaskNameInput}

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()
        app = project_app()
        workflow = data.get("workflow")
        if workflow:
            try:
                sig = check_workflow(workflow, app)
            except ValueError as exc:
                self.add_error("workflow", str(exc))
            else:
                if not data.get("task"):
                    label = repr(sig)
                    data["task"] = label if len(label) <= 200 else label[:197] + "..."
        elif data.get("task"):
            app.finalize()
            task = data["task"]
            if task not in app.tasks:
                close = difflib.get_close_matches(task, list(app.tasks), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                self.add_error("task", f"No registered task is named {task!r}.{hint}")
        else:
            self.add_error("task", "Name a registered task, or give a workflow.")
        return data


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(admin.ModelAdmin):
    form = PeriodicTaskForm
    date_hierarchy = "start_time"
    list_display = (
        "name",
        "enabled",
        "task",
        "scheduler",
        "next_run_at",
        "last_run_at",
        "total_run_count",
        "one_off",
    )
    list_filter = ("enabled", "one_off", "task", "start_time", "last_run_at")
    search_fields = ("name", "task", "description")
    actions = ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")
    readonly_fields = ("last_run_at", "total_run_count", "next_run_at")
    fieldsets = (
        (None, {"fields": ("name", "task", "enabled", "description")}),
        ("Workflow", {"fields": ("workflow",), "classes": ("collapse",)}),
        (
            "Schedule",
            {
                "fields": (
                    ("interval", "crontab", "solar", "clocked"),
                    "start_time",
                    "one_off",
                    "next_run_at",
                    "last_run_at",
                    "total_run_count",
                )
            },
        ),
        ("Arguments", {"fields": ("args", "kwargs")}),
        (
            "Execution options",
            {
                "fields": (
                    "expires",
                    "expire_seconds",
                    "queue",
                    "exchange",
                    "routing_key",
                    "priority",
                    "headers",
                ),
                "classes": ("collapse",),
            },
        ),
    )

    @admin.display(description="next run")
    def next_run_at(self, obj: PeriodicTask) -> Any:
        if obj.pk is None:
            return "-"
        due = next_run(obj)
        return timezone.localtime(due) if due is not None else "never"

    @admin.action(description="Enable selected periodic tasks")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._switch(request, queryset, enabled=True)

    @admin.action(description="Disable selected periodic tasks")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._switch(request, queryset, enabled=False)

    @admin.action(description="Toggle selected periodic tasks")
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        on = list(queryset.filter(enabled=True).values_list("pk", flat=True))
        self._switch(request, queryset.exclude(pk__in=on), enabled=True)
        self._switch(request, PeriodicTask.objects.filter(pk__in=on), enabled=False)

    def _switch(
        self, request: HttpRequest, queryset: QuerySet[PeriodicTask], enabled: bool
    ) -> None:
        # The clock restarts now: an entry switched back on does not catch up on the slots it
        # missed while off (saving the row does the same through date_changed).
        changed = queryset.update(enabled=enabled, last_run_at=None, date_changed=timezone.now())
        PeriodicTasks.update_changed()
        word = "enabled" if enabled else "disabled"
        self.message_user(request, f"{changed} periodic task(s) {word}.", messages.SUCCESS)

    @admin.action(description="Run selected periodic tasks now")
    def run_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        app = project_app()
        for row in queryset:
            try:
                result = send_now(row, app)
            except Exception as exc:
                self.message_user(request, f"{row.name}: not sent: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{row.name}: sent as {result.id}.", messages.SUCCESS)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "every", "period")


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    list_filter = ("timezone",)


@admin.register(SolarSchedule)
class SolarScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "event", "latitude", "longitude")


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "clocked_time")
