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


class Current:
    """Celery's ``current_app`` / ``current_task``: forwards to what is current at each use.

    The one stand-in object in canvas, kept because a Celery project imports these names at module
    level, before its app exists (``from celery import current_app``); reading an attribute asks
    ``resolve`` each time, so the answer follows the app (or the running task) of the moment.
    ``_get_current_object()`` gives the real object, as in Celery.
    """

    __slots__ = ("_name", "_resolve")
    _name: str
    _resolve: Callable[[], object]

    def __init__(self, resolve: Callable[[], object], name: str) -> None:
        object.__setattr__(self, "_resolve", resolve)
        object.__setattr__(self, "_name", name)

    def _get_current_object(self) -> object:
        return self._resolve()

    def __getattr__(self, key: str) -> object:
        return getattr(self._resolve(), key)

    def __setattr__(self, key: str, value: object) -> None:
        setattr(self._resolve(), key, value)

    def __call__(self, *args: object, **kwargs: object) -> object:
        target = self._resolve()
        if not callable(target):
            raise TypeError(f"{self._name} is {target!r}, which is not callable")
        return target(*args, **kwargs)

    def __bool__(self) -> bool:
        return bool(self._resolve())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Current):
            other = other._resolve()
        return bool(self._resolve() == other)

    def __hash__(self) -> int:
        return hash(self._resolve())

    def __repr__(self) -> str:
        return repr(self._resolve())


def current() -> Canvas | None:
    """The current app if one was made or set, without making the default one."""
    return _current
