"""``canvas status``, ``canvas call`` and the store-side ``inspect``: look at and poke a system.

``status ID`` prints the state of a task, or of every node of a workflow, from the result store.
``inspect queues`` prints how many messages wait in each queue (and its dead-letter queue);
``inspect workflow ID`` every node of a workflow. (The ``inspect`` group, with the questions to
running workers, lives in ``canvas.cli.control``.)
``call NAME`` sends a task by name with JSON arguments, as ``celery call`` does.
"""

from __future__ import annotations

import json
from typing import Any

import click

from canvas import states
from canvas.cli.base import app_from_context
from canvas.core import metas


@click.command("status")
@click.argument("task_or_workflow_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def status(ctx: click.Context, task_or_workflow_id: str, as_json: bool) -> None:
    """Show the state of a task, or of every node of a workflow."""
    app = app_from_context(ctx)
    view = app.workflow(task_or_workflow_id)
    if not view.exists():
        meta = metas.decode(app.backend.get([task_or_workflow_id])[0])
        if meta and meta.get("workflow"):
            view = app.workflow(meta["workflow"])
    if view.exists():
        nodes = [n for n in view.nodes() if n.node.kind != "errback"]
        rows = [
            {"id": n.node.id, "kind": n.node.kind, "task": n.node.task, "state": n.state}
            for n in nodes
        ]
        if as_json:
            click.echo(json.dumps({"workflow": view.id, "nodes": rows}, indent=2))
            return
        counts = view.counts()
        summary = ", ".join(f"{state} {count}" for state, count in sorted(counts.items()))
        click.echo(f"workflow {view.id}: {len(nodes)} nodes ({summary})")
        for row in rows:
            name = row["task"] or f"<{row['kind']}>"
            click.echo(f"  {row['state']:<9} {name}  {row['id']}")
        return
    meta = metas.decode(app.backend.get([task_or_workflow_id])[0])
    if meta is None:
        if as_json:
            click.echo(json.dumps({"id": task_or_workflow_id, "state": states.PENDING}))
            return
        click.echo(f"{task_or_workflow_id}: PENDING (unknown to the result store, or not started)")
        return
    if as_json:
        click.echo(json.dumps(meta, default=repr, indent=2))
        return
    line = f"{task_or_workflow_id}: {meta.get('status')}"
    if meta.get("name"):
        line += f"  {meta['name']}"
    if meta.get("runtime") is not None:
        line += f"  ({meta['runtime']:.3f}s"
        line += f", {meta.get('retries') or 0} retries)"
    click.echo(line)
    if meta.get("status") == states.SUCCESS:
        click.echo(f"  result: {meta.get('result')!r}")
    elif isinstance(meta.get("result"), dict) and "exc_type" in meta["result"]:
        exc = meta["result"]
        click.echo(f"  {exc['exc_type']}: {' '.join(map(str, exc.get('exc_message') or []))}")


@click.command("queues")
@click.option("-Q", "--queues", help="Comma-separated queues (default: task_default_queue).")
@click.pass_context
def inspect_queues(ctx: click.Context, queues: str | None) -> None:
    """How many messages wait in each queue and its dead-letter queue."""
    app = app_from_context(ctx)
    names = [q for q in (queues or app.conf.task_default_queue).split(",") if q]
    for name in names:
        dlq = app.transport.dead_letters(name)
        click.echo(f"{name}: {app.transport.size(name)} waiting, {dlq}: {app.transport.size(dlq)}")


@click.command("workflow")
@click.argument("workflow_id")
@click.pass_context
def inspect_workflow(ctx: click.Context, workflow_id: str) -> None:
    """Every node of a workflow: state, task, inputs, runtime and retries."""
    app = app_from_context(ctx)
    view = app.workflow(workflow_id)
    if not view.exists():
        raise click.ClickException(f"No workflow {workflow_id!r} in the result store.")
    for n in view.nodes():
        runtime = f"{n.runtime:.3f}s" if n.runtime is not None else "-"
        inputs = ",".join(i[:8] for i in n.node.inputs) or "-"
        click.echo(
            f"{n.node.id}  {n.state:<9} {n.node.task or '<' + n.node.kind + '>'}  "
            f"inputs={inputs} runtime={runtime} retries={n.retries}"
        )


@click.command("call")
@click.argument("name")
@click.option("-a", "--args", "args_json", default="[]", help="JSON list of positional arguments.")
@click.option(
    "-k", "--kwargs", "kwargs_json", default="{}", help="JSON object of keyword arguments."
)
@click.option("--countdown", type=float, help="Seconds to wait before running.")
@click.option("--queue", help="Queue to send to.")
@click.option(
    "--wait", "wait_s", type=float, help="Wait up to this many seconds and print the result."
)
@click.pass_context
def call(
    ctx: click.Context,
    name: str,
    args_json: str,
    kwargs_json: str,
    countdown: float | None,
    queue: str | None,
    wait_s: float | None,
) -> None:
    """Send a task by name and print its id (and result with --wait)."""
    app = app_from_context(ctx)
    args: Any = _json_arg(args_json, "--args", list)
    kwargs: Any = _json_arg(kwargs_json, "--kwargs", dict)
    options: dict[str, Any] = {}
    if countdown is not None:
        options["countdown"] = countdown
    if queue:
        options["queue"] = queue
    result = app.send_task(name, args, kwargs, **options)
    click.echo(result.id)
    if wait_s is not None:
        click.echo(repr(result.get(timeout=wait_s)))


def _json_arg(text: str, flag: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=flag) from exc
    if not isinstance(value, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=flag)
    return value
