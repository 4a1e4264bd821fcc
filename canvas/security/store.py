"""A result-store wrapper that signs (and encrypts) every record it writes and checks every read.

``SecureBackend(inner, sealer)`` protects what decides what runs or what a caller sees: task metas,
workflow node specs and info, and parked countdown/ETA messages. Each record is bound to where it
is stored (``meta:<task id>``, ``spec:<workflow>:<node>``, ``info:<workflow>``, ``parked:<key>``),
so a valid record copied to another place fails too. Counters, leases and join state carry no data
and pass through.

What a failed check does:

* a task meta reads as a ``FAILURE`` whose error is ``SecurityError``, so ``AsyncResult.get``
  raises it and a successor does not run on forged input;
* a node spec read by a worker reads as ``UNREADABLE_SPEC`` with the reason: the worker fails
  that node with it, so the workflow settles as FAILURE; workflow info raises ``SecurityError``;
* a parked message is logged and dropped, never published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from canvas.backends.base import UNREADABLE_SPEC, Backend, Fired, NodeRecord
from canvas.backends.wrapped import WrappedBackend
from canvas.exceptions import SecurityError
from canvas.security.sealer import Sealer

logger = logging.getLogger("canvas.security")


class SecureBackend(WrappedBackend):
    """Wraps ``inner``; the same API, every data record sealed. Counters, leases and revokes
    pass through (``WrappedBackend``): a forged revoked id can only stop a task from running.

    ``forged(task_id, error)`` gives the meta a task reads as when its record fails verification
    (the meta format belongs to the engine: ``canvas.security.forged_meta``).
    """

    def __init__(
        self, inner: Backend, sealer: Sealer, forged: Callable[[str, SecurityError], bytes]
    ) -> None:
        super().__init__(inner)
        self.sealer = sealer
        self.forged = forged

    # -- task meta ---------------------------------------------------------------------------
    def store(self, task_id: str, status: str, meta: bytes) -> None:
        self.inner.store(task_id, status, self.sealer.seal_record(meta, f"meta:{task_id}"))

    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        values = self.inner.get(task_ids)
        return [self._open_meta(t, v) for t, v in zip(task_ids, values, strict=True)]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        return self._open_meta(task_id, self.inner.wait(task_id, timeout))

    def _open_meta(self, task_id: str, value: bytes | None) -> bytes | None:
        if value is None:
            return None
        try:
            return self.sealer.open_record(value, f"meta:{task_id}")
        except SecurityError as exc:
            logger.error("Result of %s failed verification: %s", task_id, exc)
            return self.forged(task_id, SecurityError(str(exc)))

    # -- workflows ---------------------------------------------------------------------------
    def save_workflow(self, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes) -> None:
        sealed = [
            NodeRecord(
                n.id,
                self.sealer.seal_record(n.spec, f"spec:{workflow_id}:{n.id}"),
                n.successors,
                n.n_inputs,
            )
            for n in nodes
        ]
        info = self.sealer.seal_record(info, f"info:{workflow_id}")
        self.inner.save_workflow(workflow_id, sealed, info)

    def workflow_info(self, workflow_id: str) -> bytes | None:
        info = self.inner.workflow_info(workflow_id)
        return None if info is None else self.sealer.open_record(info, f"info:{workflow_id}")

    def workflow_nodes(self, workflow_id: str) -> list[NodeRecord]:
        return [
            NodeRecord(n.id, self._spec(workflow_id, n.id, n.spec), n.successors, n.n_inputs)
            for n in self.inner.workflow_nodes(workflow_id)
        ]

    def node_specs(self, workflow_id: str, node_ids: Sequence[str]) -> list[bytes | None]:
        specs = self.inner.node_specs(workflow_id, node_ids)
        return [
            None if s is None else self._spec_or_refusal(workflow_id, n, s)
            for n, s in zip(node_ids, specs, strict=True)
        ]

    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        sealed = self.sealer.seal_record(meta, f"meta:{node_id}")
        fired = self.inner.complete(workflow_id, node_id, status, sealed)
        return [Fired(f.id, self._spec_or_refusal(workflow_id, f.id, f.spec)) for f in fired]

    def update_join(self, workflow_id: str, node: NodeRecord) -> list[Fired]:
        sealed = self.sealer.seal_record(node.spec, f"spec:{workflow_id}:{node.id}")
        record = NodeRecord(node.id, sealed, node.successors, node.n_inputs)
        fired = self.inner.update_join(workflow_id, record)
        return [Fired(f.id, self._spec_or_refusal(workflow_id, f.id, f.spec)) for f in fired]

    def _spec(self, workflow_id: str, node_id: str, spec: bytes) -> bytes:
        return self.sealer.open_record(spec, f"spec:{workflow_id}:{node_id}")

    def _spec_or_refusal(self, workflow_id: str, node_id: str, spec: bytes) -> bytes:
        """The verified spec, or ``UNREADABLE_SPEC`` and the reason: the worker then fails that
        node (and the workflow) instead of raising in the middle of a completion."""
        try:
            return self._spec(workflow_id, node_id, spec)
        except SecurityError as exc:
            logger.error(
                "Node %s of workflow %s failed verification: %s", node_id, workflow_id, exc
            )
            return UNREADABLE_SPEC + f"security: {exc}".encode()

    # -- delayed messages --------------------------------------------------------------------
    def schedule(self, key: str, due: float, payload: bytes, space: str = "") -> None:
        self.inner.schedule(key, due, self.sealer.seal_record(payload, f"parked:{key}"), space)

    def claim_due(
        self, now: float, lease: float, limit: int = 100, space: str = ""
    ) -> list[tuple[str, bytes]]:
        claimed, forged = [], []
        for key, payload in self.inner.claim_due(now, lease, limit, space):
            try:
                claimed.append((key, self.sealer.open_record(payload, f"parked:{key}")))
            except SecurityError as exc:
                logger.error("Parked message %s failed verification, dropped: %s", key, exc)
                forged.append(key)
        if forged:
            self.inner.ack_scheduled(forged, space)
        return claimed

    def claim_node(
        self, workflow_id: str, node_id: str, key: str, ttl: float
    ) -> tuple[int, bytes | None]:
        count, spec = self.inner.claim_node(workflow_id, node_id, key, ttl)
        return count, None if spec is None else self._spec(workflow_id, node_id, spec)
