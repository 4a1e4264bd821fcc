"""Files that hold task arguments and results: readable by their owner only.

The embedded broker and the SQLite result store keep every task's arguments and results in
plain files; created with the process umask (0644 in a 0755 directory) any local user could read
them. ``private_file`` creates such a file 0600, and the directories it has to create 0700.
A file or directory that already exists keeps its mode: it may be shared on purpose.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700 directories; existing ones are kept."""
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass  # made meanwhile by another process


def private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 (SQLite gives its -wal and -shm files the same mode).

    An existing file is not opened: closing any descriptor of a file drops every POSIX lock
    this process holds on it, SQLite's among them. A WAL database's connections hold a shared
    lock for as long as they are open (the SQL store makes its engine while Django's connection
    to the same file may be open); without it, another process closing its last connection
    takes itself for the last user and deletes the -wal and -shm files under ours, whose later
    commits no other process then sees. A symlink is refused, as ``O_NOFOLLOW`` did.
    """
    private_dir(path.parent)
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:  # O_EXCL: a symlink counts as existing and is not followed
        if path.is_symlink():
            raise OSError(errno.ELOOP, "a symlink, not followed", str(path)) from None
        return
    os.close(fd)
