"""Eager mode: run a whole canvas here and now, in topological order, as a worker would.

Used by ``apply()`` and by ``task_always_eager`` (through ``Canvas.apply_canvas``). The canvas is
compiled by the same compiler as for the workers, so eager and distributed runs give the same
results (the property tests compare them). Retries run again at once, up to ``max_retries``;
nothing is sent or stored. The result is the outcome of every node; ``canvas.result.from_spec``
turns it into ``EagerResult`` handles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canvas import dag, states
from canvas.core.complete import resolve
from canvas.core.execute import REJECTED, REPLACED, RETRY, errback_takes_request, run_call
from canvas.core.messages import Lineage
from canvas.exceptions import ChordError, Reject
from canvas.request import Request, current_request
from canvas.signature import Signature
from canvas.stamping import STAMPED_HEADERS, stamps_of

if TYPE_CHECKING:
    from canvas.app import Canvas


@dataclass(frozen=True)
class Settled:
    """How one node of an eager run ended: its state, its value (or exception), its traceback,
    and for a failed join the member whose failure it passes on (``culprit``)."""

    state: str
    value: Any = None
    traceback: str | None = None
    culprit: str | None = None


@dataclass(frozen=True)
class EagerRun:
    """A finished eager run: the spec of the caller's handle and every node's outcome."""

    result: dag.ResultSpec
    outcomes: Mapping[str, Settled]


def run(
    app: Canvas,
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    lineage: Lineage | None = None,
) -> EagerRun:
    """Run ``sig`` locally, every node in topological order, with the rules of the completion
    step (``canvas.core.complete``): the same ids in ``self.request``, the same errbacks."""
    import networkx as nx  # heavy (~20 MB): loaded only by processes that run canvases eagerly

    header_errbacks = bool(app.conf.task_allow_error_cb_on_chord_header)
    workflow = dag.compile(sig, args, kwargs, options, header_errbacks=header_errbacks)
    caller = lineage if lineage is not None else Lineage.of(current_request())
    outcomes: dict[str, Settled] = {}
    #: node id -> the lineage what it makes ready is sent with (its root, it as the parent)
    passes: dict[str, Lineage] = {}
    for node_id in nx.topological_sort(workflow.graph):
        node = workflow.node(node_id)
        if node.kind == dag.ERRBACK:
            continue
        sent = passes[node.inputs[-1]] if node.inputs else caller
        inputs = [outcomes[i] for i in node.inputs]
        failed = next((k for k, o in enumerate(inputs) if o.state != states.SUCCESS), None)
        ran = False
        if failed is not None:
            outcomes[node_id] = _skipped(node, node.inputs[failed], inputs[failed])
        elif node.kind in (dag.GATHER, dag.FORWARD):
            outcomes[node_id] = Settled(states.SUCCESS, resolve(node, [o.value for o in inputs]))
        else:
            call_args = node.args
            if inputs and not node.immutable:
                call_args = (inputs[0].value, *node.args)
            outcomes[node_id] = run_node(app, node, list(call_args), dict(node.kwargs), sent)
            ran = True
        root = sent.root_id or node_id
        passes[node_id] = Lineage(root, node_id, sent.priority) if ran else sent
        if outcomes[node_id].state != states.SUCCESS:
            for errback_id in node.errbacks:
                errback = workflow.node(errback_id)
                if ran or errback.reports:
                    run_errback(app, errback, node, outcomes[node_id], Lineage(root))
    return EagerRun(workflow.result, outcomes)


def _skipped(node: dag.Node, failed_id: str, failed: Settled) -> Settled:
    """A node whose input failed (see ``canvas.core.complete._skipped``)."""
    if node.kind != dag.GATHER and failed.culprit is not None:
        return Settled(states.FAILURE, chord_error(failed))
    culprit = failed_id if node.kind == dag.GATHER else None
    return Settled(failed.state, failed.value, failed.traceback, culprit)


def chord_error(failed: Settled) -> ChordError:
    return ChordError(f"Dependency {failed.culprit} raised {failed.value!r}")


def run_node(
    app: Canvas,
    node: dag.Node,
    args: list[Any],
    kwargs: dict[str, Any],
    sent: Lineage = Lineage(),  # noqa: B008 - a frozen dataclass: shared safely
) -> Settled:
    """One call, retried in place while it asks to be."""
    assert node.task is not None
    task = app.tasks[node.task]
    retries = 0
    while True:
        request = Request(
            id=node.id,
            task=node.task,
            args=args,
            kwargs=kwargs,
            retries=retries,
            root_id=sent.root_id or node.id,
            parent_id=sent.parent_id,
            is_eager=True,
            called_directly=False,
            group=node.group,
            delivery_info={"redelivered": False, "priority": node.options.get("priority")},
            argsrepr=node.options.get("argsrepr"),
            kwargsrepr=node.options.get("kwargsrepr"),
            stamps=stamps_of(node.options),
            stamped_headers=list(node.options.get(STAMPED_HEADERS) or ()),
        )
        outcome = run_call(task, request, args, kwargs)
        if outcome.state == RETRY:
            assert outcome.retry is not None
            retries += 1
            new_args = outcome.retry.call_args
            new_kwargs = outcome.retry.call_kwargs
            if isinstance(new_args, list):
                args = new_args
            if isinstance(new_kwargs, dict):
                kwargs = new_kwargs
            continue
        if outcome.state == REPLACED:
            assert outcome.replace is not None
            within = Lineage(request.root_id, node.id, sent.priority)
            replacement = run(app, outcome.replace, None, None, {}, within)
            return _forwarded(replacement.result, replacement.outcomes)
        if outcome.state == REJECTED:
            assert isinstance(outcome.exc, Reject)
            return Settled(states.REJECTED, outcome.exc)
        if outcome.state == states.SUCCESS or outcome.state == "IGNORED":
            return Settled(states.SUCCESS, outcome.value)
        return Settled(outcome.state, outcome.exc, outcome.traceback)


def _forwarded(spec: dag.ResultSpec, outcomes: Mapping[str, Settled]) -> Settled:
    """The outcome a replaced call forwards: the replacement's last result, a group's list."""
    if spec.kind == "task":
        return outcomes.get(spec.id, Settled(states.PENDING))
    values = []
    for member in spec.members:
        done = _forwarded(member, outcomes)
        if done.state != states.SUCCESS:
            return done
        values.append(done.value)
    return Settled(states.SUCCESS, values)


def run_errback(
    app: Canvas, errback: dag.Node, failed: dag.Node, outcome: Settled, sent: Lineage
) -> None:
    """Run an errback of ``failed`` (or, hung on a chord's join, of the body it reports)."""
    assert errback.task is not None
    task = app.tasks[errback.task]
    failed_id = errback.reports or failed.id
    exc = chord_error(outcome) if errback.reports and outcome.culprit else outcome.value
    if errback.immutable:
        args = list(errback.args)
    elif errback_takes_request(task):
        request = Request(id=failed_id, task=failed.task, called_directly=False, is_eager=True)
        traceback = None if errback.reports else outcome.traceback
        args = [request, exc, traceback, *errback.args]
    else:
        args = [failed_id, *errback.args]
    run_node(app, errback, args, dict(errback.kwargs), Lineage(sent.root_id, failed_id))
