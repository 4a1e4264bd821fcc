"""Scheduler ticks with a fake clock: what is sent, when, by whom, and how often.

The app uses the in-memory result store (leases, slot claims); ``send`` is observed by a
subclass, so no broker is involved except where ``send`` itself is under test.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from canvas import Canvas
from canvas.backends.memory import MemoryBackend
from canvas.beat import stores
from canvas.beat.lock import Lease
from canvas.beat.scheduler import Beat, Entry, Scheduler, run_beat, slot_task_id, store_url
from canvas.cli.beat import pidfile_lock
from canvas.cli.main import cli
from canvas.exceptions import ImproperlyConfigured
from canvas.schedules import crontab, schedstate, schedule
from tests.support.beat_stores import StoreContract, at, timedelta_zone


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class ClockedLeases(MemoryBackend):
    """Leases that expire on the test's clock instead of the real one."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.holder: tuple[str, float] | None = None

    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        if self.holder and self.holder[0] != owner and self.holder[1] > self.clock():
            return False
        self.holder = (owner, self.clock() + ttl)
        return True

    def release_lease(self, name: str, owner: str) -> None:
        if self.holder and self.holder[0] == owner:
            self.holder = None


class FakeResult:
    def __init__(self, id: str) -> None:
        self.id = id
        self.done = False

    def ready(self) -> bool:
        return self.done


class Recorder(Scheduler):
    """Records every send as (owner, entry name, slot) instead of publishing."""

    def __init__(self, *args, sent: list | None = None, **kwargs) -> None:
        self.sent = sent if sent is not None else []
        self.results: list[FakeResult] = []
        self.fail = 0
        super().__init__(*args, **kwargs)

    def send(self, entry, slot):
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker down")
        self.sent.append((self.lease.owner, entry.name, slot))
        result = FakeResult(slot_task_id(self.lease.name, entry.name, slot))
        self.results.append(result)
        return result


@pytest.fixture
def app():
    app = Canvas("beat-test", backend="memory://", set_as_current=False)

    @app.task(name="proj.add")
    def add(x, y):
        return x + y

    @app.task(name="proj.tsum")
    def tsum(numbers):
        return sum(numbers)

    return app


def make(app, *, owner="a", store=None, lease=None, **kwargs) -> Recorder:
    """A recording scheduler; its lease renews rarely, so waits show the schedule's own."""
    kwargs.setdefault("lease_ttl", 3000)
    return Recorder(app, store=store or stores.MemoryStore(), lease=lease, owner=owner, **kwargs)


def slots_of(sent):
    return [slot for _, _, slot in sent]


# -- firing ------------------------------------------------------------------------------------
def test_interval_fires_once_per_slot_and_returns_the_wait(app):
    # Given a 10-second entry and a scheduler started mid-slot
    app.conf.beat_schedule = {"ten": {"task": "proj.add", "schedule": 10, "args": (1, 2)}}
    beat = make(app)
    # When it ticks at the start: nothing is due, and the wait is until the next slot
    assert beat.tick(at(3)) == pytest.approx(7)
    assert beat.sent == []
    # And it ticks at the slot, and again within the slot
    assert beat.tick(at(10)) == pytest.approx(10)
    assert beat.tick(at(15)) == pytest.approx(5)
    # Then the slot was sent once
    assert beat.sent == [("a", "ten", at(10))]


def test_missed_slots_collapse_into_one_run(app):
    # Given an interval entry that last fired at 10 s
    app.conf.beat_schedule = {"ten": {"task": "proj.add", "schedule": 10}}
    beat = make(app)
    beat.tick(at(3))
    beat.tick(at(10))
    # When the next tick comes a minute and a half late
    beat.tick(at(105))
    # Then only the latest slot is sent, and the next one is due on time
    assert slots_of(beat.sent) == [at(10), at(100)]
    assert beat.tick(at(106)) == pytest.approx(4)


def test_crontab_entry_fires_at_its_wall_clock_time(app):
    # Given the seed's Monday 7:30 entry, in New York
    app.conf.timezone = "America/New_York"
    app.add_periodic_task(
        crontab(hour=7, minute=30, day_of_week=1), app.tasks["proj.add"].s(1, 1), name="monday"
    )
    beat = make(app, lease_ttl=100_000, max_interval=10_000)
    monday_730 = datetime(2024, 5, 6, 11, 30, tzinfo=UTC)  # 07:30 EDT
    # When it ticks an hour before: the wait is the hour (bounded by max_interval)
    assert beat.tick(monday_730 - timedelta(hours=1)) == pytest.approx(3600)
    # And at the slot
    beat.tick(monday_730)
    # Then it fired once, and the next wait is a week
    assert slots_of(beat.sent) == [monday_730]
    assert beat.tick(monday_730 + timedelta(seconds=1)) == pytest.approx(min(7 * 86400 - 1, 10_000))


def test_wait_is_bounded_by_max_interval_and_lease_renewal(app):
    # Given an hourly entry
    app.conf.beat_schedule = {"hourly": {"task": "proj.add", "schedule": 3600}}
    # When the lease and the max interval are long, the wait is until the slot
    assert make(app, owner="x", lease_ttl=30_000, max_interval=30_000).tick(at(1)) == (
        pytest.approx(3599)
    )
    # And with a short max interval, that bounds it
    assert make(app, owner="y", max_interval=60, lease_ttl=30_000).tick(at(1)) <= 60


def test_restart_keeps_last_run_times(app, tmp_path):
    # Given a beat with a file store that fired the 10 s slot, then stopped
    app.conf.beat_schedule = {"ten": {"task": "proj.add", "schedule": 10}}
    path = str(tmp_path / "schedule")
    first = make(app, owner="a", store=path)
    first.tick(at(1))
    first.tick(at(10))
    first.close()
    # When a new beat starts on the same file within the same slot, and later after a gap
    second = make(app, owner="b", store=path)
    second.tick(at(12))
    second.tick(at(75))
    # Then it neither re-fires the 10 s slot nor skips more than the missed ones
    assert slots_of(first.sent) == [at(10)]
    assert slots_of(second.sent) == [at(70)]


def test_a_new_entry_fires_its_first_slot_even_if_beat_was_down(app):
    # Given a daily entry whose first tick happened, then beat was down over its first slot
    app.conf.beat_schedule = {"daily": {"task": "proj.add", "schedule": crontab(minute=0, hour=8)}}
    store = stores.MemoryStore()
    first = make(app, owner="a", store=store)
    first.tick(at(0))
    first.close()
    # When a beat comes back a day later
    beat = make(app, owner="b", store=store)
    beat.tick(at(86400 + 3600 + 5))
    # Then the missed slot fires once
    assert slots_of(beat.sent) == [datetime(2024, 5, 7, 8, 0, tzinfo=UTC)]


def test_a_last_run_in_the_future_is_reset(app, caplog):
    # Given a store whose last run lies a day ahead (the clock was set back)
    app.conf.beat_schedule = {"ten": {"task": "proj.add", "schedule": 10}}
    store = stores.MemoryStore()
    store.save({"ten": at(86400)})
    beat = make(app, store=store)
    # When beat ticks now
    beat.tick(at(5))
    beat.tick(at(10))
    # Then it says so and runs on today's slots
    assert "after now" in caplog.text
    assert slots_of(beat.sent) == [at(10)]


# -- leadership and claims ---------------------------------------------------------------------
def leases(app, clock, ttl=9.0):
    backend = ClockedLeases(clock)
    return lambda owner: Lease(backend, "beat:beat-test", ttl=ttl, owner=owner, clock=clock)


def test_two_beats_fire_each_slot_once(app):
    # Given two beats on one result store
    app.conf.beat_schedule = {"ten": {"task": "proj.add", "schedule": 10}}
    clock, sent = Clock(), []
    lease = leases(app, clock)
    a = make(app, owner="a", lease=lease("a"), sent=sent)
    b = make(app, owner="b", lease=lease("b"), sent=sent)
    # When both tick through a minute
    for second in range(61):
        a.tick(at(second))
        b.tick(at(second))
        clock.t += 1
    # Then each slot was sent once, by the leader
    assert slots_of(sent) == [at(s) for s in range(10, 61, 10)]
    assert {owner for owner, _, _ in sent} == {"a"}
    assert 0 < b.tick(at(61)) <= 3  # a follower asks again within a third of the TTL


def test_killing_the_leader_hands_over_without_repeats(app):
    # Given two beats where "a" leads
    app.conf.beat_schedule = {"ten": {"task": "proj.add", "schedule": 10}}
    clock, sent = Clock(), []
    lease = leases(app, clock, ttl=9)
    a = make(app, owner="a", lease=lease("a"), sent=sent)
    b = make(app, owner="b", lease=lease("b"), sent=sent)
    for second in range(21):
        a.tick(at(second))
        b.tick(at(second))
        clock.t += 1
    # When "a" dies without releasing the lease, and "b" keeps ticking
    for second in range(21, 61):
        b.tick(at(second))
        clock.t += 1
    # Then "b" takes over within the TTL plus one retry, and no slot is sent twice or skipped
    assert slots_of(sent) == [at(s) for s in range(10, 61, 10)]
    assert [owner for owner, _, _ in sent] == ["a", "a", "b", "b", "b", "b"]


def test_a_clean_stop_hands_over_at_once(app):
    app.conf.beat_schedule = {"ten": {"task": "proj.add", "schedule": 10}}
    clock, sent = Clock(), []
    lease = leases(app, clock)
    a = make(app, owner="a", lease=lease("a"), sent=sent)
    b = make(app, owner="b", lease=lease("b"), sent=sent)
    a.tick(at(1))
    b.tick(at(1))
    # When the leader closes
    a.close()
    # Then the follower leads at its next try
    clock.t += 3
    b.tick(at(10))
    assert sent == [("b", "ten", at(10))]


class AlwaysLeader(MemoryBackend):
    def acquire_lease(self, name, owner, ttl):
        return True


def test_slot_claims_stop_a_second_leader(app):
    # Given two beats that both believe they lead (a paused leader waking up after a takeover)
    app.conf.beat_schedule = {
        "ten": {"task": "proj.add", "schedule": 10},
        "cron": {"task": "proj.add", "schedule": crontab(minute="*")},
    }
    backend, sent = AlwaysLeader(), []
    a = make(app, lease=Lease(backend, "beat:beat-test", owner="a"), sent=sent)
    b = make(app, lease=Lease(backend, "beat:beat-test", owner="b"), sent=sent)
    # When both tick through two minutes, in either order
    for second in range(121):
        first, then = (a, b) if second % 2 else (b, a)
        first.tick(at(second))
        then.tick(at(second))
    # Then every slot of each entry was sent exactly once
    assert sorted(slots_of(s for s in sent if s[1] == "ten")) == [at(s) for s in range(10, 121, 10)]
    assert sorted(slots_of(s for s in sent if s[1] == "cron")) == [at(60), at(120)]


def test_task_id_is_derived_from_entry_and_slot():
    # Given the same entry and slot in two processes, the firing has one id
    assert slot_task_id("beat:p", "ten", at(10)) == slot_task_id("beat:p", "ten", at(10))
    # And another slot, entry or app has another
    ids = {
        slot_task_id("beat:p", "ten", at(10)),
        slot_task_id("beat:p", "ten", at(20)),
        slot_task_id("beat:p", "eleven", at(10)),
        slot_task_id("beat:q", "ten", at(10)),
    }
    assert len(ids) == 4
    # And the zone a slot is written in does not matter
    assert slot_task_id("beat:p", "ten", at(10)) == slot_task_id(
        "beat:p", "ten", at(10).astimezone(timedelta_zone(5))
    )


# -- overlap, failures -------------------------------------------------------------------------
def test_overlap_skip_waits_for_the_previous_run(app):
    # Given a workflow entry that must not overlap
    add = app.tasks["proj.add"]
    app.add_periodic_task(10, add.s(1, 1) | add.s(2), name="flow", overlap="skip")
    beat = make(app)
    beat.tick(at(1))
    beat.tick(at(10))
    # When the next slot comes while the first run is still going
    beat.tick(at(20))
    # Then it is skipped; and once the run is done, the following slot fires
    beat.results[0].done = True
    beat.tick(at(30))
    assert slots_of(beat.sent) == [at(10), at(30)]


def test_overlap_allow_is_the_default(app):
    app.add_periodic_task(10, app.tasks["proj.add"].s(1, 1), name="plain")
    beat = make(app)
    for second in (1, 10, 20, 30):
        beat.tick(at(second))
    assert slots_of(beat.sent) == [at(10), at(20), at(30)]
    assert beat.entries["plain"].overlap == "allow"


def test_a_failed_send_is_retried_without_reclaiming(app):
    # Given a broker that fails twice
    app.conf.beat_schedule = {"ten": {"task": "proj.add", "schedule": 10}}
    beat = make(app)
    beat.tick(at(1))
    beat.fail = 2
    # When the slot comes: the scheduler asks to be called again soon
    assert beat.tick(at(10)) == pytest.approx(1.0)
    assert beat.tick(at(11)) == pytest.approx(1.0)
    beat.tick(at(12))
    # Then the slot is sent once it can be, and only once
    beat.tick(at(13))
    assert slots_of(beat.sent) == [at(10)]


def test_one_broken_entry_does_not_stop_the_others(app):
    class Broken:
        app = None

        def is_due(self, last_run_at):
            raise RuntimeError("bad schedule")

    app.conf.beat_schedule = {
        "broken": {"task": "proj.add", "schedule": Broken()},
        "ten": {"task": "proj.add", "schedule": 10},
    }
    beat = make(app)
    beat.tick(at(1))
    assert beat.tick(at(10)) == pytest.approx(1.0)
    assert slots_of(beat.sent) == [at(10)]


def test_foreign_schedules_with_only_is_due(app):
    # Given a third-party schedule that is due every other call
    class EveryOther:
        app = None
        calls = 0

        def is_due(self, last_run_at):
            self.calls += 1
            return schedstate(self.calls % 2 == 0, 5.0)

    app.conf.beat_schedule = {"other": {"task": "proj.add", "schedule": EveryOther()}}
    beat = make(app)
    # When ticked four times
    waits = [beat.tick(at(s)) for s in (0.5, 5.5, 10.5, 15.5)]
    # Then it fired on its due answers, each in its own second, and waited as it said
    assert slots_of(beat.sent) == [at(5), at(15)]
    assert waits == [pytest.approx(5.0)] * 4


# -- entries and sending -----------------------------------------------------------------------
def test_entries_from_the_seed(app):
    # Given the seed's setup_periodic_tasks, run when the app is finalized
    test = app.task(name="proj.test")(lambda arg: print(arg))

    @app.on_after_configure.connect
    def setup_periodic_tasks(sender, **kwargs):
        sender.add_periodic_task(10.0, test.s("hello"), name="add every 10")
        sender.add_periodic_task(30.0, test.s("world"), expires=10)
        sender.add_periodic_task(
            crontab(hour=7, minute=30, day_of_week=1), test.s("Happy Mondays!")
        )

    # When a scheduler starts
    beat = make(app)
    # Then the three entries are there, normalised
    entries = beat.entries
    assert entries["add every 10"].schedule == schedule(10)
    world = next(e for name, e in entries.items() if "world" in name)
    assert world.schedule == schedule(30) and world.options == {"expires": 10}
    monday = next(e for name, e in entries.items() if "Mondays" in name)
    assert monday.schedule == crontab(hour=7, minute=30, day_of_week=1)
    assert monday.schedule.app is app


def test_send_uses_the_app(app, monkeypatch):
    # Given entries of each kind
    calls = []
    monkeypatch.setattr(
        app,
        "send_canvas",
        lambda sig, args, kwargs, **opts: calls.append((sig, args, kwargs, opts)),
    )
    add = app.tasks["proj.add"]
    workflow = add.s(1, 1) | add.s(2)
    app.conf.beat_schedule = {
        "by-name": {"task": "proj.add", "schedule": 10, "args": [1, 2], "options": {"queue": "q"}},
        "flow": {"task": workflow, "schedule": 10, "expires": 5, "overlap": "skip"},
    }
    beat = Scheduler(app, store=stores.MemoryStore())
    entries = beat.entries
    # When each is sent for a slot
    beat.send(entries["by-name"], at(10))
    beat.send(entries["flow"], at(10))
    # Then a task name goes through send_task with its args, options and the slot's task id
    sig, args, kwargs, opts = calls[0]
    assert sig.task == "proj.add" and tuple(args) == (1, 2)
    assert opts == {"queue": "q", "task_id": slot_task_id(beat.lease.name, "by-name", at(10))}
    # And a workflow is cloned (a new workflow each time) with expires, without beat's overlap
    sig, _, _, opts = calls[1]
    assert sig is not workflow and sig == workflow
    assert opts == {"expires": 5, "task_id": slot_task_id(beat.lease.name, "flow", at(10))}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"task": "proj.add", "schedule": 10, "kwarg": {}}, "Did you mean 'kwargs'"),
        ({"task": "proj.add"}, "needs a 'schedule'"),
        ({"schedule": 10}, "needs a 'task'"),
        ({"task": 42, "schedule": 10}, "task name or a signature"),
        ({"task": "proj.add", "schedule": "hourly"}, r"\['schedule'\]"),
        ({"task": "proj.add", "schedule": 10, "overlap": "never"}, "'allow'.*'skip'"),
        ({"task": "proj.add", "schedule": 10, "args": "12"}, "list or tuple"),
        ({"task": "proj.add", "schedule": 10, "kwargs": [1]}, "must be a dict"),
    ],
)
def test_bad_entries_are_named(spec, message):
    # Given an entry with a mistake
    # When it is read
    # Then the error names the entry and the fix
    with pytest.raises(ImproperlyConfigured, match=message):
        Entry.from_setting("mine", spec)


def test_overlap_in_options_and_relative():
    entry = Entry.from_setting(
        "e", {"task": "t", "schedule": 60, "options": {"overlap": "skip"}, "relative": True}
    )
    assert entry.overlap == "skip" and entry.options == {} and entry.schedule.relative


# -- stores ------------------------------------------------------------------------------------
class TestMemoryStore(StoreContract):
    @pytest.fixture
    def make(self):
        store = stores.MemoryStore()
        return lambda: store


class TestFileStore(StoreContract):
    @pytest.fixture
    def make(self, tmp_path):
        return lambda: stores.FileStore(str(tmp_path / "beat.json"))

    def test_writes_atomically(self, tmp_path, make):
        make().save({"a": at(10)})
        make().save({"b": at(20)})
        assert [p.name for p in tmp_path.iterdir()] == ["beat.json"]
        assert json.loads((tmp_path / "beat.json").read_text())["version"] == 1


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def make(self, tmp_path):
        made = []

        def make():
            made.append(stores.create(f"sqlite:///{tmp_path / 'beat.sqlite'}"))
            return made[-1]

        yield make
        for store in made:
            store.close()


def test_a_corrupt_file_starts_afresh(tmp_path, caplog):
    path = tmp_path / "canvasbeat-schedule"
    path.write_bytes(b"\x00\x01 shelve from celery")
    store = stores.FileStore(str(path))
    assert store.load() == {}
    assert "not a canvas schedule" in caplog.text
    store.save({"a": at(1)})
    assert stores.FileStore(str(path)).load() == {"a": at(1)}


@pytest.mark.parametrize(
    ("url", "cls"),
    [
        ("canvasbeat-schedule", stores.FileStore),
        ("/tmp/x/schedule.json", stores.FileStore),
        ("file:///tmp/schedule", stores.FileStore),
        ("memory://", stores.MemoryStore),
        ("sqlite:///x.db", stores.SQLStore),
        ("postgresql://localhost/db", stores.SQLStore),
        ("canvas.beat.stores:MemoryStore", stores.MemoryStore),
    ],
)
def test_store_resolution(url, cls):
    assert stores.resolve(url) is cls


def test_unknown_store_scheme_suggests():
    with pytest.raises(ImproperlyConfigured, match="Did you mean 'sqlite'"):
        stores.resolve("sqlit:///x.db")


def test_store_urls_are_logged_without_passwords():
    assert stores.redact("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert stores.redact("/var/lib/beat.json") == "/var/lib/beat.json"


def test_store_precedence(app):
    app.conf.beat_schedule_filename = "from-setting"
    assert store_url(app) == "from-setting"
    app.conf.beat_schedule_store = "sqlite:///setting.db"
    assert store_url(app) == "sqlite:///setting.db"
    assert store_url(app, schedule_filename="file-flag") == "file-flag"
    assert store_url(app, store="memory://") == "memory://"
    with pytest.raises(ImproperlyConfigured, match="not both"):
        store_url(app, store="memory://", schedule_filename="f")


# -- the service -------------------------------------------------------------------------------
def test_run_beat_sleeps_until_due_and_stops(app):
    # Given a beat service with a fast entry and an observable scheduler
    app.conf.beat_schedule = {"fast": {"task": "proj.add", "schedule": 0.05}}
    sent, enough = [], threading.Event()

    class Observed(Recorder):
        def send(self, entry, slot):
            result = super().send(entry, slot)
            if len(self.sent) >= 3:
                enough.set()
            return result

        def __init__(self, app, **kwargs):
            super().__init__(app, sent=sent, **kwargs)

    stop = threading.Event()
    thread = threading.Thread(
        target=run_beat,
        args=(app,),
        kwargs={"stop": stop, "scheduler": Observed, "store": "memory://"},
    )
    # When it runs in a thread, as the worker's -B runs it
    thread.start()
    try:
        # Then it fires slot after slot
        assert enough.wait(10)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len({slot for _, _, slot in sent}) == len(sent)


def test_beat_rejects_an_unknown_scheduler(app):
    with pytest.raises(ImproperlyConfigured, match="module:Class"):
        Beat(app, scheduler="nowhere.to:Be")


def test_pidfile_refuses_a_second_run(tmp_path):
    import click

    path = str(tmp_path / "beat.pid")
    with pidfile_lock(path):
        assert int(Path(path).read_text()) == os.getpid()
        with pytest.raises(click.ClickException, match="running process"), pidfile_lock(path):
            pass
    assert not os.path.exists(path)
    # a stale pidfile (a dead process) is taken over
    with open(path, "w") as handle:
        handle.write("999999999\n")
    with pidfile_lock(path):
        assert int(Path(path).read_text()) == os.getpid()


# -- the command -------------------------------------------------------------------------------
CLI_SENT: list = []
CLI_FIRED = threading.Event()


class CliObserved(Recorder):
    """Picked by ``-S``: records into module globals the test can see."""

    def __init__(self, app, **kwargs):
        super().__init__(app, sent=CLI_SENT, **kwargs)

    def send(self, entry, slot):
        result = super().send(entry, slot)
        CLI_FIRED.set()
        return result


@pytest.fixture
def cli_app(app, monkeypatch):
    module = types.ModuleType("beat_cli_proj")
    module.app = app
    monkeypatch.setitem(sys.modules, "beat_cli_proj", module)
    level = logging.getLogger("canvas").level  # the command sets it from -l
    yield app
    logging.getLogger("canvas").setLevel(level)


def test_command_runs_until_sigterm(cli_app):
    # Given the beat command with a fast entry and an observed scheduler
    cli_app.conf.beat_schedule = {"fast": {"task": "proj.add", "schedule": 0.05}}
    CLI_SENT.clear()
    CLI_FIRED.clear()
    scheduler = f"{__name__}:CliObserved"
    args = ["-A", "beat_cli_proj", "beat", "-S", scheduler, "--store", "memory://"]

    def terminate_after_a_firing():
        if CLI_FIRED.wait(10):
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_a_firing)
    killer.start()
    previous = signal.getsignal(signal.SIGTERM)
    # When it runs and gets SIGTERM after it fired
    result = CliRunner().invoke(cli, args)
    killer.join(10)
    # Then it fired, stopped cleanly, gave the lease up and put the signal handler back
    assert result.exit_code == 0, result.output
    assert CLI_SENT
    assert signal.getsignal(signal.SIGTERM) == previous
    assert cli_app.backend.acquire_lease("beat:beat-test", "someone else", 10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "f", "--store", "memory://"], "not both"),
        (["--store", "sqlit:///x.db"], "Did you mean 'sqlite'"),
        (["-S", "no_such_module:Scheduler"], "cannot load it"),
    ],
)
def test_command_reports_bad_options(cli_app, args, message):
    result = CliRunner().invoke(cli, ["-A", "beat_cli_proj", "beat", *args])
    assert result.exit_code == 1
    assert message in result.output
