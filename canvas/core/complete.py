"""The completion step: record a node's outcome and wire the successors it makes ready.

Run by the worker that finished a node, never by a poller. ``Backend.complete`` marks the node
done as an input of each successor in one atomic, idempotent operation and returns the successors
whose *last* input this was; only those are handled here, so a node that runs twice (redelivery)
wires its successors once and a chord body runs once.

A ready successor is handled by kind: a task is published with its inputs' values prepended to
its args; a gather or forward runs no code and is resolved here, which may make more successors
ready (a loop, not recursion: long chains of joins stay flat). A successor with a failed input
does not run: it takes the first failed input's outcome (input order) — a task fed by a failed
join (a chord's body) takes ``ChordError("Dependency <id> raised <exc>")`` naming the first
failed member instead — and runs no errbacks (it did not run).

Errbacks are successors in the store as well, handed out by the same atomic ``complete``: one
runs when its task failed after running (or, hung on a chord's join, when the header failed: it
reports the body's id), and is dropped otherwise, once either way. What a completion publishes
inherits the finished task's root and takes it as parent (Celery's ``root_id``/``parent_id``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canvas import dag, states
from canvas.backends.base import UNREADABLE_SPEC, Fired
from canvas.core import messages, metas, protocol
from canvas.core.messages import Lineage
from canvas.exceptions import ChordError, PayloadTooLarge, WorkflowError
from canvas.transports.base import OutgoingMessage

if TYPE_CHECKING:
    from canvas.app import Canvas


class UnreadableNode(WorkflowError):
    """A node record in the store that cannot be read (corrupted, or failed verification)."""


def load_node(spec: bytes) -> dag.Node:
    """The node a stored spec describes; ``UnreadableNode`` naming the fault otherwise."""
    if spec.startswith(UNREADABLE_SPEC):
        reason = spec[len(UNREADABLE_SPEC) :].decode(errors="replace")
        raise UnreadableNode(f"node record refused: {reason}")
    try:
        data = protocol.internal.loads(spec)
        node = dag.Node.from_dict(data)
        if not isinstance(node.id, str) or not isinstance(node.kind, str):
            raise TypeError("id and kind must be strings")
        return node
    except Exception as exc:
        raise UnreadableNode(f"node record is corrupted ({type(exc).__name__}: {exc})") from None


def unreadable_outcome(
    workflow_id: str, node_id: str, error: UnreadableNode, task: str | None = None
) -> dict[str, Any]:
    """The FAILURE a node takes when its own record cannot be read: it settles, and so does the
    workflow, instead of its message being redelivered for ever."""
    return metas.make_meta(
        node_id,
        states.FAILURE,
        exc=UnreadableNode(f"workflow {workflow_id} node {node_id}: {error}"),
        task=task,
        workflow=workflow_id,
    )


def settle(
    app: Canvas,
    workflow_id: str,
    node: dag.Node,
    meta: Mapping[str, Any],
    lineage: Lineage = Lineage(),  # noqa: B008 - a frozen dataclass: shared safely
) -> None:
    """Record ``meta`` as the outcome of ``node``, a task that ran (its errbacks run if it
    failed), then handle every successor it makes ready. ``lineage`` is the task's own (its
    root and priority): what it makes ready inherits them."""
    fired = app.backend.complete(workflow_id, node.id, meta["status"], metas.encode(meta))
    _wire(app, workflow_id, [_Done(node, meta, fired, node.id, ran=True)], lineage)


def rewire(
    app: Canvas,
    workflow_id: str,
    node_id: str,
    lineage: Lineage = Lineage(),  # noqa: B008 - a frozen dataclass: shared safely
) -> None:
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
        try:
            node = load_node(spec)
            data = protocol.internal.loads(spec)
        except UnreadableNode:
            continue  # its own outcome is stored already: nothing more can be wired from it
        successors = [s for s in data.get("successors") or () if isinstance(s, str)]
        ready = []
        for sid, succ_spec in zip(
            successors, app.backend.node_specs(workflow_id, successors), strict=True
        ):
            if succ_spec is None:
                continue
            try:
                successor = load_node(succ_spec)
            except UnreadableNode:
                ready.append(Fired(sid, succ_spec))  # _wire fails it, with the reason
                continue
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
        _wire(app, workflow_id, [_Done(node, meta, ready, node.id, ran=False)], lineage)


@dataclass(frozen=True)
class _Done:
    """A settled node and what it made ready. ``sender`` is the task to name as the parent of
    what it publishes (the node itself, the task that resolved a join, the replaced task);
    ``ran`` says it ran (its errbacks run when it failed) rather than being skipped."""

    node: dag.Node
    meta: Mapping[str, Any]
    ready: list[Fired]
    sender: str | None
    ran: bool


def _wire(app: Canvas, workflow_id: str, settled: list[_Done], lineage: Lineage) -> None:
    """Publish or resolve the successors made ready, following resolved nodes onwards."""
    queue: deque[_Done] = deque(settled)
    outgoing = []
    while queue:
        done = queue.popleft()
        sent = Lineage(lineage.root_id, done.sender, lineage.priority)
        for item in done.ready:
            try:
                successor = load_node(item.spec)
            except UnreadableNode as exc:
                # Fail it (and so the workflow) with the reason; what it feeds settles too.
                outcome = unreadable_outcome(workflow_id, item.id, exc)
                more = app.backend.complete(
                    workflow_id, item.id, outcome["status"], metas.encode(outcome)
                )
                queue.append(_Done(dag.Node(item.id, dag.TASK), outcome, more, done.sender, False))
                continue
            if successor.kind == dag.ERRBACK:
                # Handed out once, by the complete() that settled its trigger.
                if done.meta["status"] != states.SUCCESS and (done.ran or successor.reports):
                    outgoing.append(errback_message(app, workflow_id, successor, done, sent))
                continue
            own = False  # a failure of the node itself (not of an input) runs its errbacks
            inputs = _input_metas(app, successor, done.node, done.meta)
            failed = next(
                (i for i, m in enumerate(inputs) if m.get("status") != states.SUCCESS), None
            )
            if failed is not None:
                outcome = _skipped(
                    app, workflow_id, successor, successor.inputs[failed], inputs[failed]
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
                    outgoing.append(_task_message(app, workflow_id, successor, inputs, sent))
                    continue
                except (PayloadTooLarge, TypeError) as exc:
                    # Its input's value cannot travel (too big, or not serializable): the node
                    # fails visibly rather than waiting for ever.
                    own = True
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
            queue.append(_Done(successor, outcome, more, done.sender, ran=own))
            if successor.replaces is not None:
                # The end of a replacement: the replaced call takes its outcome, as its own.
                replaced = dag.Node(successor.replaces, dag.TASK, successor.task)
                meta = {**outcome, "task_id": replaced.id}
                more = app.backend.complete(
                    workflow_id, replaced.id, meta["status"], metas.encode(meta)
                )
                queue.append(_Done(replaced, meta, more, replaced.id, ran=True))
    messages.publish(app, outgoing)


def _skipped(
    app: Canvas, workflow_id: str, node: dag.Node, failed_id: str, failed: Mapping[str, Any]
) -> dict[str, Any]:
    """The outcome of a node that does not run because its input ``failed_id`` failed.

    A join passes the failure on, naming the member it came from (``culprit``); a task or
    forward fed by a failed join (a chord's body) fails with Celery's ``ChordError`` naming it.
    """
    culprit = failed.get("culprit")
    if node.kind != dag.GATHER and culprit is not None:
        return metas.make_meta(
            node.id,
            states.FAILURE,
            exc=chord_error(app, culprit, failed),
            task=node.task,
            workflow=workflow_id,
        )
    return metas.make_meta(
        node.id,
        failed.get("status", states.FAILURE),
        failed.get("result"),
        traceback=failed.get("traceback"),
        task=node.task,
        workflow=workflow_id,
        extra={"culprit": failed_id} if node.kind == dag.GATHER else None,
    )


def chord_error(app: Canvas, culprit: str, failed: Mapping[str, Any]) -> ChordError:
    """Celery's error for a chord body whose header failed, naming the first failed member."""
    result = failed.get("result")
    if isinstance(result, dict) and "exc_type" in result:
        cause: Any = metas.exception_from_dict(app, result)
    else:
        cause = result
    return ChordError(f"Dependency {culprit} raised {cause!r}")


def resolve(node: dag.Node, values: list[Any]) -> Any:
    """The value of a node that runs no code, from its inputs' values (in input order).

    A gather is the list of its inputs (an empty group's gather, marked immutable, only waits
    for its input and is ``[]``); a forward is its one input.
    """
    if node.kind == dag.FORWARD:
        return values[0]
    return [] if node.immutable else values


def settle_value(
    app: Canvas,
    workflow_id: str,
    node: dag.Node,
    value: Any,
    lineage: Lineage = Lineage(),  # noqa: B008 - a frozen dataclass: shared safely
) -> None:
    """Resolve a node that runs no code (an empty chord header) with ``value``; what it makes
    ready is sent by ``lineage``'s sender."""
    resolve_join(app, workflow_id, node, metas.make_meta(node.id, states.SUCCESS, value), lineage)


def resolve_join(
    app: Canvas,
    workflow_id: str,
    node: dag.Node,
    meta: Mapping[str, Any],
    lineage: Lineage,
) -> None:
    """Record the outcome of a node that runs no code, then wire what it makes ready."""
    meta = {**meta, "workflow": workflow_id}
    fired = app.backend.complete(workflow_id, node.id, meta["status"], metas.encode(meta))
    _wire(app, workflow_id, [_Done(node, meta, fired, lineage.parent_id, ran=False)], lineage)


def wire_fired(app: Canvas, workflow_id: str, fired: list[Fired], lineage: Lineage) -> None:
    """Resolve joins that a store handed out outside ``complete`` (``update_join``)."""
    for item in fired:
        join = load_node(item.spec)
        inputs = metas_of(app, join.inputs)
        failed = next((i for i, m in enumerate(inputs) if m.get("status") != states.SUCCESS), None)
        if failed is not None:
            meta = _skipped(app, workflow_id, join, join.inputs[failed], inputs[failed])
        else:
            meta = metas.make_meta(
                join.id, states.SUCCESS, resolve(join, [m.get("result") for m in inputs])
            )
        resolve_join(app, workflow_id, join, meta, lineage)


def metas_of(app: Canvas, ids: Sequence[str]) -> list[Mapping[str, Any]]:
    """The stored outcomes of ``ids``; a missing one reads as a failure naming it."""
    found: list[Mapping[str, Any]] = []
    for input_id, data in zip(ids, app.backend.get(ids), strict=True):
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


def _input_metas(
    app: Canvas, node: dag.Node, done: dag.Node, done_meta: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    if node.inputs == (done.id,):
        return [done_meta]
    others = [i for i in node.inputs if i != done.id]
    stored = dict(zip(others, metas_of(app, others), strict=True))
    return [done_meta if i == done.id else stored[i] for i in node.inputs]


def _task_message(
    app: Canvas,
    workflow_id: str,
    node: dag.Node,
    inputs: Sequence[Mapping[str, Any]],
    lineage: Lineage,
) -> OutgoingMessage:
    args: tuple[Any, ...] = node.args
    if inputs and not node.immutable:
        args = (inputs[0].get("result"), *node.args)
    return messages.for_node(app, workflow_id, node, args, lineage)


def errback_message(
    app: Canvas,
    workflow_id: str,
    errback: dag.Node,
    done: _Done,
    lineage: Lineage,
) -> OutgoingMessage:
    """The message of an errback: old style gets the failed task's id, new style
    ``(request, exc, traceback)`` (decided by the worker that runs it, from the task's arity).

    An errback hung on a chord's join reports the body's id and its ``ChordError``. An
    immutable errback gets its own arguments only, in either style.
    """
    assert errback.task is not None
    failed, meta = done.node, done.meta
    failed_id = errback.reports or failed.id
    exc: Any = meta.get("result")
    if errback.reports is not None and meta.get("culprit") is not None:
        exc = metas.exception_to_dict(chord_error(app, meta["culprit"], meta))
    extra = None
    args: tuple[Any, ...] = errback.args
    if not errback.immutable:
        # JSON in one header: every transport carries a string header unchanged.
        about = {
            "id": failed_id,
            "task": failed.task,
            "exc": exc,
            "traceback": meta.get("traceback") if errback.reports is None else None,
            "status": meta.get("status"),
        }
        extra = {"errback_for": json.dumps(about, default=repr)}
        args = (failed_id, *errback.args)
    return messages.build(
        app,
        errback.task,
        errback.id,
        args,
        errback.kwargs,
        errback.options,
        root_id=lineage.root_id or failed_id,
        parent_id=failed_id,
        extra=extra,
    )
