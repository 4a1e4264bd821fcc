"""Private files: made 0600, and an existing one is never opened (SQLite's locks live on it)."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from canvas.private import private_file

# Another process opens the database, reads it and closes its connection: if it finds no other
# process's lock on the file, SQLite takes it for the last user, checkpoints and deletes the WAL.
_VISIT = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute({}).fetchall())"


def _visit(path: Path, query: str) -> str:
    code = _VISIT.format(repr(query))
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_new_file_is_made_0600_in_0700_directories(tmp_path: Path) -> None:
    path = tmp_path / "made" / "here" / "store.db"
    private_file(path)
    assert path.read_bytes() == b""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_existing_file_keeps_its_mode_and_content(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.write_bytes(b"kept")
    path.chmod(0o640)
    private_file(path)
    assert path.read_bytes() == b"kept"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "store.db"
    link.symlink_to(victim)
    with pytest.raises(OSError) as refused:
        private_file(link)
    assert refused.value.errno == errno.ELOOP
    assert victim.read_bytes() == b"precious"
    dangling = tmp_path / "dangling.db"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OSError):
        private_file(dangling)
    assert not (tmp_path / "nowhere").exists()


def test_a_connection_open_in_this_process_keeps_its_lock_and_its_writes(tmp_path: Path) -> None:
    # Given a WAL database this process has open, with a commit not yet checkpointed (the SQL
    # store makes its engine while Django's connection to the same file is open)
    path = tmp_path / "results.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
        # When the file is made private again, and another process opens and closes it
        private_file(path)
        assert _visit(path, "SELECT count(*) FROM t") == "[(1,)]"
        # Then it saw this process as a user: the WAL is still there (closing a descriptor of
        # the file drops every lock the process holds on it, and the other process deleted it)
        assert Path(f"{path}-wal").exists()
        # and what this process commits next reaches other processes
        conn.execute("INSERT INTO t VALUES (2)")
        assert _visit(path, "SELECT x FROM t ORDER BY x") == "[(1,), (2,)]"
    finally:
        conn.close()
    assert os.path.exists(path)
