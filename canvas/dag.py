"""The canvas compiler: any signature, chain, group or chord in; a ``Workflow`` DAG out.

Pure: no I/O, no clock, no broker. Task ids are fixed here, up front, so result handles exist
before anything is sent. Each node is one task call (``task``), a gather point that runs no code
(``gather``: its value is the list of its inputs' values, in order; a chord's join), a forward
point that ends the replacement of a task (``forward``: its value is its one input's value, and
it completes the replaced node ``replaces`` with it), or an errback (``errback``: its one input
is its ``trigger``; it runs only when the trigger fails).

Every rule is Celery 5.7's (``canvas.primitives`` builds the same shapes from ``|``), except the
few listed at the end. Composition rules, in one table (``RULES`` below is the same table,
printed by the docs):

======================================  ======================================================
canvas                                  compiles to
======================================  ======================================================
``a | b``                               edge a -> b; b gets a's result prepended to its args
``a.si() | b`` / ``a | b.si()``         b waits for a but ignores its result (immutable)
``chain(chain(a, b), c)``               flattened: a -> b -> c (the inner chain's callbacks
                                        go to b, its errbacks to a and b, its options drop)
``chain()``                             ``WorkflowError``: nothing to run
``x | group(a)``                        a group of one is unrolled: x -> a
``x | group()``                         an empty group is skipped: the result is x's
``group(a, b)``                         two roots; the result is a GroupResult in member order
``group(group(a, b), c)``               flattened: group(a, b, c)
``group()``                             a GroupResult of no members; ``get()`` is ``[]``
``group(a | group(b, c))``              the result is the inner group's: ``[rb, rc]``
``x | group(a, b)``                     x -> a and x -> b; both get x's result
``group(a, b) | c``                     a chord: a, b -> join -> c; c gets ``[ra, rb]``
``group(a) | c``                        a chord of one member: c gets ``[ra]``
``group(a, b) | group(c, d)``           a chord with a group body: c and d get ``[ra, rb]``
``chord([], c)``                        a join with no inputs: c runs at once with ``[]``
``x | chord([], c)``                    the empty join waits for x: c gets ``[]`` after x
``chord([chain(a, b), c], d)``          a chain contributes its last value: d gets ``[rb, rc]``
``chord([group(a, b), c], d)``          flattened header: d gets ``[ra, rb, rc]``
``chord([a | group(b, c)], d)``         a chain ending in a group: d gets ``[[rb, rc]]``
``chord(h, b) | c``                     the body becomes b | c: h -> join -> b -> c
args given to a chain                   reach its first task (every member if it is a group)
args given to a group or chord          reach every member of the (header) group
``a | 10``                              ``TypeError`` (only signatures compose)
``group.apply_async(link=...)``         ``TypeError``: use ``group.link()`` or a chord
``a.link(b)``                           edge a -> b (kind ``link``): b gets a's result
``a.link_error(e)``                     errback node e: runs once if a runs and fails
``chain.link(b)``                       on the chain's end (each member of a final group)
``chain.link_error(e)``                 on every task of the chain: the one that fails runs it
``group.link(b)``                       an immutable copy of b on the first member
``group.link_error(e)``                 a copy on every member: once per failing member
``chord.link(b)`` / ``link_error(e)``   on the body; e also on the join, for a failed header
                                        (and on the header tasks with the chord-header setting)
``T.map(xs)`` / ``T.starmap(xs)``       one immutable task call of the builtin map
``T.chunks(xs, n)``                     a group of starmap calls of n items each
options on a chain                      its first step takes them, over its own options
options on a group or chord             every member (and a chord's body) takes them
======================================  ======================================================

Options are those of ``apply_async`` and those set on a canvas with ``.set()`` (``queue``,
``priority``, limits, ``countdown``/``eta``...): a chord's ``countdown`` delays its body too.
``chord.link_error(e)`` reaches the header's tasks (as immutable copies) only with
``task_allow_error_cb_on_chord_header``, and chords nested in the header either way.

Results: ``apply_async()`` returns the last node's handle with Celery's ``.parent`` chain: an
``AsyncResult`` for a task, a ``GroupResult`` (members in order) for a chain ending in a group,
and for a chord the body's result whose ``.parent`` is the header's ``GroupResult`` (for a
chord sent on its own, directly: tasks in the middle of a chain body are not on the path).
``get()`` raises the exception of the earliest failed ``.parent`` first, as in Celery.

Failure rule: a node whose input failed does not run; it takes the outcome of the first failed
input *in input order*, once all its inputs are settled. A task fed by a failed join (a chord
body) fails with ``ChordError("Dependency <id> raised <exc>")`` naming the first failed header
member. Errbacks run for a task that ran and failed, once per failure; a task that did not run
runs none, except a chord body, whose errbacks run from the failed join, with its id.

Ids: a call's ``root_id`` is the root of the call that sent it (itself when sent from outside a
task), its ``parent_id`` that call: the previous task of a chain, the header task that finished
last for a chord body, the replaced task for what followed it.

Where canvas differs from Celery (each a hang, a loss, a duplicate or message growth there):

* Messages carry no canvas: no rest-of-chain, no chord body, no ``link`` lists. The workflow is
  stored once; a message is one node's arguments, whatever the size of the workflow (Celery's
  grow with it: celery#5000, celery#9202, celery#5286).
* A failure settles every node after it as FAILURE, so every handle becomes ready and ``get()``
  returns. In Celery the tasks after a failure stay PENDING: a group after a failed task never
  completes (celery#6437), an early failure in a chain in a chord header retries
  ``chord_unlock`` for ever (celery#9674, celery#6220).
* A chord whose header holds a failing chord settles its own body as FAILURE and runs its
  errbacks: Celery leaves that body PENDING for ever (celery#9107 made the inner errback run),
  so an errback linked to both chords runs twice here, once there.
* One frozen signature used twice in one canvas runs twice, the second call under an id of its
  own: Celery gives both the same id, and a chord header holding both never fires
  (reproduced on 5.7.0; celery#893).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from canvas.exceptions import WorkflowError
from canvas.maps import chunks
from canvas.primitives import chain, chord, group, unroll
from canvas.signature import Signature

if TYPE_CHECKING:
    import networkx as nx  # imported where a graph is built: workers that only run nodes
    # never pay its ~20 MB and 0.2 s

_T = TypeVar("_T")

MAX_NODES = 250_000
MAX_DEPTH = 200

#: options that shape the workflow rather than travel with a call (never passed on)
STRUCTURE_OPTIONS = frozenset({"link", "link_error", "task_id", "group_id"})

TASK, GATHER, FORWARD, ERRBACK = "task", "gather", "forward", "errback"
DATA, LINK, LINK_ERROR = "data", "link", "link_error"

#: the composition table of the module docstring, as text
RULES = __doc__.split("printed by the docs):\n\n", 1)[1].split("\n\n", 1)[0] if __doc__ else ""


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
    #: a forward node's replaced call: the node whose outcome it completes
    replaces: str | None = None
    #: an errback of a chord's body hung on the chord's join: the body id it reports (it runs
    #: when the header failed, the body never ran)
    reports: str | None = None

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
            "replaces": self.replaces,
            "reports": self.reports,
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
            replaces=data.get("replaces"),
            reports=data.get("reports"),
        )


@dataclass(frozen=True)
class Cluster:
    """A group or chord as drawn: its member outputs and, for a chord, the join node."""

    id: str
    kind: str  # "group" | "chord"
    members: tuple[str, ...]
    join: str | None = None


@dataclass(frozen=True)
class ResultSpec:
    """How to build the caller's result handle, with Celery's ``.parent`` chain: one task's
    result (``kind="task"``) or a group's, whose ``members`` are specs in member order."""

    kind: Literal["task", "group"]
    id: str
    parent: ResultSpec | None = None
    members: tuple[ResultSpec, ...] = ()
    #: the task's name when it is known before the task runs (a plain call)
    name: str | None = None


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


@dataclass(eq=False)
class _Out:
    """What a sub-canvas produces: one node's value, or a group of outputs (not yet gathered).

    ``gather`` remembers the join node once one was made, so a group feeding two consumers is
    joined once. ``after`` is what an empty group waits for (its input), since it has no member
    to carry that dependency.
    """

    node: str | None = None
    group: str | None = None
    members: list[_Out] = field(default_factory=list)
    after: _Out | None = None
    gather: str | None = None


@dataclass(frozen=True)
class _At:
    """Where a sub-canvas is built: what feeds it, its result's ``.parent``, how deep it is, the
    call options it takes (they win over its own), the errbacks each of its tasks takes (an
    enclosing chain's), the kind of its first edge, and its group (a member's)."""

    inp: _Out | None = None
    parent: ResultSpec | None = None
    depth: int = 0
    call: Mapping[str, Any] = field(default_factory=dict)
    errbacks: tuple[Signature, ...] = ()
    edge_kind: str = DATA
    group_id: str | None = None

    def within(
        self,
        inp: _Out | None,
        parent: ResultSpec | None,
        *,
        call: Mapping[str, Any] | None = None,
        errbacks: tuple[Signature, ...] | None = None,
        edge_kind: str = DATA,
        group_id: str | None = None,
    ) -> _At:
        """The place of a part one level down: it keeps the errbacks, not the call options."""
        return _At(
            inp,
            parent,
            self.depth + 1,
            call or {},
            self.errbacks if errbacks is None else errbacks,
            edge_kind,
            group_id,
        )


def _random_ids() -> Iterator[str]:
    while True:
        yield str(uuid.uuid4())


def _seeded_ids(seed: str) -> Iterator[str]:
    """Ids that are the same on every compile from ``seed`` (a replaced node's redelivery)."""
    for n in itertools.count():
        yield str(uuid.uuid5(uuid.NAMESPACE_URL, f"canvas:{seed}/{n}"))


class _Compiler:
    def __init__(
        self,
        max_nodes: int,
        max_depth: int,
        ids: Iterator[str] | None = None,
        header_errbacks: bool = False,
    ) -> None:
        import networkx as nx  # heavy (~20 MB): loaded by the processes that compile canvases

        self.graph = nx.DiGraph()
        self.clusters: list[Cluster] = []
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.used_ids: set[str] = set()
        self.ids = ids if ids is not None else _random_ids()
        #: ``task_allow_error_cb_on_chord_header``: a chord's errbacks reach its header's tasks
        self.header_errbacks = header_errbacks

    def new_id(self) -> str:
        return next(self.ids)

    def fresh(self, wanted: str | None) -> str:
        """``wanted`` when it is free, else a new id: a frozen signature used twice in one
        canvas runs twice, as in Celery (the second use gets its own id)."""
        return wanted if wanted and wanted not in self.used_ids else self.new_id()

    # -- nodes -----------------------------------------------------------------------------
    def add(self, node: Node, edge_kind: str = DATA) -> str:
        if node.id in self.used_ids:
            raise WorkflowError(
                f"Task id {node.id!r} is used twice in one canvas; each call needs its own id "
                "(clone() a signature before reusing one that was frozen)."
            )
        if len(self.used_ids) >= self.max_nodes:
            raise WorkflowError(
                f"Canvas has more than {self.max_nodes} nodes (canvas_max_nodes); split it into "
                "several workflows or raise canvas_max_nodes."
            )
        self.used_ids.add(node.id)
        self.graph.add_node(node.id, node=node)
        for source in node.inputs:
            self.graph.add_edge(source, node.id, kind=edge_kind)
        return node.id

    def materialize(self, out: _Out | None) -> tuple[str, ...]:
        """The node ids that feed a consumer of ``out``: a group becomes one gather node."""
        if out is None:
            return ()
        if out.node is not None:
            return (out.node,)
        if out.gather is None:
            inputs = tuple(i for member in out.members for i in self.materialize(member))
            ignore_inputs = False
            if not out.members and out.after is not None:
                # An empty group still waits for its input; its value stays [].
                inputs, ignore_inputs = self.materialize(out.after), True
            node = Node(
                self.fresh(out.group),
                GATHER,
                inputs=inputs,
                immutable=ignore_inputs,
                group=out.group,
            )
            out.gather = self.add(node)
        return (out.gather,)

    # -- canvases --------------------------------------------------------------------------
    def build(self, sig: Signature, at: _At) -> tuple[_Out, ResultSpec]:
        """Add ``sig``'s nodes at ``at``; what it produces and its result's spec."""
        if at.depth > self.max_depth:
            raise WorkflowError(
                f"Canvas nesting is deeper than {self.max_depth} levels (canvas_max_depth); "
                "flatten it (a chain of chains is one chain) or raise canvas_max_depth."
            )
        if not isinstance(sig, Signature):
            raise TypeError(f"Cannot compile {type(sig).__name__} {sig!r}: not a signature")
        return _lookup(_BUILDERS, sig)(self, sig, at)

    def build_task(self, sig: Signature, at: _At) -> tuple[_Out, ResultSpec]:
        if not sig.task:
            raise WorkflowError(f"Signature {sig!r} names no task.")
        options = {**_call_options(sig.options), **at.call}
        task_id = self.fresh(options.pop("task_id", None))
        node = Node(
            task_id,
            TASK,
            sig.task,
            sig.args,
            dict(sig.kwargs),
            options,
            self.materialize(at.inp),
            sig.immutable,
            group=at.group_id,
        )
        self.add(node, at.edge_kind)
        out = _Out(node=task_id)
        self.attach_links(sig.options.get("link") or (), out, at)
        errbacks = _unique([*(sig.options.get("link_error") or ()), *at.errbacks])
        self.add_errbacks(errbacks, [(task_id, None)])
        return out, ResultSpec("task", task_id, at.parent)

    def attach_links(self, callbacks: Iterable[Signature], out: _Out, at: _At) -> None:
        """``link`` callbacks take ``out``'s value; on a group's output, each member's (Celery
        applies a group's links to every member)."""
        for callback in callbacks:
            if out.node is None:
                for member in out.members:
                    self.attach_links([callback], member, at)
                continue
            self.build(callback, at.within(out, None, errbacks=(), edge_kind=LINK))

    def add_errbacks(
        self, errbacks: Sequence[Signature], sources: Sequence[tuple[str, str | None]]
    ) -> None:
        """One errback node per (errback, source): it runs when its source, a task, fails after
        it ran; or, with ``reports`` set, when its source, a chord's join, failed."""
        for errback in errbacks:
            if isinstance(errback, _COMPOSITES) or not errback.task:
                raise WorkflowError(
                    f"link_error takes a task signature such as log_error.s(), not {errback!r}."
                )
            options = _call_options(errback.options)
            options.pop("task_id", None)
            for source, reports in sources:
                node_id = self.add(
                    Node(
                        self.new_id(),
                        ERRBACK,
                        errback.task,
                        errback.args,
                        dict(errback.kwargs),
                        options,
                        inputs=(source,),
                        immutable=errback.immutable,
                        trigger=source,
                        reports=reports,
                    ),
                    edge_kind=LINK_ERROR,
                )
                old = self.graph.nodes[source]["node"]
                self.graph.nodes[source]["node"] = replace(old, errbacks=(*old.errbacks, node_id))

    def build_chain(self, sig: chain, at: _At) -> tuple[_Out, ResultSpec]:
        # The chain's options (and the call's, which win) go to its first step only; its
        # errbacks to every task in it; its callbacks to its end.
        call = {**flowing(sig.options), **at.call}
        errbacks = _unique([*at.errbacks, *(sig.options.get("link_error") or ())])
        steps = _steps(sig)
        if not steps:
            raise WorkflowError("An empty chain() has nothing to run; give it a signature.")
        out, spec = at.inp, at.parent
        last_id = sig.options.get("task_id")
        for index, step in enumerate(steps):
            if last_id and index == len(steps) - 1:
                step = _with_id(step, last_id)
            first = index == 0
            out, spec = self.build(
                step,
                at.within(
                    out,
                    spec,
                    call=call if first else None,
                    errbacks=errbacks,
                    edge_kind=at.edge_kind if first else DATA,
                ),
            )
        assert out is not None and spec is not None
        self.attach_links(sig.options.get("link") or (), out, at)
        return out, spec

    def build_group(self, sig: group, at: _At) -> tuple[_Out, ResultSpec]:
        call = {**flowing(sig.options), **at.call}
        errbacks = _unique([*at.errbacks, *(sig.options.get("link_error") or ())])
        group_id = self.fresh(sig.options.get("group_id") or sig.options.get("task_id"))
        out, specs = self.build_members(_flatten_group(sig), at, group_id, call, errbacks)
        self.attach_links(sig.options.get("link") or (), out, at)
        if len(specs) == 1 and specs[0].kind == "group":
            # Celery: a group whose one member ends in a group returns that inner group's result
            return out, specs[0]
        return out, ResultSpec("group", group_id, at.parent, tuple(specs))

    def build_members(
        self,
        members: Iterable[Signature],
        at: _At,
        group_id: str,
        call: Mapping[str, Any],
        errbacks: tuple[Signature, ...] | Callable[[Signature], tuple[Signature, ...]],
    ) -> tuple[_Out, list[ResultSpec]]:
        """The members of a group (or chord header), each fed by ``at.inp``."""
        outs: list[_Out] = []
        specs: list[ResultSpec] = []
        for member in members:
            own = errbacks(member) if callable(errbacks) else errbacks
            place = at.within(
                at.inp,
                at.parent,
                call=call,
                errbacks=own,
                edge_kind=at.edge_kind,
                group_id=group_id,
            )
            out, spec = self.build(member, place)
            outs.append(out)
            specs.append(spec)
        out = _Out(group=group_id, members=outs, after=None if outs else at.inp)
        self.clusters.append(Cluster(group_id, "group", self.outputs(out)))
        return out, specs

    def build_chord(self, sig: chord, at: _At) -> tuple[_Out, ResultSpec]:
        # The chord's options (and the call's) go to every header member and to the body; its
        # errbacks to the body, to the header's tasks when header_errbacks is set, and to the
        # chords in its header either way (Celery's chord.link_error).
        call = {**flowing(sig.options), **at.call}
        errbacks = _unique([*at.errbacks, *(sig.options.get("link_error") or ())])
        copies = tuple(e.clone().set(immutable=True) for e in errbacks)

        def header_errbacks(member: Signature) -> tuple[Signature, ...]:
            own = copies if self.header_errbacks else ()
            return _unique([*own, *errbacks]) if isinstance(member, chord) else own

        group_id = self.fresh(sig.options.get("group_id"))
        members = _flatten_group(sig.header)
        header_out, specs = self.build_members(members, at, group_id, call, header_errbacks)
        header_spec = ResultSpec("group", group_id, at.parent, tuple(specs))
        body = sig.body
        if body is None:
            return header_out, header_spec
        if sig.options.get("task_id"):
            body = _with_id(body, sig.options["task_id"])
        join = self.materialize(header_out)[0]
        body_at = at.within(_Out(node=join), header_spec, call=call, errbacks=errbacks)
        body_out, body_spec = self.build(body, body_at)
        # When the header fails the body does not run: its errbacks run from the join instead.
        self.add_errbacks_on_failed_join(body, body_out, join, errbacks)
        self.clusters = [
            Cluster(c.id, "chord", c.members, join) if c.id == group_id else c
            for c in self.clusters
        ]
        self.attach_links(sig.options.get("link") or (), body_out, at)
        if at.depth == 0:
            # A chord sent on its own: the result's parent is the header (Celery's handle).
            body_spec = replace(body_spec, parent=header_spec)
        return body_out, body_spec

    def add_errbacks_on_failed_join(
        self, body: Signature, out: _Out, join: str, inherited: tuple[Signature, ...]
    ) -> None:
        """The errbacks a body runs when its chord's header failed, each reporting the body's
        id: a task's, a chain's (reporting its end), each member's for a group."""
        if isinstance(body, chord):
            return  # its own header's tasks do not run: its own join reports for it
        own = _unique([*inherited, *(body.options.get("link_error") or ())])
        if isinstance(body, group):
            for member, member_out in zip(_flatten_group(body), out.members, strict=True):
                self.add_errbacks_on_failed_join(member, member_out, join, own)
            return
        self.add_errbacks(own, [(join, end) for end in self.outputs(out)])

    def build_chunks(self, sig: chunks, at: _At) -> tuple[_Out, ResultSpec]:
        # What runs is a group of starmap calls; it carries the chunks' options.
        return self.build(sig.group(), at)

    def outputs(self, out: _Out) -> tuple[str, ...]:
        """Ids of the nodes that end ``out`` (a group's members, recursively)."""
        if out.node is not None:
            return (out.node,)
        return tuple(i for m in out.members for i in self.outputs(m))


_Builder = Callable[[_Compiler, Any, _At], tuple[_Out, ResultSpec]]

#: type -> how the compiler builds it (a subclass uses its nearest base's entry)
_BUILDERS: dict[type[Signature], _Builder] = {
    chain: _Compiler.build_chain,
    group: _Compiler.build_group,
    chord: _Compiler.build_chord,
    chunks: _Compiler.build_chunks,
    Signature: _Compiler.build_task,
}


#: options a caller may pass that belong to the act of sending, not to any node
TRANSIENT_OPTIONS = frozenset(
    {
        "connection",
        "producer",
        "add_to_parent",
        "retry",
        "retry_policy",
        "chord",
        "root_id",
        "parent_id",
        "mandatory",
    }
)


def compile(  # shadows the builtin on purpose: the compiler's one verb
    canvas: Signature,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
    header_errbacks: bool = False,
) -> Workflow:
    """Compile ``canvas`` (with call-time args and options) into a validated ``Workflow``.

    The caller's canvas is never modified. Call options are the canvas's own options and win
    over its parts' (Celery's ``apply_async``): a chain gives them to its first step, a group to
    every member, a chord to its header's members and its body. ``header_errbacks`` is the
    app's ``task_allow_error_cb_on_chord_header``.
    """
    if not isinstance(canvas, Signature):
        raise TypeError(
            f"compile() takes a signature or canvas such as add.s(1, 2), got "
            f"{type(canvas).__name__} {canvas!r}"
        )
    call = {k: v for k, v in (options or {}).items() if k not in TRANSIENT_OPTIONS}
    extra = {key: _as_list(call.pop(key, None)) for key in ("link", "link_error")}
    canvas = canvas.clone(args, kwargs) if args or kwargs else canvas.clone()
    if isinstance(canvas, _COMPOSITES):
        _place_call_ids(canvas, call.pop("task_id", None), call.pop("group_id", None))
    canvas.options.update(call)
    for key, added in extra.items():
        # Given to apply_async, they are the canvas's own: a chain's errbacks reach every task,
        # a chord's its body (Celery's apply_async(link=..., link_error=...)).
        if added:
            canvas.options[key] = _unique([*(canvas.options.get(key) or ()), *added])
    compiler = _Compiler(max_nodes, max_depth, header_errbacks=header_errbacks)
    _, spec = compiler.build(canvas, _At())
    workflow = Workflow(spec.id, compiler.graph, spec, compiler.clusters)
    validate(workflow.graph)
    return workflow


def compile_replacement(canvas: Signature, replaced: Node) -> Workflow:
    """Compile the canvas a task replaces itself with; its result completes ``replaced``.

    The replacement ends in a forward node whose ``replaces`` names the replaced call: when the
    forward resolves, the completion step completes the replaced node with the same outcome, so
    the replaced node keeps its id, its successors and its errbacks, and its stored join state
    is never rewritten. Ids derive from the replaced node's id, so a redelivered task that
    replaces itself again rebuilds the very same nodes, which the store's idempotent
    ``complete`` wires once.
    """
    compiler = _Compiler(MAX_NODES, MAX_DEPTH, ids=_seeded_ids(replaced.id))
    out, _ = compiler.build(canvas.clone(), _At(depth=1))
    forward = Node(
        compiler.new_id(),
        FORWARD,
        replaced.task,
        inputs=compiler.materialize(out),
        group=replaced.group,
        replaces=replaced.id,
    )
    compiler.add(forward)
    spec = ResultSpec("task", replaced.id)
    workflow = Workflow(replaced.id, compiler.graph, spec, compiler.clusters)
    validate(workflow.graph)
    return workflow


def compile_addition(
    canvas: Signature,
    join: Node,
    seed: str,
    call: Mapping[str, Any] | None = None,
) -> tuple[Workflow, tuple[str, ...], ResultSpec]:
    """Compile a canvas added to a running chord's header (``add_to_chord``), or one member of a
    header read from a generator: its nodes, the ids of those that feed ``join`` (in order), and
    its result's spec. ``call`` is what the chord gives each member (see ``build_chord``).

    A group is flattened into the header, as a group in a header is; anything else is one
    member. Ids derive from ``seed``, so a redelivered caller that adds the same canvas again
    builds the very same nodes, which the store stores and wires once.
    """
    compiler = _Compiler(MAX_NODES, MAX_DEPTH, ids=_seeded_ids(seed))
    members = list(_flatten_group(canvas)) if isinstance(canvas, group) else [canvas]
    feeding: list[str] = []
    specs: list[ResultSpec] = []
    for member in members:
        at = _At(depth=1, call=dict(call or {}), group_id=join.group)
        out, spec = compiler.build(member.clone(), at)
        feeding.extend(compiler.materialize(out))
        specs.append(spec)
    spec = specs[0] if len(specs) == 1 else ResultSpec("group", join.id, None, tuple(specs))
    workflow = Workflow(spec.id, compiler.graph, spec, compiler.clusters)
    validate(workflow.graph)
    return workflow, tuple(feeding), spec


# -- where ids land -----------------------------------------------------------------------------
# One rule for freeze() and compile(): the id of a chain's result is its last task's, of a
# chord's its body's, of a group's (or chunks') its group id; a chord's group_id is its header's.
# An id already there stays (Celery's freeze never replaces one).


def freeze(sig: Signature, result_id: str | None = None) -> ResultSpec:
    """Fix every task id inside ``sig`` in place (Celery's ``freeze``); the spec of its handle.

    ``result_id`` is the id the handle gets when it has none yet (see ``assign_ids`` for where
    it lands). A plain call is not compiled: its handle is its own task id.
    """
    if not isinstance(sig, _COMPOSITES):
        if result_id is not None:
            sig.options.setdefault("task_id", result_id)
        return ResultSpec("task", sig.options.setdefault("task_id", str(uuid.uuid4())))
    if result_id is not None:
        sig.options.setdefault(_result_key(sig), result_id)
    assign_ids(sig)
    return compile(sig).result


def assign_ids(sig: Signature) -> None:
    """Fix, in place, every task id inside ``sig`` that is not fixed yet (link callbacks too).

    The one home of where a composite's id lands: the ``task_id`` of a chain is its last
    task's (and stays the chain's ``id``), of a chord its body's (a chord's ``id`` is then its
    header's group id, as in Celery), and of a group or chunks it becomes the ``group_id``.
    """
    _lookup(_ASSIGN, sig)(sig)


def _assign_task(sig: Signature) -> None:
    sig.options.setdefault("task_id", str(uuid.uuid4()))
    _assign_links(sig)


def _assign_chain(sig: chain) -> None:
    last_id = sig.options.get("task_id")
    for index, task in enumerate(sig.tasks):
        if last_id and index == len(sig.tasks) - 1:
            task.options.setdefault(_result_key(task), last_id)
        assign_ids(task)
    if sig.tasks:
        sig.options["task_id"] = _result_id(sig.tasks[-1])
    _assign_links(sig)


def _assign_group(sig: group) -> None:
    group_id = sig.options.pop("task_id", None) or str(uuid.uuid4())
    sig.options.setdefault("group_id", group_id)
    for task in sig.tasks:
        assign_ids(task)
    _assign_links(sig)


def _assign_chord(sig: chord) -> None:
    task_id = sig.options.get("task_id")
    group_id = sig.options.setdefault("group_id", str(uuid.uuid4()))
    for task in sig.tasks:
        assign_ids(task)
    if sig.body is not None:
        if task_id and task_id != group_id:
            sig.body.options.setdefault(_result_key(sig.body), task_id)
        assign_ids(sig.body)
    sig.options["task_id"] = group_id


def _assign_chunks(sig: chunks) -> None:
    group_id = sig.options.pop("task_id", None) or str(uuid.uuid4())
    sig.options.setdefault("group_id", group_id)


def _assign_links(sig: Signature) -> None:
    for callback in sig.options.get("link") or ():
        assign_ids(callback)


def _result_id(sig: Signature) -> str:
    """The id of ``sig``'s result once its ids are fixed."""
    if isinstance(sig, chord) and sig.body is not None:
        return _result_id(sig.body)
    return str(sig.options.get(_result_key(sig)))


_COMPOSITES = (chain, group, chord, chunks)

#: type -> how ``assign_ids`` fixes the ids inside it (a subclass uses its base's entry)
_ASSIGN: dict[type[Signature], Callable[[Any], None]] = {
    chain: _assign_chain,
    group: _assign_group,
    chord: _assign_chord,
    chunks: _assign_chunks,
    Signature: _assign_task,
}


def _lookup(table: Mapping[type[Signature], _T], sig: Signature) -> _T:
    """The entry of ``table`` for ``sig``'s class or its nearest base."""
    for cls in type(sig).__mro__:
        if cls in table:
            return table[cls]
    raise TypeError(f"Cannot compile {type(sig).__name__} {sig!r}: not a signature")


def _result_key(sig: Signature) -> str:
    """The option that holds the id of ``sig``'s result: a group's id, else a task id."""
    return "group_id" if isinstance(sig, group | chunks) else "task_id"


def _with_id(sig: Signature, result_id: str) -> Signature:
    """A copy of ``sig`` whose result has ``result_id`` unless it has an id of its own (the
    last task of a chain, a chord's body: a frozen id stays, as in Celery)."""
    copy = sig.clone()
    if isinstance(copy, chord):
        if copy.body is not None and not copy.options.get("task_id"):
            copy.body = _with_id(copy.body, result_id)
        return copy
    copy.options.setdefault(_result_key(copy), result_id)
    return copy


def _place_call_ids(canvas: Signature, task_id: str | None, group_id: str | None) -> None:
    """``apply_async(task_id=..., group_id=...)`` on a composite: where the two ids land."""
    if _result_key(canvas) == "group_id":
        group_id = group_id or task_id
    elif task_id:
        canvas.options["task_id"] = task_id
    if group_id:
        canvas.options["group_id"] = group_id


def validate(graph: nx.DiGraph) -> None:
    """Reject hand-built graphs that cannot run: cycles and inputs that are not nodes."""
    for node_id, node in graph.nodes(data="node"):
        if not isinstance(node, Node):
            raise WorkflowError(f"Graph vertex {node_id!r} carries no Node (attribute 'node').")
        if node.id != node_id:
            raise WorkflowError(f"Graph vertex {node_id!r} carries the Node of {node.id!r}.")
        for source in node.inputs:
            if source not in graph:
                raise WorkflowError(f"Node {node_id!r} takes input from unknown node {source!r}.")
    import networkx as nx  # heavy: see _Compiler

    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        path = " -> ".join(str(edge[0]) for edge in cycle) + f" -> {cycle[0][0]}"
        raise WorkflowError(f"Workflow graph has a cycle: {path}. A workflow must be a DAG.")


def from_graph(graph: nx.DiGraph, workflow_id: str | None = None) -> Workflow:
    """Wrap a hand-built graph of ``Node`` attributes as a Workflow, after validating it.

    Edges are taken from the nodes' ``inputs`` (an edge the graph has but no input names is
    refused: it would never be waited for).
    """
    validate(graph)
    for source, target in graph.edges:
        node: Node = graph.nodes[target]["node"]
        if source not in node.inputs and node.trigger != source:
            raise WorkflowError(
                f"Edge {source!r} -> {target!r} is not one of {target!r}'s inputs {node.inputs}."
            )
    sinks = [n for n in graph.nodes if graph.out_degree(n) == 0]
    wid = workflow_id or (sinks[0] if len(sinks) == 1 else str(uuid.uuid4()))
    if len(sinks) == 1:
        spec = ResultSpec("task", sinks[0])
    else:
        spec = ResultSpec("group", wid, members=tuple(ResultSpec("task", s) for s in sinks))
    return Workflow(wid, graph, spec)


def _steps(sig: chain) -> list[Signature]:
    """A chain's steps as Celery runs them: a one-member group is that member, and an empty
    group is skipped when there is anything else to run."""
    steps = [unroll(step) for step in sig.tasks]
    kept: list[Signature] = []
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        empty = isinstance(step, group) and not step.is_lazy and not step.tasks
        if empty and (index > 0 or kept):
            continue
        kept.append(step)
    return kept[::-1]


def _flatten_group(sig: group) -> Iterator[Signature]:
    """A group's members with nested groups unrolled into it (Celery's rule)."""
    for member in sig.tasks:
        if type(member) is group:
            yield from _flatten_group(member)
        else:
            yield member


def _call_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in ("link", "link_error", "group_id")}


def flowing(options: Mapping[str, Any]) -> dict[str, Any]:
    """A chain's, group's or chord's own options that its parts take as call options."""
    skip = STRUCTURE_OPTIONS | TRANSIENT_OPTIONS
    return {k: v for k, v in options.items() if k not in skip}


def _unique(sigs: Iterable[Signature]) -> tuple[Signature, ...]:
    """Equal signatures once (linking one twice runs it once, as in Celery)."""
    found: list[Signature] = []
    for sig in sigs:
        if sig not in found:
            found.append(sig)
    return tuple(found)


def _as_list(value: Any) -> list[Signature]:
    """``link=`` and ``link_error=`` take one signature or a list of them, as in Celery."""
    if value is None:
        return []
    if isinstance(value, Signature):
        return [value]
    return list(value)


__all__ = [
    "Cluster",
    "Node",
    "ResultSpec",
    "Workflow",
    "assign_ids",
    "compile",
    "compile_addition",
    "compile_replacement",
    "freeze",
    "from_graph",
    "validate",
]
