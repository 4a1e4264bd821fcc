"""Dispatch: send a call or a canvas, and start workflows (store once, publish ready nodes).

A plain call with no callbacks is one message (``canvas.core.messages``) and nothing else. Any
other canvas is compiled, saved once in the result store (one record per node), and only its ready
nodes are published; a flat group of plain calls makes the compiler's nodes without the compiler
(``flat_group``).
Successors are published later by the worker that completes their last input
(``canvas.core.complete``), so a message never carries the rest of its workflow.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canvas import dag
from canvas.backends.base import NodeRecord
from canvas.backends.rpc import RpcBackend
from canvas.core import complete, messages, monitor, protocol
from canvas.core.messages import Lineage
from canvas.exceptions import ImproperlyConfigured, PayloadTooLarge
from canvas.primitives import group
from canvas.request import current_request
from canvas.signature import Signature
from canvas.stamping import STAMPED_HEADERS

if TYPE_CHECKING:
    from canvas.app import Canvas

#: options that are routing/call options rather than message headers
_KNOWN_OPTIONS = frozenset(
    {
        "countdown",
        "eta",
        "expires",
        "task_id",
        "queue",
        "priority",
        "argsrepr",
        "kwargsrepr",
        "headers",
        "link",
        "link_error",
        "time_limit",
        "soft_time_limit",
        "serializer",
        "ignore_result",
        "routing_key",
        "exchange",
        "shadow",
        "group_id",
        "retries",
        "root_id",
        "parent_id",
        "add_to_parent",
        "connection",
        "producer",
        "retry",
        "retry_policy",
        "compression",
        "immutable",
        "mandatory",
        "delivery_mode",
        "chord",
    }
)


def check_options(options: Mapping[str, Any]) -> None:
    if not options:  # delay(): nothing to check
        return
    stamps = set(options.get(STAMPED_HEADERS) or ()) | {STAMPED_HEADERS}
    unknown = sorted(set(options) - _KNOWN_OPTIONS - stamps)
    if unknown:
        raise TypeError(
            f"apply_async() got unknown option(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(sorted(_KNOWN_OPTIONS))}."
        )


def send(
    app: Canvas,
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> dag.ResultSpec:
    """Send any canvas; returns the spec of its last result's handle (``canvas.result``).

    Sent from inside a running task, the calls take that task's root and it as their parent
    (and its priority with ``task_inherit_parent_priority``), as in Celery.
    """
    check_options(options)
    lineage = Lineage.of(current_request(), bool(app.conf.task_inherit_parent_priority))
    if type(sig) is Signature and not _has_callbacks(sig, options):
        merged = {**sig.options, **options}
        call_args, call_kwargs = sig._partial(args, kwargs)
        task_id = merged.pop("task_id", None) or str(uuid.uuid4())
        if not sig.task:
            raise ImproperlyConfigured(f"Signature {sig!r} names no task.")
        if merged.get("priority") is None and lineage.priority is not None:
            merged["priority"] = lineage.priority
        message = messages.build(
            app,
            sig.task,
            task_id,
            call_args,
            call_kwargs,
            merged,
            root_id=lineage.root_id,
            parent_id=lineage.parent_id,
        )
        messages.publish(app, [message])
        return dag.ResultSpec("task", task_id, name=sig.task)
    flat = flat_group(sig, args, kwargs, options, int(app.conf.canvas_max_nodes))
    if flat is not None:
        start_flat(app, flat, lineage)
        return flat.result
    workflow = compile_for(app, sig, args, kwargs, options)
    start(app, workflow, lineage)
    return workflow.result


@dataclass(frozen=True)
class FlatGroup:
    """A group of plain task calls, as the compiler would make it: its members' nodes (no
    inputs, no successors) and its result's spec."""

    id: str
    nodes: list[dag.Node]
    result: dag.ResultSpec


def flat_group(
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    max_nodes: int,
) -> FlatGroup | None:
    """``group([add.s(1, 1), ...]).apply_async()`` without the compiler, or ``None`` when
    ``sig`` is anything more (call arguments or options, callbacks, nested canvases, a
    generator, a repeated id, too many members): the compiler handles those.

    The usual way to send many calls at once should cost what the calls cost, not a graph
    built and checked (nor networkx imported) for a shape with no edges. The nodes, ids and
    result are the compiler's (``tests/unit/test_flat_group.py`` holds the two side by side).
    """
    if type(sig) is not group or args or kwargs or options or sig.is_lazy:
        return None
    if set(sig.options) - {"group_id"}:
        return None
    members = sig.tasks
    if not members or len(members) > max_nodes:
        return None
    group_id = sig.options.get("group_id") or str(uuid.uuid4())
    nodes: list[dag.Node] = []
    used: set[str] = set()
    for member in members:
        own = member.options
        if type(member) is not Signature or not member.task or own.get("link"):
            return None
        if own.get("link_error"):
            return None
        call = {k: v for k, v in own.items() if k not in _NOT_CALL_OPTIONS}
        task_id = call.pop("task_id", None) or str(uuid.uuid4())
        if task_id in used:
            return None  # the compiler gives a reused id a fresh one
        used.add(task_id)
        node = dag.Node(
            task_id,
            dag.TASK,
            member.task,
            member.args,
            dict(member.kwargs),
            call,
            (),
            member.immutable,
            group=group_id,
        )
        nodes.append(node)
    specs = tuple(dag.ResultSpec("task", n.id, None) for n in nodes)
    return FlatGroup(group_id, nodes, dag.ResultSpec("group", group_id, None, specs))


#: a member's options that are not passed on to its call (the compiler's ``_call_options``)
_NOT_CALL_OPTIONS = frozenset({"link", "link_error", "group_id"})


def start_flat(app: Canvas, flat: FlatGroup, lineage: Lineage) -> None:
    """``start`` for a flat group: store it once, then publish every member in one batch."""
    spec_of = protocol.internal.dumps
    records = [
        NodeRecord(n.id, spec_of({**n.to_dict(), "successors": [], "links": []}), (), 0)
        for n in flat.nodes
    ]
    _check_sizes(app, records, {n.id: n for n in flat.nodes}.__getitem__)
    backend = app.backend
    if isinstance(backend, RpcBackend) and backend.local:
        # rpc:// with workflow state in a file on this machine: a member taken by a worker of
        # another machine would not find the group there, and needs nothing of it (it has no
        # successor). Sent as plain calls, the members reply from wherever they run (Celery's
        # group on rpc://).
        plain = [messages.for_node(app, None, n, n.args, lineage) for n in flat.nodes]
        messages.publish(app, plain)
        return
    first = [messages.for_node(app, flat.id, n, n.args, lineage) for n in flat.nodes]
    ids = [n.id for n in flat.nodes]
    info = spec_of(
        {
            "id": flat.id,
            "created": time.time(),
            "clusters": [[flat.id, "group", ids, None]],
            "sinks": ids,
        }
    )
    app.backend.save_workflow(flat.id, records, info)
    if app.conf.task_send_sent_event:
        monitor.announce_workflow(app, flat.id, len(ids), flat.nodes[0].task)
    messages.publish(app, first)


def compile_for(
    app: Canvas,
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> dag.Workflow:
    """Compile ``sig`` with the app's limits and chord-errback setting."""
    return dag.compile(
        sig,
        args,
        kwargs,
        options,
        max_nodes=app.conf.canvas_max_nodes,
        max_depth=app.conf.canvas_max_depth,
        header_errbacks=bool(app.conf.task_allow_error_cb_on_chord_header),
    )


def streams(sig: Signature) -> bool:
    """Is ``sig`` a chord whose header is a generator nothing has read yet? Sent as it is, its
    members are published as the generator yields them (Celery #3021): ``canvas.core.joins``
    sends it, not ``send``."""
    header = getattr(sig, "header", None)
    return bool(getattr(header, "is_lazy", False))


def _has_callbacks(sig: Signature, options: Mapping[str, Any]) -> bool:
    return bool(
        sig.options.get("link")
        or sig.options.get("link_error")
        or options.get("link")
        or options.get("link_error")
    )


def node_record(
    workflow: dag.Workflow,
    node: dag.Node,
    feeds: Sequence[str] = (),
    n_inputs: int | None = None,
) -> NodeRecord:
    """A node as the store keeps it: its spec (with successors and links) and its join count.

    ``feeds`` names successors outside ``workflow`` (the join a chord member added later
    feeds); ``n_inputs`` overrides the count (a join left open while its header is read).
    """
    # Errbacks are successors in the store too: the one atomic ``complete`` that settles a
    # node also hands out its errbacks, so a redelivered failure fires them once.
    inside = workflow.successors(node.id)
    successors = (*inside, *feeds, *node.errbacks)
    edges = workflow.graph.adj[node.id]
    links = [s for s in inside if edges[s].get("kind") == dag.LINK]
    spec = protocol.internal.dumps(
        {**node.to_dict(), "successors": list(successors), "links": links}
    )
    count = len(node.inputs) if n_inputs is None else n_inputs
    return NodeRecord(node.id, spec, successors, count)


def _check_sizes(
    app: Canvas, records: Sequence[NodeRecord], node_of: Callable[[str], dag.Node]
) -> None:
    """Refuse a workflow with a node over ``task_max_payload_bytes`` before anything is sent."""
    limit = app.conf.task_max_payload_bytes
    for record in records if limit else ():
        if len(record.spec) > limit:  # a node's own arguments dominate its spec
            node = node_of(record.id)
            raise PayloadTooLarge(
                f"{node.task}[{node.id}]: arguments are about {len(record.spec)} bytes, over "
                f"task_max_payload_bytes={limit}; nothing was published. Pass ids or a storage "
                "key instead of the data."
            )


def start(
    app: Canvas,
    workflow: dag.Workflow,
    lineage: Lineage = Lineage(),  # noqa: B008 - a frozen dataclass: shared safely
    records: Sequence[NodeRecord] | None = None,
) -> None:
    """Store the workflow once, then publish its ready nodes (and resolve empty joins).

    ``records`` replaces the records made from the workflow (a join left open: see joins).
    """
    if records is None:
        records = [node_record(workflow, node) for node in workflow.nodes]
    _check_sizes(app, records, workflow.node)
    # Build the first messages before storing anything: a refusal leaves no trace.
    first = [
        messages.for_node(app, workflow.id, node, node.args, lineage)
        for node in workflow.roots()
        if node.kind == dag.TASK
    ]
    opened = {r.id for r in records if r.n_inputs != len(workflow.node(r.id).inputs)}
    empty_joins = [n for n in workflow.roots() if n.kind != dag.TASK and n.id not in opened]
    clusters = [[c.id, c.kind, list(c.members), c.join] for c in workflow.clusters]
    # The end nodes, so that a worker can tell when the whole workflow settled (events).
    sinks = [
        n.id
        for n in workflow.nodes
        if n.kind != dag.ERRBACK and not any(True for _ in workflow.successors(n.id))
    ]
    info = protocol.internal.dumps(
        {"id": workflow.id, "created": time.time(), "clusters": clusters, "sinks": sinks}
    )
    app.backend.save_workflow(workflow.id, records, info)
    if app.conf.task_send_sent_event:
        name = next((n.task for n in workflow.nodes if n.task), None)
        tasks = sum(1 for n in workflow.nodes if n.kind == dag.TASK)
        monitor.announce_workflow(app, workflow.id, tasks, name)
    messages.publish(app, first)
    for node in empty_joins:
        complete.settle_value(app, workflow.id, node, [], lineage)
