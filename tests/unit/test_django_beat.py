"""The Django app's periodic tasks in this process: models, entries, DatabaseScheduler, admin forms.

The test project's models on an SQLite file (migrated once for the module, emptied after each
test); beat's result store is in memory and tasks run eagerly, so a firing is a call recorded
here. ``tick(now)`` takes the time, so slots are exact; rows count from their real
``date_changed``, so times are taken relative to the clock.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from canvas import Canvas, chord
from canvas.beat.scheduler import load_scheduler, slot_task_id
from tests.support.django_site import sqlite_url, use_database
from tests.support.workers import CANVAS, ROOT


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with use_database(sqlite_url(tmp_path_factory.mktemp("django")), queue="unit") as app:
        yield app


@pytest.fixture
def models(project: Any) -> Iterator[Any]:
    from canvas.contrib.django import models

    yield models
    for model in (
        models.PeriodicTask,
        models.IntervalSchedule,
        models.CrontabSchedule,
        models.SolarSchedule,
        models.ClockedSchedule,
        models.PeriodicTasks,
    ):
        model.objects.all().delete()


@pytest.fixture
def app() -> Canvas:
    app = Canvas("dbbeat", backend="memory://", task_always_eager=True)
    app.calls = []

    @app.task(bind=True, name="proj.add")
    def add(self, x, y):
        app.calls.append(("add", self.request.id, x + y))
        return x + y

    @app.task(name="proj.tsum")
    def tsum(numbers):
        app.calls.append(("tsum", None, sum(numbers)))
        return sum(numbers)

    return app


def now() -> datetime:
    return datetime.now(UTC)


def every(models: Any, seconds: int) -> Any:
    return models.IntervalSchedule.objects.create(every=seconds, period="seconds")


def scheduler(app: Canvas, owner: str = "a") -> Any:
    from canvas.contrib.django.schedulers import DatabaseScheduler

    return DatabaseScheduler(app, owner=owner)


def slot_after(seconds: int, t: datetime) -> datetime:
    stamp = (t.timestamp() // seconds + 1) * seconds
    return datetime.fromtimestamp(stamp, UTC)


# -- the models ----------------------------------------------------------------------------------
def test_names_and_constants_are_django_celery_beats(models):
    assert models.IntervalSchedule.SECONDS == "seconds" and models.DAYS == "days"
    assert {n for n, _ in models.SOLAR_SCHEDULES} == {
        "dawn_astronomical",
        "dawn_civil",
        "dawn_nautical",
        "dusk_astronomical",
        "dusk_civil",
        "dusk_nautical",
        "solar_noon",
        "sunrise",
        "sunset",
    }
    fields = {f.name for f in models.PeriodicTask._meta.get_fields()}
    assert {
        "name",
        "task",
        "interval",
        "crontab",
        "solar",
        "clocked",
        "args",
        "kwargs",
        "queue",
        "exchange",
        "routing_key",
        "headers",
        "priority",
        "expires",
        "expire_seconds",
        "one_off",
        "start_time",
        "enabled",
        "last_run_at",
        "total_run_count",
        "date_changed",
        "description",
    } <= fields
    assert str(every(models, 10)) == "every 10 seconds"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Set one schedule"),
        ({"interval": True, "crontab": True}, "only one schedule"),
        ({"clocked": True}, "one-off"),
        ({"interval": True, "args": "[1,"}, "Not valid JSON"),
        ({"interval": True, "kwargs": "[1]"}, "JSON object"),
    ],
)
def test_saving_a_periodic_task_checks_it(models, fields, message):
    from django.core.exceptions import ValidationError

    if fields.pop("interval", False):
        fields["interval"] = every(models, 5)
    if fields.pop("crontab", False):
        fields["crontab"] = models.CrontabSchedule.objects.create(minute="0")
    if fields.pop("clocked", False):
        fields["clocked"] = models.ClockedSchedule.objects.create(clocked_time=now())
    with pytest.raises(ValidationError, match=message):
        models.PeriodicTask.objects.create(name="bad", task="proj.add", **fields)


def test_changes_move_the_change_stamp(models):
    track = models.PeriodicTasks
    assert track.last_change() is None
    row = models.PeriodicTask.objects.create(name="a", task="proj.add", interval=every(models, 5))
    first = track.last_change()
    assert first is not None
    row.interval.every = 6
    row.interval.save()  # a schedule's change counts too
    second = track.last_change()
    row.delete()
    assert first < second < track.last_change()


def test_crontab_validates_each_field_and_zone(models):
    from django.core.exceptions import ValidationError

    bad = models.CrontabSchedule(minute="61", hour="*/3", timezone="Mars/Olympus")
    with pytest.raises(ValidationError) as caught:
        bad.full_clean()
    assert set(caught.value.message_dict) == {"minute", "timezone"}
    good = models.CrontabSchedule(
        minute="30", hour="7", day_of_week="mon-fri", timezone="Asia/Tokyo"
    )
    good.full_clean()
    assert good.schedule.next_after(datetime(2024, 5, 6, tzinfo=UTC)) == datetime(
        2024, 5, 6, 22, 30, tzinfo=UTC
    )


# -- entries -------------------------------------------------------------------------------------
def test_a_row_becomes_an_entry_with_its_options(models, app):
    from canvas.contrib.django.entries import entry_from_row

    ends = now() + timedelta(days=1)
    row = models.PeriodicTask.objects.create(
        name="nightly",
        task="proj.add",
        interval=every(models, 60),
        args="[1, 2]",
        kwargs="{}",
        queue="low",
        priority=3,
        expires=ends,
        headers='{"tenant": "a"}',
    )
    entry = entry_from_row(row, app)
    assert (entry.task, entry.args, entry.kwargs) == ("proj.add", (1, 2), {})
    assert entry.options == {
        "queue": "low",
        "priority": 3,
        "expires": ends,
        "headers": {"tenant": "a", "periodic_task_name": "nightly"},
    }


def test_clock_start(models):
    from canvas.contrib.django.entries import clock_start, next_run

    row = models.PeriodicTask.objects.create(name="a", task="proj.add", interval=every(models, 10))
    # a new row counts from when it was saved: its first run is the next slot after that
    assert clock_start(row) == row.date_changed
    assert next_run(row) == slot_after(10, row.date_changed)
    # a start time in the future wins; a last run wins over the save time
    row.start_time = now() + timedelta(hours=1)
    assert next_run(row) >= row.start_time
    row.start_time, row.last_run_at = None, now() - timedelta(hours=1)
    assert clock_start(row) == row.last_run_at
    # a clocked time already past when the row was saved still fires (once)
    past = models.ClockedSchedule.objects.create(clocked_time=now() - timedelta(minutes=5))
    once = models.PeriodicTask.objects.create(
        name="once", task="proj.add", clocked=past, one_off=True
    )
    assert clock_start(once) < past.clocked_time
    assert next_run(once) == past.clocked_time


def test_check_workflow_names_what_is_wrong(app):
    from canvas.contrib.django.entries import check_workflow

    good = chord([app.tasks["proj.add"].s(i, i) for i in range(3)], app.tasks["proj.tsum"].s())
    assert check_workflow(good.to_dict(), app) == good
    with pytest.raises(ValueError, match="JSON object"):
        check_workflow([1, 2], app)
    with pytest.raises(ValueError, match="Unknown subtask_type"):
        check_workflow({"task": "x", "subtask_type": "spiral"}, app)
    with pytest.raises(ValueError, match="did you mean 'proj.add'"):
        check_workflow({"task": "proj.ad", "args": [1, 2]}, app)


def test_setting_entries_become_rows(models, app):
    from canvas.contrib.django.entries import store_setting_entries
    from canvas.schedules import crontab, schedule

    app.conf.beat_schedule = {
        "plain": {"task": "proj.add", "schedule": 30.0, "args": (1, 2)},
        "signature": {"task": app.tasks["proj.add"].s(3, 4), "schedule": timedelta(hours=2)},
        "cron": {"task": "proj.add", "schedule": crontab(minute=0, hour=7), "args": (0, 0)},
        "flow": {
            "task": chord([app.tasks["proj.add"].s(1, 1)], app.tasks["proj.tsum"].s()),
            "schedule": 60,
        },
        "relative": {"task": "proj.add", "schedule": schedule(60, relative=True)},
    }
    kept = store_setting_entries(app)
    rows = {row.name: row for row in models.PeriodicTask.objects.all()}
    assert set(rows) == {"plain", "signature", "cron", "flow"} and set(kept) == {"relative"}
    assert (rows["plain"].interval.every, rows["plain"].args) == (30, "[1, 2]")
    assert (rows["signature"].task, rows["signature"].args) == ("proj.add", "[3, 4]")
    assert (rows["signature"].interval.every, rows["signature"].interval.period) == (2, "hours")
    assert (rows["cron"].crontab.minute, rows["cron"].crontab.hour) == ("0", "7")
    assert rows["flow"].workflow["subtask_type"] == "chord"
    # Storing again updates in place, keeping what beat recorded
    models.PeriodicTask.objects.filter(name="plain").update(total_run_count=4)
    store_setting_entries(app)
    assert models.PeriodicTask.objects.get(name="plain").total_run_count == 4


# -- DatabaseScheduler -----------------------------------------------------------------------------
def test_the_alias_names_the_database_scheduler(project):
    from canvas.contrib.django.schedulers import DatabaseScheduler

    assert load_scheduler("django_celery_beat.schedulers:DatabaseScheduler") is DatabaseScheduler


def test_a_new_row_fires_at_its_next_slot_and_is_counted(models, app):
    row = models.PeriodicTask.objects.create(
        name="sum", task="proj.add", interval=every(models, 10), args="[2, 3]"
    )
    beat = scheduler(app)
    slot = slot_after(10, row.date_changed)
    # Before the slot nothing fires; the wait says when to look again
    assert 0 < beat.tick(slot - timedelta(seconds=1)) <= 5
    assert app.calls == []
    # At the slot it fires once, with the id derived from the slot, and the row records it
    beat.tick(slot)
    beat.tick(slot + timedelta(seconds=1))
    assert app.calls == [("add", slot_task_id("beat:dbbeat", "sum", slot), 5)]
    row.refresh_from_db()
    assert (row.total_run_count, row.last_run_at) == (1, slot)


def test_changes_reach_a_running_scheduler(models, app):
    beat = scheduler(app)
    beat.tick(now())
    assert beat.entries == {}
    # A row added while it runs is seen at the next tick
    row = models.PeriodicTask.objects.create(
        name="late", task="proj.add", interval=every(models, 10), args="[1, 1]"
    )
    slot = slot_after(10, row.date_changed)
    beat.tick(slot)
    assert [c[2] for c in app.calls] == [2]
    # Disabled, it fires no more; enabled again (saved), its clock starts anew
    row.enabled = False
    row.save()
    beat.tick(slot + timedelta(seconds=30))
    assert len(app.calls) == 1 and "late" not in beat.entries
    row.enabled = True
    row.save()
    again = slot_after(10, max(row.date_changed, slot))  # (a slot fired once stays claimed)
    beat.tick(again - timedelta(seconds=1))
    assert len(app.calls) == 1  # nothing caught up: it counts from the save
    beat.tick(again)
    assert len(app.calls) == 2


def test_one_off_expired_and_clocked_rows(models, app):
    t = now()
    models.PeriodicTask.objects.create(
        name="once", task="proj.add", interval=every(models, 1), args="[1, 0]", one_off=True
    )
    models.PeriodicTask.objects.create(
        name="over",
        task="proj.add",
        interval=every(models, 1),
        args="[2, 0]",
        expires=t + timedelta(seconds=2),
    )
    clock = models.ClockedSchedule.objects.create(clocked_time=t - timedelta(seconds=30))
    models.PeriodicTask.objects.create(
        name="alarm", task="proj.add", clocked=clock, one_off=True, args="[3, 0]"
    )
    beat = scheduler(app)
    for k in range(1, 6):
        beat.tick(t + timedelta(seconds=k))
    by_value = sorted(c[2] for c in app.calls)
    # the one-off ran once, the clocked one once (its time had passed), the expiring one while
    # it could; the one-off and the expired entries are disabled now
    assert by_value.count(1) == 1 and by_value.count(3) == 1
    assert 1 <= by_value.count(2) <= 3
    enabled = dict(models.PeriodicTask.objects.values_list("name", "enabled"))
    assert enabled == {"once": False, "over": False, "alarm": False}


def test_a_periodic_workflow_runs_whole(models, app):
    flow = chord([app.tasks["proj.add"].s(i, i) for i in range(3)], app.tasks["proj.tsum"].s())
    row = models.PeriodicTask.objects.create(
        name="flow", task="flow", interval=every(models, 10), workflow=flow.to_dict()
    )
    scheduler(app).tick(slot_after(10, row.date_changed))
    assert ("tsum", None, 6) in app.calls
    assert sorted(c[2] for c in app.calls if c[0] == "add") == [0, 2, 4]


def test_two_schedulers_fire_each_slot_once(models, app):
    row = models.PeriodicTask.objects.create(
        name="sum", task="proj.add", interval=every(models, 1), args="[1, 1]"
    )
    a, b = scheduler(app, "a"), scheduler(app, "b")
    start = slot_after(1, row.date_changed)
    for k in range(4):
        for beat in (a, b):
            beat.tick(start + timedelta(seconds=k))
    assert len(app.calls) == 4 == len({c[1] for c in app.calls})


def test_without_django_the_alias_says_what_is_missing(tmp_path: Path):
    (tmp_path / "plain.py").write_text("from canvas import Canvas\napp = Canvas('plain')\n")
    done = subprocess.run(
        [*CANVAS, "-A", "plain", "beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}:{ROOT}", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot load it" in done.stderr and "DJANGO_SETTINGS_MODULE" in done.stderr


# -- the admin's form ------------------------------------------------------------------------------
@pytest.fixture
def client(models):
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.filter(username="staff").first() or User.objects.create_superuser(
        "staff", "staff@example.com", "x"
    )
    client = Client()
    client.force_login(user)
    return client


def add(client, models, **fields):
    data = {"name": "entry", "enabled": "on", "args": "[]", "kwargs": "{}", "headers": "{}"}
    data["interval"] = every(models, 5).pk
    data.update(fields)
    return client.post("/admin/canvas_django/periodictask/add/", data)


def test_the_form_names_an_unknown_task_and_suggests(client, models):
    page = add(client, models, task="blog.tasks.nun")
    assert page.status_code == 200
    assert "No registered task is named" in page.content.decode()
    assert "blog.tasks.num" in page.content.decode()
    assert not models.PeriodicTask.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "blog.tasks.num", "args": "[1,"}, "Not valid JSON"),
        ({"workflow": json.dumps({"task": "blog.tasks.nope"})}, "Unknown task"),
        ({"workflow": json.dumps([1])}, "JSON object"),
        ({}, "Name a registered task, or give a workflow"),
    ],
)
def test_the_form_refuses_what_beat_could_not_send(client, models, fields, message):
    page = add(client, models, **fields)
    assert page.status_code == 200 and message in page.content.decode()


def test_a_workflow_saved_in_the_admin_gets_its_label(client, models):
    workflow = {"task": "blog.tasks.total", "args": [[1, 2]], "subtask_type": None}
    assert add(client, models, workflow=json.dumps(workflow)).status_code == 302
    row = models.PeriodicTask.objects.get()
    assert row.task.startswith("blog.tasks.total(") and row.workflow["task"] == "blog.tasks.total"


# -- management commands -------------------------------------------------------------------------
_OLD_TABLES = {
    "intervalschedule": "id integer primary key, every integer, period varchar(24)",
    "crontabschedule": (
        "id integer primary key, minute varchar(240), hour varchar(96), day_of_week varchar(64),"
        " day_of_month varchar(124), month_of_year varchar(64), timezone varchar(63)"
    ),
    "solarschedule": "id integer primary key, event varchar(24), latitude real, longitude real",
    "clockedschedule": "id integer primary key, clocked_time datetime",
    "periodictask": (
        "id integer primary key, name varchar(200), task varchar(200), interval_id integer,"
        " crontab_id integer, solar_id integer, clocked_id integer, args text, kwargs text,"
        " queue varchar(200), exchange varchar(200), routing_key varchar(200), headers text,"
        " priority integer, expires datetime, expire_seconds integer, one_off bool,"
        " start_time datetime, enabled bool, last_run_at datetime, total_run_count integer,"
        " date_changed datetime, description text"
    ),
}


@pytest.fixture
def celery_beat_tables(models):
    """django-celery-beat's tables as a project moving from Celery still has them."""
    from django.db import connection

    with connection.cursor() as cursor:
        for name, columns in _OLD_TABLES.items():
            cursor.execute(f"CREATE TABLE django_celery_beat_{name} ({columns})")
        cursor.execute("INSERT INTO django_celery_beat_intervalschedule VALUES (1, 10, 'minutes')")
        cursor.execute(
            "INSERT INTO django_celery_beat_crontabschedule VALUES"
            " (1, '30', '7', 'mon-fri', '*', '*', 'Europe/Paris'),"
            " (2, '61', '*', '*', '*', '*', 'UTC')"
        )
        cursor.execute(
            "INSERT INTO django_celery_beat_solarschedule VALUES (1, 'sunset', 48.85, 2.35)"
        )
        cursor.execute(
            "INSERT INTO django_celery_beat_clockedschedule VALUES (1, '2031-01-01 09:00:00')"
        )
        task = "INSERT INTO django_celery_beat_periodictask (id, name, task, COLUMN, args, kwargs,"
        task += " headers, one_off, enabled, last_run_at, total_run_count, description)"
        task += " VALUES (?, ?, 'proj.add', 1, '[1, 2]', '{}', '{}', ?, 1, ?, ?, '')"
        rows = [
            ("interval_id", (1, "every ten", 0, "2030-05-06 07:08:09.000010", 7)),
            ("crontab_id", (2, "weekday mornings", 0, None, 0)),
            ("solar_id", (3, "at sunset", 0, None, 0)),
            ("clocked_id", (4, "new year", 1, None, 0)),
            ("crontab_id", (5, "unreadable", 0, None, 0)),
            ("interval_id", (6, "taken", 0, None, 0)),
        ]
        for column, values in rows:
            cursor.execute(task.replace("COLUMN", column).replace("?", "%s"), list(values))
        cursor.execute("UPDATE django_celery_beat_periodictask SET crontab_id = 1 WHERE id = 2")
        cursor.execute("UPDATE django_celery_beat_periodictask SET crontab_id = 2 WHERE id = 5")
    yield
    with connection.cursor() as cursor:
        for name in _OLD_TABLES:
            cursor.execute(f"DROP TABLE django_celery_beat_{name}")


def test_import_celery_beat_copies_the_schedule(models, celery_beat_tables):
    from django.core.management import call_command

    mine = models.PeriodicTask.objects.create(
        name="taken", task="proj.tsum", interval=every(models, 5)
    )
    out, err = io.StringIO(), io.StringIO()
    call_command("canvas_import_celery_beat", "--dry-run", stdout=out, stderr=err)
    assert "4 periodic task(s) imported, 2 skipped" in out.getvalue()
    assert models.PeriodicTask.objects.count() == 1  # a dry run writes nothing
    call_command("canvas_import_celery_beat", stdout=out, stderr=err)
    rows = {row.name: row for row in models.PeriodicTask.objects.all()}
    assert set(rows) == {"every ten", "weekday mornings", "at sunset", "new year", "taken"}
    assert rows["taken"].task == mine.task  # kept: canvas had it
    assert "unreadable" in err.getvalue() and "minute" in err.getvalue()
    ten = rows["every ten"]
    assert (ten.interval.every, ten.interval.period, ten.args) == (10, "minutes", "[1, 2]")
    assert ten.total_run_count == 7
    assert ten.last_run_at == datetime(2030, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    cron = rows["weekday mornings"].crontab
    assert (cron.minute, cron.hour, cron.day_of_week, cron.timezone) == (
        "30",
        "7",
        "mon-fri",
        "Europe/Paris",
    )
    assert str(rows["at sunset"].solar.latitude) == "48.850000"
    assert rows["new year"].one_off and rows["new year"].clocked.clocked_time.year == 2031


def test_cleanup_deletes_expired_rows(models, project):
    from django.core.management import call_command

    from canvas.contrib.django.store import DjangoStore

    store = DjangoStore("django-db://", {"expires": -1})  # everything it writes is expired
    store.store("gone", "SUCCESS", b"\x80")
    DjangoStore("django-db://").store("kept", "SUCCESS", b"\x80")
    out = io.StringIO()
    call_command("canvas_cleanup", stdout=out)
    assert "canvas_django_taskresult: 1 expired row(s) deleted" in out.getvalue()
    assert list(models.TaskResult.objects.values_list("task_id", flat=True)) == ["kept"]
    models.TaskResult.objects.all().delete()
    store.close()


def test_the_docs_examples_run(models):
    # Given the code examples of docs/django.md that stand alone, when they run on the project
    text = (ROOT / "docs" / "django.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    runnable = [
        b
        for b in blocks
        if ("objects.create(" in b or "objects.filter(" in b) and "on_commit" not in b
    ]  # (delay_on_commit needs a worker: tests/integration/test_django_project.py runs it)
    assert len(runnable) == 3
    for block in runnable:
        exec(compile(block, "docs/django.md", "exec"), {})
    # Then they made what they say
    made = {row.name: row for row in models.PeriodicTask.objects.all()}
    assert made["Expand abbreviations"].interval.every == 10
    assert made["Nightly totals"].workflow["subtask_type"] == "chord"
    assert made["Nightly totals"].crontab.timezone == "Europe/Paris"
