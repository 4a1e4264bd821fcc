"""The canvas compiler: any signature, chain, group or chord in; a ``Workflow`` DAG out.

Pure: no I/O, no clock, no broker. Task ids are fixed here, up front, so result handles exist
before anything is sent. Each node is one task call (``task``), a gather point that runs no code
(``gather``: its value is the list of its inputs' values, in order), a forward point that stands
for a replaced task (``forward``: its value is its one input's value), or an errback
(``errback``: run only when its ``trigger`` fails).

Composition rules, in one table (``RULES`` below is the same table, printed by the docs):

===================================  =========================================================
canvas                               compiles to
===================================  =========================================================
``a | b``                            edge a -> b; b gets a's result prepended to its args
``a.si() | b`` / ``a | b.si()``      b waits for a but ignores its result (immutable)
``chain(chain(a, b), c)``            flattened: a -> b -> c
``group(a, b)``                      two roots; the result is a GroupResult in member order
``group(group(a, b), c)``            flattened: group(a, b, c)
``x | group(a, b)``                  x -> a and x -> b; both get x's result
``group(a, b) | c``                  a chord: a, b -> gather -> c; c gets ``[ra, rb]``
``group(a) | c``                     a chord of one member: c gets ``[ra]``
``chord([], c)``                     a gather with no inputs: c runs at once with ``[]``
``chord([chain(a, b), c], d)``       the chain contributes its last value: d gets ``[rb, rc]``
``chord([chain(a, group(b, c))], d)``  a chain ending in a group contributes a nested list
``args`` given to a chain            reach its first task
``args`` given to a group or chord   reach every member of the (header) group
``a.link(b)``                        edge a -> b (kind ``link``): b gets a's result
``a.link_error(e)``                  errback node e, run with a's failure
``chain.link(b)`` / ``link_error``   attached to the chain's last node
``group.link(b)``                    b runs once after *all* members, with the list (Celery
                                     runs it per member: a deliberate difference)
``group.link_error(e)``              attached to every member: once per failing member
``chord.link`` / ``link_error``      attached to the body: fires once
``T.map`` / ``T.starmap``            one task call running the builtin map over the items
``T.chunks(items, n)``               a group of starmap calls of n items each
===================================  =========================================================

Failure rule: a node whose input failed does not run; it fails with the exception of the first
failed input *in input order* (so a chord body raises the exception of the first failing header
member by position, the same on every run), once all its inputs are settled. Nothing waits for
ever: every failure reaches the workflow's end nodes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from canvas.exceptions import WorkflowError
from canvas.signature import Signature, chain, chord, chunks, group

MAX_NODES = 250_000
MAX_DEPTH = 200

#: options that flow from a canvas down to every node it contains (routing and limits)
INHERITED_OPTIONS = frozenset(
    {"queue", "priority", "time_limit", "soft_time_limit", "expires", "headers", "routing_key"}
)
#: options that only the first nodes to run take (when the canvas starts)
START_OPTIONS = frozenset({"countdown", "eta"})

TASK, GATHER, FORWARD, ERRBACK = "task", "gather", "forward", "errback"
DATA, LINK, LINK_ERROR = "data", "link", "link_error"

RULES = __doc__.split("=====\n", 1)[1] if __doc__ else ""


@dataclass(frozen=True)
class Node:
    """One vertex of a workflow. ``id`` is also the task id of its result."""

    id: str
    kind: str
    task: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    immutable: bool = False
    errbacks: tuple[str, ...] = ()
    trigger: str | None = None
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "task": self.task,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "options": dict(self.options),
            "inputs": list(self.inputs),
            "immutable": self.immutable,
            "errbacks": list(self.errbacks),
            "trigger": self.trigger,
            "group": self.group,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Node:
        return cls(
            id=data["id"],
            kind=data["kind"],
            task=data.get("task"),
            args=tuple(data.get("args") or ()),
            kwargs=dict(data.get("kwargs") or {}),
            options=dict(data.get("options") or {}),
            inputs=tuple(data.get("inputs") or ()),
            immutable=bool(data.get("immutable")),
            errbacks=tuple(data.get("errbacks") or ()),
            trigger=data.get("trigger"),
            group=data.get("group"),
        )


@dataclass(frozen=True)
class Cluster:
    """A group or chord as drawn: its member outputs and, for a chord, the join node."""

    id: str
    kind: str  # "group" | "chord"
    members: tuple[str, ...]
    join: str | None = None


# A result spec says how to build the caller's result handle, with Celery's ``.parent`` chain:
# ("task", id, parent) or ("group", group_id, [member specs], parent).
ResultSpec = tuple[Any, ...]


@dataclass
class Workflow:
    """A compiled canvas: the graph, its result spec and its clusters."""

    id: str
    graph: nx.DiGraph
    result: ResultSpec
    clusters: list[Cluster] = field(default_factory=list)

    def node(self, node_id: str) -> Node:
        node: Node = self.graph.nodes[node_id]["node"]
        return node

    @property
    def nodes(self) -> Iterator[Node]:
        for _, data in self.graph.nodes(data="node"):
            yield data

    def successors(self, node_id: str) -> list[str]:
        """Nodes that take this node as an input (data and link edges, not errbacks)."""
        return [
            succ
            for succ, kind in self.graph.adj[node_id].items()
            if kind.get("kind", DATA) != LINK_ERROR
        ]

    def roots(self) -> list[Node]:
        """Nodes that can start at once: no inputs, not errbacks."""
        return [n for n in self.nodes if not n.inputs and n.kind != ERRBACK]

    def __len__(self) -> int:
        return int(self.graph.number_of_nodes())


@dataclass
class _Out:
    """What a sub-canvas produces: one node's value, or a group of outputs (not yet gathered)."""

    node: str | None = None
    group: str | None = None
    members: list[_Out] = field(default_factory=list)


class _Compiler:
    def __init__(self, options: Mapping[str, Any], max_nodes: int, max_depth: int) -> None:
        self.graph = nx.DiGraph()
        self.clusters: list[Cluster] = []
        self.inherited = {k: v for k, v in options.items() if k in INHERITED_OPTIONS}
        self.start = {k: v for k, v in options.items() if k in START_OPTIONS}
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.gathered: dict[int, str] = {}
        self.used_ids: set[str] = set()

    # -- nodes -----------------------------------------------------------------------------
    def add(self, node: Node, edge_kind: str = DATA) -> str:
        if node.id in self.used_ids:
            raise WorkflowError(
                f"Task id {node.id!r} is used twice in one canvas; each call needs its own id "
                "(clone() a signature before reusing one that was frozen)."
            )
        if len(self.used_ids) >= self.max_nodes:
            raise WorkflowError(
                f"Canvas has more than {self.max_nodes} nodes; split it or raise "
                "canvas_max_nodes."
            )
        self.used_ids.add(node.id)
        self.graph.add_node(node.id, node=node)
        for source in node.inputs:
            self.graph.add_edge(source, node.id, kind=edge_kind)
        if node.trigger is not None:
            self.graph.add_edge(node.trigger, node.id, kind=LINK_ERROR)
        return node.id

    def materialize(self, out: _Out | None) -> tuple[str, ...]:
        """The node ids that feed a consumer of ``out``: a group becomes one gather node."""
        if out is None:
            return ()
        if out.node is not None:
            return (out.node,)
        key = id(out)
        if key not in self.gathered:
            inputs = tuple(i for member in out.members for i in self.materialize(member))
            gather_id = out.group if out.group not in self.used_ids else str(uuid.uuid4())
            assert gather_id is not None
            self.gathered[key] = self.add(Node(gather_id, GATHER, inputs=inputs, group=out.group))
        return (self.gathered[key],)

    # -- canvases --------------------------------------------------------------------------
    def build(
        self,
        sig: Signature,
        inp: _Out | None,
        parent: ResultSpec | None,
        depth: int,
        edge_kind: str = DATA,
        group_id: str | None = None,
    ) -> tuple[_Out, ResultSpec]:
        if depth > self.max_depth:
            raise WorkflowError(f"Canvas nesting is deeper than {self.max_depth} levels.")
        if isinstance(sig, chunks):
            return self.build(_with_options(sig.group(), sig), inp, parent, depth + 1, edge_kind)
        if isinstance(sig, chain):
            return self.build_chain(sig, inp, parent, depth, edge_kind)
        if isinstance(sig, group):
            return self.build_group(sig, inp, parent, depth, edge_kind)
        if isinstance(sig, chord):
            return self.build_chord(sig, inp, parent, depth, edge_kind)
        if not isinstance(sig, Signature):
            raise TypeError(f"Cannot compile {type(sig).__name__} {sig!r}: not a signature")
        return self.build_task(sig, inp, parent, edge_kind, group_id)

    def build_task(
        self,
        sig: Signature,
        inp: _Out | None,
        parent: ResultSpec | None,
        edge_kind: str,
        group_id: str | None,
    ) -> tuple[_Out, ResultSpec]:
        if not sig.task:
            raise WorkflowError(f"Signature {sig!r} names no task.")
        options = {**self.inherited, **_call_options(sig.options)}
        inputs = self.materialize(inp)
        if not inputs:
            options = {**self.start, **options}
        task_id = options.pop("task_id", None) or str(uuid.uuid4())
        node = Node(
            task_id,
            TASK,
            sig.task,
            sig.args,
            dict(sig.kwargs),
            options,
            inputs,
            sig.immutable,
            group=group_id,
        )
        self.add(node, edge_kind)
        out = _Out(node=task_id)
        self.attach_callbacks(sig, out, (task_id,))
        return out, ("task", task_id, parent)

    def attach_callbacks(self, sig: Signature, out: _Out, error_sources: Sequence[str]) -> None:
        for callback in sig.options.get("link") or ():
            self.build(callback, out, None, 1, edge_kind=LINK)
        for errback in sig.options.get("link_error") or ():
            self.add_errback(errback, error_sources)

    def add_errback(self, errback: Signature, sources: Sequence[str]) -> None:
        if type(errback) is not Signature:
            raise WorkflowError(f"link_error takes a task signature, not a {type(errback).__name__}")
        for source in sources:
            node_id = str(uuid.uuid4())
            self.add(
                Node(
                    node_id,
                    ERRBACK,
                    errback.task,
                    errback.args,
                    dict(errback.kwargs),
                    {**self.inherited, **_call_options(errback.options)},
                    immutable=errback.immutable,
                    trigger=source,
                )
            )
            old = self.graph.nodes[source]["node"]
            self.graph.nodes[source]["node"] = _replace(old, errbacks=(*old.errbacks, node_id))

    def build_chain(
        self, sig: chain, inp: _Out | None, parent: ResultSpec | None, depth: int, edge_kind: str
    ) -> tuple[_Out, ResultSpec]:
        tasks = sig.tasks
        if not tasks:
            raise WorkflowError("An empty chain() has nothing to run.")
        out, spec = inp, parent
        last_id = sig.options.get("task_id")
        for index, task in enumerate(tasks):
            if last_id and index == len(tasks) - 1 and type(task) is Signature:
                task = task.clone(task_id=last_id)
            kind = edge_kind if index == 0 else DATA
            out, spec = self.build(task, out, spec, depth + 1, kind)
        assert out is not None
        self.attach_callbacks(sig, out, self.outputs(out))
        return out, spec

    def build_group(
        self, sig: group, inp: _Out | None, parent: ResultSpec | None, depth: int, edge_kind: str
    ) -> tuple[_Out, ResultSpec]:
        group_id = sig.options.get("group_id") or sig.options.get("task_id") or str(uuid.uuid4())
        members: list[_Out] = []
        specs: list[ResultSpec] = []
        for member in _flatten_group(sig):
            out, spec = self.build(member, inp, parent, depth + 1, edge_kind, group_id)
            members.append(out)
            specs.append(spec)
        out = _Out(group=group_id, members=members)
        member_ids = tuple(i for m in members for i in self.outputs(m))
        self.clusters.append(Cluster(group_id, "group", member_ids))
        for callback in sig.options.get("link") or ():
            self.build(callback, out, None, depth + 1, edge_kind=LINK)
        for errback in sig.options.get("link_error") or ():
            self.add_errback(errback, member_ids)
        return out, ("group", group_id, specs, parent)

    def build_chord(
        self, sig: chord, inp: _Out | None, parent: ResultSpec | None, depth: int, edge_kind: str
    ) -> tuple[_Out, ResultSpec]:
        header = sig.header
        if sig.options.get("group_id"):
            header = _with_options(header, sig, ("group_id",))
        header_out, header_spec = self.build(header, inp, parent, depth + 1, edge_kind)
        body = sig.body
        if body is None:
            return header_out, header_spec
        if sig.options.get("task_id") and type(body) is Signature:
            body = body.clone(task_id=sig.options["task_id"])
        join = self.materialize(header_out)[0]
        body_out, body_spec = self.build(body, _Out(node=join), header_spec, depth + 1)
        cluster = self.clusters.pop()
        self.clusters.append(Cluster(cluster.id, "chord", cluster.members, join))
        self.attach_callbacks(sig, body_out, self.outputs(body_out))
        return body_out, body_spec

    def outputs(self, out: _Out) -> tuple[str, ...]:
        """Ids of the nodes that end ``out`` (a group's members, recursively)."""
        if out.node is not None:
            return (out.node,)
        return tuple(i for m in out.members for i in self.outputs(m))


def compile(  # noqa: A001 - the compiler's one verb
    canvas: Signature,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
) -> Workflow:
    """Compile ``canvas`` (with call-time args and options) into a validated ``Workflow``."""
    if not isinstance(canvas, Signature):
        raise TypeError(f"compile() takes a signature or canvas, got {type(canvas).__name__}")
    options = dict(options or {})
    if args or kwargs:
        canvas = canvas.clone(args, kwargs)
    if options.get("task_id") and not isinstance(canvas, group):
        canvas = canvas.clone(task_id=options["task_id"])
    elif options.get("task_id") or options.get("group_id"):
        canvas = canvas.clone(group_id=options.get("group_id") or options["task_id"])
    compiler = _Compiler(options, max_nodes, max_depth)
    for key in ("link", "link_error"):
        for extra in options.get(key) or ():
            canvas = canvas.clone()
            getattr(canvas, key)(extra)
    _, spec = compiler.build(canvas, None, None, 0)
    workflow_id = spec[1]
    workflow = Workflow(workflow_id, compiler.graph, spec, compiler.clusters)
    validate(workflow.graph)
    return workflow


def compile_replacement(canvas: Signature, node_id: str) -> Workflow:
    """Compile the canvas a task replaces itself with: its result forwards to ``node_id``."""
    compiler = _Compiler({}, MAX_NODES, MAX_DEPTH)
    out, _ = compiler.build(canvas, None, None, 0)
    inputs = compiler.materialize(out)
    compiler.used_ids.discard(node_id)
    compiler.add(Node(node_id, FORWARD, inputs=inputs))
    workflow = Workflow(node_id, compiler.graph, ("task", node_id, None), compiler.clusters)
    validate(workflow.graph)
    return workflow


def validate(graph: nx.DiGraph) -> None:
    """Reject hand-built graphs that cannot run: cycles and inputs that are not nodes."""
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        path = " -> ".join(str(edge[0]) for edge in cycle) + f" -> {cycle[0][0]}"
        raise WorkflowError(f"Workflow graph has a cycle: {path}")
    for node_id, node in graph.nodes(data="node"):
        if node is None:
            raise WorkflowError(f"Graph vertex {node_id!r} carries no Node (attribute 'node').")
        for source in node.inputs:
            if source not in graph:
                raise WorkflowError(f"Node {node_id!r} takes input from unknown node {source!r}.")


def from_graph(graph: nx.DiGraph, workflow_id: str | None = None) -> Workflow:
    """Wrap a hand-built graph of ``Node`` attributes as a Workflow, after validating it."""
    validate(graph)
    sinks = [n for n in graph.nodes if graph.out_degree(n) == 0]
    wid = workflow_id or (sinks[0] if len(sinks) == 1 else str(uuid.uuid4()))
    if len(sinks) == 1:
        spec: ResultSpec = ("task", sinks[0], None)
    else:
        spec = ("group", wid, [("task", s, None) for s in sinks], None)
    return Workflow(wid, graph, spec)


def _flatten_group(sig: group) -> Iterator[Signature]:
    for member in sig.tasks:
        if type(member) is group and not member.options:
            yield from _flatten_group(member)
        else:
            yield member


def _call_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in ("link", "link_error", "group_id")}


def _with_options(target: Signature, source: Signature, keys: Sequence[str] | None = None) -> Any:
    copy = target.clone()
    for key, value in source.options.items():
        if keys is None or key in keys:
            copy.options[key] = value
    return copy


def _replace(node: Node, **changes: Any) -> Node:
    data = node.to_dict()
    data.update(changes)
    return Node.from_dict(data)


__all__ = ["Cluster", "Node", "Workflow", "compile", "compile_replacement", "from_graph", "validate"]
