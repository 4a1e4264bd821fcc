"""The beat scheduler: entries, a ``tick(now)`` that fires each due slot once, and its loop.

Entries come from the ``beat_schedule`` setting (``add_periodic_task`` writes there too)::

    {"name": {"task": "proj.add" | <signature, chain, group or chord>,
              "schedule": seconds | timedelta | crontab(...),
              "args": (...), "kwargs": {...}, "options": {...apply_async options...},
              "expires": seconds | datetime,     # becomes the ``expires`` option
              "overlap": "allow" | "skip"}}      # or in options; see below

How a slot is fired once, whatever happens:

* **Slots, not "now".** An entry is due when its schedule has a slot after the last one fired;
  it then fires the *latest* slot (missed ones collapse into one run) and records that slot in the
  schedule store, so a restart neither repeats it nor skips the next one.
* **One leader.** Only the holder of the lease in the result store fires (``canvas.beat.lock``).
* **One claim per slot.** Before sending, the leader claims ``(entry, slot)`` with the store's
  atomic counter; a beat that just took over, or a stale leader that woke up, finds the claim taken
  and moves on. The firing's task id is a UUID derived from the lease name, entry and slot, so
  even two sends of one slot carry the same id.
* **Overlap.** With ``overlap='skip'`` a slot is skipped while the previous firing's result is not
  ``ready()`` (this beat's previous firing: a new leader does not know its predecessor's).

A canvas entry is sent as a new workflow at every firing: ``sig.clone().apply_async(**options)``.
"""

from __future__ import annotations

import difflib
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from canvas.backends.rpc import without_replies
from canvas.beat import stores
from canvas.beat.lock import Lease
from canvas.config import load_class
from canvas.exceptions import ImproperlyConfigured
from canvas.schedules import BaseSchedule, maybe_schedule, schedule

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.result import AsyncResult, GroupResult
    from canvas.signature import Signature

logger = logging.getLogger("canvas.beat")

__all__ = ["Beat", "Entry", "Scheduler", "run_beat", "slot_task_id"]

#: seconds before a failed send (broker or store down) is tried again
RETRY_DELAY = 1.0
#: how far in the future a recorded last run may lie (clock skew between hosts) before it is reset
FUTURE_TOLERANCE = timedelta(minutes=1)
_ENTRY_KEYS = ("task", "schedule", "args", "kwargs", "options", "expires", "overlap", "relative")
_OVERLAP = ("allow", "skip")
_NAMESPACE = uuid.UUID("6f1c1f3e-0a47-4c1e-9d0b-3f7a2b9c5e10")


def slot_task_id(lease_name: str, entry_name: str, slot: datetime) -> str:
    """The task id of one firing: the same in every beat process, different for every slot."""
    stamp = slot.astimezone(UTC).isoformat()
    return str(uuid.uuid5(_NAMESPACE, f"{lease_name}\x00{entry_name}\x00{stamp}"))


@dataclass
class Entry:
    """One periodic task or workflow, normalised from its setting."""

    name: str
    task: Any  # a task name, or any signature/canvas
    schedule: Any  # a BaseSchedule, or a foreign object with Celery's ``is_due``
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    overlap: str = "allow"

    @classmethod
    def from_setting(cls, name: str, spec: Mapping[str, Any], app: Canvas | None = None) -> Entry:
        """Check and normalise one ``beat_schedule`` item, naming what is wrong and where."""
        where = f"beat_schedule[{name!r}]"
        if not isinstance(spec, Mapping):
            raise ImproperlyConfigured(f"{where} must be a dict, got {type(spec).__name__}")
        for key in spec:
            if key not in _ENTRY_KEYS:
                close = difflib.get_close_matches(str(key), _ENTRY_KEYS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ImproperlyConfigured(
                    f"{where} has an unknown key {key!r}.{hint} Known: {', '.join(_ENTRY_KEYS)}."
                )
        for key in ("task", "schedule"):
            if spec.get(key) is None:
                raise ImproperlyConfigured(f"{where} needs a {key!r}")
        task = spec["task"]
        if not isinstance(task, str) and not callable(getattr(task, "apply_async", None)):
            raise ImproperlyConfigured(
                f"{where}['task'] must be a task name or a signature, got {type(task).__name__}"
            )
        try:
            sched = maybe_schedule(spec["schedule"], app)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{where}['schedule']: {exc}") from exc
        if spec.get("relative") and isinstance(sched, schedule):
            sched.relative = True
        options = dict(spec.get("options") or {})
        overlap = options.pop("overlap", "allow")
        overlap = spec.get("overlap", overlap)
        if overlap not in _OVERLAP:
            raise ImproperlyConfigured(
                f"{where}: overlap={overlap!r}; use 'allow' (the default) or 'skip'"
            )
        if spec.get("expires") is not None:
            options["expires"] = spec["expires"]
        args = spec.get("args") or ()
        if isinstance(args, str | bytes) or not isinstance(args, list | tuple):
            raise ImproperlyConfigured(f"{where}['args'] must be a list or tuple, got {args!r}")
        kwargs = spec.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise ImproperlyConfigured(f"{where}['kwargs'] must be a dict, got {kwargs!r}")
        return cls(name, task, sched, tuple(args), dict(kwargs), options, overlap)

    @property
    def task_name(self) -> str:
        return self.task if isinstance(self.task, str) else repr(self.task)


def store_url(app: Canvas, store: str | None = None, schedule_filename: str | None = None) -> str:
    """Which store to use: ``--store``, then ``-s``, then the two settings."""
    if store and schedule_filename:
        raise ImproperlyConfigured(
            f"Give either a schedule file (-s {schedule_filename!r}) or a store URL "
            f"(--store {store!r}), not both."
        )
    chosen = store or schedule_filename or app.conf.get("beat_schedule_store")
    return str(chosen or app.conf.get("beat_schedule_filename") or "canvasbeat-schedule")


class Scheduler:
    """Fires due entries; ``tick(now)`` does one round and says how long to wait for the next.

    Subclass it and pass ``--scheduler module:Class`` to change how entries are loaded
    (``load_entries``) or sent (``send``).
    """

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
        self.app = app
        app.finalize()
        if not isinstance(store, stores.Store):
            store = stores.create(store_url(app, store))
        self.store = store
        self.max_interval = float(max_interval or app.conf.get("beat_max_loop_interval", 300))
        ttl = float(lease_ttl or app.conf.get("beat_lease_ttl", 10.0))
        self.lease = lease or Lease(
            app.backend, f"beat:{app.main or 'default'}", ttl=ttl, owner=owner
        )
        self.entries: dict[str, Entry] = self.load_entries()
        self.last_run: dict[str, datetime] = self.store.load()
        self._unsaved: dict[str, datetime] = {}
        self._results: dict[str, Any] = {}
        self._claimed: dict[str, datetime] = {}

    def load_entries(self) -> dict[str, Entry]:
        schedule_setting = self.app.conf.get("beat_schedule") or {}
        return {
            name: Entry.from_setting(name, spec, self.app)
            for name, spec in schedule_setting.items()
        }

    @property
    def is_leader(self) -> bool:
        return self.lease.held

    # -- one round ---------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> float:
        """Fire what is due at ``now``; seconds until the next call is needed."""
        now = self._utc(now)
        wait = self.max_interval
        self._start_new_entries(now)
        if self.lease.hold():
            for entry in list(self.entries.values()):
                try:
                    wait = min(wait, self._tick_entry(entry, now))
                except Exception:  # one broken entry must not stop the others
                    logger.exception("beat: entry %r failed; trying again shortly", entry.name)
                    wait = min(wait, RETRY_DELAY)
        if self._unsaved:
            try:
                self.store.save(self._unsaved)
                self._unsaved = {}
            except Exception:  # the claims still guard against a repeat; keep trying
                logger.exception("beat: cannot save last-run times to %r", self.store)
                wait = min(wait, RETRY_DELAY)
        return max(min(wait, self.lease.seconds_to_next_try()), 0.0)

    def _utc(self, now: datetime | None) -> datetime:
        if now is None:
            now = self.app.now()
        if now.tzinfo is None:
            raise ValueError(f"tick(now={now!r}) needs an aware datetime")
        return now.astimezone(UTC)

    def _record(self, name: str, slot: datetime) -> None:
        self.last_run[name] = slot
        self._unsaved[name] = slot

    def _start_new_entries(self, now: datetime) -> None:
        """An entry's clock starts at the first tick that sees it, leader or not.

        Recorded, so a beat that is down at the first slot still fires it once when it comes
        back; and done by followers too, so one that takes over fires the slot it takes over in.
        """
        for entry in self.entries.values():
            if entry.name not in self.last_run:
                sched = entry.schedule
                try:
                    start = sched.latest(now) if isinstance(sched, BaseSchedule) else now
                except Exception:
                    logger.exception("beat: entry %r failed", entry.name)
                    continue
                self._record(entry.name, start)

    def _tick_entry(self, entry: Entry, now: datetime) -> float:
        sched = entry.schedule
        last = self.last_run.get(entry.name)
        if last is None:
            return RETRY_DELAY  # its schedule failed to start
        if not isinstance(sched, BaseSchedule):
            return self._tick_foreign(entry, now, last)
        if last > now + FUTURE_TOLERANCE:
            # The clock went back, or the store came from a machine with another clock: waiting
            # for ``last`` to come round again could skip days of runs.
            logger.warning(
                "beat: %s last ran at %s, after now (%s); counting from now instead",
                entry.name,
                last.isoformat(),
                now.isoformat(),
            )
            last = sched.latest(now)
            self._record(entry.name, last)
        due_at = sched.next_after(last)
        if due_at <= now:
            slot = sched.latest(now)
            if not self._fire(entry, slot):
                return RETRY_DELAY
            self._record(entry.name, slot)
            due_at = sched.next_after(slot)
        return (due_at - now).total_seconds()

    def _tick_foreign(self, entry: Entry, now: datetime, last: datetime) -> float:
        """A schedule with only Celery's ``is_due``: its slot is the second it fires in."""
        state = entry.schedule.is_due(last)
        if state.is_due:
            slot = now.replace(microsecond=0)
            if not self._fire(entry, slot):
                return RETRY_DELAY
            self._record(entry.name, now)
        return float(state.next)

    def _fire(self, entry: Entry, slot: datetime) -> bool:
        """Send one slot unless it must not be; false only when sending should be retried."""
        if entry.overlap == "skip":
            previous = self._results.get(entry.name)
            if previous is not None and not previous.ready():
                logger.info(
                    "beat: skipping %s at %s: its previous run %s is still going",
                    entry.name,
                    slot.isoformat(),
                    getattr(previous, "id", previous),
                )
                return True
        if self._claimed.get(entry.name) != slot:
            if not self._claim(entry, slot):
                logger.info("beat: %s at %s was already fired", entry.name, slot.isoformat())
                return True
            self._claimed[entry.name] = slot
        try:
            result = self.send(entry, slot)
        except Exception:
            logger.exception("beat: sending %s failed; trying again", entry.name)
            return False
        del self._claimed[entry.name]
        self._results[entry.name] = result
        return True

    def _claim(self, entry: Entry, slot: datetime) -> bool:
        """Take the slot in the result store; only the first beat to ask gets it."""
        key = f"beat-slot:{slot_task_id(self.lease.name, entry.name, slot)}"
        sched = entry.schedule
        period = (
            (sched.next_after(slot) - slot).total_seconds()
            if isinstance(sched, BaseSchedule)
            else self.max_interval
        )
        # The claim must outlive the slot: a beat taking over before the next slot would
        # otherwise see an expired claim and fire the slot again.
        ttl = period + max(60.0, 3 * self.lease.ttl)
        return self.app.backend.incr(key, ttl) == 1

    def send(self, entry: Entry, slot: datetime) -> AsyncResult | GroupResult:
        """Send one firing; returns its result handle. Override to observe or redirect."""
        options = {**entry.options, "task_id": slot_task_id(self.lease.name, entry.name, slot)}
        logger.info("beat: sending due task %s (%s)", entry.name, entry.task_name)
        with without_replies():  # nobody waits on a firing: no rpc:// reply queue fills up
            if isinstance(entry.task, str):
                return self.app.send_task(entry.task, entry.args, entry.kwargs, **options)
            sig: Signature = entry.task.clone()
            if entry.args or entry.kwargs:
                return sig.apply_async(entry.args, entry.kwargs, **options)
            return sig.apply_async(**options)

    def close(self) -> None:
        """Save, give the lease up (a follower takes over at once) and close the store."""
        try:
            if self._unsaved:
                self.store.save(self._unsaved)
                self._unsaved = {}
        finally:
            self.lease.release()
            self.store.close()


#: other names a scheduler is known by: django-celery-beat's, for projects moving from Celery
SCHEDULER_ALIASES = {
    "django_celery_beat.schedulers:DatabaseScheduler": (
        "canvas.contrib.django.schedulers:DatabaseScheduler"
    ),
    "django_celery_beat.schedulers.DatabaseScheduler": (
        "canvas.contrib.django.schedulers:DatabaseScheduler"
    ),
}


def load_scheduler(spec: str | type[Scheduler]) -> type[Scheduler]:
    """``module:Class`` (or ``module.Class``) to a scheduler class, with a clear error."""
    if not isinstance(spec, type):
        spec = SCHEDULER_ALIASES.get(spec, spec)
    found: type[Scheduler] = load_class(spec, "--scheduler", "canvas.beat.scheduler:Scheduler")
    return found


class Beat:
    """The beat service: one scheduler, ticking until ``stop`` is set."""

    def __init__(
        self,
        app: Canvas,
        *,
        scheduler: str | type[Scheduler] | None = None,
        store: str | None = None,
        schedule_filename: str | None = None,
        max_interval: float | None = None,
    ) -> None:
        self.app = app
        app.finalize()  # before loading the scheduler: Django's must find its models ready
        self.scheduler_cls = load_scheduler(
            scheduler or app.conf.get("beat_scheduler") or "canvas.beat.scheduler:Scheduler"
        )
        self.store = store_url(app, store, schedule_filename)
        self.max_interval = max_interval

    def run(self, stop: threading.Event | None = None) -> None:
        """Tick until ``stop`` is set, sleeping until the next due entry or lease renewal."""
        stop = stop or threading.Event()
        self.app.finalize()
        scheduler = self.scheduler_cls(self.app, store=self.store, max_interval=self.max_interval)
        logger.info(
            "beat: starting with %d entries, store %r, lease %r as %s",
            len(scheduler.entries),
            scheduler.store,
            scheduler.lease.name,
            scheduler.lease.owner,
        )
        try:
            while not stop.is_set():
                try:
                    delay = scheduler.tick()
                except Exception:
                    logger.exception("beat: tick failed")
                    delay = RETRY_DELAY
                stop.wait(delay)
        finally:
            scheduler.close()
            logger.info("beat: stopped")


def run_beat(
    app: Canvas,
    *,
    stop: threading.Event | None = None,
    scheduler: str | type[Scheduler] | None = None,
    store: str | None = None,
    schedule: str | None = None,
    max_interval: float | None = None,
    **_: Any,
) -> None:
    """Run beat until ``stop`` is set; the worker's ``-B`` calls this in a thread.

    Options are the ``canvas beat`` ones (``schedule`` is ``-s``); others (``loglevel``,
    ``pidfile``) belong to the command and are ignored here.
    """
    Beat(
        app,
        scheduler=scheduler,
        store=store,
        schedule_filename=schedule,
        max_interval=max_interval,
    ).run(stop)
