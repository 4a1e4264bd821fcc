"""``canvas render``: draw a canvas before it runs, or a running workflow by its state.

    canvas render proj.workflows:nightly                  # DOT on stdout, no Graphviz needed
    canvas render proj.workflows:nightly -o nightly.svg   # format from the suffix
    canvas --app proj render --id <id> -o run.svg --watch 2
    canvas render proj.workflows:nightly --format text    # a tree in the terminal

Drawing a canvas imports the module and compiles the canvas: nothing is published and no broker
or result store is needed. ``--id`` reads the result store of ``--app``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import click

from canvas import dag
from canvas.cli.base import app_from_context
from canvas.exceptions import CanvasError
from canvas.signature import Signature
from canvas.task import Task
from canvas.visualize import DIRECTIONS, FORMATS, format_for, live, render, to_dot, to_text
from canvas.visualize.dot import pipe

#: nodes above which Graphviz takes a while to lay out an expanded picture: say so
_LARGE = 2_000
_KINDS = " (a signature, chain, group or chord)"


@click.command("render")
@click.argument("target", required=False, metavar="[MODULE:ATTR]")
@click.option(
    "--id",
    "an_id",
    metavar="ID",
    help="Draw this workflow (or the workflow of this task) as it runs.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here; the suffix picks the format (.svg .png .pdf .dot .txt).",
)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Output format; overrides the suffix of -o. Default: dot.",
)
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    default="LR",
    show_default=True,
    help="Left to right, or top to bottom.",
)
@click.option("--expand", is_flag=True, help="Draw every member of large groups, not a summary.")
@click.option(
    "--watch",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --id: redraw every SECONDS until the workflow finishes.",
)
@click.pass_context
def command(
    ctx: click.Context,
    target: str | None,
    an_id: str | None,
    output: Path | None,
    fmt: str | None,
    direction: str,
    expand: bool,
    watch: float | None,
) -> None:
    """Draw a canvas (MODULE:ATTR) before it runs, or a workflow (--id) by its state."""
    if (target is None) == (an_id is None):
        raise click.UsageError("Give either MODULE:ATTR (a canvas) or --id ID (a workflow run).")
    if watch is not None and an_id is None:
        raise click.UsageError("--watch follows a run: use it with --id.")
    try:
        fmt = fmt or (format_for(output) if output is not None else "dot")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if an_id is None:
            assert target is not None
            workflow = dag.compile(load_canvas(target))
            _write(workflow, output, fmt, direction, expand)
            return
        view = live.find(app_from_context(ctx), an_id)
        if watch is None:
            _write(live.snapshot(view), output, fmt, direction, expand)
            return
        for workflow in live.follow(view, watch):
            if output is None and sys.stdout.isatty():
                click.clear()
            _write(workflow, output, fmt, direction, expand)
        click.echo(f"workflow {view.id} finished.", err=True)
    except (CanvasError, LookupError) as exc:  # a bad canvas, an unknown id, no dot binary
        raise click.ClickException(str(exc)) from None


def _write(
    workflow: dag.Workflow,
    output: Path | None,
    fmt: str,
    direction: str,
    expand: bool,
) -> None:
    if fmt not in ("dot", "text") and expand and len(workflow) > _LARGE:
        click.echo(f"Laying out {len(workflow):,} nodes with Graphviz may take a while.", err=True)
    if output is not None:
        render(workflow, output, format=fmt, direction=direction, expand=expand)
        return
    if fmt == "text":
        click.echo(to_text(workflow, expand=expand), nl=False)
    elif fmt == "dot":
        click.echo(to_dot(workflow, direction=direction, expand=expand))
    else:
        data = pipe(to_dot(workflow, direction=direction, expand=expand), fmt)
        stdout = sys.stdout.buffer
        stdout.write(data)
        stdout.flush()


def load_canvas(spec: str) -> Signature:
    """The canvas named by ``module:attr``: a signature, or a zero-argument callable making one.

    Every way this can go wrong is one line naming the spec and what to change.
    """
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise click.ClickException(
            f"{spec!r} is not MODULE:ATTR; name a canvas, e.g. proj.workflows:nightly."
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise click.ClickException(
                f"{spec!r}: no module named {exc.name!r} (on PYTHONPATH?)."
            ) from None
        raise click.ClickException(f"{spec!r}: importing {module_name} failed: {exc}.") from None
    except Exception as exc:  # the user's module raised while importing: say what, in one line
        raise click.ClickException(
            f"{spec!r}: importing {module_name} failed: {_one_line(exc)}"
        ) from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            names = [n for n in dir(value) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise click.ClickException(f"{spec!r}: {module_name} has no attribute {attr!r}{hint}")
        value = getattr(value, part)
    return _as_canvas(spec, value)


def _as_canvas(spec: str, value: Any) -> Signature:
    if isinstance(value, Signature):
        return value
    if isinstance(value, Task):
        raise click.ClickException(
            f"{spec!r} is a task, not a canvas: name a signature such as {value.name}.s(...)."
        )
    if callable(value) and not isinstance(value, type):
        try:
            inspect.signature(value).bind()
        except TypeError:
            raise click.ClickException(
                f"{spec!r} needs arguments; render takes a canvas or a function of none."
            ) from None
        except ValueError:
            pass  # no signature to inspect (a builtin): just call it
        try:
            made = value()
        except Exception as exc:
            raise click.ClickException(f"{spec!r}: calling it raised {_one_line(exc)}") from None
        if isinstance(made, Signature):
            return made
        raise click.ClickException(
            f"{spec!r} returned {type(made).__name__}, not a canvas{_KINDS}."
        )
    raise click.ClickException(f"{spec!r} is of type {type(value).__name__}, not a canvas{_KINDS}.")


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, however many lines the message had."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())
