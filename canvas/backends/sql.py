"""An SQL result store through SQLAlchemy Core: SQLite (the embedded default) and PostgreSQL.

URLs: ``sqlite:///path/to/canvas.db`` and ``postgresql://user:password@host:5432/db``
(``postgres://`` and ``postgresql+psycopg://`` too; PostgreSQL always goes through psycopg 3).
Options: ``prefix`` (default ``canvas``) names the tables ``<prefix>_taskmeta``,
``<prefix>_workflows``, ``<prefix>_nodes``, ``<prefix>_inputs``, ``<prefix>_scheduled``,
``<prefix>_leases`` and ``<prefix>_counters``, created on first use; ``expires`` (seconds) is
how long every row counts; ``cleanup_every`` (default 1000) is how many writes of one process
pass between deletions of expired rows, which reads ignore anyway.

Guarantees: ``complete`` is one transaction that locks the node's row, then its successors' rows
in a fixed order (SQLite takes the write lock up front with ``BEGIN IMMEDIATE``), so a join fires
exactly once however many processes finish its inputs together. PostgreSQL waiters sleep on
LISTEN/NOTIFY; SQLite, which has no way to signal another process, is polled (see ``wait``).
SQLite runs in WAL mode with a 30 s busy timeout, so readers never block the writer.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from canvas.backends.base import Backend, Fired, NodeRecord
from canvas.exceptions import ImproperlyConfigured
from canvas.private import private_file

if TYPE_CHECKING:  # imported where LISTEN needs it: 0.2 s that SQLite users never pay
    import psycopg

#: rows per ``IN (...)`` list, well under SQLite's bound-parameter limit
_CHUNK = 500
#: a growing workflow's rows are given its new expiry only when this many seconds older
_REFRESH_SLACK = 60.0
#: idle LISTEN connections kept for later waits
_MAX_IDLE_LISTENERS = 8

_Insert = postgresql.Insert | sqlite.Insert

_create_lock = threading.Lock()


def _reset_create_lock() -> None:
    global _create_lock
    _create_lock = threading.Lock()


# A thread of the parent may hold the lock at fork time; the child must not inherit it held.
os.register_at_fork(after_in_child=_reset_create_lock)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _key(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(255), primary_key=True)


def _col(name: str, kind: Any) -> sa.Column[Any]:
    return sa.Column(name, kind, nullable=False)


class _Tables:
    """The store's tables, named after the ``prefix`` option so that tests can isolate."""

    def __init__(self, prefix: str) -> None:
        self.metadata = sa.MetaData()

        def table(name: str, *columns: sa.Column[Any]) -> sa.Table:
            # Every row expires: reads skip it after expires_at, cleanup() deletes it.
            expires_at = sa.Column("expires_at", sa.Float, nullable=False, index=True)
            return sa.Table(f"{prefix}_{name}", self.metadata, *columns, expires_at)

        blob, count, text = sa.LargeBinary, sa.Integer, sa.Text
        self.taskmeta = table(
            "taskmeta", _key("task_id"), _col("status", sa.String(50)), _col("meta", blob)
        )
        self.workflows = table("workflows", _key("id"), _col("info", blob))
        self.nodes = table(
            "nodes",
            *(_key("workflow_id"), _key("node_id"), _col("seq", count), _col("spec", blob)),
            *(_col("successors", text), _col("n_inputs", count), _col("n_done", count)),
            _col("done", sa.Boolean),
        )
        self.inputs = table("inputs", _key("workflow_id"), _key("node_id"), _key("input_id"))
        due = sa.Column("due", sa.Float, nullable=False, index=True)
        self.scheduled = table("scheduled", _key("key"), due, _col("payload", blob))
        self.leases = table("leases", _key("name"), _col("owner", sa.String(255)))
        self.counters = table("counters", _key("key"), _col("value", sa.BigInteger))
        self.revoked = table("revoked", _key("task_id"), _col("revoked_at", sa.Float))
        self.expiring = list(self.metadata.tables.values())


class _Statements:
    """The hot path's statements, built once with bind parameters: SQLAlchemy then neither
    rebuilds nor re-keys them on each call, which was most of a call's CPU time."""

    def __init__(self, tables: _Tables, insert: Callable[[sa.Table], _Insert]) -> None:
        t, n, i, p = tables.taskmeta, tables.nodes, tables.inputs, sa.bindparam
        meta = insert(t)
        new = meta.excluded
        self.put_meta = meta.on_conflict_do_update(
            index_elements=[t.c.task_id],
            set_={"status": new.status, "meta": new.meta, "expires_at": new.expires_at},
        )
        self.notify = sa.select(sa.func.pg_notify(p("channel"), ""))
        ids: sa.BindParameter[Any] = p("ids", expanding=True)
        now: sa.BindParameter[float] = p("now")
        self.metas = sa.select(t.c.task_id, t.c.status, t.c.meta).where(
            t.c.task_id.in_(ids), t.c.expires_at > now
        )
        this = (n.c.workflow_id == p("wf")) & (n.c.node_id == p("node")) & (n.c.expires_at > now)
        flip = sa.update(n).where(this, n.c.done.is_(False)).values(done=True)
        self.flip = flip.returning(n.c.successors)
        self.done = sa.select(n.c.done).where(this)
        self.add_inputs = insert(i).on_conflict_do_nothing().returning(i.c.node_id)
        theirs = (n.c.workflow_id == p("wf")) & n.c.node_id.in_(ids)
        self.lock = sa.select(n.c.node_id).where(theirs).order_by(n.c.node_id).with_for_update()
        count = sa.update(n).where(theirs).values(n_done=n.c.n_done + 1)
        self.count = count.returning(n.c.node_id, n.c.n_done, n.c.n_inputs, n.c.spec)


@dataclass
class _State:
    """What one process uses: the engine, idle LISTEN connections, a local wake-up."""

    pid: int
    engine: sa.Engine
    listeners: list[psycopg.Connection[Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stored: threading.Condition = field(default_factory=threading.Condition)
    writes: int = 0


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own BEGIN handling is turned off so that _sqlite_begin chooses the BEGIN kind.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")  # safe in WAL: a crash loses no commit
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL once (the mode is kept in the file).

    Processes opening a file that is not in WAL yet (Django's migrations make it in rollback
    mode) race for the switch; SQLite answers the losers "database is locked" at once, without
    waiting out the busy timeout, so they try again while the file is still not in WAL.
    """
    for attempt in range(100):
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.01 + 0.002 * attempt)  # back off: another process is switching it


def _sqlite_begin(conn: sa.Connection) -> None:
    # Writers take the lock at BEGIN: a deferred transaction that reads first and then writes
    # can fail with SQLITE_BUSY at once instead of waiting out the busy timeout.
    immediate = conn.get_execution_options().get("canvas_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class SQLBackend(Backend):
    """Task metas, workflows, delayed messages, leases and counters in seven tables."""

    OPTIONS: ClassVar[frozenset[str]] = Backend.OPTIONS | {"prefix", "cleanup_every"}

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        scheme, sep, rest = url.partition("://")
        if scheme in ("postgres", "postgresql"):
            scheme = "postgresql+psycopg"
        self._url = make_url(f"{scheme}{sep}{rest}")
        self.dialect = self._url.get_backend_name()
        if self.dialect == "sqlite" and self._url.database in (None, "", ":memory:"):
            raise ImproperlyConfigured(
                f"SQLite result store {url!r} has no file: workers in other processes could "
                "not see it. Use a path such as 'sqlite:///canvas.db', or 'memory://'."
            )
        if self.dialect not in ("sqlite", "postgresql"):
            raise ImproperlyConfigured(
                f"SQL result store {url!r}: only sqlite:// and postgresql:// are supported."
            )
        self.prefix: str = str(self.options.get("prefix", "canvas"))
        self.tables = self._make_tables()
        self._sql = _Statements(self.tables, self._insert)
        self.cleanup_every = int(self.options.get("cleanup_every", 1000))
        self._state: _State | None = None

    def _make_tables(self) -> _Tables:
        """The store's tables; a subclass may lay them over tables it owns (Django's models)."""
        return _Tables(self.prefix)

    def _workflow_saved(
        self, conn: sa.Connection, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes
    ) -> None:
        """Called inside ``save_workflow``'s transaction: a subclass may record more there."""

    # -- connections -------------------------------------------------------------------------
    def _current(self) -> _State:
        """This process's engine, made (and tables created) on first use and after a fork."""
        state = self._state
        if state is not None and state.pid == os.getpid():
            return state
        with _create_lock:
            state = self._state
            if state is not None and state.pid == os.getpid():
                return state
            if state is not None:
                # Forked child: forget the parent's connections without closing them.
                state.engine.dispose(close=False)
            if self.dialect == "sqlite":
                # Results (and the workflows' arguments): 0600, in 0700 directories it creates.
                private_file(Path(str(self._url.database)))
                engine = sa.create_engine(self._url)
                sa.event.listen(engine, "connect", _sqlite_connect)
                sa.event.listen(engine, "begin", _sqlite_begin)
            else:
                engine = sa.create_engine(self._url, pool_pre_ping=True)
            self._create_tables(engine)
            state = self._state = _State(os.getpid(), engine)
            return state

    def _create_tables(self, engine: sa.Engine) -> None:
        # Processes starting together race to create the tables; the loser sees "already
        # exists" (or a duplicate pg_type row) and checks again.
        for attempt in range(3):
            try:
                with engine.connect() as conn:
                    conn.execution_options(canvas_write=True)  # SQLite: checks under the lock
                    with conn.begin():
                        self.tables.metadata.create_all(conn)
                return
            except DBAPIError:
                if attempt == 2:
                    raise

    def close(self) -> None:
        state, self._state = self._state, None
        if state is None or state.pid != os.getpid():
            return
        with state.lock:
            listeners, state.listeners = state.listeners, []
        for listener in listeners:
            listener.close()
        state.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction; on SQLite it holds the database lock from its first statement."""
        state = self._current()
        with state.engine.connect() as conn:
            conn.execution_options(canvas_write=True)
            with conn.begin():
                yield conn
        state.writes += 1
        if self.cleanup_every and state.writes % self.cleanup_every == 0:
            self.cleanup()

    def _read(self) -> sa.Connection:
        return self._current().engine.connect()

    def _insert(self, table: sa.Table) -> _Insert:
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def cleanup(self) -> None:
        """Delete expired rows; reads already skip them, this only keeps the tables small."""
        now = time.time()
        with self._current().engine.begin() as conn:
            for table in self.tables.expiring:
                conn.execute(sa.delete(table).where(table.c.expires_at <= now))

    # -- task meta ---------------------------------------------------------------------------
    def _channel(self, task_id: str) -> str:
        # One channel per task keeps waiters from waking for others' results; hashed to fit
        # PostgreSQL's 63-byte identifiers.
        digest = hashlib.blake2b(f"{self.prefix}:{task_id}".encode(), digest_size=20)
        return f"canvas_{digest.hexdigest()}"

    def _put_meta(self, conn: sa.Connection, task_id: str, status: str, meta: bytes) -> None:
        row = {"task_id": task_id, "status": status, "meta": meta}
        conn.execute(self._sql.put_meta, row | {"expires_at": time.time() + self.expires})
        if self.dialect == "postgresql" and self.is_ready(status):
            conn.execute(self._sql.notify, {"channel": self._channel(task_id)})

    def _stored(self) -> None:
        """Wake waiters of this process at once; other processes' waiters poll (SQLite)."""
        stored = self._current().stored
        with stored:
            stored.notify_all()

    def store(self, task_id: str, status: str, meta: bytes) -> None:
        with self._write() as conn:
            self._put_meta(conn, task_id, status, meta)
        if self.is_ready(status):
            self._stored()

    def _metas(self, conn: sa.Connection, task_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        now, found = time.time(), {}
        for chunk in _chunks(task_ids):
            rows = conn.execute(self._sql.metas, {"ids": list(chunk), "now": now})
            found.update({row.task_id: (row.status, row.meta) for row in rows})
        return found

    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        with self._read() as conn:
            found = self._metas(conn, task_ids)
        return [found[t][1] if t in found else None for t in task_ids]

    def _ready_meta(self, task_id: str) -> bytes | None:
        with self._read() as conn:
            entry = self._metas(conn, [task_id]).get(task_id)
        return entry[1] if entry is not None and self.is_ready(entry[0]) else None

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until the task is ready: LISTEN/NOTIFY on PostgreSQL, polling on SQLite.

        SQLite cannot signal another process, so its waiters re-read the row every 10 ms,
        growing to 200 ms: quick for short tasks, cheap for long ones. A store made by this
        process wakes them at once.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.dialect == "postgresql":
            return self._listen(task_id, deadline)
        interval = 0.01
        stored = self._current().stored
        while True:
            meta = self._ready_meta(task_id)
            if meta is not None:
                return meta
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            with stored:
                stored.wait(interval if remaining is None else min(interval, remaining))
            interval = min(interval * 1.5, 0.2)

    def _listen(self, task_id: str, deadline: float | None) -> bytes | None:
        """LISTEN first, then read: a result committed in between is seen by the read or
        arrives as a notification (psycopg keeps those that come during other queries)."""
        state = self._current()
        with state.lock:
            listener = state.listeners.pop() if state.listeners else None
        if listener is None:
            import psycopg  # the PostgreSQL driver: only PostgreSQL stores need it

            conninfo = self._url.set(drivername="postgresql")
            listener = psycopg.connect(conninfo.render_as_string(False), autocommit=True)
        channel = self._channel(task_id)
        reusable = False
        try:
            listener.execute(f'LISTEN "{channel}"')
            meta = self._ready_meta(task_id)
            while meta is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                woken = False
                for notify in listener.notifies(timeout=remaining, stop_after=1):
                    woken = woken or notify.channel == channel
                if woken:
                    meta = self._ready_meta(task_id)
            listener.execute("UNLISTEN *")
            reusable = True
            return meta
        finally:
            with state.lock:
                if reusable and len(state.listeners) < _MAX_IDLE_LISTENERS:
                    state.listeners.append(listener)
                    listener = None
            if listener is not None:
                listener.close()

    def forget_many(self, task_ids: Sequence[str]) -> None:
        t = self.tables.taskmeta
        with self._write() as conn:
            for chunk in _chunks(task_ids):
                conn.execute(sa.delete(t).where(t.c.task_id.in_(chunk)))

    # -- workflows ---------------------------------------------------------------------------
    def save_workflow(self, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes) -> None:
        w, n, i = self.tables.workflows, self.tables.nodes, self.tables.inputs
        expires_at = time.time() + self.expires
        with self._write() as conn:
            row = {"info": info, "expires_at": expires_at}
            stmt = self._insert(w).values(id=workflow_id, **row)
            conn.execute(stmt.on_conflict_do_update(index_elements=[w.c.id], set_=row))
            self._workflow_saved(conn, workflow_id, nodes, info)
            base = conn.scalar(
                sa.select(sa.func.max(n.c.seq)).where(n.c.workflow_id == workflow_id)
            )
            if base is not None:  # growing a workflow: its older rows live as long
                # Rows written in the last minute are left alone: a workflow that grows while it
                # runs (a chord header read from a generator) does not lock the rows its running
                # nodes are completing.
                stale = expires_at - _REFRESH_SLACK
                conn.execute(
                    sa.update(n)
                    .where(n.c.workflow_id == workflow_id, n.c.expires_at < stale)
                    .values(expires_at=expires_at)
                )
                conn.execute(
                    sa.update(i)
                    .where(i.c.workflow_id == workflow_id, i.c.expires_at < stale)
                    .values(expires_at=expires_at)
                )
            if not nodes:
                return
            first = 0 if base is None else base + 1
            rows = [
                dict(workflow_id=workflow_id, node_id=node.id, seq=first + k, spec=node.spec)
                | dict(successors=",".join(node.successors), n_inputs=node.n_inputs)
                | dict(n_done=0, done=False, expires_at=expires_at)
                for k, node in enumerate(nodes)
            ]
            stmt = self._insert(n)
            keep = ("spec", "successors", "n_inputs", "expires_at")
            stmt = stmt.on_conflict_do_update(
                index_elements=[n.c.workflow_id, n.c.node_id],
                set_={name: stmt.excluded[name] for name in keep},
            )
            conn.execute(stmt, rows)

    def workflow_info(self, workflow_id: str) -> bytes | None:
        w = self.tables.workflows
        query = sa.select(w.c.info).where(w.c.id == workflow_id, w.c.expires_at > time.time())
        with self._read() as conn:
            info: bytes | None = conn.scalar(query)
        return info

    def workflow_nodes(self, workflow_id: str) -> list[NodeRecord]:
        n = self.tables.nodes
        query = (
            sa.select(n.c.node_id, n.c.spec, n.c.successors, n.c.n_inputs)
            .where(n.c.workflow_id == workflow_id, n.c.expires_at > time.time())
            .order_by(n.c.seq, n.c.node_id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        split = [(r, tuple(s for s in r.successors.split(",") if s)) for r in rows]
        return [NodeRecord(r.node_id, r.spec, succ, r.n_inputs) for r, succ in split]

    def node_specs(self, workflow_id: str, node_ids: Sequence[str]) -> list[bytes | None]:
        n, now, found = self.tables.nodes, time.time(), {}
        with self._read() as conn:
            for chunk in _chunks(node_ids):
                query = sa.select(n.c.node_id, n.c.spec).where(
                    n.c.workflow_id == workflow_id, n.c.node_id.in_(chunk), n.c.expires_at > now
                )
                found.update({row.node_id: row.spec for row in conn.execute(query)})
        return [found.get(node_id) for node_id in node_ids]

    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        """One transaction: flip the node's done flag, write its meta, count it as an input.

        The done flag is flipped by an UPDATE that only matches while it is false, which locks
        the row: a second run waits for the first to commit, then matches nothing. The
        successors' rows are locked in id order before their counters move, so two processes
        finishing the last two inputs of a join serialise on it and only the second fires it.
        """
        q, now = self._sql, time.time()
        key = {"wf": workflow_id, "node": node_id, "now": now}
        with self._write() as conn:
            won = conn.execute(q.flip, key).first()
            if won is None and conn.scalar(q.done, key) is not None:
                return []  # a second run: the first meta stays
            self._put_meta(conn, node_id, status, meta)
            successors = sorted({s for s in won.successors.split(",") if s}) if won else []
            fired: dict[str, bytes] = {}
            edge = {
                "workflow_id": workflow_id,
                "input_id": node_id,
                "expires_at": now + self.expires,
            }
            for chunk in _chunks(successors):
                added = conn.execute(q.add_inputs, [edge | {"node_id": s} for s in chunk])
                ids = {"wf": workflow_id, "ids": sorted(added.scalars())}
                if not ids["ids"]:
                    continue  # counted before (belt and braces: the done flag prevents it)
                if self.dialect == "postgresql":
                    conn.execute(q.lock, ids).all()
                rows = conn.execute(q.count, ids)
                fired.update({r.node_id: r.spec for r in rows if r.n_done == r.n_inputs})
        if self.is_ready(status):
            self._stored()
        order = won.successors.split(",") if won else []
        return [Fired(s, fired[s]) for s in order if s in fired]

    def update_join(self, workflow_id: str, node: NodeRecord) -> list[Fired]:
        """One transaction on the join's locked row: new spec and input count; it fires here if
        its inputs done already reach the new count and never reached the old one."""
        n = self.tables.nodes
        this = (n.c.workflow_id == workflow_id) & (n.c.node_id == node.id)
        query = sa.select(n.c.n_done, n.c.n_inputs).where(this)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        with self._write() as conn:
            row = conn.execute(query).first()
            if row is None:
                return []
            values = {"spec": node.spec, "successors": ",".join(node.successors)}
            conn.execute(sa.update(n).where(this).values(n_inputs=node.n_inputs, **values))
        if row.n_inputs > row.n_done >= node.n_inputs:
            return [Fired(node.id, node.spec)]
        return []

    # -- delayed messages --------------------------------------------------------------------
    # A row's key is ``<space>|<key>``: one table holds every broker's parked messages.
    def schedule(self, key: str, due: float, payload: bytes, space: str = "") -> None:
        s = self.tables.scheduled
        row = {"due": due, "payload": payload, "expires_at": max(due, time.time()) + self.expires}
        with self._write() as conn:
            stmt = self._insert(s).values(key=f"{space}|{key}", **row)
            conn.execute(stmt.on_conflict_do_update(index_elements=[s.c.key], set_=row))

    def claim_due(
        self, now: float, lease: float, limit: int = 100, space: str = ""
    ) -> list[tuple[str, bytes]]:
        s = self.tables.scheduled
        query = (
            sa.select(s.c.key, s.c.payload)
            .where(
                s.c.key.startswith(f"{space}|", autoescape=True),
                s.c.due <= now,
                s.c.expires_at > time.time(),
            )
            .order_by(s.c.due)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            # Two claimers take disjoint batches instead of queueing behind each other.
            query = query.with_for_update(skip_locked=True)
        with self._write() as conn:
            rows = [(r.key, r.payload) for r in conn.execute(query)]
            if rows:
                keys = [key for key, _ in rows]
                conn.execute(sa.update(s).where(s.c.key.in_(keys)).values(due=now + lease))
        return [(key.split("|", 1)[1], payload) for key, payload in rows]

    def ack_scheduled(self, keys: Sequence[str], space: str = "") -> None:
        s = self.tables.scheduled
        with self._write() as conn:
            for chunk in _chunks([f"{space}|{key}" for key in keys]):
                conn.execute(sa.delete(s).where(s.c.key.in_(chunk)))

    def next_due(self, space: str = "") -> float | None:
        s = self.tables.scheduled
        query = sa.select(sa.func.min(s.c.due)).where(
            s.c.key.startswith(f"{space}|", autoescape=True), s.c.expires_at > time.time()
        )
        with self._read() as conn:
            due = conn.scalar(query)
        return None if due is None else float(due)

    # -- leases ------------------------------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """One upsert that only overwrites a lease held by ``owner`` or already expired."""
        lease = self.tables.leases
        with self._write() as conn:
            now = time.time()  # once connected: the ttl may be shorter than a first connect
            stmt = self._insert(lease).values(name=name, owner=owner, expires_at=now + ttl)
            stmt = stmt.on_conflict_do_update(
                index_elements=[lease.c.name],
                set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at},
                where=(lease.c.owner == stmt.excluded.owner) | (lease.c.expires_at <= now),
            )
            return conn.execute(stmt.returning(lease.c.owner)).first() is not None

    def release_lease(self, name: str, owner: str) -> None:
        lease = self.tables.leases
        with self._write() as conn:
            conn.execute(sa.delete(lease).where(lease.c.name == name, lease.c.owner == owner))

    # -- counters ----------------------------------------------------------------------------
    def incr(self, key: str, ttl: float, by: int = 1) -> int:
        c = self.tables.counters
        with self._write() as conn:
            now = time.time()
            expired = c.c.expires_at <= now
            stmt = self._insert(c).values(key=key, value=by, expires_at=now + ttl)
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.c.key],
                set_={
                    "value": sa.case((expired, by), else_=c.c.value + by),
                    "expires_at": sa.case((expired, now + ttl), else_=c.c.expires_at),
                },
            )
            value: int = conn.execute(stmt.returning(c.c.value)).scalar_one()
        return value

    # -- revokes -----------------------------------------------------------------------------
    def _revoked_table(self) -> sa.Table:
        table: sa.Table | None = getattr(self.tables, "revoked", None)
        if table is None:  # a store laid over tables of its own (Django's) may have none
            raise NotImplementedError(
                f"The result store {type(self).__name__} has no table for revokes: they reach "
                "running workers only. Use worker --statedb to keep them across restarts."
            )
        return table

    def add_revoked(self, task_ids: Sequence[str], ttl: float) -> None:
        if not task_ids:
            return
        r = self._revoked_table()
        with self._write() as conn:
            now = time.time()
            stmt = self._insert(r)
            stmt = stmt.on_conflict_do_update(
                index_elements=[r.c.task_id],
                set_={
                    "revoked_at": stmt.excluded.revoked_at,
                    "expires_at": stmt.excluded.expires_at,
                },
            )
            conn.execute(
                stmt, [{"task_id": t, "revoked_at": now, "expires_at": now + ttl} for t in task_ids]
            )

    def revoked_since(self, since: float) -> list[tuple[str, float]]:
        r = self._revoked_table()
        query = (
            sa.select(r.c.task_id, r.c.revoked_at)
            .where(r.c.revoked_at >= since, r.c.expires_at > time.time())
            .order_by(r.c.revoked_at)
        )
        with self._read() as conn:
            return [(str(t), float(at)) for t, at in conn.execute(query)]
