"""When the sun rises, sets or crosses a twilight line at a place: the maths under ``solar``.

The sunrise equation (the NOAA approximation, good to about a minute away from the poles): pure
functions of a date, a latitude and a longitude (east positive), giving aware UTC datetimes, or
``None`` on a day the event does not happen there (polar day or night).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

#: event -> (the sun's altitude in degrees, -1 before noon / 0 at noon / +1 after noon)
EVENTS: dict[str, tuple[float, int]] = {
    "dawn_astronomical": (-18.0, -1),
    "dawn_nautical": (-12.0, -1),
    "dawn_civil": (-6.0, -1),
    "sunrise": (-0.833, -1),
    "solar_noon": (0.0, 0),
    "sunset": (-0.833, 1),
    "dusk_civil": (-6.0, 1),
    "dusk_nautical": (-12.0, 1),
    "dusk_astronomical": (-18.0, 1),
}

_J2000 = 2451545.0
_J2000_DATE = date(2000, 1, 1)
_TILT = math.radians(23.4397)


def event_time(event: str, day: date, lat: float, lon: float) -> datetime | None:
    """The moment of ``event`` on ``day`` (UTC) at ``lat``/``lon``, or ``None`` if it does not
    happen that day."""
    altitude, side = EVENTS[event]
    mean_day = (day - _J2000_DATE).days - lon / 360.0
    anomaly = math.radians((357.5291 + 0.98560028 * mean_day) % 360.0)
    centre = (
        1.9148 * math.sin(anomaly) + 0.02 * math.sin(2 * anomaly) + 0.0003 * math.sin(3 * anomaly)
    )
    ecliptic = math.radians((math.degrees(anomaly) + centre + 180.0 + 102.9372) % 360.0)
    transit = _J2000 + mean_day + 0.0053 * math.sin(anomaly) - 0.0069 * math.sin(2 * ecliptic)
    if side:
        declination = math.asin(math.sin(ecliptic) * math.sin(_TILT))
        phi = math.radians(lat)
        cos_hour = (math.sin(math.radians(altitude)) - math.sin(phi) * math.sin(declination)) / (
            math.cos(phi) * math.cos(declination)
        )
        if not -1.0 <= cos_hour <= 1.0:
            return None
        transit += side * math.degrees(math.acos(cos_hour)) / 360.0
    # Julian day 2451545.0 is 2000-01-01 12:00 UTC.
    return datetime(2000, 1, 1, 12, tzinfo=UTC) + timedelta(days=transit - _J2000)
