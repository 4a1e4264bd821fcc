"""``canvas shell``: a Python shell with the app, its tasks and canvas's names loaded."""

from __future__ import annotations

import code
from typing import Any

import click

import canvas
from canvas.cli.base import app_from_context


@click.command("shell")
@click.option("--python", "plain", is_flag=True, help="The plain Python shell, even with IPython.")
@click.option("--without-tasks", is_flag=True, help="Do not put the tasks in the namespace.")
@click.pass_context
def command(ctx: click.Context, plain: bool, without_tasks: bool) -> None:
    """Start a Python shell with ``app``, the tasks (by short name) and canvas's names."""
    app = app_from_context(ctx)
    app.finalize()
    namespace: dict[str, Any] = {"app": app, "celery": app, "canvas": canvas}
    namespace.update({name: getattr(canvas, name) for name in canvas.__all__})
    if not without_tasks:
        for name, task in app.tasks.items():
            if not name.startswith("canvas."):
                namespace[name.rsplit(".", 1)[-1]] = task
    banner = f"canvas shell: app={app!r}, tasks and canvas names loaded."
    if not plain:
        try:
            from IPython import start_ipython  # type: ignore[import-not-found] # optional: only if installed
        except ImportError:
            pass
        else:
            start_ipython(argv=[], user_ns=namespace, display_banner=False)
            return
    code.interact(banner=banner, local=namespace, exitmsg="")
