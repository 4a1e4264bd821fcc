"""Schedules for beat: ``schedule`` (a fixed interval) and ``crontab`` (wall-clock times).

The Celery API is kept: ``is_due(last_run_at)`` returns ``schedstate(is_due, next)`` where
``next`` is how many seconds to wait before asking again, ``remaining_estimate(last_run_at)`` the
time left until the next run, and ``nowfun=`` fixes the clock in tests.

Beat itself uses two pure methods that take the time as an argument and return aware UTC
datetimes, the *slots* of the schedule: ``next_after(t)`` (the first slot later than ``t``) and
``latest(t)`` (the last slot at or before ``t``). Every beat process computes the same slots from
the same clock, which is what lets two of them agree that a slot was already fired.

Time zones: crontab fields are wall-clock times in ``app.conf.timezone``, resolved with
``zoneinfo``; unset, as in Celery, that is UTC, or the machine's own zone with ``enable_utc=False``.
When the clocks go back, a wall time that happens twice fires at its first occurrence only; when
they go forward, a wall time that never happens fires once, at the moment of the jump. So each
wall-clock slot fires exactly once. Work that must run by elapsed time (every 15 minutes, whatever
the clocks say) is better written as ``schedule(900)``, whose slots sit on a fixed grid counted from
the Unix epoch.

As in Celery, ``day_of_month`` and ``day_of_week`` must *both* match (cron ORs them), and days of
the week count from Sunday = 0 (7 is Sunday too).
"""

from __future__ import annotations

import bisect
import calendar
import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from canvas import sun
from canvas.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from canvas.app import Canvas

__all__ = [
    "BaseSchedule",
    "ParseException",
    "crontab",
    "crontab_parser",
    "maybe_schedule",
    "schedstate",
    "schedule",
    "solar",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the next slot of a schedule that has none to come (a clocked one that ran, a solar event
#: that does not happen at the place): beat asks again at its next tick, never fires it
NEVER = datetime(9999, 12, 31, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
#: The Gregorian calendar repeats every 400 years (146,097 days): a search that finds no match
#: in that span never will.
_MAX_DAYS = 146_097


class schedstate(NamedTuple):
    """What ``is_due`` answers: whether to run now, and seconds until it is worth asking again."""

    is_due: bool
    next: float


def get_timezone(name: str) -> ZoneInfo:
    """The zone for ``app.conf.timezone``, or an error that suggests the closest known name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, available_timezones(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ImproperlyConfigured(
            f"timezone = {name!r} is not a known IANA time zone.{hint} "
            "Use a name such as 'UTC', 'Europe/London' or 'America/New_York'."
        ) from None


def app_timezone(conf: Mapping[str, Any]) -> ZoneInfo:
    """The app's zone as Celery picks it: ``timezone`` when set; else UTC, or with
    ``enable_utc=False`` the machine's own zone."""
    name = conf.get("timezone")
    if name:
        return get_timezone(str(name))
    return ZoneInfo("UTC") if conf.get("enable_utc", True) else local_timezone()


def local_timezone() -> ZoneInfo:
    """The machine's zone: ``TZ`` when it names one, else ``/etc/localtime`` (else UTC)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a POSIX rule such as "EST5EDT,M3.2.0,M11.1.0": the system file says the same
    try:
        with open("/etc/localtime", "rb") as data:
            return ZoneInfo.from_file(data, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


class BaseSchedule:
    """What every schedule shares: the app it computes for, its time zone and its clock."""

    def __init__(
        self, nowfun: Callable[[], datetime] | None = None, app: Canvas | None = None
    ) -> None:
        self.nowfun = nowfun
        self.app = app

    @property
    def tz(self) -> ZoneInfo:
        return app_timezone(self.app.conf) if self.app is not None else ZoneInfo("UTC")

    def now(self) -> datetime:
        """The current time as an aware datetime (``nowfun`` wins, then the app, then UTC)."""
        if self.nowfun is not None:
            return self.maybe_make_aware(self.nowfun())
        if self.app is not None:
            return self.maybe_make_aware(self.app.now())
        return datetime.now(UTC)

    def maybe_make_aware(self, dt: datetime) -> datetime:
        """Naive datetimes are read as wall-clock times in the schedule's time zone."""
        return dt.replace(tzinfo=self.tz) if dt.tzinfo is None else dt

    def to_local(self, dt: datetime) -> datetime:
        return self.maybe_make_aware(dt).astimezone(self.tz)

    # -- the two methods beat uses --------------------------------------------------------------
    def next_after(self, t: datetime) -> datetime:
        """The first slot strictly later than ``t`` (aware, UTC)."""
        raise NotImplementedError(f"{type(self).__name__} must implement next_after()")

    def latest(self, t: datetime) -> datetime:
        """The last slot at or before ``t`` (aware, UTC)."""
        raise NotImplementedError(f"{type(self).__name__} must implement latest()")

    # -- Celery's API ---------------------------------------------------------------------------
    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """Time from now until the run that follows ``last_run_at`` (negative when overdue)."""
        return self.next_after(self.maybe_make_aware(last_run_at)) - self.now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        """Whether a run is due now, given the last one, and seconds until the next check."""
        remaining = max(self.remaining_estimate(last_run_at).total_seconds(), 0.0)
        if remaining > 0:
            return schedstate(False, remaining)
        now = self.now()
        return schedstate(True, max((self.next_after(now) - now).total_seconds(), 0.0))


def _as_utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got naive {t!r}")
    return t.astimezone(UTC)


class schedule(BaseSchedule):
    """Run every ``run_every`` (seconds or a timedelta).

    ``is_due`` counts from the last run, as in Celery. Beat's slots lie on a grid counted from the
    Unix epoch, so beats started at different moments agree on them and a restart does not drift.
    ``relative=True`` rounds the next run down to the interval's unit, as in Celery.
    """

    def __init__(
        self,
        run_every: float | timedelta | None = None,
        relative: bool = False,
        nowfun: Callable[[], datetime] | None = None,
        app: Canvas | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app)
        if run_every is None:
            raise TypeError("schedule(run_every=...) needs an interval: seconds or a timedelta")
        every = run_every if isinstance(run_every, timedelta) else timedelta(seconds=run_every)
        if every <= timedelta(0):
            raise ValueError(f"schedule(run_every={run_every!r}): the interval must be positive")
        self.run_every = every
        self.relative = relative
        self._period_us = every // timedelta(microseconds=1)
        if self._period_us == 0:
            raise ValueError(f"schedule(run_every={run_every!r}): the interval is under 1 µs")

    @property
    def seconds(self) -> float:
        return self.run_every.total_seconds()

    @property
    def human_seconds(self) -> str:
        seconds = self.seconds
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size:
                return f"{seconds / size:.2f} {unit}s"
        return f"{seconds:.2f} seconds"

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        due = self.maybe_make_aware(last_run_at) + self.run_every
        if self.relative:
            due = _round_down(due.astimezone(self.tz), self.run_every)
        return due - self.now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        remaining = max(self.remaining_estimate(last_run_at).total_seconds(), 0.0)
        if remaining == 0:
            return schedstate(True, self.seconds)
        return schedstate(False, remaining)

    def latest(self, t: datetime) -> datetime:
        elapsed_us = (_as_utc(t) - _EPOCH) // timedelta(microseconds=1)
        return _EPOCH + timedelta(microseconds=elapsed_us // self._period_us * self._period_us)

    def next_after(self, t: datetime) -> datetime:
        return self.latest(t) + self.run_every

    def __repr__(self) -> str:
        return f"<freq: {self.human_seconds}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, schedule) and other.run_every == self.run_every

    def __hash__(self) -> int:
        return hash(self.run_every)


def _round_down(dt: datetime, unit: timedelta) -> datetime:
    """Celery's ``relative`` rounding: down to the day, hour, minute or second of the interval."""
    if unit >= timedelta(days=1):
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit >= timedelta(hours=1):
        return dt.replace(minute=0, second=0, microsecond=0)
    if unit >= timedelta(minutes=1):
        return dt.replace(second=0, microsecond=0)
    return dt.replace(microsecond=0)


class ParseException(ValueError):
    """A crontab field that does not parse; the message names the field and the pattern."""


_WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_STEP = re.compile(r"^(?P<range>[^/]+)(?:/(?P<step>\d+))?$")


class crontab_parser:
    """Parse one crontab field: ``*``, ``*/15``, ``1-5``, ``1-5/2``, ``3/10``, ``mon-fri``, ``1,2``.

    ``max_`` is one past the largest value and ``min_`` the smallest, as in Celery:
    ``crontab_parser(60).parse('*/15')`` is ``{0, 15, 30, 45}``.
    """

    def __init__(self, max_: int = 60, min_: int = 0, names: dict[str, int] | None = None) -> None:
        self.max_ = max_
        self.min_ = min_
        self.names = names or {}

    def parse(self, spec: str) -> set[int]:
        values: set[int] = set()
        for part in spec.replace(" ", "").lower().split(","):
            match = _STEP.match(part)
            if not match:
                raise ParseException(f"invalid crontab pattern {spec!r}")
            first, last = self._range(match["range"], spec, stepped=match["step"] is not None)
            step = int(match["step"] or 1)
            if step == 0:
                raise ParseException(f"invalid step 0 in crontab pattern {spec!r}")
            if first > last:  # a range that wraps, like 'fri-mon' or '22-2'
                span = list(range(first, self.max_)) + list(range(self.min_, last + 1))
            else:
                span = list(range(first, last + 1))
            values.update(span[::step])
        return values

    def _range(self, text: str, spec: str, stepped: bool) -> tuple[int, int]:
        if text == "*":
            return self.min_, self.max_ - 1
        low, sep, high = text.partition("-")
        first = self._number(low, spec)
        if sep:
            return first, self._number(high, spec)
        # '3/10' means from 3 to the end in steps of 10; a lone '3' is just 3.
        return (first, self.max_ - 1) if stepped else (first, first)

    def _number(self, text: str, spec: str) -> int:
        if text.isdigit():
            value = int(text)
        elif text[:3] in self.names:
            value = self.names[text[:3]]
        else:
            raise ParseException(f"invalid value {text!r} in crontab pattern {spec!r}")
        if not self.min_ <= value < self.max_:
            raise ParseException(
                f"{value} is out of range {self.min_}-{self.max_ - 1} in crontab pattern {spec!r}"
            )
        return value


_FIELDS = {
    "minute": crontab_parser(60),
    "hour": crontab_parser(24),
    # 0-7 so that ranges ending at cron's second Sunday ('5-7') work; 7 becomes 0 afterwards.
    "day_of_week": crontab_parser(8, names=_WEEKDAYS),
    "day_of_month": crontab_parser(32, 1),
    "month_of_year": crontab_parser(13, 1, names=_MONTHS),
}

CronField = int | str | Iterable[int | str]


def _expand(field: str, spec: CronField) -> frozenset[int]:
    parser = _FIELDS[field]
    if isinstance(spec, bool):
        raise TypeError(f"crontab({field}={spec!r}): expected an int, a string or a set of ints")
    if isinstance(spec, int):
        items: Iterable[int | str] = [str(spec)]
    elif isinstance(spec, str):
        items = [spec]
    elif isinstance(spec, Iterable):
        items = [str(item) if isinstance(item, int) else item for item in spec]
    else:
        raise TypeError(
            f"crontab({field}={spec!r}): expected an int, a string or a set of ints, "
            f"got {type(spec).__name__}"
        )
    values: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"crontab({field}={spec!r}): {item!r} is not an int or a string")
        try:
            values |= parser.parse(item)
        except ParseException as exc:
            raise ParseException(f"crontab({field}={spec!r}): {exc}") from None
    if field == "day_of_week" and 7 in values:
        values = (values - {7}) | {0}
    if not values:
        raise ParseException(f"crontab({field}={spec!r}) matches nothing")
    return frozenset(values)


class crontab(BaseSchedule):
    """Run at wall-clock times that match every field, as cron does (see the module docstring).

    ``crontab()`` is every minute; ``crontab(minute=0, hour='*/3')`` every three hours;
    ``crontab(hour=7, minute=30, day_of_week='mon-fri')`` weekday mornings.
    """

    def __init__(
        self,
        minute: CronField = "*",
        hour: CronField = "*",
        day_of_week: CronField = "*",
        day_of_month: CronField = "*",
        month_of_year: CronField = "*",
        nowfun: Callable[[], datetime] | None = None,
        app: Canvas | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app)
        self._orig = (minute, hour, day_of_week, day_of_month, month_of_year)
        self.minute = _expand("minute", minute)
        self.hour = _expand("hour", hour)
        self.day_of_week = _expand("day_of_week", day_of_week)
        self.day_of_month = _expand("day_of_month", day_of_month)
        self.month_of_year = _expand("month_of_year", month_of_year)
        self._minutes = sorted(self.minute)
        self._hours = sorted(self.hour)
        if not any(
            day <= (29 if month == 2 else calendar.monthrange(2001, month)[1])
            for month in self.month_of_year
            for day in self.day_of_month
        ):
            raise ValueError(
                f"crontab(day_of_month={day_of_month!r}, month_of_year={month_of_year!r}) "
                "names no date that exists, so it would never run"
            )

    @classmethod
    def from_string(cls, text: str, **kwargs: Any) -> crontab:
        """From a cron line's five fields: ``'*/15 9-17 * * mon-fri'``."""
        fields = text.split()
        if len(fields) != 5:
            raise ParseException(
                f"crontab.from_string({text!r}): expected 5 fields "
                "(minute hour day_of_month month_of_year day_of_week)"
            )
        minute, hour, dom, month, dow = fields
        return cls(minute, hour, dow, dom, month, **kwargs)

    # -- wall-clock matching, in naive local time --------------------------------------------------
    def _day_matches(self, day: date) -> bool:
        return day.day in self.day_of_month and day.isoweekday() % 7 in self.day_of_week

    def _wall_from(self, start: datetime) -> datetime:
        """The first matching naive wall time at or after ``start`` (whole minutes)."""
        day, floor = start.date(), (start.hour, start.minute)
        for _ in range(_MAX_DAYS):
            if day.month not in self.month_of_year:
                day, floor = date(day.year + day.month // 12, day.month % 12 + 1, 1), (0, 0)
                continue
            if self._day_matches(day):
                for hour in self._hours[bisect.bisect_left(self._hours, floor[0]) :]:
                    low = floor[1] if hour == floor[0] else 0
                    i = bisect.bisect_left(self._minutes, low)
                    if i < len(self._minutes):
                        return datetime.combine(day, time(hour, self._minutes[i]))
            day, floor = day + timedelta(days=1), (0, 0)
        raise RuntimeError(f"{self!r} found no run after {start}")  # excluded by __init__

    def _wall_until(self, end: datetime) -> datetime:
        """The last matching naive wall time at or before ``end`` (whole minutes)."""
        day, ceil = end.date(), (end.hour, end.minute)
        for _ in range(_MAX_DAYS):
            if day.month not in self.month_of_year:
                day, ceil = day.replace(day=1) - timedelta(days=1), (23, 59)
                continue
            if self._day_matches(day):
                for hour in reversed(self._hours[: bisect.bisect_right(self._hours, ceil[0])]):
                    high = ceil[1] if hour == ceil[0] else 59
                    i = bisect.bisect_right(self._minutes, high)
                    if i:
                        return datetime.combine(day, time(hour, self._minutes[i - 1]))
            day, ceil = day - timedelta(days=1), (23, 59)
        raise RuntimeError(f"{self!r} found no run before {end}")  # excluded by __init__

    def _instant(self, wall: datetime, tz: ZoneInfo) -> datetime:
        """The UTC instant a wall-clock slot fires at; never decreases as ``wall`` grows."""
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if first <= second:  # an ordinary time, or the first of a time that happens twice
            return first
        # The clocks jumped over ``wall``: fire at the jump, the first instant after the gap.
        before = second.astimezone(tz).utcoffset()
        low, high = int(second.timestamp()), int(first.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, tz).utcoffset() == before:
                low = middle
            else:
                high = middle
        return datetime.fromtimestamp(high, UTC)

    def next_after(self, t: datetime) -> datetime:
        tz = self.tz
        t = _as_utc(t)
        wall = self._wall_from(t.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0))
        while (instant := self._instant(wall, tz)) <= t:
            wall = self._wall_from(wall + _MINUTE)
        return instant

    def latest(self, t: datetime) -> datetime:
        tz = self.tz
        t = _as_utc(t)
        local = t.astimezone(tz)
        end = local.replace(tzinfo=None, second=0, microsecond=0)
        if local.fold:
            # In the repeated hour the slots of that hour already fired on the first pass, so
            # the latest one may lie later on the wall clock than ``t`` does.
            first_offset = local.replace(fold=0).utcoffset()
            second_offset = local.utcoffset()
            assert first_offset is not None and second_offset is not None
            end += first_offset - second_offset
        wall = self._wall_until(end)
        while (instant := self._instant(wall, tz)) > t:
            wall = self._wall_until(wall - _MINUTE)
        return instant

    def __repr__(self) -> str:
        minute, hour, dow, dom, month = (_show(value) for value in self._orig)
        return f"<crontab: {minute} {hour} {dom} {month} {dow} (m/h/dM/MY/d)>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, crontab) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[frozenset[int], ...]:
        return (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year)

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self._orig)


def _show(value: CronField) -> str:
    if isinstance(value, int | str):
        return str(value)
    return ",".join(str(v) for v in sorted(value, key=str))


def maybe_schedule(
    value: float | timedelta | BaseSchedule | Any, app: Canvas | None = None
) -> BaseSchedule | Any:
    """A schedule from what users write: seconds, a timedelta, or a schedule object.

    Objects that are not ours but have Celery's ``is_due`` are passed through, so third-party
    schedules keep working. The app is attached when the schedule has none, as Celery does.
    """
    if isinstance(value, bool):
        raise TypeError(f"a schedule must be seconds, a timedelta or a crontab, not {value!r}")
    if isinstance(value, int | float | timedelta):
        return schedule(value, app=app)
    if isinstance(value, BaseSchedule) or callable(getattr(value, "is_due", None)):
        if app is not None and getattr(value, "app", None) is None:
            value.app = app
        return value
    raise TypeError(
        f"a schedule must be seconds, a timedelta or a crontab, got {type(value).__name__}: "
        f"{value!r}"
    )


class solar(BaseSchedule):
    """Run at a solar event at a place, as Celery's ``solar('sunset', lat, lon)``.

    Events: ``dawn_astronomical``, ``dawn_nautical``, ``dawn_civil``, ``sunrise``,
    ``solar_noon``, ``sunset``, ``dusk_civil``, ``dusk_nautical``, ``dusk_astronomical``; a day
    on which the event does not happen there (polar day or night) is skipped, as Celery checks
    again the next day; where it does not happen within two years (at a pole) the next slot is
    ``NEVER``, never an error. Times come from the sunrise equation (``canvas.sun``, within about
    a minute), not from Celery's ``ephem``. Latitude and longitude are degrees, north and east.
    """

    def __init__(
        self,
        event: str,
        lat: float,
        lon: float,
        nowfun: Callable[[], datetime] | None = None,
        app: Canvas | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app)
        if event not in sun.EVENTS:
            close = difflib.get_close_matches(event, sun.EVENTS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"solar event {event!r} is not known.{hint} Known: {', '.join(sun.EVENTS)}."
            )
        if not -90 <= float(lat) <= 90:
            raise ValueError(f"solar latitude {lat!r} is outside -90..90")
        if not -180 <= float(lon) <= 180:
            raise ValueError(f"solar longitude {lon!r} is outside -180..180")
        self.event, self.lat, self.lon = event, float(lat), float(lon)

    def _moments(self, first: date, step: int) -> Iterable[datetime]:
        for offset in range(0, 2 * 366 * step, step):
            moment = sun.event_time(self.event, first + timedelta(days=offset), self.lat, self.lon)
            if moment is not None:
                yield moment

    def next_after(self, t: datetime) -> datetime:
        start = _as_utc(t)
        for moment in self._moments(start.date() - timedelta(days=1), 1):
            if moment > start:
                return moment
        return NEVER

    def latest(self, t: datetime) -> datetime:
        start = _as_utc(t)
        for moment in self._moments(start.date() + timedelta(days=1), -1):
            if moment <= start:
                return moment
        return _EPOCH

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude: {self.lon}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, solar) and (other.event, other.lat, other.lon) == (
            self.event,
            self.lat,
            self.lon,
        )

    def __hash__(self) -> int:
        return hash((self.event, self.lat, self.lon))
