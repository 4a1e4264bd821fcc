"""The completion step: record a node's outcome and wire the successors it makes ready.

Run by the worker that finished a node, never by a poller. ``Backend.complete`` marks the node
done as an input of each successor in one atomic, idempotent operation and returns the successors
whose *last* input this was; only those are handled here, so a node that runs twice (redelivery)
wires its successors once and a chord body runs once.

A ready successor is handled by kind: a task is published with its inputs' values prepended to
its args; a gather or forward runs no code and is resolved here, which may make more successors
ready (a loop, not recursion: long chains of joins stay flat). A successor with a failed input
does not run: it takes the first failed input's outcome (input order), and its errbacks fire.
Errbacks are successors in the store as well, handed out by the same atomic ``complete``: they
are published when their node failed and dropped when it succeeded, once either way.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from canvas import dag, states
from canvas.backends.base import Fired
from canvas.core import messages, metas, protocol
from canvas.exceptions import PayloadTooLarge
from canvas.transports.base import OutgoingMessage

if TYPE_CHECKING:
    from canvas.app import Canvas


def load_node(spec: bytes) -> dag.Node:
    data = protocol.internal.loads(spec)
    return dag.Node.from_dict(data)


def settle(
    app: Canvas,
    workflow_id: str,
    node: dag.Node,
    meta: Mapping[str, Any],
) -> None:
    """Record ``meta`` as the node's outcome, then handle every successor it makes ready."""
    fired = app.backend.complete(workflow_id, node.id, meta["status"], metas.encode(meta))
    _wire(app, workflow_id, node, meta, fired)


def rewire(app: Canvas, workflow_id: str, node_id: str) -> None:
    """Hand out again what a completed node made ready, when its message comes back.

    The worker that completed the node may have died after ``complete`` and before publishing:
    a successor whose inputs are all settled but which has no outcome (and no run) yet is
    published again. At worst a successor runs twice; its own completion stays exactly once.
    Resolved gathers and forwards are followed, since their successors may be lost the same way.
    """
    pending = [node_id]
    while pending:
        current = pending.pop()
        spec = app.backend.node_specs(workflow_id, [current])[0]
        meta = metas.decode(app.backend.get([current])[0])
        if spec is None or meta is None:
            continue
        data = protocol.internal.loads(spec)
        successors = [s for s in data.get("successors") or () if isinstance(s, str)]
        ready = []
        for sid, succ_spec in zip(
            successors, app.backend.node_specs(workflow_id, successors), strict=True
        ):
            if succ_spec is None:
                continue
            successor = load_node(succ_spec)
            if successor.kind == dag.ERRBACK:
                continue
            own, *inputs = app.backend.get([sid, *successor.inputs])
            if own is not None:
                if successor.kind in (dag.GATHER, dag.FORWARD):
                    pending.append(sid)
                continue
            settled = [metas.decode(m) for m in inputs]
            if all(m is not None and m.get("status") in states.READY_STATES for m in settled):
                ready.append(Fired(sid, succ_spec))
        _wire(app, workflow_id, dag.Node.from_dict(data), meta, ready)


def _wire(
    app: Canvas,
    workflow_id: str,
    node: dag.Node,
    meta: Mapping[str, Any],
    fired: list[Fired],
) -> None:
    """Publish or resolve the successors in ``fired``, following resolved nodes onwards."""
    queue: deque[tuple[dag.Node, Mapping[str, Any], list[Fired]]] = deque()
    queue.append((node, meta, fired))
    outgoing = []
    while queue:
        done, done_meta, ready = queue.popleft()
        for item in ready:
            successor = load_node(item.spec)
            if successor.kind == dag.ERRBACK:
                # Handed out once, by the complete() that settled its trigger.
                if done_meta["status"] != states.SUCCESS:
                    outgoing.append(errback_message(app, workflow_id, successor, done, done_meta))
                continue
            inputs = _input_metas(app, successor, done, done_meta)
            failed = next((m for m in inputs if m.get("status") != states.SUCCESS), None)
            if failed is not None:
                outcome = metas.make_meta(
                    successor.id,
                    failed.get("status", states.FAILURE),
                    failed.get("result"),
                    traceback=failed.get("traceback"),
                    task=successor.task,
                    workflow=workflow_id,
                )
            elif successor.kind in (dag.GATHER, dag.FORWARD):
                outcome = metas.make_meta(
                    successor.id,
                    states.SUCCESS,
                    resolve(successor, [m.get("result") for m in inputs]),
                    task=successor.task,
                    workflow=workflow_id,
                )
            else:
                try:
                    outgoing.append(_task_message(app, workflow_id, successor, inputs, done.id))
                    continue
                except (PayloadTooLarge, TypeError) as exc:
                    # Its input's value cannot travel (too big, or not serializable): the node
                    # fails visibly rather than waiting for ever.
                    outcome = metas.make_meta(
                        successor.id,
                        states.FAILURE,
                        exc=exc,
                        task=successor.task,
                        workflow=workflow_id,
                    )
            more = app.backend.complete(
                workflow_id, successor.id, outcome["status"], metas.encode(outcome)
            )
            queue.append((successor, outcome, more))
            if successor.replaces is not None:
                # The end of a replacement: the replaced call takes its outcome.
                replaced = dag.Node(successor.replaces, dag.TASK, successor.task)
                meta = {**outcome, "task_id": replaced.id}
                more = app.backend.complete(
                    workflow_id, replaced.id, meta["status"], metas.encode(meta)
                )
                queue.append((replaced, meta, more))
    messages.publish(app, outgoing)


def resolve(node: dag.Node, values: list[Any]) -> Any:
    """The value of a node that runs no code, from its inputs' values (in input order).

    A gather is the list of its inputs (an empty group's gather, marked immutable, only waits
    for its input and is ``[]``); a forward is its one input.
    """
    if node.kind == dag.FORWARD:
        return values[0]
    return [] if node.immutable else values


def settle_value(app: Canvas, workflow_id: str, node: dag.Node, value: Any) -> None:
    """Resolve a node that runs no code (an empty chord header) with ``value``."""
    meta = metas.make_meta(node.id, states.SUCCESS, value, workflow=workflow_id)
    settle(app, workflow_id, node, meta)


def _input_metas(
    app: Canvas, node: dag.Node, done: dag.Node, done_meta: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    if node.inputs == (done.id,):
        return [done_meta]
    stored = app.backend.get(node.inputs)
    found: list[Mapping[str, Any]] = []
    for input_id, data in zip(node.inputs, stored, strict=True):
        if input_id == done.id:
            found.append(done_meta)
            continue
        meta = metas.decode(data)
        if meta is None:
            # Completed inputs are stored before they are marked done; an absent meta means the
            # store lost it (expired or evicted). Fail loudly rather than run with a hole.
            meta = metas.make_meta(
                input_id,
                states.FAILURE,
                exc=LookupError(f"result of input {input_id} is missing from the result store"),
            )
        found.append(meta)
    return found


def _task_message(
    app: Canvas,
    workflow_id: str,
    node: dag.Node,
    inputs: Sequence[Mapping[str, Any]],
    parent_id: str,
) -> OutgoingMessage:
    args: tuple[Any, ...] = node.args
    if inputs and not node.immutable:
        args = (inputs[0].get("result"), *node.args)
    return messages.for_node(app, workflow_id, node, args, parent_id=parent_id)


def errback_message(
    app: Canvas,
    workflow_id: str,
    errback: dag.Node,
    failed: dag.Node,
    meta: Mapping[str, Any],
) -> OutgoingMessage:
    """The message of an errback of a failed node: old style gets the failed task's id, new style
    ``(request, exc, traceback)`` (decided by the worker that runs it, from the task's arity).

    An immutable errback gets its own arguments only, in either style.
    """
    assert errback.task is not None
    extra = None
    args: tuple[Any, ...] = errback.args
    if not errback.immutable:
        # JSON in one header: every transport carries a string header unchanged.
        about = {
            "id": failed.id,
            "task": failed.task,
            "exc": meta.get("result"),
            "traceback": meta.get("traceback"),
            "status": meta.get("status"),
        }
        extra = {"errback_for": json.dumps(about, default=repr)}
        args = (failed.id, *errback.args)
    return messages.build(
        app,
        errback.task,
        errback.id,
        args,
        errback.kwargs,
        errback.options,
        root_id=workflow_id,
        parent_id=failed.id,
        extra=extra,
    )
