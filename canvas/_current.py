"""The current app: the one global in canvas.

A signature or a result made without ``app=`` belongs to the current app: the last ``Canvas``
created with ``set_as_current=True`` (the default), else a ``Canvas("default")`` made on first
use. Everything else is passed explicitly. The model layer (signatures, primitives, results)
reads the current app from here, so it never imports ``canvas.app``; ``canvas.app`` tells this
module how to make the default app when it is imported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from canvas.app import Canvas

_current: Canvas | None = None
_make_default: Callable[[], Canvas] | None = None
_lock = threading.Lock()


def default_app() -> Canvas:
    """The app that signatures and results without an explicit app belong to (the last made)."""
    global _current
    with _lock:
        if _current is None:
            if _make_default is None:  # only while canvas.app itself is being imported
                raise RuntimeError("canvas.app is not imported yet: import canvas first.")
            _current = _make_default()
        return _current


def set_current(app: Canvas) -> None:
    """Make ``app`` the current app (``Canvas(..., set_as_current=True)`` calls this)."""
    global _current
    with _lock:
        _current = app


def set_default_factory(factory: Callable[[], Canvas]) -> None:
    """How to make the default app when none was created (set once, by ``canvas.app``)."""
    global _make_default
    _make_default = factory
