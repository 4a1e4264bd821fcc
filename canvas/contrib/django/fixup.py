"""Django in workers and beat: ``django.setup()`` first, fresh database connections per task.

``Canvas.finalize()`` (a worker or beat starting) calls ``install(app)`` when
``DJANGO_SETTINGS_MODULE`` is set, as Celery's Django fixup does:

* ``django.setup()`` runs before the app imports task modules, so a ``tasks.py`` that imports
  models loads instead of raising ``AppRegistryNotReady``; ``autodiscover_tasks()`` then reads
  the app registry, where an ``INSTALLED_APPS`` entry may be an ``AppConfig`` path;
* in a worker, a pool process starts without the database connections it inherited (they are
  dropped without a word to the server, which still serves the parent on them), and stale
  connections (broken, or older than ``CONN_MAX_AGE``) are closed before and after each task, as
  Django does around a request. Eager calls run inside the caller's request and are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

import django
from django.apps import apps
from django.db import close_old_connections, connections

from canvas import signals

if TYPE_CHECKING:
    from canvas.app import Canvas

__all__ = ["install"]

logger = logging.getLogger("canvas.django")


def install(app: Canvas) -> None:
    """Set Django up (once per process) and, in a worker, look after its connections."""
    if not apps.ready and not apps.loading:  # loading: we were called from an app's ready()
        django.setup()
    signals.worker_init.connect(_worker_started)


def _worker_started(**_: Any) -> None:
    signals.worker_process_init.connect(_forget_inherited_connections)
    signals.task_prerun.connect(_close_stale_connections)
    signals.task_postrun.connect(_close_stale_connections)
    # The supervisor forks pool processes: it must not hold a connection they would share.
    connections.close_all()


def _close_stale_connections(sender: Any = None, **_: Any) -> None:
    request = getattr(sender, "request", None)
    if getattr(request, "is_eager", False):
        return
    close_old_connections()


def _forget_inherited_connections(**_: Any) -> None:
    """Drop the parent's connections in a new pool process without closing them on the server.

    Closing one here would send the server a goodbye on a socket the parent still uses, so its
    descriptor is first pointed at /dev/null; the close then goes nowhere.
    """
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is None:
            continue
        fileno = getattr(raw, "fileno", None)
        if callable(fileno):
            with contextlib.suppress(Exception):
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, fileno())
                os.close(devnull)
        try:
            conn.close()
        except Exception as exc:  # the next query opens a new connection anyway
            logger.debug("closing an inherited %s connection: %s", conn.alias, exc)
