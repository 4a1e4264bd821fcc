"""Pid files for ``worker --pidfile`` and ``beat --pidfile``, safe in a shared directory.

A pid file is created with ``O_EXCL | O_NOFOLLOW``: never through a symlink planted by another
local user (the worker once followed one and overwrote its target). An existing file is refused
when it names a live process, is not a regular file, or belongs to another user; a stale one of
ours (its process died) is replaced.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import click

_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)


def claim(path: Path) -> None:
    """Write our pid to ``path``; ``ClickException`` saying why when it must not be ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, _CREATE, 0o644)
    except FileExistsError:
        _check_stale(path)
        path.unlink(missing_ok=True)  # stale: left by a process of ours that died
        try:
            fd = os.open(path, _CREATE, 0o644)
        except FileExistsError:
            raise click.ClickException(f"Pidfile {path} was created meanwhile.") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()}\n")


def _check_stale(path: Path) -> None:
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise click.ClickException(f"Pidfile {path} exists and is not a regular file: refusing.")
    if info.st_uid != os.getuid():
        raise click.ClickException(
            f"Pidfile {path} exists and belongs to another user (uid {info.st_uid}): refusing."
        )
    pid = read(path)
    if alive(pid):
        raise click.ClickException(
            f"Pidfile {path} names a running process ({pid}): stop it, or give another --pidfile."
        )


def read(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        try:
            return int(handle.read(64).strip())
        except ValueError:
            return None


def alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def release(path: Path) -> None:
    """Remove ``path`` if it still names this process."""
    if read(path) == os.getpid():
        path.unlink(missing_ok=True)
