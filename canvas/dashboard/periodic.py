"""Beat entries for the dashboard: each with its schedule, last run and next run.

Entries are read from the app's ``beat_schedule`` (what ``canvas beat`` would load) and last runs
from the schedule store beat writes (``--beat-store`` / ``beat_schedule_store`` /
``beat_schedule_filename``), opened afresh on each read so a file store shows what beat saved
since. The next run is computed as beat computes it: the first slot after the last one, or, for
an entry beat has not recorded yet, the first slot after the current one. An entry whose schedule
is not canvas's (only Celery's ``is_due``) gets ``is_due``'s estimate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from canvas.beat import stores
from canvas.beat.scheduler import Entry, store_url
from canvas.schedules import BaseSchedule

if TYPE_CHECKING:
    from canvas.app import Canvas

logger = logging.getLogger("canvas.dashboard")


@dataclass(frozen=True)
class PeriodicEntry:
    """One beat entry as the page shows it; times are aware UTC datetimes."""

    name: str
    task: str
    schedule: str
    last_run: datetime | None
    next_run: datetime | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "schedule": self.schedule,
            "last_run": _iso(self.last_run),
            "next_run": _iso(self.next_run),
            "error": self.error,
        }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


def entries(
    app: Canvas, store: str | None = None, now: datetime | None = None
) -> list[PeriodicEntry]:
    """Every beat entry with its next run; a broken entry is shown with its error, not dropped."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    last_runs = _last_runs(store_url(app, store))
    found = []
    for name, spec in sorted((app.conf.get("beat_schedule") or {}).items()):
        try:
            entry = Entry.from_setting(name, spec, app)
        except Exception as exc:  # beat would refuse it too; say why on the page
            found.append(PeriodicEntry(name, "?", "?", None, None, str(exc)))
            continue
        last = last_runs.get(name)
        try:
            upcoming = next_run(entry, last, now)
        except Exception as exc:
            found.append(
                PeriodicEntry(name, entry.task_name, repr(entry.schedule), last, None, str(exc))
            )
            continue
        found.append(PeriodicEntry(name, entry.task_name, repr(entry.schedule), last, upcoming))
    return found


def next_run(entry: Entry, last: datetime | None, now: datetime) -> datetime:
    """When beat will send ``entry`` next, given its recorded last slot (if any)."""
    sched = entry.schedule
    if isinstance(sched, BaseSchedule):
        start = last if last is not None and last <= now + timedelta(minutes=1) else None
        return sched.next_after(start if start is not None else sched.latest(now))
    state = sched.is_due(last or now)
    return now + timedelta(seconds=float(state.next))


def _last_runs(url: str) -> dict[str, datetime]:
    try:
        store = stores.create(url)
    except Exception as exc:
        logger.warning("dashboard: cannot open the beat store %s: %s", stores.redact(url), exc)
        return {}
    try:
        return store.load()
    except Exception as exc:
        logger.warning("dashboard: cannot read the beat store %s: %s", stores.redact(url), exc)
        return {}
    finally:
        store.close()


__all__ = ["PeriodicEntry", "entries", "next_run"]
