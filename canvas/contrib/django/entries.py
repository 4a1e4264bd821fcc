"""Between ``PeriodicTask`` rows and beat: what a row sends, when, and rows for setting entries.

* ``entry_from_row(row, app)`` – the ``canvas.beat.Entry`` a row stands for: its task or workflow,
  JSON arguments, routing options, expiry, and the ``periodic_task_name`` header.
* ``clock_start(row)`` – the moment its schedule counts from: the last run, else when the row was
  last changed (as django-celery-beat does); never before ``start_time``; a clocked time that
  passed before the row was saved still fires once.
* ``next_run(row, now)`` – what the admin shows.
* ``check_workflow(data, app)`` – a workflow field's JSON as a signature, or an error that says
  what is wrong (shape, compile errors, task names the app does not know).
* ``store_setting_entries(app)`` – ``beat_schedule`` entries written as rows, so the admin shows
  them (as django-celery-beat does); the few that cannot be stored are returned.
* ``send_now(row, app)`` – the admin's "run now".
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from canvas import dag
from canvas.beat.scheduler import Entry
from canvas.contrib.django.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from canvas.contrib.django.models.beat import aware
from canvas.contrib.django.schedules import NEVER, clocked, solar
from canvas.exceptions import CanvasError
from canvas.schedules import BaseSchedule, crontab, maybe_schedule, schedule
from canvas.signature import Signature

if TYPE_CHECKING:
    from canvas.app import Canvas

__all__ = [
    "check_workflow",
    "clock_start",
    "entry_from_row",
    "next_run",
    "send_now",
    "store_setting_entries",
]

logger = logging.getLogger("canvas.beat")

_TINY = timedelta(microseconds=1)
_ROUTING = ("queue", "exchange", "routing_key", "priority")


def entry_from_row(row: PeriodicTask, app: Canvas) -> Entry:
    """The entry beat fires for ``row``; a ``ValueError`` names what in the row is wrong."""
    where = f"periodic task {row.name!r}"
    try:
        args = json.loads(row.args or "[]")
        kwargs = json.loads(row.kwargs or "{}")
        headers = json.loads(row.headers or "{}")
    except ValueError as exc:
        raise ValueError(f"{where}: args, kwargs and headers must be JSON ({exc})") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict) or not isinstance(headers, dict):
        raise ValueError(f"{where}: args must be a JSON list, kwargs and headers JSON objects")
    task: str | Signature = row.task
    if row.workflow:
        task = check_workflow(row.workflow, app, known_tasks=False)
    elif not row.task:
        raise ValueError(f"{where} names no task and has no workflow")
    options: dict[str, Any] = {
        field: getattr(row, field) for field in _ROUTING if getattr(row, field) is not None
    }
    expires = aware(row.expires) or row.expire_seconds
    if expires:
        options["expires"] = expires
    options["headers"] = {**headers, "periodic_task_name": row.name}
    return Entry(row.name, task, maybe_schedule(row.schedule, app), tuple(args), kwargs, options)


def clock_start(row: PeriodicTask) -> datetime:
    """When ``row``'s schedule starts counting (aware UTC); see the module docstring."""
    base = aware(row.last_run_at) or aware(row.date_changed) or timezone.now()
    if row.last_run_at is None and row.clocked_id:
        base = min(base, aware(row.clocked.clocked_time) - _TINY)
    if row.start_time is not None:
        base = max(base, aware(row.start_time) - _TINY)
    return base.astimezone(UTC)


def expired(row: PeriodicTask, now: datetime) -> bool:
    return row.expires is not None and now >= aware(row.expires)


def next_run(row: PeriodicTask, now: datetime | None = None) -> datetime | None:
    """When ``row`` is next due (a past time: at beat's next look); ``None``: never again."""
    now = now or timezone.now()
    if not row.enabled or expired(row, now) or row.scheduler is None:
        return None
    sched = row.schedule
    due = sched.next_after(clock_start(row))
    if due <= now:
        due = sched.latest(now)
    return None if due >= NEVER else due


def check_workflow(data: Any, app: Canvas, *, known_tasks: bool = True) -> Signature:
    """``data`` (a signature's ``to_dict()``) as a signature that compiles, or a ``ValueError``."""
    if not isinstance(data, Mapping):
        raise ValueError(
            "A workflow is a JSON object: a signature's to_dict(), such as "
            '{"task": "proj.add", "args": [1, 2]} or a chain\'s, group\'s or chord\'s.'
        )
    try:
        sig = Signature.from_dict(data, app=app)
        compiled = dag.compile(
            sig, max_nodes=app.conf.canvas_max_nodes, max_depth=app.conf.canvas_max_depth
        )
    except (CanvasError, KeyError, TypeError, ValueError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"Not a workflow canvas can send: {detail}") from None
    if known_tasks:
        app.finalize()
        names = sorted({n.task for n in compiled.nodes if n.task and n.task not in app.tasks})
        if names:
            hints = []
            for name in names:
                close = difflib.get_close_matches(name, list(app.tasks), n=1)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"Unknown task {', '.join(hints)}: no registered task has that name.")
    return sig


def send_now(row: PeriodicTask, app: Canvas) -> Any:
    """Send ``row``'s task or workflow once, now, outside its schedule (the admin's "run now")."""
    entry = entry_from_row(row, app)
    if isinstance(entry.task, str):
        return app.send_task(entry.task, entry.args, entry.kwargs, **entry.options)
    sig = entry.task.clone()
    if entry.args or entry.kwargs:
        return sig.apply_async(entry.args, entry.kwargs, **entry.options)
    return sig.apply_async(**entry.options)


# -- beat_schedule entries as rows ---------------------------------------------------------------
def store_setting_entries(app: Canvas) -> dict[str, Entry]:
    """Write ``beat_schedule`` as rows (by name; last runs and counts are kept).

    Returns the entries that have no row form (a schedule type of another library, arguments
    that are not JSON): beat fires those from memory.
    """
    kept: dict[str, Entry] = {}
    for name, spec in (app.conf.get("beat_schedule") or {}).items():
        entry = Entry.from_setting(name, spec, app)
        try:
            fields = _row_fields(entry)
        except (TypeError, ValueError) as exc:
            logger.warning(
                "beat: %r stays out of the database (%s); firing it from memory", name, exc
            )
            kept[name] = entry
            continue
        PeriodicTask.objects.update_or_create(name=name, defaults=fields)
    return kept


def _row_fields(entry: Entry) -> dict[str, Any]:
    fields: dict[str, Any] = dict.fromkeys(("interval", "crontab", "solar", "clocked"))
    slot, row = _schedule_row(entry.schedule)
    row.save()
    fields[slot] = row
    if slot == "clocked":
        fields["one_off"] = True
    options = dict(entry.options)
    task = entry.task
    args, kwargs = list(entry.args), dict(entry.kwargs)
    if isinstance(task, Signature) and type(task) is Signature and not task.options:
        args, kwargs, task = [*task.args, *args], {**task.kwargs, **kwargs}, task.task
    if isinstance(task, Signature):
        fields.update(task=_label(task), workflow=task.to_dict())
    else:
        fields.update(task=str(task), workflow=None)
    expires = options.pop("expires", None)
    fields.update(
        args=json.dumps(args),
        kwargs=json.dumps(kwargs),
        headers=json.dumps(options.pop("headers", None) or {}),
        expires=expires if isinstance(expires, datetime) else None,
        expire_seconds=int(expires) if isinstance(expires, int | float) else None,
        **{field: options.pop(field, None) for field in _ROUTING},
    )
    if options:
        raise ValueError(f"options {sorted(options)} have no column")
    return fields


def _schedule_row(sched: Any) -> tuple[str, Any]:
    if isinstance(sched, solar):
        return "solar", SolarSchedule.from_schedule(sched)
    if isinstance(sched, clocked):
        return "clocked", ClockedSchedule.from_schedule(sched)
    if isinstance(sched, crontab):
        return "crontab", CrontabSchedule.from_schedule(sched)
    if isinstance(sched, schedule) and not sched.relative:
        return "interval", _interval_row(sched)
    kind = type(sched).__name__ if isinstance(sched, BaseSchedule) else repr(sched)
    raise TypeError(f"schedule {kind} has no row form")


def _interval_row(sched: schedule) -> IntervalSchedule:
    """The largest whole period: every 90 seconds is 90 seconds, every 2 hours is 2 hours."""
    for period, unit in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
        seconds = sched.run_every.total_seconds()
        if seconds >= unit and seconds % unit == 0:
            return IntervalSchedule.from_schedule(sched, period=period)
    return IntervalSchedule.from_schedule(sched, period="microseconds")


def _label(sig: Signature) -> str:
    text = repr(sig)
    return text if len(text) <= 200 else text[:197] + "..."
