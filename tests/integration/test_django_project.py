"""The Django app end to end: tests/django_project with real worker and beat processes.

Each test runs on SQLite and on PostgreSQL (a schema of the test database of its own), after a
real ``manage.py migrate``. Beat runs as ``canvas beat -S
django_celery_beat.schedulers:DatabaseScheduler``, started before the admin adds its entries,
so what it fires had to reach it while it ran. The admin is driven with Django's test client in
this process, on the same database. Waits are on conditions with deadlines.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from canvas import chord, states
from canvas.beat.scheduler import slot_task_id
from canvas.contrib.django.store import DjangoTables
from tests.support.django_site import (
    BROKER_URL,
    PROJECT,
    manage,
    postgres_schema,
    project_env,
    sqlite_url,
    use_database,
)
from tests.support.servers import POSTGRES_URL, require_service
from tests.support.workers import CANVAS, stop_or_explain, wait_for

pytestmark = pytest.mark.integration

SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"  # the alias must work
LEASE = "beat:canvasproj"


@dataclass
class Site:
    """The project on one database: its environment, this process's app, its processes."""

    db: str
    queue: str
    env: dict[str, str]
    app: Any
    root: Path
    procs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def beat(self, name: str = "beat") -> Path:
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*CANVAS, "-A", "canvasproj", "beat", "-l", "INFO", "-S", SCHEDULER],
                cwd=PROJECT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append((proc, log))
        return log

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for _, log in self.procs)

    def admin(self) -> Any:
        from django.contrib.auth.models import User
        from django.test import Client

        user = User.objects.filter(username="staff").first() or User.objects.create_superuser(
            "staff", "staff@example.com", "x"
        )
        client = Client()
        client.force_login(user)
        return client


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: Any, tmp_path: Path, unique: str) -> Iterator[Site]:
    require_service("Redis", BROKER_URL)
    with ExitStack() as stack:
        if request.param == "postgresql":
            require_service("PostgreSQL", POSTGRES_URL)
            db = stack.enter_context(postgres_schema())
        else:
            db = sqlite_url(tmp_path)
        queue = f"dj-{unique}"
        env = project_env(db, queue)
        manage(env, "migrate", "--no-input")
        app = stack.enter_context(use_database(db, queue, migrate=False))
        site = Site(db, queue, env, app, tmp_path)
        yield site
        stop_or_explain(site.procs)


def admin_add(client: Any, model: str, **data: Any) -> None:
    """Save a new row through the admin's add form; fail with the form's errors if it refuses."""
    response = client.post(f"/admin/canvas_django/{model}/add/", data)
    assert response.status_code == 302, response.content.decode()[-3000:]


def wait_leading(log: Path, timeout: float = 30) -> None:
    wait_for(lambda: "is now the leader" in log.read_text(), timeout, "beat to lead")


def results(**filters: Any) -> list[Any]:
    from canvas.contrib.django.models import TaskResult

    return list(TaskResult.objects.filter(**filters))


# -- beat and the admin ------------------------------------------------------------------------
def test_admin_entries_reach_a_running_beat(site: Site, start_worker: Any) -> None:
    from canvasproj.celery import app

    from canvas.contrib.django.models import (
        GroupResult,
        IntervalSchedule,
        PeriodicTask,
        Workflow,
        WorkflowNode,
    )

    # Given a worker, and beat with the database scheduler, already running and leading
    start_worker("canvasproj", "-Q", site.queue, "-c", "2", env=site.env, cwd=PROJECT)
    wait_leading(site.beat())
    client = site.admin()
    # When staff add an interval, a periodic task and a periodic workflow in the admin
    admin_add(client, "intervalschedule", every=2, period="seconds")
    every_2s = IntervalSchedule.objects.get(every=2, period="seconds")
    added = time.time()
    admin_add(
        client,
        "periodictask",
        name="seven",
        task="blog.tasks.num",
        enabled="on",
        interval=every_2s.pk,
        args="[7]",
        kwargs="{}",
        headers="{}",
    )
    blog = app.tasks
    workflow = chord(
        [blog["blog.tasks.num"].si(n) for n in (1, 2, 3)], blog["blog.tasks.total"].s()
    )
    admin_add(
        client,
        "periodictask",
        name="sum",
        enabled="on",
        interval=every_2s.pk,
        workflow=json.dumps(workflow.to_dict()),
        args="[]",
        kwargs="{}",
        headers="{}",
    )
    # Then the task fires within beat's loop interval (5 s) and one interval, and keeps firing
    first = wait_for(
        lambda: results(periodic_task_name="seven", status=states.SUCCESS), 30, "seven to run"
    )
    assert first[0].date_created.timestamp() - added < 5 + 2 + 3, site.logs()
    assert first[0].result == "7" and first[0].task_name == "blog.tasks.num"
    assert first[0].task_args == "(7,)" and first[0].worker
    wait_for(lambda: len(results(periodic_task_name="seven")) >= 3, 30, "three runs of seven")
    # and each firing carries the id beat derives from its slot
    for row in results(periodic_task_name="seven"):
        slot = datetime.fromtimestamp(row.date_created.timestamp() // 2 * 2, UTC)
        near = [slot + timedelta(seconds=k) for k in (-4, -2, 0)]
        assert row.task_id in {slot_task_id(LEASE, "seven", s) for s in near}, site.logs()
    # and every run of the workflow is one workflow: its header, its join and its body
    bodies = wait_for(
        lambda: results(task_name="blog.tasks.total", status=states.SUCCESS), 30, "a chord body"
    )
    assert {b.result for b in bodies} == {"6"}
    body = bodies[0]
    assert Workflow.objects.filter(id=body.workflow_id).exists()
    members = results(workflow_id=body.workflow_id)
    assert sorted(m.task_name for m in members if m.task_name) == [
        "blog.tasks.num",
        "blog.tasks.num",
        "blog.tasks.num",
        "blog.tasks.total",
    ]
    assert WorkflowNode.objects.filter(workflow_id=body.workflow_id).count() >= 4
    assert GroupResult.objects.filter(workflow_id=body.workflow_id).count() == 1
    row = PeriodicTask.objects.get(name="sum")
    assert row.total_run_count >= 1 and row.last_run_at is not None
    # and the results admin lists the runs, filters them, finds one by id, draws the workflow
    listed = client.get("/admin/canvas_django/taskresult/", {"periodic_task_name": "seven"})
    assert listed.status_code == 200
    assert all(r.task_id in listed.content.decode() for r in results(periodic_task_name="seven"))
    found = client.get("/admin/canvas_django/taskresult/", {"q": first[0].task_id})
    assert found.content.decode().count(first[0].task_id) >= 1
    assert "0 task results" not in found.content.decode()
    page = client.get(f"/admin/canvas_django/workflow/{body.workflow_id}/change/").content.decode()
    assert "<svg" in page and "total" in page and "SUCCESS" in page
    tasks_page = client.get("/admin/canvas_django/periodictask/").content.decode()
    assert "seven" in tasks_page and "next run" in tasks_page.lower()


def test_disabling_in_the_admin_stops_a_running_beat(site: Site, start_worker: Any) -> None:
    from canvas.contrib.django.models import IntervalSchedule, PeriodicTask

    # Given an entry firing every second
    start_worker("canvasproj", "-Q", site.queue, env=site.env, cwd=PROJECT)
    PeriodicTask.objects.create(
        name="tick",
        task="blog.tasks.num",
        args="[1]",
        interval=IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS),
    )
    log = site.beat()
    wait_leading(log)
    wait_for(lambda: len(results(periodic_task_name="tick")) >= 2, 30, "two ticks")
    # When staff disable it with the admin's action
    row = PeriodicTask.objects.get(name="tick")
    reloads = log.read_text().count("the periodic tasks changed")
    response = site.admin().post(
        "/admin/canvas_django/periodictask/",
        {"action": "disable_tasks", "_selected_action": [row.pk]},
    )
    assert response.status_code == 302
    # Then the running beat reloads within its loop interval and sends it no more: while a
    # marker entry added afterwards fires twice, the disabled one's count does not move
    wait_for(lambda: log.read_text().count("the periodic tasks changed") > reloads, 15, "a reload")
    fired = PeriodicTask.objects.get(name="tick").total_run_count
    PeriodicTask.objects.create(
        name="marker", task="blog.tasks.num", args="[2]", interval=row.interval
    )
    wait_for(lambda: len(results(periodic_task_name="marker")) >= 2, 30, "two markers")
    assert PeriodicTask.objects.get(name="tick").total_run_count == fired, site.logs()
    assert not PeriodicTask.objects.get(name="tick").enabled


def test_two_beats_fire_each_slot_once(site: Site, start_worker: Any) -> None:
    from canvas.contrib.django.models import IntervalSchedule, PeriodicTask

    # Given two beats with the database scheduler on one database, and a 1-second entry
    start_worker("canvasproj", "-Q", site.queue, env=site.env, cwd=PROJECT)
    PeriodicTask.objects.create(
        name="tick",
        task="blog.tasks.num",
        args="[1]",
        interval=IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS),
    )
    logs = [site.beat("beat-a"), site.beat("beat-b")]
    # When several slots pass
    wait_for(lambda: len(results(periodic_task_name="tick")) >= 5, 40, "five ticks")
    leaders = sum("is now the leader" in log.read_text() for log in logs)
    stop_or_explain(site.procs)
    # Then one beat led, and every firing was a slot of its own: as many sends as task ids
    # (the other may take over while the leader stops: it finds the slot claimed)
    assert leaders == 1, site.logs()

    def sends_match_ids() -> bool:
        fired = PeriodicTask.objects.get(name="tick").total_run_count
        return fired == len(results(periodic_task_name="tick"))

    wait_for(sends_match_ids, 20, f"one task id per send\n{site.logs()}")


# -- delay_on_commit, run now, failures ----------------------------------------------------------
def test_delay_on_commit_sends_only_what_commits(site: Site, start_worker: Any) -> None:
    from blog.models import Article
    from blog.tasks import expand_abbreviations, num
    from django.db import transaction

    start_worker("canvasproj", "-Q", site.queue, "-P", "solo", env=site.env, cwd=PROJECT)
    # Given an article saved and a task to expand it asked for in one transaction that commits
    with transaction.atomic():
        kept = Article.objects.create(title="kept", body="MyCorp news")
        sent = expand_abbreviations.delay_on_commit(kept.id)
    # and the same in a transaction that rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        lost = Article.objects.create(title="lost", body="MyCorp news")
        unsent = expand_abbreviations.delay_on_commit(lost.id)
        raise RuntimeError("roll back")
    # When the worker has run a task sent after both (one process, in order)
    assert num.delay(1).get(timeout=30) == 1
    # Then the committed one ran on the committed row, and the other was never sent
    assert sent.get(timeout=30) == "My Corporation news"
    assert Article.objects.get(id=kept.id).body == "My Corporation news"
    assert unsent.state == states.PENDING
    assert results(task_id=unsent.id) == []


def test_run_now_and_failures_in_the_admin(site: Site, start_worker: Any) -> None:
    from blog.tasks import fail

    from canvas.contrib.django.models import ClockedSchedule, PeriodicTask

    start_worker("canvasproj", "-Q", site.queue, env=site.env, cwd=PROJECT)
    client = site.admin()
    # Given a one-off entry clocked a year ahead, run now from the admin
    later = ClockedSchedule.objects.create(clocked_time=datetime.now(UTC) + timedelta(days=365))
    row = PeriodicTask.objects.create(
        name="later", task="blog.tasks.num", args="[5]", clocked=later, one_off=True
    )
    client.post(
        "/admin/canvas_django/periodictask/", {"action": "run_tasks", "_selected_action": [row.pk]}
    )
    ran = wait_for(lambda: results(periodic_task_name="later"), 30, "the run-now task")
    wait_for(lambda: results(periodic_task_name="later", status=states.SUCCESS), 30, "success")
    assert PeriodicTask.objects.get(pk=row.pk).total_run_count == 0  # not a scheduled run
    assert ran[0].task_args == "(5,)"
    # And a failure shows its traceback, and the state filter finds it
    failed = fail.delay("no MyCorp here")
    with pytest.raises(ValueError, match="no MyCorp here"):
        failed.get(timeout=30)
    page = client.get(f"/admin/canvas_django/taskresult/{results(task_id=failed.id)[0].pk}/change/")
    assert "Traceback" in page.content.decode() and "no MyCorp here" in page.content.decode()
    listed = client.get("/admin/canvas_django/taskresult/", {"status__exact": "FAILURE"})
    assert failed.id in listed.content.decode()


def test_migrations_make_the_tables_the_store_uses(site: Site) -> None:
    # Given the tables manage.py migrate made, then every table of the store's layout is there
    # with the same columns, nullability and unique keys (the upserts' conflict targets)
    manage(site.env, "makemigrations", "--check", "--dry-run")  # the models match them too
    engine = sa.create_engine(site.app.backend._url)
    inspector = sa.inspect(engine)
    for table in DjangoTables("canvas_django").expiring:
        made = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        assert made == {c.name: c.nullable for c in table.columns}, table.name
        unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
        indexes = inspector.get_indexes(table.name, include_auto_indexes=True)
        unique |= {tuple(i["column_names"]) for i in indexes if i["unique"]}
        unique.add(tuple(inspector.get_pk_constraint(table.name)["constrained_columns"]))
        wanted = {
            tuple(c.name for c in u.columns)
            for u in table.constraints
            if isinstance(u, sa.UniqueConstraint | sa.PrimaryKeyConstraint)
        }
        wanted |= {(c.name,) for c in table.columns if c.unique}
        assert wanted <= unique, table.name
    engine.dispose()


def test_a_pool_process_drops_the_parents_connection_without_closing_it(tmp_path: Path) -> None:
    # Given this process's Django connection to PostgreSQL, open
    require_service("PostgreSQL", POSTGRES_URL)
    with postgres_schema() as db, use_database(db, migrate=False):
        from django.db import connection

        from canvas.contrib.django.fixup import _forget_inherited_connections

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        # When a forked pool process drops what it inherited
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(target=_forget_inherited_connections)
        child.start()
        child.join(30)
        assert child.exitcode == 0
        # Then the parent's session on the server is the same one, and still works
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] == backend
