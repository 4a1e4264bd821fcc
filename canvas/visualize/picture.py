"""What a workflow picture shows, whatever the output format: boxes, summaries, labels, states.

``layout(workflow)`` turns a compiled or stored ``dag.Workflow`` into a ``Picture`` that the DOT
and text writers walk; neither of them decides anything about shapes (``text`` words the labels).

* **Boxes.** A group or chord becomes a box holding everything its members run (the whole chain
  of a member, not only its last task), its join, and the callbacks and errbacks hung on those
  nodes. Boxes nest as the canvases do. A member's nodes are found by walking back from the
  member outputs until the walks of two members meet: what they share came before the group.
* **Summaries.** A box of more than ``collapse_over`` members is drawn as one summary node (the
  task names it runs with counts, and state counts for a run) next to its join, unless ``expand``.
* **States.** A stored workflow's vertices carry ``state`` and ``meta``. A task that failed
  without running (no ``worker`` in its meta) is *skipped*: an input of it failed.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import networkx as nx

from canvas import dag, states
from canvas.core.workflow_view import WorkflowView
from canvas.signature import Signature

#: what the writers accept: a plan, a canvas to compile, or a stored workflow to read
Drawable: TypeAlias = dag.Workflow | Signature | WorkflowView

#: a box with more members than this is drawn as one summary node unless ``expand``
COLLAPSE_OVER = 30
#: what precedes a summary node's id (the box id follows)
SUMMARY_PREFIX = "summary:"

_SHARED = -1


@dataclass
class Box:
    """A group or chord as drawn; ``nodes`` are the vertices directly inside, in drawing order."""

    id: str
    kind: str
    members: tuple[str, ...]
    join: str | None
    nodes: list[str] = field(default_factory=list)
    children: list[Box] = field(default_factory=list)
    collapsed: bool = False
    #: for a collapsed box: what its hidden nodes run
    summary: Summary | None = None
    #: drawing position of its first node
    first: int = 0
    #: how many members (a nested group's outputs count as one)
    size: int = 0

    @property
    def summary_id(self) -> str:
        return SUMMARY_PREFIX + self.id


@dataclass(frozen=True)
class Summary:
    """The hidden content of a collapsed box: task names and, for a run, states, with counts."""

    members: int
    tasks: Counter[str]
    errbacks: int
    states: Counter[str]
    skipped: int


@dataclass(frozen=True)
class Edge:
    """One drawn edge; ``count`` > 1 when several edges met at a summary node."""

    source: str
    target: str
    kind: str
    count: int = 1


@dataclass
class Picture:
    """A workflow ready to be written out: ``loose`` nodes, nested ``boxes``, ``edges``."""

    workflow: dag.Workflow
    loose: list[str]
    boxes: list[Box]
    edges: list[Edge]
    #: the node ids of the graph in drawing order (a topological order that keeps chains together)
    order: list[str]
    #: a stored workflow's nodes have states
    live: bool
    position: dict[str, int] = field(default_factory=dict)

    def node(self, node_id: str) -> dag.Node:
        return self.workflow.node(node_id)

    def state(self, node_id: str) -> str | None:
        state: str | None = self.workflow.graph.nodes[node_id].get("state")
        return state

    def meta(self, node_id: str) -> Mapping[str, Any] | None:
        meta: Mapping[str, Any] | None = self.workflow.graph.nodes[node_id].get("meta")
        return meta

    def skipped(self, node_id: str) -> bool:
        return is_skipped(self.node(node_id), self.state(node_id), self.meta(node_id))

    def items(self, box: Box | None = None) -> list[str | Box]:
        """What ``box`` (or the top level) holds, node ids and boxes, in drawing order."""
        nodes, boxes = (self.loose, self.boxes) if box is None else (box.nodes, box.children)
        position = self.position
        keyed: list[tuple[int, str | Box]] = [(position[n], n) for n in nodes]
        keyed.extend((b.first, b) for b in boxes)
        keyed.sort(key=lambda item: item[0])
        return [item for _, item in keyed]

    def walk(self) -> Iterable[Box]:
        """Every box, outer ones first."""
        stack = list(reversed(self.boxes))
        while stack:
            box = stack.pop()
            yield box
            stack.extend(reversed(box.children))


def as_workflow(target: Drawable) -> dag.Workflow:
    """A workflow to draw: a compiled one as is, a canvas compiled now, a stored one read now."""
    if isinstance(target, dag.Workflow):
        return target
    if isinstance(target, Signature):
        return dag.compile(target)
    if isinstance(target, WorkflowView):
        return target.graph()
    raise TypeError(
        f"Cannot draw a {type(target).__name__}: pass a signature, chain, group or chord, a "
        "compiled canvas.Workflow, or app.workflow(id)."
    )


def layout(
    target: Drawable, *, expand: bool = False, collapse_over: int = COLLAPSE_OVER
) -> Picture:
    """Decide boxes, summaries and edges for a workflow (compiled, or stored with states)."""
    workflow = as_workflow(target)
    graph = workflow.graph
    order = drawing_order(graph)
    position = {node_id: index for index, node_id in enumerate(order)}
    boxes = _boxes(workflow, position)
    nesting = _nest(graph, boxes, position)
    top = sorted((box for box in boxes if box.id not in nesting.parent), key=lambda b: b.first)
    loose: list[str] = []
    for node_id in order:
        box = nesting.owner.get(node_id)
        (box.nodes if box is not None else loose).append(node_id)
    hidden: dict[str, str] = {}
    stack = list(top)
    while stack:
        box = stack.pop()
        if not expand and box.size > collapse_over:
            _collapse(workflow, box, hidden)
        else:
            stack.extend(box.children)
    live = any("state" in data for _, data in graph.nodes(data=True))
    edges = _edges(graph, hidden, position)
    return Picture(workflow, loose, top, edges, order, live, position)


def drawing_order(graph: nx.DiGraph) -> list[str]:
    """A topological order that keeps each chain together and members in member order.

    Reverse post-order of a depth-first walk; successors are walked last-first so that the first
    member of a group comes out first.
    """
    finished: list[str] = []
    seen: set[str] = set()
    roots = [n for n in graph.nodes if graph.in_degree(n) == 0]
    for root in reversed(roots):
        seen.add(root)
        stack = [(root, iter(reversed(list(graph.successors(root)))))]
        while stack:
            node_id, successors = stack[-1]
            for succ in successors:
                if succ not in seen:
                    seen.add(succ)
                    stack.append((succ, iter(reversed(list(graph.successors(succ))))))
                    break
            else:
                stack.pop()
                finished.append(node_id)
    finished.reverse()
    return finished


# -- boxes --------------------------------------------------------------------------------------
def _boxes(workflow: dag.Workflow, position: Mapping[str, int]) -> list[Box]:
    """One box per group id, from the compiler's clusters and from the gather nodes (joins)."""
    graph = workflow.graph
    found: dict[str, Box] = {}
    for cluster in workflow.clusters:
        join = cluster.join if cluster.join in graph else None
        # A stored workflow lists the join among the members (it carries the group id too).
        members = tuple(
            m
            for m in cluster.members
            if m in graph and m != join and not _is_join_of(workflow, m, cluster.id)
        )
        found[cluster.id] = Box(cluster.id, cluster.kind, members, join)
    for node in workflow.nodes:
        if node.kind != dag.GATHER:
            continue
        box_id = node.group or node.id
        box = found.get(box_id)
        if box is None:
            box = found[box_id] = Box(box_id, "group", (), None)
        box.join = box.join or node.id
        if not node.immutable:  # an empty group's join waits for its input: not a member
            box.members = tuple(dict.fromkeys((*box.members, *node.inputs)))
    for box in found.values():
        box.members = tuple(sorted(box.members, key=position.__getitem__))
        # What a reader calls it: a group whose results feed a task is a chord (as in Celery).
        box.kind = "chord" if box.join and _feeds_task(workflow, box.join) else "group"
    return [box for box in found.values() if box.members or box.join]


def _feeds_task(workflow: dag.Workflow, join: str) -> bool:
    return any(
        kind == dag.DATA and workflow.node(succ).kind == dag.TASK
        for _, succ, kind in workflow.graph.out_edges(join, data="kind", default=dag.DATA)
    )


def _is_join_of(workflow: dag.Workflow, node_id: str, box_id: str) -> bool:
    node = workflow.node(node_id)
    return node.kind == dag.GATHER and (node.group or node.id) == box_id


@dataclass
class _Nesting:
    owner: dict[str, Box]
    parent: dict[str, Box]


def _nest(graph: nx.DiGraph, boxes: list[Box], position: Mapping[str, int]) -> _Nesting:
    """Fill each box, then give every node to the smallest box holding it, and nest the boxes."""
    outputs: dict[str, list[Box]] = {}  # member output or join -> the boxes it ends
    for box in boxes:
        for node_id in (*box.members, box.join):
            if node_id is not None:
                outputs.setdefault(node_id, []).append(box)
    contents = {box.id: _contents(graph, box, outputs, position) for box in boxes}
    ranked = sorted(enumerate(boxes), key=lambda item: (len(contents[item[1].id]), item[0]))
    rank = {box.id: index for index, (_, box) in enumerate(ranked)}
    holders: dict[str, list[Box]] = {}
    for _, box in ranked:
        for node_id in contents[box.id]:
            holders.setdefault(node_id, []).append(box)
    parent: dict[str, Box] = {}
    for _, box in ranked:
        inside = contents[box.id]
        if not inside:
            continue
        for bigger in holders[next(iter(inside))]:
            if rank[bigger.id] > rank[box.id] and inside <= contents[bigger.id]:
                parent[box.id] = bigger
                bigger.children.append(box)
                break
    for box in boxes:
        box.first = min((position[n] for n in contents[box.id]), default=0)
    for box in boxes:
        box.children.sort(key=lambda b: b.first)
    owner = {node_id: held[0] for node_id, held in holders.items()}
    return _Nesting(owner, parent)


def _contents(
    graph: nx.DiGraph, box: Box, outputs: Mapping[str, list[Box]], position: Mapping[str, int]
) -> set[str]:
    labels = _member_labels(box, outputs)
    box.size = len(set(labels.values()))
    inside = _exclusive_ancestors(graph, box.members, labels, position)
    if box.join is not None:
        inside.add(box.join)
    hung = [
        succ
        for node_id in inside
        if node_id != box.join
        for succ, data in graph.adj[node_id].items()
        if data.get("kind") in (dag.LINK, dag.LINK_ERROR) and succ not in inside
    ]
    while hung:  # callbacks and errbacks, and the chains that only they start
        node_id = hung.pop()
        if node_id in inside:
            continue
        inside.add(node_id)
        hung.extend(s for s in graph.successors(node_id) if graph.in_degree(s) == 1)
    return inside


def _member_labels(box: Box, outputs: Mapping[str, list[Box]]) -> dict[str, int]:
    """Which member each output belongs to: the outputs of one nested group are one member."""
    members = set(box.members)
    root = {m: m for m in box.members}

    def find(item: str) -> str:
        while root[item] != item:
            root[item] = root[root[item]]
            item = root[item]
        return item

    nested = {id(o): o for m in box.members for o in outputs.get(m, ()) if o is not box}
    for other in nested.values():
        inner = [m for m in (*other.members, other.join) if m is not None and m in members]
        if len(inner) > 1 and not members.issubset(other.members):
            for m in inner[1:]:
                root[find(m)] = find(inner[0])
    names: dict[str, int] = {}
    return {m: names.setdefault(find(m), len(names)) for m in box.members}


def _exclusive_ancestors(
    graph: nx.DiGraph,
    members: tuple[str, ...],
    labels: Mapping[str, int],
    position: Mapping[str, int],
) -> set[str]:
    """The members and the ancestors that only one member reaches.

    Walks back in reverse topological order, so a node's label is final when it is expanded, and
    stops once every node still queued is shared (everything above it is shared too).
    """
    if len(set(labels.values())) < 2:
        return set(members)  # one member: nothing tells its nodes from what came before
    label: dict[str, int] = {}
    heap: list[tuple[int, str]] = []
    singles = 0
    for member in members:
        label[member] = labels[member]
        heapq.heappush(heap, (-position[member], member))
        singles += 1
    while heap and singles:
        _, node_id = heapq.heappop(heap)
        mine = label[node_id]
        if mine != _SHARED:
            singles -= 1
        for pred, data in graph.pred[node_id].items():
            if data.get("kind") == dag.LINK_ERROR:
                continue
            theirs = label.get(pred)
            if theirs is None:
                label[pred] = mine
                heapq.heappush(heap, (-position[pred], pred))
                singles += mine != _SHARED
            elif theirs != mine and theirs != _SHARED:
                label[pred] = _SHARED
                singles -= 1
    return {node_id for node_id, value in label.items() if value != _SHARED}


def _collapse(workflow: dag.Workflow, box: Box, hidden: dict[str, str]) -> None:
    box.collapsed = True
    tasks: Counter[str] = Counter()
    found: Counter[str] = Counter()
    errbacks = skipped = 0
    stack = [box]
    while stack:
        inner = stack.pop()
        stack.extend(inner.children)
        for node_id in inner.nodes:
            if node_id == box.join:
                continue
            hidden[node_id] = box.summary_id
            data = workflow.graph.nodes[node_id]
            node: dag.Node = data["node"]
            if node.kind == dag.ERRBACK:
                errbacks += 1
            elif node.kind == dag.TASK:
                tasks[node.task or "?"] += 1
                if "state" in data:
                    found[data["state"]] += 1
                    skipped += is_skipped(node, data["state"], data.get("meta"))
    box.summary = Summary(box.size, tasks, errbacks, found, skipped)


def _edges(graph: nx.DiGraph, hidden: Mapping[str, str], position: Mapping[str, int]) -> list[Edge]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for source, target, kind in graph.edges(data="kind", default=dag.DATA):
        pair = (hidden.get(source, source), hidden.get(target, target), kind)
        if pair[0] != pair[1]:
            counts[pair] += 1
    edges = [Edge(s, t, k, n) for (s, t, k), n in counts.items()]
    return sorted(edges, key=lambda e: position.get(e.target, 0))


# -- states ----------------------------------------------------------------------------------------
def is_skipped(node: dag.Node, state: str | None, meta: Mapping[str, Any] | None) -> bool:
    """A task that failed without running because an input failed (no worker ever ran it)."""
    return (
        node.kind == dag.TASK
        and state in states.PROPAGATE_STATES
        and meta is not None
        and not meta.get("worker")
    )


__all__ = [
    "COLLAPSE_OVER",
    "Box",
    "Drawable",
    "Edge",
    "Picture",
    "Summary",
    "as_workflow",
    "drawing_order",
    "is_skipped",
    "layout",
]
