"""The chaos suite's app: tasks that record what they do, configured from the environment.

Workers load it with ``-A tests.chaos.app``; the test process never imports the tasks, it sends
them by name with ``client(config)``. Every run of every task is a row in a SQLite file
(``CHAOS_EFFECTS``) that survives any fault injected into the brokers or the store:

* ``runs``    one row per execution start (``phase='start'``) and end (``phase='end'``);
* ``effects`` one row per task id (``INSERT OR IGNORE``): the task is idempotent by id, so a
  second execution of the same id must never add a second effect.

Environment: ``CHAOS_BROKER``, ``CHAOS_BACKEND``, ``CHAOS_QUEUE``, ``CHAOS_EFFECTS``,
``CHAOS_LEASE`` (worker_lease_seconds), ``CHAOS_MAX_DELIVERIES``, ``CHAOS_MAX_PAYLOAD``,
``CHAOS_SECURITY_KEY``, ``CHAOS_ENCRYPTION_KEY``, ``CHAOS_QUEUE_TYPE`` (``quorum``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any

from canvas import security, signals
from canvas.app import Canvas
from canvas.transports.base import Transport

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT, task TEXT, pid INTEGER, at REAL, phase TEXT, eta REAL, redelivered INTEGER
);
CREATE TABLE IF NOT EXISTS effects (id TEXT PRIMARY KEY, task TEXT, value TEXT, at REAL);
CREATE TABLE IF NOT EXISTS traps (id TEXT PRIMARY KEY, kind TEXT, fired INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_id ON runs (id);
"""


class ChaosCanvas(Canvas):
    """Wraps the transport and store for ``security_*`` (a no-op once app.py does it itself)."""

    @property
    def transport(self) -> Transport:
        inner = Canvas.transport.fget(self)  # type: ignore[attr-defined]
        return self._connection("secure-transport", lambda: security.wrap(self, inner))  # type: ignore[no-any-return]

    @property
    def backend(self) -> Any:
        inner = Canvas.backend.fget(self)  # type: ignore[attr-defined]
        return self._connection("secure-backend", lambda: security.wrap(self, inner))


def settings(env: Mapping[str, str]) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "task_default_queue": env.get("CHAOS_QUEUE", "chaos"),
        "task_acks_late": True,
        "worker_lease_seconds": float(env.get("CHAOS_LEASE", "3")),
        "worker_max_deliveries": int(env.get("CHAOS_MAX_DELIVERIES", "3")),
        "result_expires": 3600.0,
        "broker_transport_options": {"connect_timeout": 2, "confirm_timeout": 10},
    }
    if env.get("CHAOS_QUEUE_TYPE"):
        conf["task_default_queue_type"] = env["CHAOS_QUEUE_TYPE"]
    if env.get("CHAOS_MAX_PAYLOAD"):
        conf["task_max_payload_bytes"] = int(env["CHAOS_MAX_PAYLOAD"])
    if env.get("CHAOS_SECURITY_KEY"):
        conf["security_key"] = env["CHAOS_SECURITY_KEY"]
        conf["security_max_age"] = float(env.get("CHAOS_SECURITY_MAX_AGE", "3600"))
    if env.get("CHAOS_ENCRYPTION_KEY"):
        conf["security_encryption_key"] = env["CHAOS_ENCRYPTION_KEY"]
    return conf


def client(env: Mapping[str, str]) -> ChaosCanvas:
    """An app for the test process: same settings, no task code (tasks are sent by name)."""
    return ChaosCanvas(
        "chaos",
        broker=env["CHAOS_BROKER"],
        backend=env["CHAOS_BACKEND"],
        set_as_current=False,
        **settings(env),
    )


def effects_db(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(SCHEMA)
    return conn


app = ChaosCanvas(
    "chaos",
    broker=os.environ.get("CHAOS_BROKER") or None,
    backend=os.environ.get("CHAOS_BACKEND") or None,
    set_as_current=False,
    **settings(os.environ),
)

_db: dict[tuple[int, int], sqlite3.Connection] = {}


def db() -> sqlite3.Connection:
    """This thread's connection to the effects file (per process and thread: the threads pool
    runs tasks in several threads, and a forked child opens its own)."""
    key = (os.getpid(), threading.get_ident())
    if key not in _db:
        _db[key] = effects_db(os.environ["CHAOS_EFFECTS"])
    return _db[key]


def _run(task: Any, phase: str) -> None:
    request = task.request
    redelivered = bool(request.delivery_info.get("redelivered"))
    db().execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
        (request.id, task.name, os.getpid(), time.time(), phase, request.eta, redelivered),
    )


def _effect(task: Any, value: Any) -> None:
    db().execute(
        "INSERT OR IGNORE INTO effects VALUES (?, ?, ?, ?)",
        (task.request.id, task.name, json.dumps(value), time.time()),
    )


def _trap(task_id: str, kind: str) -> bool:
    """True once for a trap set on ``task_id`` (the first time it is sprung)."""
    cur = db().execute(
        "UPDATE traps SET fired = 1 WHERE id = ? AND kind = ? AND fired = 0", (task_id, kind)
    )
    return cur.rowcount == 1


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="chaos.work", bind=True)
def work(self: Any, n: int, seconds: float = 0.0) -> int:
    """The plain task: records its start, works ``seconds``, records its one effect."""
    _run(self, "start")
    if _trap(self.request.id, "die-once"):
        _die()
    if seconds:
        time.sleep(seconds)  # the task's own work, not synchronisation
    _effect(self, n)
    _run(self, "end")
    return n


@app.task(name="chaos.tsum", bind=True)
def tsum(self: Any, values: list[int], seconds: float = 0.0) -> int:
    """A chord body: its effect records how many inputs it was joined with."""
    _run(self, "start")
    if seconds:
        time.sleep(seconds)  # the task's own work, not synchronisation
    _effect(self, {"count": len(values), "sum": sum(values)})
    _run(self, "end")
    return sum(values)


@app.task(name="chaos.big", bind=True)
def big(self: Any, size: int) -> str:
    """Returns a result of ``size`` bytes (its successor's arguments become that large)."""
    _run(self, "start")
    _effect(self, size)
    _run(self, "end")
    return "x" * size


@app.task(name="chaos.poison", bind=True)
def poison(self: Any) -> None:
    """Kills the process that runs it, every time."""
    _run(self, "start")
    _die()


@signals.before_task_publish.connect
def _kill_while_wiring(sender: Any = None, headers: Any = None, **_: Any) -> None:
    """A worker about to publish a trapped successor dies (after its input was completed)."""
    if not os.environ.get("CHAOS_WORKER") or not headers:
        return
    if _trap(str(headers.get("id")), "die-before-publish"):
        _die()


@signals.after_task_publish.connect
def _kill_after_wiring(sender: Any = None, headers: Any = None, **_: Any) -> None:
    """A worker that just published a trapped successor dies before acking its own message."""
    if not os.environ.get("CHAOS_WORKER") or not headers:
        return
    if _trap(str(headers.get("id")), "die-after-publish"):
        _die()
