"""``canvas.contrib.pytest``: Celery's fixtures, run by pytest itself on a small test file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.workers import ROOT

TESTS = """
import pytest

pytest_plugins = ("canvas.contrib.pytest",)


@pytest.fixture(scope="session")
def celery_config():
    return {"task_default_queue": "from-celery-config"}


def test_app_and_worker(celery_app, celery_worker):
    @celery_app.task
    def mul(x, y):
        return x * y

    celery_worker.reload()
    assert mul.delay(4, 4).get(timeout=10) == 16
    assert celery_app.conf.task_default_queue == "from-celery-config"


def test_canvas_names_are_the_same_fixtures(canvas_app, celery_app):
    assert canvas_app is celery_app


@pytest.mark.celery(result_expires=60)
def test_marker_settings(celery_app):
    assert celery_app.conf.result_expires == 60


def test_session_worker(celery_session_app, celery_session_worker):
    @celery_session_app.task
    def add(x, y):
        return x + y

    assert add.delay(1, 2).get(timeout=10) == 3
"""


def test_the_plugin_gives_celerys_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_project.py").write_text(TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "."],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout
