"""The seed's Django layout: myproject/celery.py with backend='django-db', settings read with
namespace='CANVAS', tasks autodiscovered from INSTALLED_APPS when the app is finalized."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).parent / "django_proj"

SCRIPT = """
import django
from myproject import celery_app as app
django.setup()
app.finalize()
print(app.conf.task_acks_late, app.conf.task_default_queue, app.conf.task_track_started)
print(app.backend_url)
print("shop.tasks.expand_abbreviations" in app.tasks)
print(type(app.backend).__name__)
"""


def test_django_project_layout(tmp_path: Path) -> None:
    # Given the seed's Django project layout, when the app is loaded and finalized,
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "DJANGO_DB": str(tmp_path / "db.sqlite3")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    acks_late, backend_url, discovered, backend_type = done.stdout.splitlines()
    # then CANVAS_* settings apply, django-db is Django's database, and tasks were discovered.
    assert acks_late == "True django-queue True"
    assert backend_url == f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert discovered == "True"
    assert backend_type == "SQLBackend"
