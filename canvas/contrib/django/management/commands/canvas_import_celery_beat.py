"""``manage.py canvas_import_celery_beat``: copy django-celery-beat's schedule into canvas's tables.

For a project moving from Celery: its ``django_celery_beat_*`` tables stay in the database after
the app leaves ``INSTALLED_APPS``; this reads them with plain SQL (the package need not be
installed) and creates the same periodic tasks, schedules included, keeping ``last_run_at`` and
``total_run_count`` so that nothing fires twice or starts over. A name that exists already is
left alone unless ``--replace``; ``--dry-run`` does it all in a transaction it rolls back. A
row canvas cannot run (a crontab field it cannot read) is reported and skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, transaction
from django.utils.dateparse import parse_datetime

from canvas.contrib.django.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)

PREFIX = "django_celery_beat_"
#: the periodic task columns copied as they are, where the source table has them
_COPIED = (
    "task",
    "args",
    "kwargs",
    "queue",
    "exchange",
    "routing_key",
    "headers",
    "priority",
    "expire_seconds",
    "description",
    "total_run_count",
)
_TIMES = ("expires", "start_time", "last_run_at")
_FLAGS = ("one_off", "enabled")


class Command(BaseCommand):
    help = "Copy django-celery-beat's periodic tasks and schedules into canvas's tables."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="The DATABASES alias.")
        parser.add_argument(
            "--replace", action="store_true", help="Overwrite canvas entries of the same name."
        )
        parser.add_argument("--dry-run", action="store_true", help="Report, write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        connection = connections[alias]
        tables = set(connection.introspection.table_names())
        if f"{PREFIX}periodictask" not in tables:
            raise CommandError(
                f"No {PREFIX}periodictask table in the {alias!r} database: nothing to import. "
                "(Was django-celery-beat migrated into this database?)"
            )
        rows = {
            kind: _rows(connection, f"{PREFIX}{kind}") if f"{PREFIX}{kind}" in tables else {}
            for kind in ("intervalschedule", "crontabschedule", "solarschedule", "clockedschedule")
        }
        tasks = _rows(connection, f"{PREFIX}periodictask")
        made = skipped = 0
        with transaction.atomic(using=alias):
            for old in tasks.values():
                name = old["name"]
                exists = PeriodicTask.objects.using(alias).filter(name=name).exists()
                if exists and not options["replace"]:
                    self.stdout.write(f"kept {name!r}: canvas has an entry of that name")
                    skipped += 1
                    continue
                try:
                    fields = self._fields(old, rows, alias)
                    entry = PeriodicTask(name=name, **fields)
                    entry.full_clean(exclude=["name"])
                except (ValidationError, KeyError, ValueError) as exc:
                    self.stderr.write(f"skipped {name!r}: {exc}")
                    skipped += 1
                    continue
                PeriodicTask.objects.using(alias).filter(name=name).delete()
                entry.save(using=alias)
                made += 1
                self.stdout.write(
                    f"{'would import' if options['dry_run'] else 'imported'} {name!r}"
                )
            if options["dry_run"]:  # everything was written, and now goes again
                transaction.set_rollback(True, using=alias)
            else:
                PeriodicTasks.update_changed()
        self.stdout.write(f"{made} periodic task(s) imported, {skipped} skipped.")

    def _fields(self, old: dict[str, Any], rows: dict[str, Any], alias: str) -> dict[str, Any]:
        fields: dict[str, Any] = {k: old[k] for k in _COPIED if old.get(k) is not None}
        fields.update({k: _when(old.get(k)) for k in _TIMES})
        fields.update({k: bool(old[k]) for k in _FLAGS if k in old})
        schedules: list[tuple[str, type[Any], str, tuple[str, ...]]] = [
            ("interval", IntervalSchedule, "intervalschedule", ("every", "period")),
            (
                "crontab",
                CrontabSchedule,
                "crontabschedule",
                ("minute", "hour", "day_of_week", "day_of_month", "month_of_year", "timezone"),
            ),
            ("solar", SolarSchedule, "solarschedule", ("event", "latitude", "longitude")),
            ("clocked", ClockedSchedule, "clockedschedule", ("clocked_time",)),
        ]
        for field, model, kind, columns in schedules:
            key = old.get(f"{field}_id")
            if key is None:
                continue
            source = rows[kind][key]
            spec = {c: _value(c, source.get(c)) for c in columns if source.get(c) is not None}
            schedule = model.objects.using(alias).filter(**spec).first() or model(**spec)
            schedule.full_clean()
            schedule.save(using=alias)
            fields[field] = schedule
        return fields


def _rows(connection: Any, table: str) -> dict[Any, dict[str, Any]]:
    """Every row of ``table`` as a dict by column name, keyed by ``id``."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        names = [column[0] for column in cursor.description]
        found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return {row["id"]: row for row in found}


def _when(value: Any) -> datetime | None:
    """A time as the source database gave it (SQLite gives text) as an aware datetime."""
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else parse_datetime(str(value))
    if when is None:
        raise ValueError(f"{value!r} is not a time")
    if when.tzinfo is None:  # Django keeps UTC in databases without time zones when USE_TZ
        when = when.replace(tzinfo=UTC) if settings.USE_TZ else when
    return when


def _value(column: str, value: Any) -> Any:
    if column in ("latitude", "longitude"):
        return Decimal(str(value))
    if column == "clocked_time":
        return _when(value)
    return value
