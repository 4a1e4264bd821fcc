"""The schedules behind the app's schedule models: crontab in its own zone, solar, clocked.

Each is a ``canvas.schedules.BaseSchedule``: beat asks ``next_after(t)`` and ``latest(t)`` and
gets aware UTC datetimes, so two beats agree on every slot.

* ``zoned_crontab(..., tz="Europe/Paris")`` – a crontab whose fields are wall-clock times in
  ``tz`` rather than ``app.conf.timezone`` (``CrontabSchedule.timezone``).
* ``solar(event, lat, lon)`` – at a solar event at a place (``SolarSchedule``): the app's own
  ``canvas.schedules.solar``, re-exported (one implementation, Celery's polar-night behaviour).
* ``clocked(when)`` – one slot, at ``when`` (``ClockedSchedule``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from canvas.schedules import NEVER, BaseSchedule, crontab, get_timezone, solar

__all__ = ["NEVER", "clocked", "solar", "zoned_crontab"]


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
