"""An in-process result store: eager mode and unit tests.

URL: ``memory://`` (anything after the scheme is ignored). Every instance has its own state, so
two apps in one test never share results; nothing crosses a process boundary. All methods are
thread-safe (one lock), ``wait`` sleeps on a condition until ``store`` or ``complete`` wakes it,
and expired records are dropped lazily when they are read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from canvas.backends.base import Backend, Fired, NodeRecord


@dataclass
class _Workflow:
    info: bytes
    expires_at: float
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    #: node id -> ids of its inputs that completed
    inputs: dict[str, set[str]] = field(default_factory=dict)
    #: joins handed out (by complete or update_join): each once
    fired: set[str] = field(default_factory=set)


class MemoryBackend(Backend):
    """Dicts behind one lock; a ``threading.Condition`` on that lock wakes waiters."""

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._metas: dict[str, tuple[str, bytes, float]] = {}
        self._workflows: dict[str, _Workflow] = {}
        self._scheduled: dict[tuple[str, str], tuple[float, bytes, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._revoked: dict[str, tuple[float, float]] = {}  # id -> (revoked at, expires at)

    # -- task meta ---------------------------------------------------------------------------
    def store(self, task_id: str, status: str, meta: bytes) -> None:
        with self._lock:
            self._put_meta(task_id, status, meta)

    def _put_meta(self, task_id: str, status: str, meta: bytes) -> None:
        self._metas[task_id] = (status, meta, time.time() + self.expires)
        if self.is_ready(status):
            self._changed.notify_all()

    def _meta(self, task_id: str, now: float) -> tuple[str, bytes] | None:
        entry = self._metas.get(task_id)
        if entry is None:
            return None
        if entry[2] <= now:
            del self._metas[task_id]
            return None
        return entry[0], entry[1]

    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        now = time.time()
        with self._lock:
            found = [self._meta(task_id, now) for task_id in task_ids]
        return [entry[1] if entry else None for entry in found]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                entry = self._meta(task_id, time.time())
                if entry is not None and self.is_ready(entry[0]):
                    return entry[1]
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def forget_many(self, task_ids: Sequence[str]) -> None:
        with self._lock:
            for task_id in task_ids:
                self._metas.pop(task_id, None)

    # -- workflows ---------------------------------------------------------------------------
    def _workflow(self, workflow_id: str) -> _Workflow | None:
        workflow = self._workflows.get(workflow_id)
        if workflow is not None and workflow.expires_at <= time.time():
            del self._workflows[workflow_id]
            return None
        return workflow

    def save_workflow(self, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes) -> None:
        expires_at = time.time() + self.expires
        with self._lock:
            workflow = self._workflow(workflow_id)
            if workflow is None:
                workflow = self._workflows[workflow_id] = _Workflow(info, expires_at)
            workflow.info, workflow.expires_at = info, expires_at
            for node in nodes:
                workflow.nodes[node.id] = node

    def workflow_info(self, workflow_id: str) -> bytes | None:
        with self._lock:
            workflow = self._workflow(workflow_id)
            return workflow.info if workflow else None

    def workflow_nodes(self, workflow_id: str) -> list[NodeRecord]:
        with self._lock:
            workflow = self._workflow(workflow_id)
            return list(workflow.nodes.values()) if workflow else []

    def node_specs(self, workflow_id: str, node_ids: Sequence[str]) -> list[bytes | None]:
        with self._lock:
            workflow = self._workflow(workflow_id)
            nodes = workflow.nodes if workflow else {}
        return [nodes[node_id].spec if node_id in nodes else None for node_id in node_ids]

    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        with self._lock:
            workflow = self._workflow(workflow_id)
            node = workflow.nodes.get(node_id) if workflow else None
            if workflow is None or node is None:
                # Unknown or expired workflow: keep the result, there is nothing to wire.
                self._put_meta(node_id, status, meta)
                return []
            if node_id in workflow.done:
                return []
            workflow.done.add(node_id)
            self._put_meta(node_id, status, meta)
            fired = []
            for successor_id in node.successors:
                successor = workflow.nodes.get(successor_id)
                if successor is None:
                    continue
                inputs = workflow.inputs.setdefault(successor_id, set())
                if node_id not in inputs:
                    inputs.add(node_id)
                    if len(inputs) == successor.n_inputs and successor_id not in workflow.fired:
                        workflow.fired.add(successor_id)
                        fired.append(Fired(successor_id, successor.spec))
            return fired

    def update_join(self, workflow_id: str, node: NodeRecord) -> list[Fired]:
        with self._lock:
            workflow = self._workflow(workflow_id)
            if workflow is None:
                return []
            workflow.nodes[node.id] = node
            done = workflow.inputs.get(node.id, set())
            if node.id not in workflow.fired and len(done) >= node.n_inputs:
                workflow.fired.add(node.id)
                return [Fired(node.id, node.spec)]
            return []

    # -- delayed messages --------------------------------------------------------------------
    def schedule(self, key: str, due: float, payload: bytes, space: str = "") -> None:
        with self._lock:
            self._scheduled[space, key] = (due, payload, max(due, time.time()) + self.expires)

    def claim_due(
        self, now: float, lease: float, limit: int = 100, space: str = ""
    ) -> list[tuple[str, bytes]]:
        with self._lock:
            wall = time.time()
            for item in [k for k, v in self._scheduled.items() if v[2] <= wall]:
                del self._scheduled[item]
            due = sorted(
                (v[0], k) for (s, k), v in self._scheduled.items() if s == space and v[0] <= now
            )[:limit]
            claimed = []
            for _, key in due:
                _, payload, expires_at = self._scheduled[space, key]
                self._scheduled[space, key] = (now + lease, payload, expires_at)
                claimed.append((key, payload))
            return claimed

    def ack_scheduled(self, keys: Sequence[str], space: str = "") -> None:
        with self._lock:
            for key in keys:
                self._scheduled.pop((space, key), None)

    def next_due(self, space: str = "") -> float | None:
        with self._lock:
            wall = time.time()
            return min(
                (v[0] for (s, _), v in self._scheduled.items() if s == space and v[2] > wall),
                default=None,
            )

    # -- leases ------------------------------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        with self._lock:
            now = time.monotonic()
            holder = self._leases.get(name)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False
            self._leases[name] = (owner, now + ttl)
            return True

    def release_lease(self, name: str, owner: str) -> None:
        with self._lock:
            holder = self._leases.get(name)
            if holder is not None and holder[0] == owner:
                del self._leases[name]

    # -- counters ----------------------------------------------------------------------------
    def incr(self, key: str, ttl: float, by: int = 1) -> int:
        with self._lock:
            now = time.monotonic()
            value, expires_at = self._counters.get(key, (0, now + ttl))
            if expires_at <= now:
                value, expires_at = 0, now + ttl
            self._counters[key] = (value + by, expires_at)
            return value + by

    # -- revokes -----------------------------------------------------------------------------
    def add_revoked(self, task_ids: Sequence[str], ttl: float) -> None:
        with self._lock:
            now = time.time()
            for task_id in task_ids:
                self._revoked.pop(task_id, None)  # re-added: moves to the end, oldest first
                self._revoked[task_id] = (now, now + ttl)

    def revoked_since(self, since: float) -> list[tuple[str, float]]:
        with self._lock:
            now = time.time()
            for task_id in [t for t, (_, exp) in self._revoked.items() if exp <= now]:
                del self._revoked[task_id]
            return [(t, at) for t, (at, _) in self._revoked.items() if at >= since]
