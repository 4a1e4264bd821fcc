"""Django's database settings as a URL for canvas's SQL store, and what ``'django-db'`` means.

``result_backend = "django-db"`` names the app's own store (``django-db://default``) when
``canvas.contrib.django`` is installed, and otherwise the plain SQL store in Django's ``default``
database, as before the app existed. Only SQLite and PostgreSQL are supported: those are the
databases canvas's SQL store runs its atomic join on.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connections
from sqlalchemy.engine import URL

from canvas.exceptions import ImproperlyConfigured

__all__ = ["APP", "app_installed", "backend_url", "database_url"]

APP = "canvas.contrib.django"

#: libpq connection parameters passed on from ``DATABASES[...]["OPTIONS"]``; the others there
#: (``pool``, ``isolation_level``, ...) belong to Django's database wrapper
_LIBPQ_OPTIONS = frozenset(
    {
        "application_name",
        "connect_timeout",
        "options",
        "passfile",
        "service",
        "sslcert",
        "sslkey",
        "sslmode",
        "sslrootcert",
        "target_session_attrs",
    }
)


def app_installed() -> bool:
    """Whether ``canvas.contrib.django`` is in ``INSTALLED_APPS`` (read before setup too)."""
    if apps.ready:
        return bool(apps.is_installed(APP))
    return any(entry == APP or entry.startswith(f"{APP}.") for entry in settings.INSTALLED_APPS)


def backend_url(alias: str = "default") -> str:
    """The store ``result_backend='django-db'`` stands for."""
    return f"django-db://{alias}" if app_installed() else database_url(alias)


def database_url(alias: str = "default") -> str:
    """``DATABASES[alias]`` as an SQLAlchemy URL (the test database while Django's tests run)."""
    try:
        db: dict[str, Any] = connections.settings[alias]
    except KeyError:
        known = ", ".join(sorted(connections.settings))
        raise ImproperlyConfigured(
            f"django-db://{alias}: there is no database {alias!r} in DATABASES (known: {known})."
        ) from None
    engine = str(db.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    if "postgresql" in engine:
        query = {
            key: str(value)
            for key, value in (db.get("OPTIONS") or {}).items()
            if key in _LIBPQ_OPTIONS and value is not None
        }
        url = URL.create(
            "postgresql+psycopg",
            username=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=int(db["PORT"]) if db.get("PORT") else None,
            database=db.get("NAME") or None,
            query=query,
        )
        return url.render_as_string(hide_password=False)
    raise ImproperlyConfigured(
        f"result_backend='django-db' supports SQLite and PostgreSQL databases, not {engine!r} "
        f"(DATABASES[{alias!r}]): canvas's atomic workflow join runs on those two. Use a "
        "PostgreSQL database or a 'redis://' result backend."
    )
