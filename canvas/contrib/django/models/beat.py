"""Periodic tasks and their schedules, with django-celery-beat's names, fields and constants.

A ``PeriodicTask`` runs one task (``task`` with JSON ``args``/``kwargs``) or, canvas's addition,
a whole workflow (``workflow``: a signature's ``to_dict()``, such as a chain or a chord) on one
schedule: an ``IntervalSchedule``, a ``CrontabSchedule`` (in its own time zone), a
``SolarSchedule`` or a one-off ``ClockedSchedule``. ``DatabaseScheduler`` fires them.

Changes reach a running beat through ``PeriodicTasks.last_update``, which saving or deleting a
periodic task or a schedule moves on; after a queryset ``update()``, which sends no signals,
call ``PeriodicTasks.update_changed()`` as with django-celery-beat.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import signals
from django.utils import timezone

# Aliased: the model fields ``crontab``, ``solar`` and ``clocked`` have the schedules' names.
from canvas.contrib.django.schedules import clocked as clocked_schedule
from canvas.contrib.django.schedules import solar as solar_schedule
from canvas.contrib.django.schedules import zoned_crontab
from canvas.contrib.django.validators import (
    CronFieldValidator,
    default_timezone,
    validate_json_list,
    validate_json_object,
    validate_timezone,
)
from canvas.schedules import BaseSchedule
from canvas.schedules import crontab as crontab_schedule
from canvas.schedules import schedule as interval_schedule

__all__ = [
    "DAYS",
    "HOURS",
    "MICROSECONDS",
    "MINUTES",
    "PERIOD_CHOICES",
    "SECONDS",
    "SINGULAR_PERIODS",
    "SOLAR_SCHEDULES",
    "ClockedSchedule",
    "CrontabSchedule",
    "IntervalSchedule",
    "PeriodicTask",
    "PeriodicTasks",
    "SolarSchedule",
    "track_changes",
]

DAYS, HOURS, MINUTES, SECONDS, MICROSECONDS = "days", "hours", "minutes", "seconds", "microseconds"
PERIOD_CHOICES = (
    (DAYS, "Days"),
    (HOURS, "Hours"),
    (MINUTES, "Minutes"),
    (SECONDS, "Seconds"),
    (MICROSECONDS, "Microseconds"),
)
SINGULAR_PERIODS = (
    (DAYS, "Day"),
    (HOURS, "Hour"),
    (MINUTES, "Minute"),
    (SECONDS, "Second"),
    (MICROSECONDS, "Microsecond"),
)
SOLAR_SCHEDULES = [
    ("dawn_astronomical", "Astronomical dawn"),
    ("dawn_civil", "Civil dawn"),
    ("dawn_nautical", "Nautical dawn"),
    ("dusk_astronomical", "Astronomical dusk"),
    ("dusk_civil", "Civil dusk"),
    ("dusk_nautical", "Nautical dusk"),
    ("solar_noon", "Solar noon"),
    ("sunrise", "Sunrise"),
    ("sunset", "Sunset"),
]
_SCHEDULE_FIELDS = ("interval", "crontab", "solar", "clocked")


class SolarSchedule(models.Model):
    """At a solar event (sunrise, dusk, ...) at a place."""

    event = models.CharField("solar event", max_length=24, choices=SOLAR_SCHEDULES)
    latitude = models.DecimalField(
        "latitude",
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
    )
    longitude = models.DecimalField(
        "longitude",
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
        help_text="Degrees east of Greenwich (west is negative).",
    )

    class Meta:
        verbose_name = "solar event"
        verbose_name_plural = "solar events"
        ordering = ("event", "latitude", "longitude")
        unique_together = ("event", "latitude", "longitude")

    @property
    def schedule(self) -> BaseSchedule:
        return solar_schedule(self.event, float(self.latitude), float(self.longitude))

    @classmethod
    def from_schedule(cls, sched: solar_schedule) -> SolarSchedule:
        spec = {"event": sched.event, "latitude": sched.lat, "longitude": sched.lon}
        found: SolarSchedule | None = cls.objects.filter(**spec).first()
        return found or cls(**spec)

    def __str__(self) -> str:
        return f"{self.get_event_display()} ({self.latitude}, {self.longitude})"


class IntervalSchedule(models.Model):
    """Every so many days, hours, minutes, seconds or microseconds."""

    DAYS = DAYS
    HOURS = HOURS
    MINUTES = MINUTES
    SECONDS = SECONDS
    MICROSECONDS = MICROSECONDS
    PERIOD_CHOICES = PERIOD_CHOICES

    every = models.IntegerField("number of periods", validators=[MinValueValidator(1)])
    period = models.CharField("interval period", max_length=24, choices=PERIOD_CHOICES)

    class Meta:
        verbose_name = "interval"
        verbose_name_plural = "intervals"
        ordering = ["period", "every"]

    @property
    def schedule(self) -> BaseSchedule:
        return interval_schedule(timedelta(**{self.period: self.every}))

    @classmethod
    def from_schedule(cls, sched: interval_schedule, period: str = SECONDS) -> IntervalSchedule:
        every = max(sched.run_every // timedelta(**{period: 1}), 1)
        found: IntervalSchedule | None = cls.objects.filter(every=every, period=period).first()
        return found or cls(every=every, period=period)

    @property
    def period_singular(self) -> str:
        return str(self.period)[:-1]

    def __str__(self) -> str:
        if self.every == 1:
            return f"every {dict(SINGULAR_PERIODS).get(self.period, self.period).lower()}"
        return f"every {self.every} {dict(PERIOD_CHOICES).get(self.period, self.period).lower()}"


class ClockedSchedule(models.Model):
    """Once, at a given time (the periodic task must be one-off)."""

    clocked_time = models.DateTimeField("clock time")

    class Meta:
        verbose_name = "clocked"
        verbose_name_plural = "clocked"
        ordering = ["clocked_time"]

    @property
    def schedule(self) -> BaseSchedule:
        return clocked_schedule(aware(self.clocked_time))

    @classmethod
    def from_schedule(cls, sched: clocked_schedule) -> ClockedSchedule:
        found: ClockedSchedule | None = cls.objects.filter(clocked_time=sched.slot).first()
        return found or cls(clocked_time=sched.slot)

    def __str__(self) -> str:
        return str(aware(self.clocked_time))


class CrontabSchedule(models.Model):
    """Cron fields, read as wall-clock times in ``timezone``."""

    minute = models.CharField(
        "minute(s)", max_length=240, default="*", validators=[CronFieldValidator("minute")]
    )
    hour = models.CharField(
        "hour(s)", max_length=96, default="*", validators=[CronFieldValidator("hour")]
    )
    day_of_month = models.CharField(
        "day(s) of the month",
        max_length=124,
        default="*",
        validators=[CronFieldValidator("day_of_month")],
    )
    month_of_year = models.CharField(
        "month(s) of the year",
        max_length=64,
        default="*",
        validators=[CronFieldValidator("month_of_year")],
    )
    day_of_week = models.CharField(
        "day(s) of the week",
        max_length=64,
        default="*",
        validators=[CronFieldValidator("day_of_week")],
        help_text="Sunday is 0 (or 7), Monday 1; names work too (mon-fri).",
    )
    timezone = models.CharField(
        "time zone", max_length=63, default=default_timezone, validators=[validate_timezone]
    )

    class Meta:
        verbose_name = "crontab"
        verbose_name_plural = "crontabs"
        ordering = ["month_of_year", "day_of_month", "day_of_week", "hour", "minute", "timezone"]

    @property
    def schedule(self) -> BaseSchedule:
        return zoned_crontab(
            minute=self.minute,
            hour=self.hour,
            day_of_week=self.day_of_week,
            day_of_month=self.day_of_month,
            month_of_year=self.month_of_year,
            tz=self.timezone,
        )

    @property
    def human_readable(self) -> str:
        return str(self)

    @classmethod
    def from_schedule(cls, sched: crontab_schedule) -> CrontabSchedule:
        minute, hour, day_of_week, day_of_month, month_of_year = (
            _cron_text(v) for v in sched._orig
        )
        zone = sched.tz.key
        spec = dict(
            minute=minute,
            hour=hour,
            day_of_week=day_of_week,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            timezone=zone,
        )
        found: CrontabSchedule | None = cls.objects.filter(**spec).first()
        return found or cls(**spec)

    def __str__(self) -> str:
        fields = (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)
        return f"{' '.join(f or '*' for f in fields)} (m/h/dM/MY/d) {self.timezone}"


def _cron_text(value: Any) -> str:
    if isinstance(value, int | str):
        return str(value)
    return ",".join(str(v) for v in sorted(value))


class PeriodicTasks(models.Model):
    """One row (``ident=1``) whose ``last_update`` moves whenever the schedule changes."""

    ident = models.SmallIntegerField(default=1, primary_key=True, unique=True)
    last_update = models.DateTimeField()

    class Meta:
        verbose_name = "periodic task track"
        verbose_name_plural = "periodic task tracks"

    @classmethod
    def changed(cls, instance: Any, **kwargs: Any) -> None:
        if not getattr(instance, "no_changes", False):
            cls.update_changed()

    @classmethod
    def update_changed(cls, **kwargs: Any) -> None:
        cls.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})

    @classmethod
    def last_change(cls) -> Any:
        row = cls.objects.filter(ident=1).first()
        return row.last_update if row is not None else None


class PeriodicTaskQuerySet(models.QuerySet["PeriodicTask"]):
    def enabled(self) -> PeriodicTaskQuerySet:
        found: PeriodicTaskQuerySet = self.filter(enabled=True).prefetch_related(*_SCHEDULE_FIELDS)
        return found


class PeriodicTask(models.Model):
    """A task or a workflow sent on a schedule."""

    name = models.CharField("name", max_length=200, unique=True)
    task = models.CharField(
        "task name",
        max_length=200,
        blank=True,
        help_text="A registered task, such as 'blog.tasks.publish'; for a workflow, its label.",
    )
    interval = models.ForeignKey(IntervalSchedule, on_delete=models.CASCADE, null=True, blank=True)
    crontab = models.ForeignKey(CrontabSchedule, on_delete=models.CASCADE, null=True, blank=True)
    solar = models.ForeignKey(SolarSchedule, on_delete=models.CASCADE, null=True, blank=True)
    clocked = models.ForeignKey(ClockedSchedule, on_delete=models.CASCADE, null=True, blank=True)
    args = models.TextField(
        "positional arguments",
        blank=True,
        default="[]",
        validators=[validate_json_list],
        help_text='A JSON list, such as ["arg1", 2].',
    )
    kwargs = models.TextField(
        "keyword arguments",
        blank=True,
        default="{}",
        validators=[validate_json_object],
        help_text='A JSON object, such as {"argument": "value"}.',
    )
    queue = models.CharField(
        "queue", max_length=200, blank=True, null=True, default=None, help_text="Empty: routed."
    )
    exchange = models.CharField("exchange", max_length=200, blank=True, null=True, default=None)
    routing_key = models.CharField(
        "routing key", max_length=200, blank=True, null=True, default=None
    )
    headers = models.TextField(
        "message headers", blank=True, default="{}", validators=[validate_json_object]
    )
    priority = models.PositiveIntegerField(
        "priority", default=None, validators=[MaxValueValidator(255)], blank=True, null=True
    )
    expires = models.DateTimeField(
        "expires", blank=True, null=True, help_text="No run is sent after this time."
    )
    expire_seconds = models.PositiveIntegerField(
        "expires after (seconds)",
        blank=True,
        null=True,
        help_text="Each run is revoked if it has not started this long after it was sent.",
    )
    one_off = models.BooleanField("one-off", default=False, help_text="Run once, then disable.")
    start_time = models.DateTimeField(
        "start time", blank=True, null=True, help_text="No run is sent before this time."
    )
    enabled = models.BooleanField("enabled", default=True)
    last_run_at = models.DateTimeField("last run", editable=False, blank=True, null=True)
    total_run_count = models.PositiveIntegerField("total runs", default=0, editable=False)
    date_changed = models.DateTimeField("last modified", auto_now=True)
    description = models.TextField("description", blank=True)
    workflow = models.JSONField(
        "workflow",
        blank=True,
        null=True,
        help_text="A whole workflow instead of one task: a signature's to_dict(), as JSON.",
    )

    objects = PeriodicTaskQuerySet.as_manager()
    #: set by code that saves without wanting a running beat to reload (as django-celery-beat)
    no_changes = False

    class Meta:
        verbose_name = "periodic task"
        verbose_name_plural = "periodic tasks"

    @property
    def scheduler(self) -> models.Model | None:
        """The schedule row: the interval, crontab, solar or clocked one that is set."""
        for field in _SCHEDULE_FIELDS:
            row: models.Model | None = getattr(self, field)
            if row is not None:
                return row
        return None

    @property
    def schedule(self) -> BaseSchedule:
        row = self.scheduler
        if row is None:
            raise ValidationError(f"Periodic task {self.name!r} has no schedule.")
        sched: BaseSchedule = row.schedule
        return sched

    @property
    def expires_(self) -> Any:
        return self.expires or self.expire_seconds

    def validate_schedule(self) -> None:
        """Exactly one schedule; a clocked one is one-off; one kind of expiry."""
        chosen = [field for field in _SCHEDULE_FIELDS if getattr(self, f"{field}_id", None)]
        if not chosen:
            raise ValidationError("Set one schedule: interval, crontab, solar or clocked.")
        if len(chosen) > 1:
            message = f"Set only one schedule, not {' and '.join(chosen)}."
            raise ValidationError({field: [message] for field in chosen})
        if self.clocked_id and not self.one_off:
            raise ValidationError({"one_off": ["A clocked schedule runs once: tick one-off."]})
        if self.expires and self.expire_seconds is not None:
            raise ValidationError("Set expires or expire_seconds, not both.")

    def clean(self) -> None:
        super().clean()
        self.validate_schedule()
        if not self.task and not self.workflow:
            raise ValidationError({"task": ["Name a task, or give a workflow."]})

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.exchange = self.exchange or None
        self.routing_key = self.routing_key or None
        self.queue = self.queue or None
        self.headers = self.headers or "{}"
        if not self.enabled:
            self.last_run_at = None
        self.validate_schedule()
        for field, check in (
            ("args", validate_json_list),
            ("kwargs", validate_json_object),
            ("headers", validate_json_object),
        ):
            try:
                check(getattr(self, field))
            except ValidationError as exc:
                raise ValidationError({field: exc.messages}) from None
        super().save(*args, **kwargs)
        PeriodicTasks.changed(self)

    def __str__(self) -> str:
        row = self.scheduler
        return f"{self.name}: {row if row is not None else '{no schedule}'}"


def aware(when: Any) -> Any:
    """A datetime from the database as an aware one (naive ones are in Django's zone)."""
    if when is not None and timezone.is_naive(when):
        return timezone.make_aware(when, timezone.get_default_timezone())
    return when


def _changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    PeriodicTasks.changed(instance)


def _schedule_changed(sender: Any, **kwargs: Any) -> None:
    PeriodicTasks.update_changed()


def track_changes() -> None:
    """Move ``PeriodicTasks.last_update`` on deletes, and on any schedule's save or delete."""
    signals.post_delete.connect(_changed, sender=PeriodicTask, dispatch_uid="canvas-pt-delete")
    for model in (IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
        for signal in (signals.post_save, signals.post_delete):
            signal.connect(
                _schedule_changed, sender=model, dispatch_uid=f"canvas-{model.__name__}-{signal}"
            )
