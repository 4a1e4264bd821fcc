"""``canvas``: the command line. ``canvas --help`` lists the commands; each has its own ``--help``.

The top-level ``-A/--app`` names the application module, as in Celery: ``canvas -A proj worker``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

#: subcommand name -> "module:attribute" of its click command, imported when used
COMMANDS = {
    "worker": "canvas.cli.worker:command",
    "multi": "canvas.cli.multi:command",
    "beat": "canvas.cli.beat:command",
    "render": "canvas.cli.render:command",
    "status": "canvas.cli.status:status",
    "inspect": "canvas.cli.control:inspect",
    "control": "canvas.cli.control:control",
    "revoke": "canvas.cli.control:revoke",
    "purge": "canvas.cli.control:purge",
    "result": "canvas.cli.control:result",
    "report": "canvas.cli.control:report",
    "shell": "canvas.cli.shell:command",
    "events": "canvas.cli.events:command",
    "dlq": "canvas.cli.dlq:command",
    "call": "canvas.cli.status:call",
    "dashboard": "canvas.cli.dashboard:command",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs (fast ``--help``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    def _load(self, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # not built yet
            raise
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-A",
    "--app",
    "app",
    metavar="MODULE",
    help="Module holding the Canvas app, e.g. proj or proj.canvas:app.",
)
@click.option("-b", "--broker", help="Broker URL; overrides the app's broker_url.")
@click.option("--result-backend", help="Result store URL; overrides the app's result_backend.")
@click.version_option(package_name="canvas-workflows", prog_name="canvas")
@click.pass_context
def cli(
    ctx: click.Context, app: str | None, broker: str | None, result_backend: str | None
) -> None:
    """canvas: run tasks and workflows outside the request-response cycle."""
    ctx.ensure_object(dict)
    ctx.obj.update({"app": app, "broker": broker, "result_backend": result_backend})


def run_for_app(app: Any, argv: list[str]) -> int:
    """``app.start(argv)``: the command line with ``app`` as ``--app``; returns the exit code."""
    try:
        cli.main(args=argv, prog_name="canvas", obj={"app_object": app}, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="canvas")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
