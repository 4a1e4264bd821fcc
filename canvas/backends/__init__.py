"""Result stores, chosen by URL scheme.

``redis://``, ``rediss://`` – Redis (pub/sub wakes waiters, Lua scripts join workflows).
``redis+cluster://``, ``rediss+cluster://`` – the same on Redis Cluster (keys laid out by slot).
``sqlite:///path``, ``postgresql://...`` – SQL through SQLAlchemy (the embedded default is SQLite).
``memory://`` – in this process only: eager mode and unit tests.
``django-db://[alias]`` – the SQL store on ``canvas.contrib.django``'s models (needs Django).
A scheme not in the table may come from an installed package's ``canvas.backends`` entry point
(its name is the scheme), or be a dotted ``module:Class`` path.
"""

from __future__ import annotations

from typing import Any

from canvas.backends.base import Backend, Fired, NodeRecord
from canvas.registry import lookup

BACKEND_ALIASES: dict[str, str] = {
    "redis": "canvas.backends.redis:RedisBackend",
    "rediss": "canvas.backends.redis:RedisBackend",
    "redis+cluster": "canvas.backends.redis_cluster:RedisClusterBackend",
    "rediss+cluster": "canvas.backends.redis_cluster:RedisClusterBackend",
    "sqlite": "canvas.backends.sql:SQLBackend",
    "postgresql": "canvas.backends.sql:SQLBackend",
    "postgres": "canvas.backends.sql:SQLBackend",
    "postgresql+psycopg": "canvas.backends.sql:SQLBackend",
    "memory": "canvas.backends.memory:MemoryBackend",
    "django-db": "canvas.contrib.django.store:DjangoStore",
}


def resolve(url: str) -> type[Backend]:
    """The store class for ``url``, or an error that suggests the closest known scheme."""
    scheme = url.split("://", 1)[0] if "://" in url else url
    cls: type[Backend] = lookup(
        scheme, BACKEND_ALIASES, what="result backend", shown=url, group="canvas.backends"
    )
    return cls


def create(url: str, options: dict[str, Any] | None = None) -> Backend:
    return resolve(url)(url, options)


__all__ = ["BACKEND_ALIASES", "Backend", "Fired", "NodeRecord", "create", "resolve"]
