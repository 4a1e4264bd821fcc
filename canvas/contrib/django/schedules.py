"""The schedules behind the app's schedule models: crontab in its own zone, solar, clocked.

Each is a ``canvas.schedules.BaseSchedule``: beat asks ``next_after(t)`` and ``latest(t)`` and
gets aware UTC datetimes, so two beats agree on every slot.

* ``zoned_crontab(..., tz="Europe/Paris")`` – a crontab whose fields are wall-clock times in
  ``tz`` rather than ``app.conf.timezone`` (``CrontabSchedule.timezone``).
* ``solar(event, lat, lon)`` – at a solar event at a place (``SolarSchedule``): dawn and dusk
  (astronomical, nautical, civil), sunrise, sunset, solar noon. Computed with NOAA's solar
  position equations, good to about a minute away from the poles; a day without the event
  (polar day or night) has no slot. Longitude counts east, as in Celery.
* ``clocked(when)`` – one slot, at ``when`` (``ClockedSchedule``).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from canvas.schedules import BaseSchedule, crontab, get_timezone

__all__ = ["NEVER", "SOLAR_EVENTS", "clocked", "solar", "zoned_crontab"]

#: the slot after a clocked schedule's only one: never
NEVER = datetime(9999, 12, 31, tzinfo=UTC)

#: event -> (sun's zenith angle in degrees, rising?); None: solar noon
SOLAR_EVENTS: dict[str, tuple[float, bool] | None] = {
    "dawn_astronomical": (108.0, True),
    "dawn_nautical": (102.0, True),
    "dawn_civil": (96.0, True),
    "sunrise": (90.833, True),  # the upper limb, with the usual refraction
    "solar_noon": None,
    "sunset": (90.833, False),
    "dusk_civil": (96.0, False),
    "dusk_nautical": (102.0, False),
    "dusk_astronomical": (108.0, False),
}
#: how far to look for a day with the event: at the poles some happen once a year
_SEARCH_DAYS = 370


class zoned_crontab(crontab):  # lowercase: as the schedules it extends
    """A crontab whose wall-clock fields are read in ``tz``."""

    def __init__(self, *args: Any, tz: str = "UTC", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = get_timezone(str(tz))

    @property
    def tz(self) -> Any:
        return self.zone

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} {self.zone.key}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, zoned_crontab)
            and self._key() == other._key()
            and other.zone == self.zone
        )

    def __hash__(self) -> int:
        return hash((self._key(), self.zone.key))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_zoned, (self._orig, self.zone.key))


def _zoned(fields: tuple[Any, ...], tz: str) -> zoned_crontab:
    return zoned_crontab(*fields, tz=tz)


class solar(BaseSchedule):  # lowercase: Celery's name
    """At ``event`` at latitude ``lat`` and longitude ``lon`` (degrees, north and east)."""

    def __init__(self, event: str, lat: float, lon: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if event not in SOLAR_EVENTS:
            raise ValueError(f"solar event {event!r} is not one of {', '.join(SOLAR_EVENTS)}")
        if not -90 <= float(lat) <= 90:
            raise ValueError(f"solar latitude {lat!r} must be between -90 and 90")
        if not -180 <= float(lon) <= 180:
            raise ValueError(f"solar longitude {lon!r} must be between -180 and 180")
        self.event, self.lat, self.lon = event, float(lat), float(lon)

    def on(self, day: date) -> datetime | None:
        """The event's instant for the UTC date ``day``; None when the sun does not do it."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        minutes = 720.0
        for _ in range(2):  # once at noon, once more at the first answer: ~seconds apart
            found = _event_minutes(self.event, self.lat, self.lon, day, minutes)
            if found is None:
                return None
            minutes = found
        return midnight + timedelta(minutes=minutes)

    def next_after(self, t: datetime) -> datetime:
        t = t.astimezone(UTC)
        for offset in range(-1, _SEARCH_DAYS):
            instant = self.on(t.date() + timedelta(days=offset))
            if instant is not None and instant > t:
                return instant
        return NEVER

    def latest(self, t: datetime) -> datetime:
        t = t.astimezone(UTC)
        for offset in range(1, -_SEARCH_DAYS, -1):
            instant = self.on(t.date() + timedelta(days=offset))
            if instant is not None and instant <= t:
                return instant
        return datetime(1970, 1, 1, tzinfo=UTC)

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude {self.lon}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, solar) and (other.event, other.lat, other.lon) == (
            self.event,
            self.lat,
            self.lon,
        )

    def __hash__(self) -> int:
        return hash((self.event, self.lat, self.lon))


def _event_minutes(event: str, lat: float, lon: float, day: date, at: float) -> float | None:
    """Minutes after 00:00 UTC of ``day`` when ``event`` happens (NOAA's equations)."""
    year_days = 366 if date(day.year, 12, 31).timetuple().tm_yday == 366 else 365
    gamma = 2 * math.pi / year_days * (day.timetuple().tm_yday - 1 + (at / 60 - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    noon = 720 - 4 * lon - eqtime
    how = SOLAR_EVENTS[event]
    if how is None:
        return noon
    zenith, rising = how
    phi = math.radians(lat)
    cos_hour = math.cos(math.radians(zenith)) / (math.cos(phi) * math.cos(decl)) - math.tan(
        phi
    ) * math.tan(decl)
    if not -1 <= cos_hour <= 1:
        return None  # the sun stays above (or below) that angle all day
    hour_angle = math.degrees(math.acos(cos_hour))
    return noon - 4 * hour_angle if rising else noon + 4 * hour_angle


class clocked(BaseSchedule):  # lowercase: Celery's name
    """One slot, at ``clocked_time`` (naive times are read in the app's zone)."""

    def __init__(self, clocked_time: datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clocked_time = clocked_time

    @property
    def slot(self) -> datetime:
        return self.maybe_make_aware(self.clocked_time).astimezone(UTC)

    def next_after(self, t: datetime) -> datetime:
        return self.slot if t < self.slot else NEVER

    def latest(self, t: datetime) -> datetime:
        return self.slot if t >= self.slot else datetime(1970, 1, 1, tzinfo=UTC)

    def __repr__(self) -> str:
        return f"<clocked: {self.slot.isoformat()}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, clocked) and other.slot == self.slot

    def __hash__(self) -> int:
        return hash(self.slot)
