"""Beat with real processes: ``canvas -A proj beat`` and ``canvas -A proj worker`` as subprocesses.

Each test gets its own directory and ``XDG_CACHE_HOME``, so the embedded broker and result store
(SQLite files) are its own. The task records its task id, which beat derives from the entry and
the slot, so a test can tell exactly which slots fired, and how often. Waits are on conditions
with deadlines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from canvas.beat import stores
from canvas.beat.scheduler import slot_task_id
from tests.support.beat_stores import StoreContract
from tests.support.servers import POSTGRES_URL, require_service
from tests.support.workers import ROOT, wait_for

pytestmark = pytest.mark.integration

_SCRIPT = Path(sys.executable).with_name("canvas")
CANVAS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "canvas.cli.main"]
APP_NAME = "beatit"
LEASE = f"beat:{APP_NAME}"

PROJ = textwrap.dedent(
    """
    import os
    import time

    from canvas import Canvas, chord

    app = Canvas("__APP_NAME__", beat_lease_ttl=float(os.environ.get("LEASE_TTL", "10")))
    OUT = os.environ["BEAT_OUT"]


    def record(line):
        with open(OUT, "a") as handle:
            handle.write(line + "\\n")


    @app.task(bind=True, name="proj.tick")
    def tick(self, label):
        record(f"{label} {self.request.id} {time.time()}")


    @app.task(name="proj.num")
    def num(n):
        return n


    @app.task(name="proj.total")
    def total(numbers):
        record(f"total {sum(numbers)} {time.time()}")


    ENTRIES = os.environ.get("ENTRIES", "tick").split(",")
    if "tick" in ENTRIES:
        app.conf.beat_schedule["tick"] = {
            "task": "proj.tick",
            "schedule": float(os.environ.get("EVERY", "1")),
            "args": ("tick",),
        }


    @app.on_after_configure.connect
    def setup_periodic_tasks(sender, **kwargs):
        if "workflow" in ENTRIES:
            sender.add_periodic_task(
                1.0, chord([num.si(1), num.si(2), num.si(3)], total.s()), name="workflow"
            )
    """
).replace("__APP_NAME__", APP_NAME)


@dataclass
class Project:
    """A throw-away project directory and the processes started in it."""

    root: Path
    env: dict[str, str]
    procs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.root / "out.txt"

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.root / f"{name}.log"
        with open(log, "wb") as handle:
            proc = subprocess.Popen(
                [*CANVAS, "-A", "proj", *args],
                cwd=self.root,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        self.procs.append((proc, log))
        return proc, log

    def worker(self) -> subprocess.Popen[bytes]:
        return self.start("worker", "worker", "-l", "INFO", "-P", "solo")[0]

    def beat(self, name: str = "beat", *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        return self.start(name, "beat", "-l", "INFO", "-s", str(self.root / f"{name}.json"), *extra)

    def lines(self, label: str) -> list[list[str]]:
        if not self.out.exists():
            return []
        return [
            line.split() for line in self.out.read_text().splitlines() if line.startswith(label)
        ]

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for _, log in self.procs)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    (tmp_path / "proj.py").write_text(PROJ)
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "BEAT_OUT": str(tmp_path / "out.txt"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    project = Project(tmp_path, env)
    yield project
    for proc, _ in project.procs:
        project.stop(proc)


def tick_slots(project: Project, every: float = 1.0) -> list[tuple[datetime, float]]:
    """(slot, time it ran) of every recorded tick, in run order; fails on an unknown task id."""
    firings = []
    for _, task_id, ran in project.lines("tick"):
        when = float(ran)
        base = int(when // every) * every
        for k in range(-30, 2):
            slot = datetime.fromtimestamp(base + k * every, UTC)
            if slot_task_id(LEASE, "tick", slot) == task_id:
                firings.append((slot, when))
                break
        else:
            raise AssertionError(f"task id {task_id} is not a slot of 'tick'\n{project.logs()}")
    return firings


def assert_each_slot_once(slots: list[datetime], every: float, project: Project) -> None:
    assert len(set(slots)) == len(slots), f"a slot fired twice: {slots}\n{project.logs()}"
    steps = {b - a for a, b in zip(sorted(slots), sorted(slots)[1:], strict=False)}
    assert steps <= {timedelta(seconds=every)}, f"slots skipped: {slots}\n{project.logs()}"


# -- tests -------------------------------------------------------------------------------------
def test_one_second_interval_fires_about_once_a_second(project):
    # Given a worker and a beat with a 1-second entry
    project.worker()
    project.beat()
    # When a few seconds pass
    wait_for(lambda: len(project.lines("tick")) >= 5, 30, "five ticks")
    firings = tick_slots(project)
    # Then every second's slot ran once, in order, soon after its second began
    slots = [slot for slot, _ in firings]
    assert_each_slot_once(slots, 1.0, project)
    assert all(0 <= ran - slot.timestamp() < 3 for slot, ran in firings), firings


def test_sigusr1_dumps_every_thread_and_the_process_goes_on(project):
    # Given a worker and a beat, both running (Celery's worker: SIGUSR1 dumps the tracebacks)
    worker = project.worker()
    beat, beat_log = project.beat()
    wait_for(lambda: len(project.lines("tick")) >= 1, 30, "a tick")
    worker_log = project.root / "worker.log"
    for proc, log in ((worker, worker_log), (beat, beat_log)):
        # When it gets SIGUSR1
        proc.send_signal(signal.SIGUSR1)
        # Then its log shows where each thread is, and it keeps working
        wait_for(lambda log=log: "most recent call first" in log.read_text(), 10, "a stack dump")
        assert proc.poll() is None, project.logs()
    fired = len(project.lines("tick"))
    wait_for(lambda: len(project.lines("tick")) > fired, 10, "a tick after the dumps")


def test_workflow_entry_runs_whole(project):
    # Given a chord as a periodic entry
    project.env["ENTRIES"] = "workflow"
    project.worker()
    project.beat()
    # When it has fired a few times
    wait_for(lambda: len(project.lines("total")) >= 3, 40, "three chord bodies")
    # Then each firing ran its whole header and the body got every header result
    assert {line[1] for line in project.lines("total")} == {"6"}, project.logs()


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose tables land in a schema of their own, dropped afterwards."""
    require_service("PostgreSQL", POSTGRES_URL)
    schema = f"beat_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def make(self, postgres_schema):
        made = []

        def make():
            made.append(stores.create(postgres_schema))
            return made[-1]

        yield make
        for store in made:
            store.close()


@pytest.mark.parametrize("kind", ["file", "postgresql"])
def test_restart_keeps_last_run_times(project, kind, request):
    # Given a beat with a 4-second entry that has fired and recorded it, then stopped cleanly
    every = 4.0
    project.env["EVERY"] = str(every)
    if kind == "file":
        where, flags = str(project.root / "beat.json"), ("-s", str(project.root / "beat.json"))
    else:
        where = request.getfixturevalue("postgres_schema")
        flags = ("--store", where)
    project.worker()
    first, _ = project.start("beat", "beat", "-l", "INFO", *flags)
    wait_for(lambda: len(project.lines("tick")) >= 1, 30, "the first tick")
    project.stop(first)
    store = stores.create(where)
    last = store.load()["tick"].timestamp()
    store.close()
    # When it stays down over at least one slot, and restarts early in a later slot
    wait_for(
        lambda: time.time() > last + 2 * every and (time.time() % every) < 1.0,
        4 * every,
        "a missed slot and the start of the next",
    )
    spawned = time.time()
    project.start("beat-again", "beat", "-l", "INFO", *flags)
    wait_for(lambda: len(project.lines("tick")) >= 3, 30, "two ticks after the restart")
    # Then it fires the slot it restarted in at once (it knows a slot was missed) and goes on
    # from there, and no slot ran twice
    slots = [slot for slot, _ in tick_slots(project)]
    restart_slot = datetime.fromtimestamp(spawned // every * every, UTC)
    assert len(set(slots)) == len(slots), slots
    assert slots[0].timestamp() <= last
    assert slots[1:3] == [restart_slot, restart_slot + timedelta(seconds=every)], (
        slots,
        project.logs(),
    )


def test_two_beats_fire_each_slot_once(project):
    # Given a worker and two beats on the same broker and result store
    project.worker()
    _, log_a = project.beat("beat-a")
    _, log_b = project.beat("beat-b")
    # When several slots pass
    wait_for(lambda: len(project.lines("tick")) >= 6, 30, "six ticks")
    # Then each slot was sent once, by a single leader
    assert_each_slot_once([slot for slot, _ in tick_slots(project)], 1.0, project)
    leaders = [log for log in (log_a, log_b) if "is now the leader" in log.read_text()]
    assert len(leaders) == 1, project.logs()


def test_killing_the_leader_hands_over(project):
    # Given two beats with a 2-second lease, one of them leading
    project.env["LEASE_TTL"] = "2"
    project.worker()
    beats = [project.beat("beat-a"), project.beat("beat-b")]
    wait_for(lambda: len(project.lines("tick")) >= 3, 30, "three ticks")
    (leader, _), (_, follower_log) = sorted(
        beats, key=lambda b: "is now the leader" not in b[1].read_text()
    )
    # When the leader is killed without a chance to release the lease
    leader.send_signal(signal.SIGKILL)
    leader.wait(5)
    killed = time.time()
    before = len(project.lines("tick"))
    # Then the follower takes over within a few seconds and fires every later slot once
    wait_for(lambda: "is now the leader" in follower_log.read_text(), 15, "the follower to lead")
    wait_for(lambda: len(project.lines("tick")) >= before + 3, 20, "three ticks after the kill")
    firings = tick_slots(project)
    slots = [slot for slot, _ in firings]
    assert len(set(slots)) == len(slots), (slots, project.logs())
    after = [ran for _, ran in firings[before:]]
    assert after[0] - killed < 2 * 2 + 2, (after, killed)  # TTL + a retry + a margin
    assert_each_slot_once([slot for slot, ran in firings if ran > after[0]], 1.0, project)
