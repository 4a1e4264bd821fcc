"""The schedules behind the Django app's schedule models: solar, clocked, crontab in its own zone.

Pure functions of time (no Django, no database): slots are compared with published almanac
times, to the minute or two NOAA's equations promise.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from canvas import schedules
from canvas.contrib.django.schedules import NEVER, clocked, solar, zoned_crontab
from canvas.schedules import crontab


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def close_to(found: datetime, expected: datetime, minutes: float = 2) -> bool:
    return abs(found - expected) <= timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("event", "lat", "lon", "after", "expected"),
    [
        # Greenwich on the June solstice: sunrise 03:43, sunset 20:21, noon 12:01 (UTC)
        ("sunrise", 51.4769, 0.0, "2024-06-21T00:00", "2024-06-21T03:43"),
        ("sunset", 51.4769, 0.0, "2024-06-21T00:00", "2024-06-21T20:21"),
        ("solar_noon", 51.4769, 0.0, "2024-06-21T00:00", "2024-06-21T12:01"),
        # New York (west is negative) on 2024-03-20: sunrise 10:58 UTC, civil dusk 23:36 UTC
        # (ephem, which Celery's solar uses, says 10:58:31 and 23:36:03)
        ("sunrise", 40.7128, -74.006, "2024-03-20T00:00", "2024-03-20T10:58"),
        ("dusk_civil", 40.7128, -74.006, "2024-03-20T12:00", "2024-03-20T23:36"),
        # Sydney on 2024-12-21 (summer): sunrise 18:41 UTC the day before, local 05:41
        ("sunrise", -33.8688, 151.2093, "2024-12-20T12:00", "2024-12-20T18:41"),
    ],
)
def test_solar_events_match_the_almanac(event, lat, lon, after, expected):
    # Given a place and an event, when beat asks for the next slot, then it is the almanac's
    assert close_to(solar(event, lat, lon).next_after(at(after)), at(expected))


def test_solar_slots_are_a_day_apart_and_latest_is_consistent():
    sunrise = solar("sunrise", 48.8566, 2.3522)
    first = sunrise.next_after(at("2024-01-10T12:00"))
    second = sunrise.next_after(first)
    assert timedelta(hours=23, minutes=55) < second - first < timedelta(hours=24, minutes=5)
    assert sunrise.latest(second) == second
    assert sunrise.latest(second - timedelta(seconds=1)) == first
    assert sunrise.next_after(first - timedelta(seconds=1)) == first


def test_polar_night_has_no_sunrise_until_the_sun_returns():
    # Given Longyearbyen (78°N) in December, when asked for the next sunrise
    found = solar("sunrise", 78.2232, 15.6267).next_after(at("2024-12-01T00:00"))
    # Then it is the first one after the polar night, as Celery's (ephem: 2025-02-15 10:41;
    # the sunrise equation is within a day of it this close to the edge of the night)
    assert at("2025-02-14T10:41") < found < at("2025-02-16T10:41")
    # And the last one before the night: ephem says 2024-10-25 09:51
    last = solar("sunrise", 78.2232, 15.6267).latest(at("2024-12-01T00:00"))
    assert at("2024-10-24T09:51") < last < at("2024-10-26T12:00")


def test_the_models_solar_is_the_apps_own():
    # One implementation: a SolarSchedule row's schedule is canvas.schedules.solar
    assert solar is schedules.solar


def test_where_the_event_never_happens_there_is_no_slot_and_no_error():
    # Given the North Pole, where this day-by-day sunrise equation finds no sunrise at all
    pole = solar("sunrise", 90, 0)
    # Then, as Celery (which checks again each day), beat never fires it and never fails
    assert pole.next_after(at("2024-12-01T00:00")) == NEVER
    assert pole.latest(at("2024-12-01T00:00")) < at("1971-01-01T00:00")
    assert pole.is_due(at("2024-12-01T00:00")).is_due is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("moonrise", 0, 0), "is not known"),
        (("sunrise", 91, 0), "latitude"),
        (("sunrise", 0, -181), "longitude"),
    ],
)
def test_solar_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        solar(*args)


def test_clocked_has_one_slot():
    when = at("2030-01-02T03:04:05")
    once = clocked(when)
    assert once.next_after(when - timedelta(days=3)) == when
    assert once.next_after(when) == NEVER
    assert once.latest(when + timedelta(days=3)) == when
    assert once.latest(when - timedelta(seconds=1)) < when


def test_zoned_crontab_reads_its_fields_in_its_own_zone():
    # Given 09:00 in Tokyo and 09:00 in UTC
    tokyo = zoned_crontab(minute=0, hour=9, tz="Asia/Tokyo")
    utc = crontab(minute=0, hour=9)
    after = at("2024-05-01T12:00")
    # Then Tokyo's comes at 00:00 UTC, nine hours before UTC's
    assert tokyo.next_after(after) == at("2024-05-02T00:00")
    assert utc.next_after(after) - tokyo.next_after(after) == timedelta(hours=9)
    assert tokyo != crontab(minute=0, hour=9) and tokyo == zoned_crontab(0, 9, tz="Asia/Tokyo")
    assert pickle.loads(pickle.dumps(tokyo)) == tokyo
    assert "Asia/Tokyo" in repr(tokyo)


def test_zoned_crontab_names_a_misspelt_zone():
    with pytest.raises(Exception, match="Europe/Paris"):
        zoned_crontab(tz="Europe/Pariss")
