"""Reading a stored workflow back: every node with its state, for status, render and tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canvas import dag, states
from canvas.core import metas, protocol

if TYPE_CHECKING:
    from canvas.app import Canvas


@dataclass(frozen=True)
class NodeState:
    """A node of a stored workflow and what the result store holds for it."""

    node: dag.Node
    successors: tuple[str, ...]
    links: tuple[str, ...]
    state: str
    meta: dict[str, Any] | None

    @property
    def runtime(self) -> float | None:
        return None if self.meta is None else self.meta.get("runtime")

    @property
    def retries(self) -> int:
        return 0 if self.meta is None else int(self.meta.get("retries") or 0)


class WorkflowView:
    """A live view of one workflow: ``nodes()``, ``states()``, ``graph()``, ``done()``."""

    def __init__(self, app: Canvas, workflow_id: str) -> None:
        self.app = app
        self.id = workflow_id

    def exists(self) -> bool:
        return self.app.backend.workflow_info(self.id) is not None

    def revoke(self, terminate: bool = False, signal: str = "SIGTERM", wait: bool = False) -> Any:
        """Revoke every node that has not finished (``app.control.revoke`` of the id)."""
        return self.app.control.revoke(self.id, terminate=terminate, signal=signal, reply=wait)

    def info(self) -> dict[str, Any]:
        """What dispatch saved with the workflow (id, created, clusters, sinks), or {}."""
        data = self.app.backend.workflow_info(self.id)
        try:
            info = protocol.internal.loads(data) if data else {}
        except ValueError:  # not msgpack: written by something else
            return {}
        return info if isinstance(info, dict) else {}

    def nodes(self) -> list[NodeState]:
        records = self.app.backend.workflow_nodes(self.id)
        stored = self.app.backend.get([r.id for r in records]) if records else []
        found = []
        for record, data in zip(records, stored, strict=True):
            meta = metas.decode(data)
            state = str(meta.get("status")) if meta else states.PENDING
            spec = protocol.internal.loads(record.spec)
            node = dag.Node.from_dict(spec)
            links = tuple(spec.get("links") or ())
            found.append(NodeState(node, record.successors, links, state, meta))
        return found

    def states(self) -> dict[str, str]:
        return {n.node.id: n.state for n in self.nodes()}

    def counts(self) -> Counter[str]:
        return Counter(n.state for n in self.nodes() if n.node.kind != dag.ERRBACK)

    def graph(self) -> dag.Workflow:
        """The stored workflow as a ``dag.Workflow``, with the clusters its compiler drew."""
        import networkx as nx  # heavy (~20 MB): only status and render read whole workflows

        graph = nx.DiGraph()
        nodes = self.nodes()
        for item in nodes:
            graph.add_node(item.node.id, node=item.node, state=item.state, meta=item.meta)
        for item in nodes:
            for succ in item.successors:
                kind = dag.LINK if succ in item.links else dag.DATA
                graph.add_edge(item.node.id, succ, kind=kind)
            for errback in item.node.errbacks:
                graph.add_edge(item.node.id, errback, kind=dag.LINK_ERROR)
        clusters = [
            dag.Cluster(cid, kind, tuple(members), join)
            for cid, kind, members, join in self.info().get("clusters") or ()
        ]
        return dag.Workflow(self.id, graph, dag.ResultSpec("task", self.id), clusters)

    def done(self) -> bool:
        """True when every node that can run has reached a ready state."""
        return all(
            n.state in states.READY_STATES for n in self.nodes() if n.node.kind != dag.ERRBACK
        )

    def __repr__(self) -> str:
        return f"<WorkflowView {self.id}>"
