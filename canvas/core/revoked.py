"""Revoked task ids: the set a worker checks before running anything, and where it is kept.

A revoke reaches workers three ways, so that a revoked task that has not started never runs:

* at once, on the bus (``app.control.revoke`` broadcasts it; each supervisor passes it to its
  pool processes);
* from the result store, where ``app.control.revoke`` also writes it for
  ``worker_revoke_expires`` seconds (default 10,800, Celery's three hours): a worker loads the
  recent revokes when it starts and looks for new ones every few seconds, so a worker started
  later, restarted, or one that missed the broadcast still refuses the task;
* from ``worker --statedb FILE`` (``worker_state_db``), a file the worker writes on change and at
  shutdown and reads at start, for stores that keep no revokes.

A task id stays in a worker's set until it expires, at most ``maxlen`` ids (the oldest go first).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgpack

if TYPE_CHECKING:
    from canvas.app import Canvas

logger = logging.getLogger("canvas.worker")

#: seconds a revoke is kept (Celery's REVOKE_EXPIRES)
REVOKE_EXPIRES = 10800.0
#: most ids a worker keeps (Celery's REVOKES_MAX)
REVOKES_MAX = 50000


class Revoked:
    """Task id -> when it was revoked; ids expire after ``expires`` seconds. Thread-safe, and
    fork-safe: a pool process forked while the control thread held the lock gets a fresh one."""

    def __init__(self, expires: float = REVOKE_EXPIRES, maxlen: int = REVOKES_MAX) -> None:
        self.expires = float(expires)
        self.maxlen = int(maxlen)
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        _instances.add(self)

    def add(self, task_ids: Iterable[str], at: float | None = None) -> list[str]:
        """Add ids (revoked ``at``, default now); returns those that were new."""
        at = time.time() if at is None else at
        new = []
        with self._lock:
            for task_id in task_ids:
                if task_id not in self._ids:
                    new.append(task_id)
                elif self._ids[task_id] >= at:
                    continue
                self._ids[task_id] = at
                self._ids.move_to_end(task_id)
            self._trim(time.time())
        return new

    def update(self, items: Iterable[tuple[str, float]]) -> list[str]:
        """Add ``(id, revoked at)`` pairs (from the store or a state file); returns new ids."""
        new = []
        for task_id, at in sorted(items, key=lambda item: item[1]):
            new += self.add([task_id], at)
        return new

    def __contains__(self, task_id: object) -> bool:
        with self._lock:
            at = self._ids.get(task_id) if isinstance(task_id, str) else None
            if at is None:
                return False
            if at + self.expires <= time.time():
                del self._ids[task_id]  # type: ignore[arg-type]
                return False
            return True

    def __len__(self) -> int:
        with self._lock:
            self._trim(time.time())
            return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter([task_id for task_id, _ in self.items()])

    def items(self) -> list[tuple[str, float]]:
        with self._lock:
            self._trim(time.time())
            return list(self._ids.items())

    def _trim(self, now: float) -> None:
        ids = self._ids
        while ids and (len(ids) > self.maxlen or next(iter(ids.values())) + self.expires <= now):
            ids.popitem(last=False)


_instances: weakref.WeakSet[Revoked] = weakref.WeakSet()


def _fresh_locks() -> None:
    for revoked in list(_instances):
        revoked._lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks)


def revoke_expires(app: Canvas) -> float:
    return float(app.conf.get("worker_revoke_expires") or REVOKE_EXPIRES)


def keep_revokes(app: Canvas, task_ids: list[str]) -> bool:
    """Write revokes to the result store; false (and a warning) when it cannot keep them."""
    try:
        app.backend.add_revoked(task_ids, revoke_expires(app))
    except NotImplementedError as exc:
        logger.warning("%s", exc)
        return False
    return True


def load_revokes(app: Canvas, since: float) -> list[tuple[str, float]]:
    """Revokes kept in the result store since ``since``; empty when the store keeps none."""
    try:
        return app.backend.revoked_since(since)
    except NotImplementedError:
        return []


class StateDB:
    """``worker --statedb``: the worker's revokes in a file (msgpack), written atomically.

    A file that cannot be read (another program's, or truncated) is reported and replaced.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def load(self) -> list[tuple[str, float]]:
        try:
            data = msgpack.unpackb(self.path.read_bytes(), raw=False)
            revoked = data["revoked"] if isinstance(data, dict) else None
            return [(str(t), float(at)) for t, at in revoked or []]
        except FileNotFoundError:
            return []
        except Exception as exc:
            logger.warning(
                "Could not read the worker state file %s (%s); starting with no revokes. "
                "It is replaced on shutdown.",
                self.path,
                exc,
            )
            return []

    def save(self, revoked: Revoked) -> None:
        payload = msgpack.packb({"version": 1, "revoked": revoked.items()}, use_bin_type=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
