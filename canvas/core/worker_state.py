"""What a worker's supervisor knows about the tasks of its pool: the answers to ``inspect``.

Each consuming process reports the steps of a task's life (``canvas.core.monitor``): started,
finished, parked for an ETA, revoked. The supervisor keeps them here, so it can say what runs
where (``active``, with the pid of the process), what waits (``scheduled``), and how many of each
task ran (``total``), even while every pool process is busy. ``reserved`` stays empty: a pool
process takes a message when it can start it, and what the broker client prefetched is not
the worker's yet (it goes back to the queue if the process dies).

A report is a small dict ``{"op": ..., "id": ..., ...}``; ``info`` holds Celery's task info
fields (``id``, ``name``, ``args``/``kwargs`` as their reprs, ``type``, ``hostname``,
``time_start``, ``acknowledged``, ``delivery_info``, ``worker_pid``) plus canvas's ``workflow``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any


class WorkerState:
    """The pool's tasks as reported; thread-safe (the control thread reads, the pool writes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reserved: dict[str, dict[str, Any]] = {}
        self.active: dict[str, dict[str, Any]] = {}
        self.scheduled: dict[str, dict[str, Any]] = {}
        self.total: Counter[str] = Counter()
        self.failed = 0
        self.started_at = time.time()

    def on_report(self, report: Mapping[str, Any], one_task_per_process: bool = False) -> None:
        """Apply one report from a consuming process. ``one_task_per_process`` (prefork): a
        process that starts a task has finished any other, even one whose report was lost."""
        op, task_id = report.get("op"), report.get("id")
        if not isinstance(task_id, str):
            return
        with self._lock:
            if op == "started":
                self.scheduled.pop(task_id, None)
                info = self.reserved.pop(task_id, {}) or dict(report.get("info") or {})
                info["time_start"] = report.get("time_start") or time.time()
                info["worker_pid"] = report.get("pid")
                info["acknowledged"] = bool(report.get("acknowledged", info.get("acknowledged")))
                if one_task_per_process:
                    for stale in [
                        t
                        for t, i in self.active.items()
                        if i.get("worker_pid") == info["worker_pid"]
                    ]:
                        del self.active[stale]
                self.active[task_id] = info
            elif op == "finished":
                info = self.active.pop(task_id, {}) or self.reserved.pop(task_id, {})
                name = report.get("name") or info.get("name")
                if name:
                    self.total[str(name)] += 1
                if report.get("state") == "FAILURE":
                    self.failed += 1
            elif op in ("revoked", "ended"):
                self.reserved.pop(task_id, None)
                self.active.pop(task_id, None)
                self.scheduled.pop(task_id, None)
            elif op == "parked":
                self.reserved.pop(task_id, None)
                self.scheduled[task_id] = {
                    "eta": _iso(report.get("eta")),
                    "priority": report.get("priority"),
                    "request": dict(report.get("info") or {}),
                    "due": report.get("eta"),
                }

    def running(self) -> int:
        """How many tasks the pool runs now."""
        with self._lock:
            return len(self.active)

    def running_in(self, pid: int) -> list[dict[str, Any]]:
        """The tasks the process ``pid`` is running."""
        with self._lock:
            return [dict(i) for i in self.active.values() if i.get("worker_pid") == pid]

    def process_died(self, pid: int) -> list[dict[str, Any]]:
        """Forget what the process ``pid`` held; returns the tasks it was running."""
        with self._lock:
            lost = [i for i in self.active.values() if i.get("worker_pid") == pid]
            for info in lost:
                self.active.pop(str(info.get("id")), None)
            return lost

    def find(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        """``("active" | "reserved" | "scheduled", info)`` of a task this worker holds."""
        with self._lock:
            if task_id in self.active:
                return "active", dict(self.active[task_id])
            if task_id in self.reserved:
                return "reserved", dict(self.reserved[task_id])
            if task_id in self.scheduled:
                return "scheduled", dict(self.scheduled[task_id]["request"])
        return None

    def snapshot(self) -> dict[str, Any]:
        """Copies of the tables, for answering ``inspect``."""
        now = time.time()
        with self._lock:
            for task_id in [t for t, s in self.scheduled.items() if (s.get("due") or 0) < now - 1]:
                del self.scheduled[task_id]  # released by a timer: no longer ours to show
            return {
                "active": [dict(i) for i in self.active.values()],
                "reserved": [dict(i) for i in self.reserved.values()],
                "scheduled": [
                    {k: v for k, v in s.items() if k != "due"} for s in self.scheduled.values()
                ],
                "total": dict(self.total),
                "processed": sum(self.total.values()),
                "failed": self.failed,
            }


def _iso(eta: Any) -> str | None:
    if not isinstance(eta, int | float):
        return None
    return dt.datetime.fromtimestamp(float(eta), dt.UTC).isoformat()
