"""The canvas dashboard: a live web page, Prometheus metrics and a terminal view of a system.

    canvas -A proj dashboard                          # http://127.0.0.1:5555, as Flower
    canvas -A proj dashboard --address 0.0.0.0 --auth-token "$TOKEN"
    canvas -A proj events                             # the same picture in a terminal

Modules, one idea each:

* ``monitor``   the model: events state, queue depths, followed workflows, beat entries;
* ``feed``      the thread that receives worker events for it;
* ``workflows`` workflows read from the result store and drawn as ``canvas render`` draws them;
* ``queues``    depths and dead letters; ``periodic`` beat entries and their next run;
* ``actions``   what the page's buttons do (revoke, shutdown, pool, rate limit, replay);
* ``auth``      who may connect; ``metrics`` ``/metrics``; ``server`` the ASGI app and uvicorn;
* ``terminal``  the rich view behind ``canvas events``.

It needs the ``dashboard`` extra (Starlette, uvicorn, prometheus-client, rich):
``pip install 'canvas-workflows[dashboard]'``; ``require()`` says so when one is missing.
"""

from __future__ import annotations

import importlib.util

from canvas.exceptions import ImproperlyConfigured

#: import name -> distribution name of what the dashboard extra brings
EXTRA = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "prometheus_client": "prometheus-client",
    "rich": "rich",
}
INSTALL = "pip install 'canvas-workflows[dashboard]'"


def require(*modules: str) -> None:
    """Raise ``ImproperlyConfigured`` naming the extra when a module it brings is missing."""
    missing = [EXTRA[m] for m in modules or EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ImproperlyConfigured(
            f"The dashboard needs {', '.join(missing)}, which {verb} not installed: {INSTALL}"
        )


__all__ = ["EXTRA", "INSTALL", "require"]
