"""Shared pieces of the CLI: loading the user's app from ``--app``; the SIGUSR1 stack dump."""

from __future__ import annotations

import faulthandler
import importlib
import os
import signal
import sys

import click

from canvas.app import Canvas
from canvas.exceptions import ImproperlyConfigured


def import_app(spec: str) -> Canvas:
    """Load ``module``, ``module:attr`` or ``module.attr`` as a Canvas app, with a clear error."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if "." in module_name and not attr and exc.name == module_name:
            module_name, _, attr = module_name.rpartition(".")
            module = importlib.import_module(module_name)
        else:
            raise click.UsageError(f"--app {spec!r}: cannot import {exc.name!r}.") from exc
    except ImproperlyConfigured as exc:  # e.g. app.setup_security() with a bad file: one line
        raise click.ClickException(f"--app {spec!r}: {exc}") from exc
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, Canvas):
            raise click.UsageError(
                f"--app {spec!r}: {attr!r} in {module_name} is not a Canvas app."
            )
        return app
    for name in ("app", "canvas_app", "celery", "celery_app"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, Canvas):
            return candidate
    for name in ("canvas", "celery"):  # the Django layout: proj/celery.py next to proj/__init__.py
        try:
            sub = importlib.import_module(f"{module_name}.{name}")
        except ImportError:
            continue
        for value in vars(sub).values():
            if isinstance(value, Canvas):
                return value
    found = [n for n, v in vars(module).items() if isinstance(v, Canvas)]
    if found:
        return getattr(module, found[0])  # type: ignore[no-any-return]
    raise click.UsageError(f"--app {spec!r}: no Canvas app found in module {module_name!r}.")


def app_from_context(ctx: click.Context) -> Canvas:
    """The app named by the top-level ``--app``; a usage error when it was not given."""
    obj = ctx.find_root().obj or {}
    spec = obj.get("app")
    given = obj.get("app_object")  # app.start(argv): the app itself, not a module to import
    if isinstance(given, Canvas) and not spec:
        app = given
    elif not spec:
        raise click.UsageError("This command needs --app (or -A), e.g. 'canvas -A proj worker'.")
    else:
        app = import_app(spec)
    if obj.get("broker"):
        app.conf.broker_url = obj["broker"]
    if obj.get("result_backend"):
        app.conf.result_backend = obj["result_backend"]
    return app


def dump_stacks_on_sigusr1() -> None:
    """SIGUSR1 writes every thread's stack to stderr, as Celery's worker does: how to see where
    a process that stopped answering is stuck, even inside a C call (the dump is written by C
    code, not by a Python handler that would wait for that call to return)."""
    stderr = sys.__stderr__
    if stderr is None or not hasattr(signal, "SIGUSR1"):
        return  # detached with stderr closed, or no such signal here: nothing to write to
    try:
        faulthandler.register(signal.SIGUSR1, file=stderr, all_threads=True)
    except (OSError, ValueError, RuntimeError):
        pass  # stderr has no file descriptor (an embedding program replaced it)
