"""``DatabaseScheduler``: beat fires the ``PeriodicTask`` rows that staff edit in the admin.

    canvas -A proj beat -S canvas.contrib.django.schedulers:DatabaseScheduler
    canvas -A proj beat -S django_celery_beat.schedulers:DatabaseScheduler   # the same

It is canvas's ``Scheduler`` with its entries read from the database, so what holds for beat
holds here: one leader fires (the lease in the result store), each slot is claimed once, and a
firing's task id derives from the entry and the slot. Two beats on one database fire each slot
once.

* **Changes.** At every tick (at most ``beat_max_loop_interval`` apart, 5 s unless set) beat
  reads ``PeriodicTasks.last_update`` and reloads the rows when it moved, so an entry added,
  edited, enabled or disabled in the admin takes effect without a restart. Every 5 minutes it
  reloads anyway (a queryset ``update()`` moves nothing).
* **Clock.** An entry counts from its ``last_run_at``, else from when its row last changed, and
  never from before its ``start_time`` (``canvas.contrib.django.entries.clock_start``).
* **Bookkeeping.** A firing sets ``last_run_at`` to its slot and adds one to ``total_run_count``;
  a one-off entry is then disabled; a slot at or after ``expires`` is not sent, and the entry
  is disabled (the message carries ``expires`` too, so a late one is revoked by the worker).
  These writes never fail a firing: a send that happened is not repeated. Between ticks beat
  holds no database connection.
* **Setting entries.** ``beat_schedule`` (and ``add_periodic_task``) entries are written as rows
  at start, as django-celery-beat does, so the admin shows them; one whose schedule or arguments
  have no row form is fired from memory.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections, connections
from django.db.models import F

from canvas.beat import stores
from canvas.beat.lock import Lease
from canvas.beat.scheduler import Entry, Scheduler
from canvas.config import DEFAULTS
from canvas.contrib.django.entries import (
    clock_start,
    entry_from_row,
    expired,
    store_setting_entries,
)
from canvas.contrib.django.models import PeriodicTask, PeriodicTasks

if TYPE_CHECKING:
    from canvas.app import Canvas

__all__ = ["DEFAULT_MAX_INTERVAL", "FULL_RELOAD_INTERVAL", "DatabaseScheduler"]

logger = logging.getLogger("canvas.beat")

#: seconds between looks at the database when ``beat_max_loop_interval`` is left at its default
DEFAULT_MAX_INTERVAL = 5.0
#: what the beat log names as its store: the rows' table (in-memory slots are only a cache)
_ROWS = "django-db://canvas_django_periodictask"
#: seconds after which the rows are read again even if nothing said they changed
FULL_RELOAD_INTERVAL = 300.0


class DatabaseScheduler(Scheduler):
    """Fires the enabled ``PeriodicTask`` rows (see the module docstring)."""

    def __init__(
        self,
        app: Canvas,
        *,
        store: stores.Store | str | None = None,
        max_interval: float | None = None,
        lease: Lease | None = None,
        lease_ttl: float | None = None,
        owner: str | None = None,
    ) -> None:
        self._rows: dict[str, PeriodicTask] = {}
        self._starts: dict[str, datetime] = {}
        self._from_memory: dict[str, Entry] = {}
        self._last_change: Any = None
        self._loaded_at = float("-inf")
        configured = app.conf.get("beat_max_loop_interval")
        if configured == DEFAULTS["beat_max_loop_interval"]:
            configured = None
        # The rows are the store: a schedule file given by default (-s) is not used.
        super().__init__(
            app,
            store=store if isinstance(store, stores.Store) else stores.MemoryStore(_ROWS),
            max_interval=max_interval or configured or DEFAULT_MAX_INTERVAL,
            lease=lease,
            lease_ttl=lease_ttl,
            owner=owner,
        )
        self.last_run.update(self._starts)

    # -- entries -------------------------------------------------------------------------------
    def load_entries(self) -> dict[str, Entry]:
        """The rows' entries; at the first load, ``beat_schedule`` is written as rows first."""
        if self._loaded_at == float("-inf"):
            self._from_memory = store_setting_entries(self.app)
        self._last_change = PeriodicTasks.last_change()
        self._loaded_at = time.monotonic()
        rows = {row.name: row for row in PeriodicTask.objects.enabled().select_related()}
        entries: dict[str, Entry] = {}
        for name, row in rows.items():
            try:
                entries[name] = entry_from_row(row, self.app)
            except Exception as exc:  # one broken row must not stop the others
                logger.error("beat: periodic task %r cannot be sent: %s", name, exc)
        self._rows = {name: rows[name] for name in entries}
        self._starts = {name: clock_start(row) for name, row in self._rows.items()}
        return {**self._from_memory, **entries}

    def _refresh(self) -> None:
        """Reload the rows if they changed (or a while has passed); keep going if we cannot."""
        try:
            close_old_connections()
            changed = PeriodicTasks.last_change() != self._last_change
            if not changed and time.monotonic() - self._loaded_at < FULL_RELOAD_INTERVAL:
                return
            entries = self.load_entries()
        except Exception:
            logger.exception("beat: cannot read the periodic tasks; keeping the ones loaded")
            return
        if changed:
            logger.info("beat: the periodic tasks changed; %d enabled", len(entries))
        for name in set(self.entries) - set(entries):
            self.last_run.pop(name, None)
            self._claimed.pop(name, None)
        for name, start in self._starts.items():
            if name in self._unsaved:
                continue
            known = self.last_run.get(name)
            self.last_run[name] = start if known is None else max(known, start)
        self.entries = entries

    def tick(self, now: datetime | None = None) -> float:
        self._refresh()
        try:
            return super().tick(now)
        finally:
            # Hold no connection between ticks: in a worker's -B thread, pool processes forked
            # meanwhile would inherit it, and one of them closing it would cut ours.
            connections.close_all()

    # -- firing --------------------------------------------------------------------------------
    def send(self, entry: Entry, slot: datetime) -> Any:
        row = self._rows.get(entry.name)
        if row is not None and expired(row, slot):
            logger.info("beat: %s expired at %s; disabling it", entry.name, row.expires)
            self._disable(row)
            return None
        result = super().send(entry, slot)
        if row is not None:
            self._count(row, slot)
        return result

    def _count(self, row: PeriodicTask, slot: datetime) -> None:
        try:
            PeriodicTask.objects.filter(pk=row.pk).update(
                last_run_at=slot, total_run_count=F("total_run_count") + 1
            )
            if row.one_off:
                self._disable(row)
        except Exception:  # sent is sent: a failed count must not send it again
            logger.exception("beat: sent %s, but could not record the run", row.name)

    def _disable(self, row: PeriodicTask) -> None:
        try:
            PeriodicTask.objects.filter(pk=row.pk).update(enabled=False)
            PeriodicTasks.update_changed()
        except Exception:
            logger.exception("beat: could not disable %s", row.name)
        self.entries.pop(row.name, None)
        self._rows.pop(row.name, None)
