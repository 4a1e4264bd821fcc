"""Files that hold task arguments and results: readable by their owner only.

The embedded broker and the SQLite result store keep every task's arguments and results in
plain files; created with the process umask (0644 in a 0755 directory) any local user could read
them. ``private_file`` creates such a file 0600, and the directories it has to create 0700.
A file or directory that already exists keeps its mode: it may be shared on purpose.
"""

from __future__ import annotations

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
    """Create ``path`` empty and 0600 (SQLite gives its -wal and -shm files the same mode)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o600)
    os.close(fd)
