"""The test Django project (tests/django_project) in this process, on a database per test.

Django is set up once per process; ``use_database(url)`` then points the ``default`` connection
at a fresh database (an SQLite file, or a PostgreSQL schema), migrates it and gives it back
afterwards, so tests never share rows. ``project_env(url, queue)`` is the environment for the
project's worker, beat and ``manage.py`` processes. The import leaves ``DJANGO_SETTINGS_MODULE``
unset, so workers that other tests start are not Django workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.support.servers import POSTGRES_URL, redis_db
from tests.support.workers import ROOT

PROJECT = ROOT / "tests" / "django_project"
#: the Redis database the project's broker uses (other tests use 0 and a few more)
BROKER_URL = redis_db(9)


def setup() -> Any:
    """Set Django up with the project's settings (once); the project's canvas app."""
    import django
    from django.conf import settings

    if not settings.configured:
        if str(PROJECT) not in sys.path:
            sys.path.insert(0, str(PROJECT))
        had = os.environ.get("DJANGO_SETTINGS_MODULE")
        os.environ["DJANGO_SETTINGS_MODULE"] = "canvasproj.settings"
        try:
            import canvasproj  # noqa: F401 - its celery.py reads (and so loads) the settings

            assert settings.configured
        finally:  # our Django is set up now; workers other tests start must not be Django's
            if had is None:
                os.environ.pop("DJANGO_SETTINGS_MODULE", None)
            else:
                os.environ["DJANGO_SETTINGS_MODULE"] = had
        django.setup()
    from canvasproj.celery import app

    return app


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'project.sqlite3'}"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL of the test PostgreSQL database whose tables land in a schema of their own."""
    schema = f"dj_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def project_env(db_url: str, queue: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "canvasproj.settings",
        "CANVAS_DJANGO_DB": db_url,
        "CANVAS_DJANGO_BROKER": BROKER_URL,
        "CANVAS_DJANGO_QUEUE": queue,
    }


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``python manage.py ...`` in the project; its output, or a failure that shows it."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


@contextmanager
def use_database(db_url: str, queue: str = "canvasproj", migrate: bool = True) -> Iterator[Any]:
    """Point this process's Django and canvas app at ``db_url`` (migrated) for a test."""
    app = setup()
    from canvasproj.settings import database
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    if hasattr(connections._connections, "default"):
        del connections["default"]
    connections.settings["default"] = connections.configure_settings({"default": database(db_url)})[
        "default"
    ]
    app.close()
    app.conf.broker_url = BROKER_URL
    app.conf.task_default_queue = queue
    try:
        if migrate:
            call_command("migrate", verbosity=0, interactive=False)
        yield app
    finally:
        app.close()
        connections.close_all()
