"""A result store laid over another: every operation goes to ``inner`` unless a subclass changes it.

The signing store (``canvas.security.store``) and the ``rpc://`` store (``canvas.backends.rpc``)
each change a few operations of the store they wrap. Forwarding the rest here, once, means a new
store operation (or a new argument) reaches the store underneath without a copy in each wrapper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from canvas.backends.base import Backend, Fired, NodeRecord


class WrappedBackend(Backend):
    """``inner``'s operations, as they are; its own extras (a client, say) are reachable too."""

    def __init__(self, inner: Backend, url: str | None = None) -> None:
        super().__init__(inner.url if url is None else url, inner.options)
        self.inner = inner
        self.expires = inner.expires

    # -- task meta ---------------------------------------------------------------------------
    def store(self, task_id: str, status: str, meta: bytes) -> None:
        self.inner.store(task_id, status, meta)

    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        return self.inner.get(task_ids)

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        return self.inner.wait(task_id, timeout)

    def forget_many(self, task_ids: Sequence[str]) -> None:
        self.inner.forget_many(task_ids)

    # -- workflows ---------------------------------------------------------------------------
    def save_workflow(self, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes) -> None:
        self.inner.save_workflow(workflow_id, nodes, info)

    def workflow_info(self, workflow_id: str) -> bytes | None:
        return self.inner.workflow_info(workflow_id)

    def workflow_nodes(self, workflow_id: str) -> list[NodeRecord]:
        return self.inner.workflow_nodes(workflow_id)

    def node_specs(self, workflow_id: str, node_ids: Sequence[str]) -> list[bytes | None]:
        return self.inner.node_specs(workflow_id, node_ids)

    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        return self.inner.complete(workflow_id, node_id, status, meta)

    def update_join(self, workflow_id: str, node: NodeRecord) -> list[Fired]:
        return self.inner.update_join(workflow_id, node)

    def claim_node(
        self, workflow_id: str, node_id: str, key: str, ttl: float
    ) -> tuple[int, bytes | None]:
        return self.inner.claim_node(workflow_id, node_id, key, ttl)

    # -- delayed messages, leases, counters, revokes -----------------------------------------
    def schedule(self, key: str, due: float, payload: bytes, space: str = "") -> None:
        self.inner.schedule(key, due, payload, space)

    def claim_due(
        self, now: float, lease: float, limit: int = 100, space: str = ""
    ) -> list[tuple[str, bytes]]:
        return self.inner.claim_due(now, lease, limit, space)

    def ack_scheduled(self, keys: Sequence[str], space: str = "") -> None:
        self.inner.ack_scheduled(keys, space)

    def next_due(self, space: str = "") -> float | None:
        return self.inner.next_due(space)

    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        return self.inner.acquire_lease(name, owner, ttl)

    def release_lease(self, name: str, owner: str) -> None:
        self.inner.release_lease(name, owner)

    def incr(self, key: str, ttl: float, by: int = 1) -> int:
        return self.inner.incr(key, ttl, by)

    def add_revoked(self, task_ids: Sequence[str], ttl: float) -> None:
        self.inner.add_revoked(task_ids, ttl)

    def revoked_since(self, since: float) -> list[tuple[str, float]]:
        return self.inner.revoked_since(since)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.inner!r}>"
