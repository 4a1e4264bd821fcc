"""Which canvas app the Django side (admin, commands) sends with and reads results through."""

from __future__ import annotations

import importlib

from django.conf import settings

from canvas._current import default_app
from canvas.app import Canvas
from canvas.exceptions import ImproperlyConfigured

__all__ = ["project_app"]


def project_app() -> Canvas:
    """``settings.CANVAS_APP`` (``"proj.celery:app"``), else the app the project created last.

    The seed's layout imports ``proj/celery.py`` from ``proj/__init__.py``, so the project's app
    exists as soon as Django loads its settings.
    """
    path = getattr(settings, "CANVAS_APP", None)
    if not path:
        return default_app()
    module_name, _, attr = str(path).partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr or "app")
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(
            f"CANVAS_APP = {path!r}: cannot load it ({exc}); give 'module:attribute', such as "
            "'proj.celery:app'."
        ) from exc
    if not isinstance(found, Canvas):
        raise ImproperlyConfigured(
            f"CANVAS_APP = {path!r} is a {type(found).__name__}, not a Canvas"
        )
    return found
