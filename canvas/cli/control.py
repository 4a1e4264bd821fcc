"""``canvas inspect``, ``canvas control``, ``canvas revoke``, ``canvas purge``: operate workers.

``inspect COMMAND [ARGS]`` asks running workers (``active``, ``reserved``, ``scheduled``,
``stats``, ``registered``, ``revoked``, ``active_queues``, ``query_task ID...``, ``conf``,
``ping``, ``report``) and also keeps ``inspect queues`` and ``inspect workflow ID``, which read
the broker and the result store. ``control COMMAND [ARGS]`` changes them (``rate_limit TASK
10/m``, ``time_limit TASK SOFT [HARD]``, ``pool_grow [N]``, ``pool_shrink [N]``, ``autoscale MAX
MIN``, ``add_consumer QUEUE``, ``cancel_consumer QUEUE``, ``shutdown``, ``revoke ID...``,
``terminate SIGNAL ID``, ``enable_events``, ``disable_events``, and custom commands). Both take
``-d/--destination`` (comma-separated worker names), ``-t/--timeout`` and ``-j/--json``, and print
Celery's way::

    ->  canvas@host: OK
        pong

    1 node online.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from canvas.cli.base import app_from_context
from canvas.cli.status import inspect_queues, inspect_workflow
from canvas.control import flatten_reply, signal_name
from canvas.core.panel import CommandInfo, Panel, bugreport


class RemoteGroup(click.Group):
    """A group whose other subcommands are the registered remote commands of one type."""

    def __init__(self, *args: Any, command_type: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command_type = command_type

    def list_commands(self, ctx: click.Context) -> list[str]:
        remote = [n for n, info in Panel.meta.items() if info.type == self.command_type]
        return sorted({*super().list_commands(ctx), *remote})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        local = super().get_command(ctx, name)
        if local is not None:
            return local
        info = Panel.meta.get(name)
        if info is None:
            # A custom command registers when its module is imported: load the app's modules.
            try:
                app_from_context(ctx).finalize()
            except click.UsageError:
                return None
            info = Panel.meta.get(name)
        if info is None or info.type != self.command_type:
            return None
        return _remote_command(info)


def _remote_command(info: CommandInfo) -> click.Command:
    usage = f"\n\nArguments: {info.signature}" if info.signature else ""

    @click.command(info.name, help=info.help + usage)
    @click.argument("args", nargs=-1)
    @click.option("-d", "--destination", help="Comma-separated worker names (default: all).")
    @click.option("-t", "--timeout", type=float, help="Seconds to wait for replies.")
    @click.option("-j", "--json", "as_json", is_flag=True, help="Print the replies as JSON.")
    @click.pass_context
    def command(
        ctx: click.Context,
        args: tuple[str, ...],
        destination: str | None,
        timeout: float | None,
        as_json: bool,
    ) -> None:
        app = app_from_context(ctx)
        arguments = _arguments(info, args)
        replies = app.control.broadcast(
            info.name,
            arguments=arguments,
            destination=[d for d in (destination or "").split(",") if d] or None,
            reply=True,
            timeout=timeout if timeout is not None else info.default_timeout,
        )
        _print(replies or [], as_json)
        if not replies:
            raise click.ClickException("No worker replied within the timeout.")

    return command


def _arguments(info: CommandInfo, args: Sequence[str]) -> dict[str, Any]:
    """Positional command-line values as the command's keyword arguments."""
    arguments: dict[str, Any] = {}
    values = list(args)
    for name, kind in info.args:
        if not values:
            break
        raw = values.pop(0)
        try:
            arguments[name] = kind(raw)
        except ValueError as exc:
            raise click.BadParameter(f"{name}: {exc}", param_hint=repr(raw)) from exc
    if info.variadic:
        arguments[info.variadic] = values
    elif values:
        raise click.UsageError(
            f"{info.name} takes {info.signature or 'no arguments'}; extra: {' '.join(values)}"
        )
    return arguments


def _print(replies: list[dict[str, Any]], as_json: bool) -> None:
    by_node = flatten_reply(replies)
    if as_json:
        click.echo(json.dumps(by_node, indent=2, default=repr))
        return
    for node, reply in by_node.items():
        failed = isinstance(reply, dict) and "error" in reply
        click.echo(f"->  {node}: {'ERROR' if failed else 'OK'}")
        click.echo(_indent(_pretty(reply)))
    count = len(by_node)
    click.echo(f"\n{count} node{'s' if count != 1 else ''} online.")


def _pretty(reply: Any) -> str:
    if isinstance(reply, dict) and len(reply) == 1 and ("ok" in reply or "error" in reply):
        return str(next(iter(reply.values())))
    if isinstance(reply, list) and not reply:
        return "- empty -"
    if isinstance(reply, list) and all(isinstance(item, str) for item in reply):
        return "\n".join(f"* {item}" for item in reply)
    return json.dumps(reply, indent=2, default=repr)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


@click.group("inspect", cls=RemoteGroup, command_type="inspect")
def inspect() -> None:
    """Ask running workers (active, stats, registered...), or read queues and workflows."""


inspect.add_command(inspect_queues)
inspect.add_command(inspect_workflow)


@click.group("control", cls=RemoteGroup, command_type="control")
def control() -> None:
    """Change running workers (rate_limit, pool_grow, add_consumer, shutdown...)."""


@click.command("revoke")
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True, help="Also signal the process running the task.")
@click.option("-s", "--signal", "signal", default="SIGTERM", show_default=True)
@click.option("-t", "--timeout", type=float, default=1.0, show_default=True)
@click.pass_context
def revoke(
    ctx: click.Context, task_ids: tuple[str, ...], terminate: bool, signal: str, timeout: float
) -> None:
    """Revoke tasks (or a whole workflow, by its id): not started ones never run."""
    app = app_from_context(ctx)
    try:
        name = signal_name(signal)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--signal") from exc
    replies = app.control.revoke(
        list(task_ids), terminate=terminate, signal=name, reply=True, timeout=timeout
    )
    _print(replies or [], as_json=False)


@click.command("purge")
@click.option("-Q", "--queues", help="Comma-separated queues (default: the app's task queues).")
@click.option("-X", "--exclude-queues", help="Comma-separated queues to leave alone.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def purge(ctx: click.Context, queues: str | None, exclude_queues: str | None, force: bool) -> None:
    """Delete every waiting message of the task queues (dead-letter queues are kept)."""
    app = app_from_context(ctx)
    names = [q for q in (queues or "").split(",") if q] or app.control.task_queues()
    excluded = {q for q in (exclude_queues or "").split(",") if q}
    names = [q for q in names if q not in excluded]
    if not names:
        raise click.UsageError("No queue left to purge.")
    if not force:
        click.confirm(
            f"Delete every waiting message of {', '.join(names)}? This cannot be undone.",
            abort=True,
        )
    count = app.control.purge(queues=names)
    click.echo(f"Purged {count} message{'s' if count != 1 else ''} from {', '.join(names)}.")


@click.command("result")
@click.argument("task_id")
@click.option("--traceback", "show_traceback", is_flag=True, help="Print the traceback instead.")
@click.option("-t", "--task", help="The task's name (accepted, as in Celery; not needed).")
@click.pass_context
def result(ctx: click.Context, task_id: str, show_traceback: bool, task: str | None) -> None:
    """Print a task's result (or its traceback)."""
    app = app_from_context(ctx)
    handle = app.AsyncResult(task_id)
    if show_traceback:
        click.echo(handle.traceback or f"{task_id}: no traceback ({handle.state})")
        return
    if not handle.ready():
        click.echo(f"{task_id}: {handle.state} (no result yet)")
        return
    click.echo(repr(handle.result))


@click.command("report")
@click.pass_context
def report(ctx: click.Context) -> None:
    """Versions, platform and settings for a bug report (secrets masked)."""
    click.echo(bugreport(app_from_context(ctx)))
