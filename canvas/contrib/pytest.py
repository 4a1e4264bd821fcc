"""A pytest plugin with Celery's fixtures: ``pytest_plugins = ("canvas.contrib.pytest",)``.

Fixtures are named ``canvas_*``; Celery's ``celery_*`` names are aliases of them, and a project
that overrides ``celery_config`` (or ``canvas_config``) in its conftest changes the app both
return. ``canvas_worker`` runs a real worker in the test process (``start_worker``) on the app's
transport: ``memory://`` unless the config names a broker.

========================  ==========================  =======================================
canvas name               Celery alias                what
========================  ==========================  =======================================
canvas_config             celery_config               settings of the test app (``{}``)
canvas_includes           celery_includes             modules the app imports
canvas_parameters         celery_parameters           keyword arguments of ``Canvas(...)``
canvas_worker_parameters  celery_worker_parameters    keyword arguments of ``start_worker``
canvas_app                celery_app                  an app for one test
canvas_worker             celery_worker               a worker for one test
canvas_session_app        celery_session_app          an app for the session
canvas_session_worker     celery_session_worker       a worker for the session
========================  ==========================  =======================================

``@pytest.mark.celery(**settings)`` adds settings for one test, as in Celery.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from canvas.app import Canvas
from canvas.contrib.testing.app import TestApp, setup_default_app
from canvas.contrib.testing.worker import TestWorkController, start_worker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "celery(**settings): settings of this test's canvas app")


def _make_app(
    config: Mapping[str, Any], includes: Sequence[str], parameters: Mapping[str, Any]
) -> Canvas:
    app = TestApp(config=config, **dict(parameters))
    for module in includes:
        importlib.import_module(module)
    return app


# -- what a project overrides (Celery's names first: the canvas_* fixtures read them) --------
@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def canvas_config(celery_config: Mapping[str, Any]) -> Mapping[str, Any]:
    return celery_config


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    return ()


@pytest.fixture(scope="session")
def canvas_includes(celery_includes: Sequence[str]) -> Sequence[str]:
    return celery_includes


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def canvas_parameters(celery_parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    return celery_parameters


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def canvas_worker_parameters(celery_worker_parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    return celery_worker_parameters


# -- apps and workers --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def canvas_session_app(
    canvas_config: Mapping[str, Any],
    canvas_includes: Sequence[str],
    canvas_parameters: Mapping[str, Any],
) -> Iterator[Canvas]:
    app = _make_app(canvas_config, canvas_includes, canvas_parameters)
    with setup_default_app(app):
        yield app
    app.close()


@pytest.fixture(scope="session")
def celery_session_app(canvas_session_app: Canvas) -> Canvas:
    return canvas_session_app


@pytest.fixture(scope="session")
def canvas_session_worker(
    canvas_session_app: Canvas, canvas_worker_parameters: Mapping[str, Any]
) -> Iterator[TestWorkController]:
    with start_worker(canvas_session_app, **dict(canvas_worker_parameters)) as worker:
        yield worker


@pytest.fixture(scope="session")
def celery_session_worker(canvas_session_worker: TestWorkController) -> TestWorkController:
    return canvas_session_worker


@pytest.fixture
def canvas_app(
    request: pytest.FixtureRequest,
    canvas_config: Mapping[str, Any],
    canvas_includes: Sequence[str],
    canvas_parameters: Mapping[str, Any],
) -> Iterator[Canvas]:
    marker = request.node.get_closest_marker("celery")
    config = {**canvas_config, **(marker.kwargs if marker else {})}
    app = _make_app(config, canvas_includes, canvas_parameters)
    with setup_default_app(app):
        yield app
    app.close()


@pytest.fixture
def celery_app(canvas_app: Canvas) -> Canvas:
    return canvas_app


@pytest.fixture
def canvas_worker(
    canvas_app: Canvas, canvas_worker_parameters: Mapping[str, Any]
) -> Iterator[TestWorkController]:
    with start_worker(canvas_app, **dict(canvas_worker_parameters)) as worker:
        yield worker


@pytest.fixture
def celery_worker(canvas_worker: TestWorkController) -> TestWorkController:
    return canvas_worker


__all__ = [
    "canvas_app",
    "canvas_config",
    "canvas_includes",
    "canvas_parameters",
    "canvas_session_app",
    "canvas_session_worker",
    "canvas_worker",
    "canvas_worker_parameters",
    "celery_app",
    "celery_config",
    "celery_includes",
    "celery_parameters",
    "celery_session_app",
    "celery_session_worker",
    "celery_worker",
    "celery_worker_parameters",
]
