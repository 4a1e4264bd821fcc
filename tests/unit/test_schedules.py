"""Table tests of ``canvas.schedules``: crontab parsing, slots, intervals and Celery's API.

Slot maths is checked across month ends, leap days and DST in Europe/London and America/New_York,
and against a minute-by-minute brute force of the documented rule around each DST change.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from canvas import Canvas
from canvas.exceptions import ImproperlyConfigured
from canvas.schedules import (
    ParseException,
    crontab,
    crontab_parser,
    maybe_schedule,
    schedstate,
    schedule,
)

LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def make_app(timezone: str = "UTC") -> Canvas:
    return Canvas("schedules-test", timezone=timezone, set_as_current=False)


def cron(tz: str = "UTC", **fields) -> crontab:
    return crontab(**fields, app=make_app(tz))


def local(tz: str, text: str, fold: int = 0) -> datetime:
    """An aware datetime from a wall-clock ``YYYY-MM-DD HH:MM[:SS]`` in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz), fold=fold)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("max_", "min_", "names", "spec", "expected"),
    [
        (60, 0, None, "*", set(range(60))),
        (60, 0, None, "*/15", {0, 15, 30, 45}),
        (60, 0, None, "5", {5}),
        (60, 0, None, "1-5", {1, 2, 3, 4, 5}),
        (60, 0, None, "1-10/3", {1, 4, 7, 10}),
        (60, 0, None, "50/5", {50, 55}),
        (60, 0, None, "1,2, 30", {1, 2, 30}),
        (60, 0, None, "0-4,*/20", {0, 1, 2, 3, 4, 20, 40}),
        (24, 0, None, "22-2", {22, 23, 0, 1, 2}),
        (32, 1, None, "*/10", {1, 11, 21, 31}),
    ],
)
def test_crontab_parser(max_, min_, names, spec, expected):
    # Given a field parser with Celery's bounds
    parser = crontab_parser(max_, min_, names)
    # When a pattern is parsed
    # Then it expands to exactly these values
    assert parser.parse(spec) == expected


@pytest.mark.parametrize(
    ("field", "spec", "expected"),
    [
        ("day_of_week", "mon-fri", {1, 2, 3, 4, 5}),
        ("day_of_week", "sun", {0}),
        ("day_of_week", "saturday,sunday", {6, 0}),
        ("day_of_week", "fri-mon", {5, 6, 0, 1}),
        ("day_of_week", "7", {0}),
        ("day_of_week", "5-7", {5, 6, 0}),
        ("day_of_week", "0-7", set(range(7))),
        ("day_of_week", 1, {1}),
        ("day_of_week", {"mon", 3}, {1, 3}),
        ("month_of_year", "jan-mar", {1, 2, 3}),
        ("month_of_year", "*/3", {1, 4, 7, 10}),
        ("minute", {0, 30}, {0, 30}),
        ("minute", [5, "10-12"], {5, 10, 11, 12}),
        ("hour", 7, {7}),
        ("day_of_month", "1,15,31", {1, 15, 31}),
    ],
)
def test_crontab_fields(field, spec, expected):
    # Given one field written in any of Celery's forms
    # When a crontab is built from it
    schedule_ = crontab(**{field: spec})
    # Then the field holds these numbers
    assert getattr(schedule_, field) == expected


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"minute": 60}, ParseException, "out of range 0-59"),
        ({"hour": "24"}, ParseException, "out of range 0-23"),
        ({"day_of_month": 0}, ParseException, "out of range 1-31"),
        ({"month_of_year": 13}, ParseException, "out of range 1-12"),
        ({"day_of_week": "funday"}, ParseException, "invalid value"),
        ({"minute": "*/0"}, ParseException, "step 0"),
        ({"minute": "1-2-3"}, ParseException, "invalid value"),
        ({"minute": 1.5}, TypeError, "expected an int"),
        ({"minute": True}, TypeError, "expected an int"),
        ({"day_of_month": 31, "month_of_year": "feb,apr"}, ValueError, "never run"),
        ({"day_of_month": 30, "month_of_year": 2}, ValueError, "never run"),
    ],
)
def test_crontab_rejects(fields, error, message):
    # Given a field that cannot be right
    # When a crontab is built from it
    # Then the error names the problem
    with pytest.raises(error, match=message):
        crontab(**fields)


def test_crontab_from_string_repr_and_equality():
    # Given the same schedule written as a cron line and as arguments
    line = crontab.from_string("*/15 9-17 * * mon-fri")
    args = crontab(minute="*/15", hour="9-17", day_of_week="mon-fri")
    # Then they are equal, hash alike, and the repr shows Celery's field order
    assert line == args and hash(line) == hash(args)
    assert repr(args) == "<crontab: */15 9-17 * * mon-fri (m/h/dM/MY/d)>"
    assert crontab(minute=0) != crontab(minute=1)
    with pytest.raises(ParseException, match="5 fields"):
        crontab.from_string("* * *")


# -- slots: month ends, leap days, weekdays (UTC) ----------------------------------------------
@pytest.mark.parametrize(
    ("fields", "after", "expected"),
    [
        # every 15 minutes, across an hour, a day and a year boundary
        ({"minute": "*/15"}, "2024-01-01 10:07", "2024-01-01 10:15"),
        ({"minute": "*/15"}, "2024-01-01 10:15", "2024-01-01 10:30"),
        ({"minute": "*/15"}, "2024-12-31 23:50", "2025-01-01 00:00"),
        # seconds after a slot still count as that slot
        ({"minute": 30, "hour": 7}, "2024-05-01 07:30:59", "2024-05-02 07:30"),
        # the 31st skips months without one
        ({"minute": 0, "hour": 0, "day_of_month": 31}, "2024-04-15 00:00", "2024-05-31 00:00"),
        ({"minute": 0, "hour": 0, "day_of_month": 31}, "2024-05-31 00:00", "2024-07-31 00:00"),
        # the 30th skips February
        ({"minute": 0, "hour": 0, "day_of_month": 30}, "2024-01-30 12:00", "2024-03-30 00:00"),
        # the last days of February in leap and common years
        ({"minute": 0, "hour": 0, "day_of_month": "28-31"}, "2023-02-28 00:00", "2023-03-28 00:00"),
        ({"minute": 0, "hour": 0, "day_of_month": "29-31"}, "2024-01-31 00:00", "2024-02-29 00:00"),
        # leap days only: next leap year, and 2100 is not one
        ({"minute": 0, "hour": 0, "day_of_month": 29, "month_of_year": 2}, "2023-03-01 00:00",
         "2024-02-29 00:00"),
        ({"minute": 0, "hour": 0, "day_of_month": 29, "month_of_year": 2}, "2024-02-29 00:00",
         "2028-02-29 00:00"),
        ({"minute": 0, "hour": 0, "day_of_month": 29, "month_of_year": 2}, "2096-02-29 00:00",
         "2104-02-29 00:00"),
        # Monday mornings (2024-05-06 is a Monday)
        ({"minute": 30, "hour": 7, "day_of_week": 1}, "2024-05-01 00:00", "2024-05-06 07:30"),
        # weekdays: Friday evening -> Monday
        ({"minute": 0, "hour": 9, "day_of_week": "mon-fri"}, "2024-05-03 18:00",
         "2024-05-06 09:00"),
        # Celery ANDs day_of_month and day_of_week: the next Friday the 13th
        ({"minute": 0, "hour": 0, "day_of_month": 13, "day_of_week": "fri"}, "2024-01-01 00:00",
         "2024-09-13 00:00"),
        # quarterly, first day
        ({"minute": 0, "hour": 0, "day_of_month": 1, "month_of_year": "*/3"}, "2024-10-01 00:00",
         "2025-01-01 00:00"),
    ],
)  # fmt: skip
def test_next_and_latest_in_utc(fields, after, expected):
    # Given a crontab in UTC
    schedule_ = cron(**fields)
    # When asked for the first slot after a time
    slot = schedule_.next_after(utc(after))
    # Then it is the expected one, and it is the latest slot at its own time
    assert slot == utc(expected)
    assert schedule_.latest(slot) == slot
    assert schedule_.latest(slot - timedelta(microseconds=1)) < slot


# -- slots across DST, in two zones ------------------------------------------------------------
# London: 2024-03-31 01:00 GMT -> 02:00 BST (01:xx never happens);
#         2024-10-27 02:00 BST -> 01:00 GMT (01:xx happens twice).
# New York: 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST.
@pytest.mark.parametrize(
    ("tz", "fields", "after", "expected"),
    [
        # a daily slot in the skipped hour fires once, when the clocks jump, then as usual
        (NEW_YORK, {"minute": 30, "hour": 2}, "2024-03-09 03:00",
         ["2024-03-10 07:00Z", "2024-03-11 06:30Z", "2024-03-12 06:30Z"]),
        (LONDON, {"minute": 30, "hour": 1}, "2024-03-30 02:00",
         ["2024-03-31 01:00Z", "2024-04-01 00:30Z", "2024-04-02 00:30Z"]),
        # a daily slot in the repeated hour fires on its first pass only
        (NEW_YORK, {"minute": 30, "hour": 1}, "2024-11-02 02:00",
         ["2024-11-03 05:30Z", "2024-11-04 06:30Z", "2024-11-05 06:30Z"]),
        (LONDON, {"minute": 30, "hour": 1}, "2024-10-26 02:00",
         ["2024-10-27 00:30Z", "2024-10-28 01:30Z"]),
        # hourly on the hour: 02:00 does not exist, so 03:00 comes next, once
        (NEW_YORK, {"minute": 0}, "2024-03-10 00:30",
         ["2024-03-10 06:00Z", "2024-03-10 07:00Z", "2024-03-10 08:00Z"]),
        # hourly at half past: the 02:30 slot fires at the jump, 03:30 an half hour later
        (NEW_YORK, {"minute": 30}, "2024-03-10 01:00",
         ["2024-03-10 06:30Z", "2024-03-10 07:00Z", "2024-03-10 07:30Z"]),
        # hourly across the repeated hour: 01:00 fires once, 02:00 two real hours later
        (NEW_YORK, {"minute": 0}, "2024-11-03 00:30",
         ["2024-11-03 05:00Z", "2024-11-03 07:00Z", "2024-11-03 08:00Z"]),
        (LONDON, {"minute": 0}, "2024-10-27 00:30",
         ["2024-10-27 00:00Z", "2024-10-27 02:00Z", "2024-10-27 03:00Z"]),
        # every 15 minutes across the skipped hour: the hour's four slots fire once, at 03:00
        (NEW_YORK, {"minute": "*/15"}, "2024-03-10 01:40",
         ["2024-03-10 06:45Z", "2024-03-10 07:00Z", "2024-03-10 07:15Z"]),
        # weekly on Sunday at 01:30 in London, on the day the clocks go back and the week after
        (LONDON, {"minute": 30, "hour": 1, "day_of_week": "sun"}, "2024-10-20 12:00",
         ["2024-10-27 00:30Z", "2024-11-03 01:30Z"]),
        # monthly at midnight, across both transitions (the offset changes, midnight does not)
        (NEW_YORK, {"minute": 0, "hour": 0, "day_of_month": 1}, "2024-02-15 00:00",
         ["2024-03-01 05:00Z", "2024-04-01 04:00Z"]),
        (LONDON, {"minute": 0, "hour": 0, "day_of_month": 1}, "2024-09-15 00:00",
         ["2024-09-30 23:00Z", "2024-11-01 00:00Z"]),
    ],
)  # fmt: skip
def test_next_after_across_dst(tz, fields, after, expected):
    # Given a crontab computed in a zone with DST
    schedule_ = cron(tz, **fields)
    # When we walk its slots from a wall-clock time
    slots, t = [], local(tz, after)
    for _ in expected:
        t = schedule_.next_after(t)
        slots.append(t)
    # Then each wall-clock slot fires once, in order, at these instants
    assert slots == [datetime.fromisoformat(e) for e in expected]
    # And walking back from each slot finds that same slot
    assert [schedule_.latest(s) for s in slots] == slots


@pytest.mark.parametrize(
    ("tz", "fields", "at", "fold", "expected"),
    [
        # in the second pass of the repeated hour, its slots already fired on the first pass
        (NEW_YORK, {"minute": "*/15"}, "2024-11-03 01:10", 1, "2024-11-03 05:45Z"),
        (NEW_YORK, {"minute": "*/15"}, "2024-11-03 01:10", 0, "2024-11-03 05:00Z"),
        (LONDON, {"minute": 30, "hour": 1}, "2024-10-27 01:40", 1, "2024-10-27 00:30Z"),
        # just after the jump, the skipped hour's slots are the jump itself
        (NEW_YORK, {"minute": 30, "hour": 2}, "2024-03-10 03:10", 0, "2024-03-10 07:00Z"),
        (LONDON, {"minute": "*/15"}, "2024-03-31 02:05", 0, "2024-03-31 01:00Z"),
    ],
)  # fmt: skip
def test_latest_around_dst(tz, fields, at, fold, expected):
    # Given a time on either pass of a repeated hour, or just after a skipped one
    schedule_ = cron(tz, **fields)
    # When asked for the latest slot at or before it
    # Then it is the slot that already fired
    assert schedule_.latest(local(tz, at, fold)) == datetime.fromisoformat(expected)


def brute_force_slots(tz_name: str, schedule_: crontab, start: datetime, end: datetime):
    """Slots from the documented rule, minute by minute: every matching wall time fires at its
    first occurrence, or at the first instant whose wall clock is past it when it never occurs.

    Complete for slots between ``start`` and ``end`` minus three hours."""
    tz = ZoneInfo(tz_name)
    minutes = int((end - start) / timedelta(minutes=1))
    walls = [(u, u.astimezone(tz).replace(tzinfo=None)) for u in
             (start + timedelta(minutes=i) for i in range(minutes))]  # fmt: skip
    slots, i = set(), 0
    wall = walls[0][1]
    while wall <= (end - timedelta(hours=3)).astimezone(tz).replace(tzinfo=None):
        matches = (
            wall.minute in schedule_.minute
            and wall.hour in schedule_.hour
            and wall.day in schedule_.day_of_month
            and wall.month in schedule_.month_of_year
            and wall.isoweekday() % 7 in schedule_.day_of_week
        )
        while walls[i][1] < wall:  # the first instant whose wall clock reaches ``wall``
            i += 1
        if matches:
            slots.add(walls[i][0])
        wall += timedelta(minutes=1)
    return sorted(slots)


@pytest.mark.parametrize("tz", [LONDON, NEW_YORK])
@pytest.mark.parametrize("day", ["spring", "autumn"])
@pytest.mark.parametrize(
    "fields",
    [{"minute": "*/20"}, {"minute": 30}, {"minute": 0, "hour": "1-3"}, {"minute": 45, "hour": 1}],
)
def test_agrees_with_brute_force_around_dst(tz, day, fields):
    # Given a window of a day and a half around a DST change
    center = {
        (LONDON, "spring"): "2024-03-31 01:00",
        (LONDON, "autumn"): "2024-10-27 01:00",
        (NEW_YORK, "spring"): "2024-03-10 07:00",
        (NEW_YORK, "autumn"): "2024-11-03 06:00",
    }[tz, day]
    start = utc(center) - timedelta(hours=12)
    end = utc(center) + timedelta(hours=24)
    schedule_ = cron(tz, **fields)
    # (every schedule here fires at least daily, so a day either side holds the neighbours)
    expected = brute_force_slots(
        tz, schedule_, start - timedelta(hours=26), end + timedelta(hours=28)
    )
    # When next_after and latest are asked at odd moments through it
    t = start
    while t < end:
        # Then they name the neighbouring slots of the minute-by-minute rule
        i = bisect.bisect_right(expected, t)
        assert schedule_.next_after(t) == expected[i], t
        assert schedule_.latest(t) == expected[i - 1], t
        t += timedelta(minutes=7, seconds=13)


# -- intervals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("every", "at", "latest", "next_"),
    [
        (10, "2024-01-01 00:00:05", "2024-01-01 00:00:00", "2024-01-01 00:00:10"),
        (10, "2024-01-01 00:00:10", "2024-01-01 00:00:10", "2024-01-01 00:00:20"),
        (timedelta(hours=1), "2024-02-29 23:59:59", "2024-02-29 23:00:00", "2024-03-01 00:00:00"),
        (timedelta(days=1), "2024-03-10 12:00:00", "2024-03-10 00:00:00", "2024-03-11 00:00:00"),
        (0.25, "2024-01-01 00:00:00.300", "2024-01-01 00:00:00.250", "2024-01-01 00:00:00.500"),
        (7, "1970-01-01 00:00:15", "1970-01-01 00:00:14", "1970-01-01 00:00:21"),
    ],
)
def test_interval_slots_lie_on_a_grid(every, at, latest, next_):
    # Given an interval schedule
    schedule_ = schedule(every)
    # When asked about a time
    # Then its slots sit on a grid counted from the epoch, the same for every process
    assert schedule_.latest(utc(at)) == utc(latest)
    assert schedule_.next_after(utc(at)) == utc(next_)


def test_interval_ignores_dst():
    # Given hourly runs in New York across the spring change
    schedule_ = schedule(timedelta(hours=1), app=make_app(NEW_YORK))
    t = local(NEW_YORK, "2024-03-10 00:30")
    # When walking its slots
    slots = []
    for _ in range(4):
        t = schedule_.next_after(t)
        slots.append(t)
    # Then they are one real hour apart
    assert [b - a for a, b in zip(slots, slots[1:], strict=False)] == [timedelta(hours=1)] * 3


@pytest.mark.parametrize(("every", "error"), [(0, ValueError), (-1, ValueError), (None, TypeError)])
def test_interval_rejects_bad_intervals(every, error):
    with pytest.raises(error, match="run_every"):
        schedule(every)


def test_interval_equality_and_repr():
    assert schedule(10) == schedule(timedelta(seconds=10)) == schedule(10.0)
    assert repr(schedule(10)) == "<freq: 10.00 seconds>"
    assert repr(schedule(timedelta(hours=2))) == "<freq: 2.00 hours>"


# -- Celery's is_due / remaining_estimate, with a fixed clock -----------------------------------
@pytest.mark.parametrize(
    ("now", "last_run_at", "expected"),
    [
        # not yet: 4 seconds to go
        ("2024-01-01 10:00:06", "2024-01-01 10:00:00", schedstate(False, 4.0)),
        # due: next check in a whole interval
        ("2024-01-01 10:00:10", "2024-01-01 10:00:00", schedstate(True, 10.0)),
        ("2024-01-01 11:00:00", "2024-01-01 10:00:00", schedstate(True, 10.0)),
    ],
)
def test_interval_is_due(now, last_run_at, expected):
    # Given an interval schedule with a fixed clock
    schedule_ = schedule(10, nowfun=lambda: utc(now))
    # When asked whether it is due given the last run
    # Then it answers as Celery does
    assert schedule_.is_due(utc(last_run_at)) == expected
    assert schedule_.remaining_estimate(utc(last_run_at)) == utc(last_run_at) + timedelta(
        seconds=10
    ) - utc(now)


def test_interval_relative_rounds_down_to_the_unit():
    # Given a relative hourly schedule last run at 10:25
    schedule_ = schedule(timedelta(hours=1), relative=True, nowfun=lambda: utc("2024-01-01 11:10"))
    # When asked what remains
    # Then the next run is rounded down to 11:00, so it is due
    assert schedule_.remaining_estimate(utc("2024-01-01 10:25")) == timedelta(minutes=-10)
    assert schedule_.is_due(utc("2024-01-01 10:25")).is_due


@pytest.mark.parametrize(
    ("tz", "now", "last_run_at", "expected"),
    [
        # the 07:30 slot after a run at 07:29 is due; the next check is tomorrow's
        ("UTC", "2024-05-01 07:30:10", "2024-05-01 07:29", schedstate(True, 86400 - 10.0)),
        # already ran at 07:30: not due until tomorrow
        ("UTC", "2024-05-01 07:30:10", "2024-05-01 07:30", schedstate(False, 86400 - 10.0)),
        # in New York, 07:30 local is 11:30 UTC in May
        (NEW_YORK, "2024-05-01 07:00", "2024-04-30 08:00", schedstate(False, 1800.0)),
    ],
)
def test_crontab_is_due(tz, now, last_run_at, expected):
    # Given a daily 07:30 crontab with a fixed clock in a zone
    schedule_ = crontab(minute=30, hour=7, app=make_app(tz), nowfun=lambda: local(tz, now))
    # When asked whether it is due after a run given as a naive (local) time
    state = schedule_.is_due(datetime.fromisoformat(last_run_at))
    # Then it answers as Celery does
    assert state == expected


def test_timezone_from_app_and_bad_names():
    assert cron(LONDON).tz == ZoneInfo(LONDON)
    assert crontab().tz == ZoneInfo("UTC")
    with pytest.raises(ImproperlyConfigured, match="Did you mean 'Europe/London'"):
        _ = cron("Europe/Londn").tz


# -- maybe_schedule ----------------------------------------------------------------------------
def test_maybe_schedule_normalises():
    app = make_app(LONDON)
    # Given the forms users write
    # Then numbers and timedeltas become intervals, schedules pass through with the app attached
    assert maybe_schedule(10) == schedule(10)
    assert maybe_schedule(timedelta(minutes=1)) == schedule(60)
    c = crontab(minute=0)
    assert maybe_schedule(c, app) is c and c.app is app

    class Foreign:
        app = None

        def is_due(self, last_run_at):
            return schedstate(False, 5.0)

    foreign = Foreign()
    assert maybe_schedule(foreign, app) is foreign
    with pytest.raises(TypeError, match="seconds, a timedelta or a crontab"):
        maybe_schedule("every minute")
    with pytest.raises(TypeError):
        maybe_schedule(True)
