"""The Django app's result store: canvas's SQL store, laid over tables that Django's models own.

URLs: ``django-db://`` or ``django-db://<alias>`` (a database of ``DATABASES``; the ``default``
one when empty), which ``result_backend = "django-db"`` means once ``canvas.contrib.django`` is
installed; a ``sqlite:///...`` or ``postgresql://...`` URL of a migrated database works too.
Options are the SQL store's; ``prefix`` defaults to ``canvas_django``, the app's table prefix.

Why the SQL store and not the ORM: the join that wires a workflow (``complete``) is the SQL
store's, unchanged: one transaction, row locks in a fixed order on PostgreSQL, ``BEGIN
IMMEDIATE`` and WAL on SQLite, LISTEN/NOTIFY for waiters. It runs on connections of its own, so
a workflow saved while a view's transaction is open is committed at once (its messages are
already on the broker) and a view's rollback cannot take a task's result with it.

Where each record lives (``migrate`` makes the tables; a store that misses one says so):

* a task meta is a ``TaskResult`` row: canvas reads ``canvas_meta`` (the msgpack record, opaque),
  and the same upsert fills django-celery-results' columns from it (``status``, ``task_name``,
  ``result`` as JSON, ``traceback``, ``date_done``, ``worker``, and with ``result_extended`` the
  ``task_args``/``task_kwargs`` reprs and ``periodic_task_name``). With message signing or
  encryption on, the record is sealed and only ``status`` is filled;
* a workflow is a ``Workflow`` row with its ``WorkflowNode`` and ``NodeInput`` rows; each group
  or chord header in it also gets a ``GroupResult`` row listing its members' task ids;
* delayed messages, beat's leader lease and counters are ``ScheduledMessage``, ``Lease`` and
  ``Counter`` rows.

Every row has the SQL store's ``expires_at``; reads skip expired rows and ``cleanup`` (every
``cleanup_every`` writes, or ``manage.py canvas_cleanup``) deletes them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from canvas.backends.base import NodeRecord
from canvas.backends.sql import SQLBackend, _Tables
from canvas.contrib.django.database import database_url
from canvas.core import metas
from canvas.core.protocol import internal
from canvas.exceptions import ImproperlyConfigured

__all__ = ["CONTENT_ENCODING", "CONTENT_TYPE", "DjangoStore", "DjangoTables", "PREFIX"]

#: the app label, and so the prefix of every table Django's migrations make
PREFIX = "canvas_django"
#: how ``TaskResult.result`` and ``GroupResult.result`` are written
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"

#: meta keys that have a column of their own; the rest go to the ``meta`` JSON column
_COLUMN_KEYS = frozenset(
    {
        "task_id",
        "status",
        "result",
        "traceback",
        "date_done",
        "name",
        "worker",
        "workflow",
        "args",
        "kwargs",
        "periodic_task_name",
        "started_at",
    }
)
#: columns a later write keeps when it has no value for them (a final meta has no start time)
_KEPT = ("date_started", "task_name", "task_args", "task_kwargs", "worker", "periodic_task_name")


def _id() -> sa.Column[int]:
    # BIGINT identity on PostgreSQL, SQLite's INTEGER rowid: what Django's BigAutoField makes.
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)


def _str(name: str, length: int = 255, *, null: bool = False, **kw: Any) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=null, **kw)


def _when(name: str, *, null: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=null)


class DjangoTables(_Tables):
    """The SQL store's tables as ``canvas.contrib.django.models`` defines them.

    Same roles and column names as ``_Tables``, plus a surrogate ``id`` where the SQL store has a
    composite key (Django models have one primary key column) and django-celery-results' columns
    on the task metas. ``tests/integration/test_django_project.py`` checks it against the
    migrations.
    """

    def __init__(self, prefix: str) -> None:
        self.metadata = sa.MetaData()

        def table(name: str, *columns: Any) -> sa.Table:
            expires_at = sa.Column("expires_at", sa.Float, nullable=False, index=True)
            return sa.Table(f"{prefix}_{name}", self.metadata, *columns, expires_at)

        blob, text, count = sa.LargeBinary, sa.Text, sa.Integer
        self.taskmeta = table(
            "taskresult",
            _id(),
            _str("task_id", unique=True),
            _str("periodic_task_name", null=True),
            _str("task_name", null=True),
            sa.Column("task_args", text),
            sa.Column("task_kwargs", text),
            _str("status", 50),
            _str("worker", 100, null=True),
            _str("content_type", 128),
            _str("content_encoding", 64),
            sa.Column("result", text),
            _when("date_created", null=False),
            _when("date_started"),
            _when("date_done"),
            sa.Column("traceback", text),
            # django-celery-results' ``meta`` (JSON text) and canvas's record, which the SQL
            # store's statements know as ``meta``: the column keys keep both names apart.
            sa.Column("meta", text, key="meta_json"),
            _str("workflow_id", null=True),
            sa.Column("canvas_meta", blob, key="meta"),
        )
        self.groupresult = table(
            "groupresult",
            _id(),
            _str("group_id", unique=True),
            _when("date_created", null=False),
            _when("date_done"),
            _str("content_type", 128),
            _str("content_encoding", 64),
            sa.Column("result", text),
            _str("workflow_id", null=True),
        )
        self.workflows = table(
            "workflow",
            _str("id", primary_key=True),
            sa.Column("info", blob, nullable=False),
            _when("date_created"),
        )
        self.nodes = table(
            "workflownode",
            _id(),
            _str("workflow_id"),
            _str("node_id"),
            sa.Column("seq", count, nullable=False),
            sa.Column("spec", blob, nullable=False),
            sa.Column("successors", text, nullable=False),
            sa.Column("n_inputs", count, nullable=False),
            sa.Column("n_done", count, nullable=False),
            sa.Column("done", sa.Boolean, nullable=False),
            sa.UniqueConstraint("workflow_id", "node_id"),
        )
        self.inputs = table(
            "nodeinput",
            _id(),
            _str("workflow_id"),
            _str("node_id"),
            _str("input_id"),
            sa.UniqueConstraint("workflow_id", "node_id", "input_id"),
        )
        self.scheduled = table(
            "scheduledmessage",
            _str("key", primary_key=True),
            sa.Column("due", sa.Float, nullable=False, index=True),
            sa.Column("payload", blob, nullable=False),
        )
        self.leases = table("lease", _str("name", primary_key=True), _str("owner"))
        self.counters = table(
            "counter",
            _str("key", primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
        )
        self.expiring = list(self.metadata.tables.values())


def _decode(data: bytes | None) -> dict[str, Any]:
    """A record as a dict; ``{}`` when it is sealed (signed or encrypted) or not canvas's."""
    try:
        return metas.decode(data) or {}
    except Exception:  # a sealed record is bytes that merely look like msgpack, or do not
        return {}


def _json(value: Any) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False)


def _plain(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else repr(value)


def _moment(epoch: Any) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if isinstance(epoch, int | float) else None


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else _json(value)
    return text[:limit] if limit else text


def result_columns(meta: Mapping[str, Any]) -> dict[str, Any]:
    """django-celery-results' columns for one decoded meta (all of them, ``None`` if unknown)."""
    rest = {k: v for k, v in meta.items() if k not in _COLUMN_KEYS}
    return {
        "periodic_task_name": _text(meta.get("periodic_task_name"), 255),
        "task_name": _text(meta.get("name"), 255),
        "task_args": _text(meta.get("args")),
        "task_kwargs": _text(meta.get("kwargs")),
        "worker": _text(meta.get("worker"), 100),
        "result": _json(meta["result"]) if "result" in meta else None,
        "traceback": _text(meta.get("traceback")),
        "date_started": _moment(meta.get("started_at")),
        "date_done": _moment(meta.get("date_done")),
        "meta_json": _json(rest) if rest else None,
        "workflow_id": _text(meta.get("workflow"), 255),
    }


class DjangoStore(SQLBackend):
    """The SQL store on ``canvas.contrib.django``'s tables (see the module docstring)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.alias: str | None = None
        if url.split("://", 1)[0] == "django-db":
            self.alias = url.partition("://")[2].strip("/") or "default"
            url = database_url(self.alias)
        super().__init__(url, {"prefix": PREFIX, **(options or {})})
        self.tables: DjangoTables
        t = self.tables.taskmeta
        stmt = self._insert(t)
        new = stmt.excluded
        changed = {
            c.key: new[c.key]
            for c in t.columns
            if c.key not in ("id", "task_id", "date_created", *_KEPT)
        }
        kept = {key: sa.func.coalesce(new[key], t.c[key]) for key in _KEPT}
        self._put_row = stmt.on_conflict_do_update(
            index_elements=[t.c.task_id], set_=changed | kept
        )
        g = self.tables.groupresult
        self._put_group = self._insert(g).on_conflict_do_nothing(index_elements=[g.c.group_id])
        w = self.tables.workflows
        self._date_workflow = (
            sa.update(w)
            .where(w.c.id == sa.bindparam("wf"), w.c.date_created.is_(None))
            .values(date_created=sa.bindparam("created"))
        )

    def _make_tables(self) -> DjangoTables:
        return DjangoTables(self.prefix)

    def _create_tables(self, engine: sa.Engine) -> None:
        """Django's migrations own the tables: check they are there, never make them."""
        inspector = sa.inspect(engine)
        missing = [t.name for t in self.tables.expiring if not inspector.has_table(t.name)]
        if missing:
            engine.dispose()  # the store stays unusable: keep no connection open for it
            where = make_url(str(engine.url)).render_as_string(hide_password=True)
            raise ImproperlyConfigured(
                f"The canvas tables {', '.join(missing)} are missing from {where}: run "
                "'python manage.py migrate canvas_django' (with 'canvas.contrib.django' in "
                "INSTALLED_APPS)."
            )

    # -- writes --------------------------------------------------------------------------------
    def _put_meta(self, conn: sa.Connection, task_id: str, status: str, meta: bytes) -> None:
        now = time.time()
        row = {
            "task_id": task_id,
            "status": status,
            "meta": meta,
            "expires_at": now + self.expires,
            "date_created": datetime.fromtimestamp(now, UTC),
            "content_type": CONTENT_TYPE,
            "content_encoding": CONTENT_ENCODING,
            **result_columns(_decode(meta)),
        }
        conn.execute(self._put_row, row)
        if self.dialect == "postgresql" and self.is_ready(status):
            conn.execute(self._sql.notify, {"channel": self._channel(task_id)})

    def _workflow_saved(
        self, conn: sa.Connection, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes
    ) -> None:
        """Date the workflow, and give each group and chord header a ``GroupResult`` row."""
        try:
            data = internal.loads(info)
        except Exception:  # sealed, or not written by dispatch: nothing to read from it
            return
        if not isinstance(data, dict):
            return
        now = time.time()
        created = _moment(data.get("created")) or datetime.fromtimestamp(now, UTC)
        conn.execute(self._date_workflow, {"wf": workflow_id, "created": created})
        rows = [
            {
                "group_id": str(cluster[0]),
                "date_created": created,
                "date_done": None,
                "content_type": CONTENT_TYPE,
                "content_encoding": CONTENT_ENCODING,
                "result": _json([str(member) for member in cluster[2]]),
                "workflow_id": workflow_id,
                "expires_at": now + self.expires,
            }
            for cluster in data.get("clusters") or ()
            if isinstance(cluster, list | tuple) and len(cluster) >= 3
        ]
        if rows:
            conn.execute(self._put_group, rows)

    def cleanup(self) -> None:
        self.remove_expired()

    def remove_expired(self) -> dict[str, int]:
        """Delete expired rows; how many went from each table (``manage.py canvas_cleanup``)."""
        now, removed = time.time(), {}
        with self._current().engine.begin() as conn:
            for table in self.tables.expiring:
                done = conn.execute(sa.delete(table).where(table.c.expires_at <= now))
                removed[table.name] = int(done.rowcount or 0)
        return removed
