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
from canvas.exceptions import Reject
from canvas.request import Request
from canvas.signature import Signature

if TYPE_CHECKING:
    from canvas.app import Canvas


@dataclass(frozen=True)
class Settled:
    """How one node of an eager run ended: its state, its value (or exception), its traceback."""

    state: str
    value: Any = None
    traceback: str | None = None


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
) -> EagerRun:
    """Run ``sig`` locally, every node in topological order."""
    import networkx as nx  # heavy (~20 MB): loaded only by processes that run canvases eagerly

    workflow = dag.compile(sig, args, kwargs, options)
    outcomes: dict[str, Settled] = {}
    for node_id in nx.topological_sort(workflow.graph):
        node = workflow.node(node_id)
        if node.kind == dag.ERRBACK:
            continue
        inputs = [outcomes[i] for i in node.inputs]
        failed = next((o for o in inputs if o.state != states.SUCCESS), None)
        if failed is not None:
            outcomes[node_id] = failed
        elif node.kind in (dag.GATHER, dag.FORWARD):
            outcomes[node_id] = Settled(states.SUCCESS, resolve(node, [o.value for o in inputs]))
        else:
            call_args = node.args
            if inputs and not node.immutable:
                call_args = (inputs[0].value, *node.args)
            outcomes[node_id] = run_node(app, node, list(call_args), dict(node.kwargs))
        if outcomes[node_id].state != states.SUCCESS:
            for errback_id in node.errbacks:
                run_errback(app, workflow.node(errback_id), node, outcomes[node_id])
    return EagerRun(workflow.result, outcomes)


def run_node(app: Canvas, node: dag.Node, args: list[Any], kwargs: dict[str, Any]) -> Settled:
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
            is_eager=True,
            called_directly=False,
            group=node.group,
            argsrepr=node.options.get("argsrepr"),
            kwargsrepr=node.options.get("kwargsrepr"),
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
            replacement = run(app, outcome.replace, None, None, {})
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


def run_errback(app: Canvas, errback: dag.Node, failed: dag.Node, outcome: Settled) -> None:
    assert errback.task is not None
    task = app.tasks[errback.task]
    if errback_takes_request(task):
        request = Request(id=failed.id, task=failed.task, called_directly=False, is_eager=True)
        args = [request, outcome.value, outcome.traceback, *errback.args]
    else:
        args = [failed.id, *errback.args]
    if errback.immutable:
        args = list(errback.args)
    run_node(app, errback, args, dict(errback.kwargs))
