"""``TestApp``: an app for tests, on the in-process transport and store (Celery's names)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from canvas import _current
from canvas.app import Canvas

#: the settings a test app starts from; a test's own config overrides them
DEFAULT_TEST_CONFIG: dict[str, Any] = {
    "broker_url": "memory://",
    "result_backend": "memory://",
    "worker_lease_seconds": 5.0,
    "task_default_queue": "testcanvas",
}


def TestApp(
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    set_as_current: bool = False,
    broker: str | None = None,
    backend: str | None = None,
    **kwargs: Any,
) -> Canvas:
    """An app whose messages and results never leave the process (unless ``config`` says)."""
    settings = {**DEFAULT_TEST_CONFIG, **dict(config or {})}
    if broker:
        settings["broker_url"] = broker
    if backend:
        settings["result_backend"] = backend
    return Canvas(name or "canvas.tests", set_as_current=set_as_current, **settings, **kwargs)


@contextmanager
def setup_default_app(app: Canvas) -> Iterator[Canvas]:
    """Make ``app`` the current app for the block, then restore the one before."""
    before = _current.current()
    app.set_current()
    try:
        yield app
    finally:
        if before is not None:
            before.set_current()


__all__ = ["DEFAULT_TEST_CONFIG", "TestApp", "setup_default_app"]
