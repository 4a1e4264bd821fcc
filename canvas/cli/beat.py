"""``canvas -A proj beat``: run the periodic-task scheduler until SIGINT or SIGTERM.

Run as many as you like against one result store: one leads and fires, the others stand by and
take over within seconds when it dies (see ``canvas.beat``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import click

from canvas.beat.scheduler import Beat, run_beat
from canvas.cli.base import app_from_context
from canvas.exceptions import ImproperlyConfigured

__all__ = ["command", "pidfile_lock", "run_beat"]

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"


@contextlib.contextmanager
def pidfile_lock(path: str | None) -> Iterator[None]:
    """Write our pid to ``path`` for the run; refuse to start if a live process holds it."""
    if not path:
        yield
        return
    pidfile = Path(path)
    try:
        fd = os.open(pidfile, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        if _alive(_read_pid(pidfile)):
            raise click.ClickException(
                f"pidfile {path} names a running process ({_read_pid(pidfile)}): "
                "stop it, or give another --pidfile."
            ) from None
        pidfile.unlink(missing_ok=True)  # stale: left by a process that died
        fd = os.open(pidfile, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        if _read_pid(pidfile) == os.getpid():
            pidfile.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


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
        with pidfile_lock(pidfile), _stop_on_signals(stop):
            beat.run(stop)
    except ImproperlyConfigured as exc:
        raise click.ClickException(str(exc)) from exc


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM end the loop (the lease is released); the old handlers come back."""

    def shutdown(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        signum: signal.signal(signum, shutdown) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
