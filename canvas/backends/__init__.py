"""Result stores, chosen by URL scheme.

``redis://``, ``rediss://`` – Redis (pub/sub wakes waiters, Lua scripts join workflows).
``sqlite:///path``, ``postgresql://...`` – SQL through SQLAlchemy (the embedded default is SQLite).
``memory://`` – in this process only: eager mode and unit tests.
A scheme not in the table may be a dotted ``module:Class`` path.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from canvas.backends.base import Backend, Fired, NodeRecord
from canvas.exceptions import ImproperlyConfigured

BACKEND_ALIASES: dict[str, str] = {
    "redis": "canvas.backends.redis:RedisBackend",
    "rediss": "canvas.backends.redis:RedisBackend",
    "sqlite": "canvas.backends.sql:SQLBackend",
    "postgresql": "canvas.backends.sql:SQLBackend",
    "postgres": "canvas.backends.sql:SQLBackend",
    "postgresql+psycopg": "canvas.backends.sql:SQLBackend",
    "memory": "canvas.backends.memory:MemoryBackend",
}


def resolve(url: str) -> type[Backend]:
    """The store class for ``url``, or an error that suggests the closest known scheme."""
    scheme = url.split("://", 1)[0] if "://" in url else url
    target = BACKEND_ALIASES.get(scheme) or (scheme if ":" in scheme else None)
    if target is None:
        close = difflib.get_close_matches(scheme, BACKEND_ALIASES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(BACKEND_ALIASES))
        raise ImproperlyConfigured(
            f"Unknown result backend scheme {scheme!r} in {url!r}.{hint} Known schemes: {known}."
        )
    module_name, _, attr = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), attr)
    return cls


def create(url: str, options: dict[str, Any] | None = None) -> Backend:
    return resolve(url)(url, options)


__all__ = ["BACKEND_ALIASES", "Backend", "Fired", "NodeRecord", "create", "resolve"]
