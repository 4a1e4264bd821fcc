"""``canvas -A proj beat``: run the periodic-task scheduler until SIGINT or SIGTERM.

Run as many as you like against one result store: one leads and fires, the others stand by and
take over within seconds when it dies (see ``canvas.beat``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import click

from canvas.beat.scheduler import Beat, run_beat
from canvas.cli import pidfile as pidfiles
from canvas.cli.base import app_from_context, dump_stacks_on_sigusr1
from canvas.core import signal_relay
from canvas.exceptions import ImproperlyConfigured

__all__ = ["command", "pidfile_lock", "run_beat"]

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"


@contextlib.contextmanager
def pidfile_lock(path: str | None) -> Iterator[None]:
    """Write our pid to ``path`` for the run; refuse to start if a live process holds it (the
    worker's rules, ``canvas.cli.pidfile``: never through a symlink, never a foreign file)."""
    if not path:
        yield
        return
    pidfiles.claim(Path(path))
    try:
        yield
    finally:
        pidfiles.release(Path(path))


@click.command("beat")
@click.option(
    "-l",
    "--loglevel",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Logging level.",
)
@click.option(
    "-s",
    "--schedule",
    "schedule_filename",
    default=None,
    metavar="FILE",
    help="File that keeps last-run times [setting beat_schedule_filename].",
)
@click.option(
    "-S",
    "--scheduler",
    default=None,
    metavar="MODULE:CLASS",
    help="Scheduler class [setting beat_scheduler].",
)
@click.option(
    "--store",
    default=None,
    metavar="URL",
    help="Keep last-run times in a database instead, e.g. postgresql://host/db "
    "[setting beat_schedule_store].",
)
@click.option(
    "--max-interval",
    type=float,
    default=None,
    help="Longest sleep between checks, in seconds [setting beat_max_loop_interval].",
)
@click.option("--pidfile", default=None, metavar="FILE", help="Refuse to start twice.")
@click.pass_context
def command(
    ctx: click.Context,
    loglevel: str,
    schedule_filename: str | None,
    scheduler: str | None,
    store: str | None,
    max_interval: float | None,
    pidfile: str | None,
) -> None:
    """Start the beat scheduler: sends periodic tasks and workflows when they are due."""
    app = app_from_context(ctx)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=loglevel.upper(), format=LOG_FORMAT)
    logging.getLogger("canvas").setLevel(loglevel.upper())
    try:
        beat = Beat(
            app,
            scheduler=scheduler,
            store=store,
            schedule_filename=schedule_filename,
            max_interval=max_interval,
        )
        stop = threading.Event()
        dump_stacks_on_sigusr1()
        with pidfile_lock(pidfile), _stop_on_signals(stop):
            beat.run(stop)
    except ImproperlyConfigured as exc:
        raise click.ClickException(str(exc)) from exc


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM end the loop (the lease is released); the old handlers come back."""

    relay = signal_relay.setting(stop)  # not stop.set() in the handler: it can deadlock
    previous = {
        signum: signal.signal(signum, relay.handler) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
