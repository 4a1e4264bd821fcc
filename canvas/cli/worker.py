"""``canvas worker``: start a worker in the foreground."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from canvas import signing
from canvas.cli import pidfile as pidfile_module
from canvas.cli import worker_flags
from canvas.cli.base import app_from_context, dump_stacks_on_sigusr1
from canvas.core.worker import POOLS, Worker, WorkerOptions, setup_logging
from canvas.exceptions import ImproperlyConfigured
from canvas.utils.log import LoggingProxy


@click.command("worker")
@click.option(
    "-l", "--loglevel", default="WARNING", show_default=True, help="DEBUG, INFO, WARNING, ERROR."
)
@click.option(
    "-c", "--concurrency", type=click.IntRange(min=1), help="Pool size (default: CPU count)."
)
@click.option(
    "-P",
    "--pool",
    type=click.Choice(POOLS),
    default=None,
    help="prefork (default), threads or solo.",
)
@click.option(
    "-Q", "--queues", help="Comma-separated queues to consume (default: task_default_queue)."
)
@click.option("-n", "--hostname", help="Node name; %h, %n, %d expand as in Celery.")
@click.option(
    "-B", "--beat", is_flag=True, help="Also run beat in this process (development only)."
)
@click.option("-s", "--schedule", "schedule_file", help="Beat schedule file (with -B).")
@click.option("-f", "--logfile", help="Log to this file instead of stderr.")
@click.option("--pidfile", help="Write the worker's pid here; refuse to start if it is running.")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty (tests, batch jobs).")
@click.option(
    "-E", "--task-events", "task_events", is_flag=True, help="Send task events for monitors."
)
@click.option("-S", "--statedb", help="Keep revoked task ids in this file across restarts.")
@worker_flags.celery_flags
@click.pass_context
def command(
    ctx: click.Context,
    /,
    loglevel: str,
    concurrency: int | None,
    pool: str | None,
    queues: str | None,
    hostname: str | None,
    beat: bool,
    schedule_file: str | None,
    logfile: str | None,
    pidfile: str | None,
    burst: bool,
    task_events: bool,
    statedb: str | None,
    **flags: Any,
) -> None:
    """Start a worker that runs tasks from the queues."""
    app = app_from_context(ctx)
    extra = worker_flags.apply(app, flags)
    if flags.get("detach"):
        worker_flags.detach()
    try:
        setup_logging(loglevel, logfile, app.conf)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--loglevel") from exc
    try:
        app.finalize()  # import the task modules and check the settings before anything starts
        # Now: its first connection would take a refused certificate for the broker being down
        signing.check_certificates(app.conf)
    except ImproperlyConfigured as exc:
        raise click.ClickException(str(exc)) from exc
    if pidfile:
        claim_pidfile(Path(pidfile))
    try:
        options = WorkerOptions(
            queues=[q.strip() for q in (queues or "").split(",") if q.strip()],
            concurrency=extra.pop("concurrency", None) or concurrency,
            pool=pool or app.conf.worker_pool or "prefork",
            hostname=hostname,
            burst=burst,
            beat=beat,
            beat_options={"schedule": schedule_file} if schedule_file else {},
            send_events=task_events,
            statedb=statedb,
            **extra,
        )
        try:
            worker = Worker(app, options)
        except (ValueError, ImproperlyConfigured) as exc:  # AUTOSCALE_KEEPALIVE, worker_autoscaler
            raise click.ClickException(str(exc)) from exc
        worker_flags.echo_banner(worker_flags.banner(worker, app.backend_url))
        dump_stacks_on_sigusr1()  # before stdout and stderr go through the logger
        redirect_stdout(app)
        code = worker.start()
    finally:
        if pidfile:
            pidfile_module.release(Path(pidfile))
    ctx.exit(code)


def redirect_stdout(app: Any) -> None:
    """``worker_redirect_stdouts``: ``print()`` in a task becomes a log record, as in Celery."""
    if not app.conf.get("worker_redirect_stdouts", True):
        return
    level = logging.getLevelName(str(app.conf.get("worker_redirect_stdouts_level") or "WARNING"))
    sys.stdout = LoggingProxy(
        logging.getLogger("canvas.redirected"), level if isinstance(level, int) else 30
    )


def claim_pidfile(path: Path) -> None:
    """Write our pid, refusing a live, foreign or symlinked pid file (see ``cli.pidfile``)."""
    pidfile_module.claim(path)
