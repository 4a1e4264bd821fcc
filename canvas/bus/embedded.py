"""The embedded bus: a table in the embedded broker's SQLite file, for one machine.

Publishing inserts a row; a subscription remembers the last row id it saw (rows committed before
it subscribed are not its) and polls for newer rows of its topics every ``poll_interval``
seconds (default 0.05, backing off from 5 ms). Ids are never reused and SQLite commits one writer
at a time, so ids grow in commit order and no row is skipped. Rows older than ``bus_retention``
seconds (default 60) are deleted by publishers from time to time: a subscriber that stops polling
for longer than that misses messages, as the bus contract allows.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from canvas.bus.base import Bus, BusMessage, Subscription, check_topic

_SCHEMA = """
CREATE TABLE IF NOT EXISTS canvas_bus (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    published_at REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS canvas_bus_topic ON canvas_bus (topic, id);
"""
#: publishers prune old rows after this many publishes
_PRUNE_EVERY = 200


class EmbeddedBus(Bus):
    """Rows in ``canvas_bus``; ``path`` is the embedded broker's database file."""

    def __init__(self, url: str, options: dict[str, Any] | None = None, *, path: Path) -> None:
        super().__init__(url, options)
        self.path = path
        self.poll_interval = float(self.options.get("poll_interval") or 0.05)
        self.retention = float(self.options.get("bus_retention") or 60.0)
        self.busy_timeout = float(self.options.get("busy_timeout") or 30.0)
        self._local = threading.local()
        self._published = 0

    @classmethod
    def for_transport(cls, transport: Any) -> EmbeddedBus:
        """The bus in the transport's own file (``memory://`` makes a private one)."""
        options = dict(getattr(transport, "options", None) or {})
        return cls(str(transport.url), options, path=Path(transport.path))

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,  # a subscription may be made in one thread, read in another
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        """One connection per thread (and so per process: a fork keeps only the caller's)."""
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if held is None or held[0] != os.getpid():
            held = self._local.conn = (os.getpid(), self.connect())
        return held[1]

    def publish(self, topic: str, payload: bytes) -> None:
        conn = self._connection()
        now = time.time()
        conn.execute(
            "INSERT INTO canvas_bus (topic, published_at, payload) VALUES (?, ?, ?)",
            (check_topic(topic), now, bytes(payload)),
        )
        self._published += 1
        if self._published % _PRUNE_EVERY == 0:
            conn.execute("DELETE FROM canvas_bus WHERE published_at < ?", (now - self.retention,))

    def subscribe(self, topics: Sequence[str]) -> EmbeddedSubscription:
        return EmbeddedSubscription(self, topics)

    def close(self) -> None:
        held = getattr(self._local, "conn", None)
        self._local.conn = None
        if held is not None and held[0] == os.getpid():
            held[1].close()


class EmbeddedSubscription(Subscription):
    """Polls for rows of its topics newer than the last one it saw."""

    def __init__(self, bus: EmbeddedBus, topics: Sequence[str]) -> None:
        super().__init__(topics)
        self.bus = bus
        self._conn = bus.connect()
        self._buffer: deque[BusMessage] = deque()
        row = self._conn.execute("SELECT coalesce(max(id), 0) FROM canvas_bus").fetchone()
        self._last = int(row[0])
        marks = ",".join("?" * len(self.topics))
        self._query = (
            f"SELECT id, topic, payload FROM canvas_bus WHERE id > ? AND topic IN ({marks})"
            " ORDER BY id LIMIT 500"
        )

    def _poll(self) -> None:
        rows = self._conn.execute(self._query, (self._last, *self.topics)).fetchall()
        for id_, topic, payload in rows:
            self._last = max(self._last, int(id_))
            self._buffer.append(BusMessage(topic, bytes(payload)))

    def get(self, timeout: float) -> BusMessage | None:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            if not self._buffer:
                self._poll()
            if self._buffer:
                return self._buffer.popleft()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(delay, left))
            delay = min(delay * 2, self.bus.poll_interval)

    def close(self) -> None:
        self._conn.close()
