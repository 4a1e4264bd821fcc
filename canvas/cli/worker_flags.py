"""Celery's other ``worker`` flags, so a project's start command runs unchanged.

``--autoscale``, ``--max-tasks-per-child``, ``--max-memory-per-child``, ``--time-limit``,
``--soft-time-limit``, ``--prefetch-multiplier``, ``-O fair``, ``--detach`` and the
``--without-heartbeat/--without-mingle/--without-gossip`` switches (accepted: canvas has no mingle
or gossip, and its heartbeats are events). ``apply`` turns them into settings and worker options;
``banner`` is the start-up block Celery prints.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from canvas.backends.rpc import is_rpc_url
from canvas.core import autoscale

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.core.worker import Worker

logger = logging.getLogger("canvas.worker")
_F = TypeVar("_F", bound=Callable[..., Any])

FLAGS: list[Callable[[Any], Any]] = [
    click.option(
        "--autoscale",
        callback=lambda ctx, param, value: _autoscale(value),
        help="max,min: start min pool processes, grow to max when work waits.",
    ),
    click.option(
        "--max-tasks-per-child",
        type=click.IntRange(min=1),
        help="Replace a pool process after this many tasks.",
    ),
    click.option(
        "--max-memory-per-child",
        type=click.IntRange(min=1),
        help="Replace a pool process once its resident memory passes this many KiB.",
    ),
    click.option("--time-limit", type=click.FloatRange(min=0), help="Hard time limit (s)."),
    click.option("--soft-time-limit", type=click.FloatRange(min=0), help="Soft time limit (s)."),
    click.option(
        "--prefetch-multiplier",
        type=click.IntRange(min=1),
        help="Messages each pool process may hold.",
    ),
    click.option(
        "-O",
        "optimization",
        type=click.Choice(["default", "fair"]),
        help="fair: hold one message per process (prefetch 1).",
    ),
    click.option("--detach", is_flag=True, help="Run in the background (use with -f/--pidfile)."),
    click.option("--without-heartbeat", is_flag=True, help="Accepted (Celery's)."),
    click.option("--without-mingle", is_flag=True, help="Accepted (canvas has no mingle)."),
    click.option("--without-gossip", is_flag=True, help="Accepted (canvas has no gossip)."),
]


def celery_flags(command: _F) -> _F:
    """Add Celery's worker flags to a click command."""
    for option in reversed(FLAGS):
        command = option(command)
    return command


def apply(app: Canvas, flags: dict[str, Any]) -> dict[str, Any]:
    """Settings from the flags (time limits, prefetch); the ``WorkerOptions`` fields they set."""
    options: dict[str, Any] = {}
    if flags.get("time_limit") is not None:
        app.conf.task_time_limit = flags["time_limit"]
    if flags.get("soft_time_limit") is not None:
        app.conf.task_soft_time_limit = flags["soft_time_limit"]
    if flags.get("prefetch_multiplier"):
        app.conf.worker_prefetch_multiplier = flags["prefetch_multiplier"]
    if flags.get("optimization") == "fair":
        app.conf.worker_prefetch_multiplier = 1
    if flags.get("max_tasks_per_child"):
        options["max_tasks_per_child"] = flags["max_tasks_per_child"]
    if flags.get("max_memory_per_child"):
        options["max_memory_per_child"] = flags["max_memory_per_child"]
    if flags.get("autoscale"):
        options["autoscale"] = flags["autoscale"]
    return options


def _autoscale(value: str | None) -> tuple[int, int] | None:
    """``--autoscale=10,3`` to ``(max, min)``, checked before anything loads."""
    if value is None:
        return None
    try:
        return autoscale.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--autoscale") from exc


def detach() -> None:
    """Go to the background (double fork, new session, no terminal); the caller returns in the
    child only. Logs go to ``-f/--logfile``, the pid to ``--pidfile``."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def banner(worker: Worker, results: str) -> str:
    """The block Celery prints at start-up: node, app, transport, results, pool, queues, tasks."""
    app = worker.app
    pool = worker.options.pool
    concurrency = str(1 if pool == "solo" else worker.concurrency)
    if worker.autoscaler is not None:  # Celery's way of showing the range
        concurrency = f"{{min={worker.autoscaler.min}, max={worker.autoscaler.max}}}"
    shown_results = _redact(results)
    if is_rpc_url(app.conf.result_backend):  # results are messages; the store: workflows
        shown_results = f"rpc:// (workflow state: {shown_results})"
    lines = [
        f" -------------- {worker.hostname} (canvas)",
        "- ** ---------- [config]",
        f"- ** ---------- .> app:         {app.main or '__main__'}",
        f"- ** ---------- .> transport:   {_redact(app.broker_url)}",
        f"- ** ---------- .> results:     {shown_results}",
        f"- ** ---------- .> concurrency: {concurrency} ({pool})",
        f"- ** ---------- .> task events: {'ON' if worker.options.send_events else 'OFF'}",
        " -------------- [queues]",
        *(f"                .> {queue}" for queue in worker.queues),
        "",
        "[tasks]",
        *(f"  . {name}" for name in sorted(app.tasks) if not name.startswith("canvas.")),
        "",
    ]
    return "\n".join(lines)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:**@{host}"
    return url


def echo_banner(text: str) -> None:
    click.echo(text, file=sys.stderr)
