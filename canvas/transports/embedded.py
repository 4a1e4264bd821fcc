"""The embedded transport: queues kept in a SQLite file, for one machine and no broker server.

URL format: ``embedded:///abs/path/broker.db`` (absolute path) or ``embedded://relative/path.db``
(relative to the working directory; ``~`` is expanded, missing directories are created).
``memory://`` gives a temporary file that is private to this transport object and to processes
forked from it, and is deleted by ``close()``; use a file path to share queues between separately
started processes.

Guarantees:

* ``publish`` returns once the batch's transaction has committed (WAL mode with
  ``synchronous=NORMAL``: a crash of any process loses nothing, a power cut may lose the last
  commits).
* ``get`` claims one message atomically with a lease of ``visibility_timeout`` seconds; a message
  whose consumer died becomes visible again when its lease runs out, and ``extend`` renews it.
  ``close()`` hands unsettled messages back at once.
* Higher ``priority`` first (``None`` counts as 0), then FIFO, within a queue; several queues of
  one consumer are served round-robin.
* A settle (ack/reject) with an expired lease whose message another consumer has claimed since is
  ignored: the new holder settles it.

Options: ``visibility_timeout`` (seconds, default 60), ``poll_interval`` (longest sleep of an idle
``get`` between looks, default 0.05 s), ``busy_timeout`` (seconds SQLite waits for the write lock,
default 30), ``reply_expires`` (seconds a reply waits for its client before a publisher of
replies deletes it, at most once a minute; default a day).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack

from canvas.exceptions import ImproperlyConfigured
from canvas.private import private_file
from canvas.transports.base import (
    REASON_HEADER,
    REPLY_PREFIX,
    Consumer,
    Delivery,
    OutgoingMessage,
    Transport,
    is_reply_queue,
    reply_expires,
)

#: header of a dead letter whose original headers could not be decoded: their raw bytes
RAW_HEADERS = "x-canvas-raw-headers"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS canvas_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a stale ack must not hit a new message
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    visible_at REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    content_type TEXT NOT NULL,
    headers BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS canvas_messages_next ON canvas_messages (queue, priority DESC, id);
"""

#: reply-queue messages visible since before a time (a name range: the index serves it)
_SWEEP_REPLIES = "DELETE FROM canvas_messages WHERE queue >= ? AND queue < ? AND visible_at < ?"
#: every reply queue's name sorts from REPLY_PREFIX up to this (its last character + 1)
_REPLY_END = REPLY_PREFIX[:-1] + chr(ord(REPLY_PREFIX[-1]) + 1)
#: seconds between two sweeps of old replies by one transport
_SWEEP_EVERY = 60.0

_INSERT = (
    "INSERT INTO canvas_messages (queue, priority, visible_at, content_type, headers, body)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

# One statement, so SQLite takes the write lock before it reads: two consumers never claim the
# same row, and no transaction ever has to be upgraded from a stale read snapshot.
_CLAIM = """
UPDATE canvas_messages SET visible_at = ?, deliveries = deliveries + 1, lease = ?
WHERE id = (
    SELECT id FROM canvas_messages WHERE queue = ? AND visible_at <= ?
    ORDER BY priority DESC, id LIMIT 1
)
RETURNING id, deliveries, content_type, headers, body
"""


def _pack(headers: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(headers, use_bin_type=True)
    return packed


def _unpack(data: bytes) -> dict[str, Any]:
    """A row's headers; ``ValueError`` naming the fault when they are not a msgpack map."""
    try:
        headers = msgpack.unpackb(bytes(data), raw=False)
    except Exception as exc:
        raise ValueError(f"undecodable headers ({type(exc).__name__}: {exc})") from None
    if not isinstance(headers, dict):
        raise ValueError(f"headers are a {type(headers).__name__}, not a mapping")
    return headers


class EmbeddedTransport(Transport):
    """Queues in one SQLite file shared by the processes of one machine."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.visibility_timeout = float(self.options.get("visibility_timeout") or 60.0)
        self.poll_interval = float(self.options.get("poll_interval") or 0.05)
        self.busy_timeout = float(self.options.get("busy_timeout") or 30.0)
        self._tempdir: str | None = None
        self.path = self._path_from_url(url)
        self._owner_pid = self._lock_pid = os.getpid()
        self._thread_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._next_sweep = 0.0  # of replies nobody read (see publish)
        self._conn_pid = 0
        # Connections inherited through fork: never used or closed in the child, only kept
        # referenced so that the garbage collector does not close the parent's handles.
        self._inherited: list[sqlite3.Connection] = []
        self._closed = False

    def where(self) -> str:
        return f"embedded://{self.path.resolve()}"

    def _path_from_url(self, url: str) -> Path:
        scheme, _, rest = url.partition("://")
        if scheme == "memory":
            self._tempdir = tempfile.mkdtemp(prefix="canvas-broker-")  # 0700
            path = Path(self._tempdir) / "broker.db"
            private_file(path)
            return path
        if not rest:
            raise ImproperlyConfigured(
                f"The embedded broker URL {url!r} names no file. Use "
                "'embedded:///absolute/path/broker.db' or 'embedded://relative/path.db'."
            )
        path = Path(os.path.expanduser(rest))
        private_file(path)  # task arguments: 0600, in 0700 directories it creates
        return path

    def connect(self) -> sqlite3.Connection:
        """A new connection with the schema in place; each consumer owns one."""
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,  # autocommit; multi-statement writes say BEGIN IMMEDIATE
            check_same_thread=False,  # a worker may close a consumer from another thread
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _lock(self) -> threading.Lock:
        """This process's lock: fork may copy a lock held by a thread the child does not have."""
        if self._lock_pid != os.getpid():
            self._thread_lock, self._lock_pid = threading.Lock(), os.getpid()
        return self._thread_lock

    def _shared(self) -> sqlite3.Connection:
        """This process's connection for publish/size/purge/extend; use it under ``_lock``."""
        if self._closed:
            raise RuntimeError(f"The transport for {self.url!r} is closed.")
        pid = os.getpid()
        if self._conn is None or self._conn_pid != pid:
            if self._conn is not None:
                self._inherited.append(self._conn)
            self._conn = self.connect()
            self._conn_pid = pid
        return self._conn

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        now = time.time()
        rows = [
            (m.queue, m.priority or 0, now, m.content_type, _pack(m.headers), m.body)
            for m in messages
        ]
        sweep = now >= self._next_sweep and any(is_reply_queue(m.queue) for m in messages)
        with self._lock():
            conn = self._shared()
            with _immediate(conn):
                conn.executemany(_INSERT, rows)
                if sweep:
                    # Replies nobody read within reply_expires: their client is gone.
                    horizon = now - reply_expires(self.options)
                    conn.execute(_SWEEP_REPLIES, (REPLY_PREFIX, _REPLY_END, horizon))
        if sweep:
            self._next_sweep = now + _SWEEP_EVERY

    def consumer(self, queues: Iterable[str], prefetch: int = 1) -> EmbeddedConsumer:
        return EmbeddedConsumer(self, list(queues), prefetch)

    def purge(self, queue: str) -> int:
        with self._lock():
            cur = self._shared().execute(
                "DELETE FROM canvas_messages WHERE queue = ? AND visible_at <= ?",
                (queue, time.time()),
            )
            return cur.rowcount

    def size(self, queue: str) -> int:
        with self._lock():
            row = (
                self._shared()
                .execute(
                    "SELECT count(*) FROM canvas_messages WHERE queue = ? AND visible_at <= ?",
                    (queue, time.time()),
                )
                .fetchone()
            )
        return int(row[0])

    def _extend(self, ids: Sequence[int], lease: str) -> None:
        until = time.time() + self.visibility_timeout
        with self._lock():
            self._shared().executemany(
                "UPDATE canvas_messages SET visible_at = ? WHERE id = ? AND lease = ?",
                [(until, id_, lease) for id_ in ids],
            )

    def close(self) -> None:
        with self._lock():
            if self._closed:
                return
            self._closed = True
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None
            if self._tempdir is not None and os.getpid() == self._owner_pid:
                shutil.rmtree(self._tempdir, ignore_errors=True)


class EmbeddedConsumer(Consumer):
    """Claims messages with a lease named after this consumer; owns its own connection."""

    def __init__(self, transport: EmbeddedTransport, queues: list[str], prefetch: int) -> None:
        if not queues:
            raise ValueError("A consumer needs at least one queue name.")
        self.transport = transport
        self.queues = queues
        self.prefetch = max(1, prefetch)
        self._lease = uuid.uuid4().hex
        self._conn: sqlite3.Connection | None = transport.connect()
        self._held: set[int] = set()
        self._next_queue = 0

    def get(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            if len(self._held) < self.prefetch:
                delivery = self._claim()
                if delivery is not None:
                    return delivery
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, self.transport.poll_interval)

    def _claim(self) -> Delivery | None:
        conn = self._connection()
        now = time.time()
        until = now + self.transport.visibility_timeout
        n = len(self.queues)
        for i in range(n):
            queue = self.queues[(self._next_queue + i) % n]
            rows = conn.execute(_CLAIM, (until, self._lease, queue, now)).fetchall()
            if rows:
                self._next_queue = (self._next_queue + i + 1) % n
                id_, deliveries, content_type, raw_headers, body = rows[0]
                self._held.add(id_)
                error = None
                try:
                    headers = _unpack(raw_headers)
                except ValueError as exc:  # a bad message: the worker dead-letters it
                    headers, error = {RAW_HEADERS: bytes(raw_headers)}, str(exc)
                return Delivery(
                    queue=queue,
                    body=body.encode() if isinstance(body, str) else bytes(body or b""),
                    headers=headers,
                    content_type=str(content_type),
                    redelivered=deliveries > 1,
                    tag=id_,
                    consumer=self,
                    error=error,
                )
        return None

    def ack(self, delivery: Delivery) -> None:
        self._connection().execute(
            "DELETE FROM canvas_messages WHERE id = ? AND lease = ?", (delivery.tag, self._lease)
        )
        self._held.discard(delivery.tag)

    def reject(self, delivery: Delivery, requeue: bool, reason: str = "") -> None:
        conn = self._connection()
        if requeue and delivery.error is None:
            conn.execute(
                "UPDATE canvas_messages SET visible_at = ?, lease = NULL"
                " WHERE id = ? AND lease = ?",
                (time.time(), delivery.tag, self._lease),
            )
        else:
            with _immediate(conn):
                row = conn.execute(
                    "DELETE FROM canvas_messages WHERE id = ? AND lease = ? RETURNING priority",
                    (delivery.tag, self._lease),
                ).fetchall()
                if row:
                    headers = {**delivery.headers, REASON_HEADER: reason}
                    conn.execute(
                        _INSERT,
                        (
                            self.transport.dead_letters(delivery.queue),
                            row[0][0],
                            time.time(),
                            delivery.content_type,
                            _pack(headers),
                            delivery.body,
                        ),
                    )
        self._held.discard(delivery.tag)

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Push the leases forward; runs on the transport's own connection, so any thread may."""
        if deliveries:
            self.transport._extend([d.tag for d in deliveries], self._lease)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(
                "UPDATE canvas_messages SET visible_at = ?, lease = NULL WHERE lease = ?",
                (time.time(), self._lease),
            )
        finally:
            conn.close()
            self._held.clear()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("This consumer is closed.")
        return self._conn


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the lock up front, so it waits instead of failing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
