"""Eager mode: run a whole canvas here and now, in topological order, as a worker would.

Used by ``apply()`` and by ``task_always_eager``. The canvas is compiled by the same compiler as
for the workers, so eager and distributed runs give the same results (the property tests compare
them). Retries run again at once, up to ``max_retries``; nothing is sent or stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from canvas import dag, states
from canvas.core.complete import resolve
from canvas.core.execute import REJECTED, REPLACED, RETRY, run_call
from canvas.exceptions import Reject
from canvas.result import EagerResult, GroupResult
from canvas.signature import Signature
from canvas.task import Request, arity_greater_than_one

if TYPE_CHECKING:
    from canvas.app import Canvas


def run_eagerly(
    app: Canvas,
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> Any:
    """Run ``sig`` locally; returns an ``EagerResult`` (a ``GroupResult`` for a group)."""
    import networkx as nx

    workflow = dag.compile(sig, args, kwargs, options)
    outcomes: dict[str, tuple[str, Any, str | None]] = {}
    for node_id in nx.topological_sort(workflow.graph):
        node = workflow.node(node_id)
        if node.kind == dag.ERRBACK:
            continue
        inputs = [outcomes[i] for i in node.inputs]
        failed = next((o for o in inputs if o[0] != states.SUCCESS), None)
        if failed is not None:
            outcomes[node_id] = failed
        elif node.kind in (dag.GATHER, dag.FORWARD):
            outcomes[node_id] = (states.SUCCESS, resolve(node, [o[1] for o in inputs]), None)
        else:
            call_args = node.args
            if inputs and not node.immutable:
                call_args = (inputs[0][1], *node.args)
            outcomes[node_id] = run_node(app, node, list(call_args), dict(node.kwargs))
        if outcomes[node_id][0] != states.SUCCESS:
            for errback_id in node.errbacks:
                run_errback(app, workflow.node(errback_id), node, outcomes[node_id])
    return _result(app, workflow.result, outcomes, {})


def run_node(
    app: Canvas, node: dag.Node, args: list[Any], kwargs: dict[str, Any]
) -> tuple[str, Any, str | None]:
    """One call, retried in place while it asks to be; returns (state, value or exc, tb)."""
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
            return _replaced(run_eagerly(app, outcome.replace, None, None, {}))
        if outcome.state == REJECTED:
            assert isinstance(outcome.exc, Reject)
            return states.REJECTED, outcome.exc, None
        if outcome.state == states.SUCCESS or outcome.state == "IGNORED":
            return states.SUCCESS, outcome.value, None
        return outcome.state, outcome.exc, outcome.traceback


def _replaced(result: Any) -> tuple[str, Any, str | None]:
    """The outcome a replaced call forwards: the replacement's last result, a group's list."""
    if not isinstance(result, GroupResult):
        return result.state, result.result, result.traceback
    values = []
    for member in result.results:
        state, value, tb = _replaced(member)
        if state != states.SUCCESS:
            return state, value, tb
        values.append(value)
    return states.SUCCESS, values, None


def run_errback(
    app: Canvas, errback: dag.Node, failed: dag.Node, outcome: tuple[str, Any, str | None]
) -> None:
    assert errback.task is not None
    task = app.tasks[errback.task]
    if arity_greater_than_one(task.run, task.bind):
        request = Request(id=failed.id, task=failed.task, called_directly=False, is_eager=True)
        args = [request, outcome[1], outcome[2], *errback.args]
    else:
        args = [failed.id, *errback.args]
    if errback.immutable:
        args = list(errback.args)
    run_node(app, errback, args, dict(errback.kwargs))


def _result(
    app: Canvas,
    spec: Any,
    outcomes: Mapping[str, tuple[str, Any, str | None]],
    seen: dict[int, Any],
) -> Any:
    lineage = []
    while spec is not None and id(spec) not in seen:
        lineage.append(spec)
        spec = spec[-1]
    handle = seen.get(id(spec)) if spec is not None else None
    for item in reversed(lineage):
        if item[0] == "task":
            state, value, tb = outcomes.get(item[1], (states.PENDING, None, None))
            handle = EagerResult(item[1], value, state, tb, app=app, parent=handle)
        else:
            members = [_result(app, m, outcomes, seen) for m in item[2]]
            handle = GroupResult(item[1] or str(uuid.uuid4()), members, app=app, parent=handle)
        seen[id(item)] = handle
    return handle
