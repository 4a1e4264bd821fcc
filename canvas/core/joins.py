"""Chords that grow while they run: a header read from a generator, and ``add_to_chord``.

Both add members to a chord whose join is already stored, while earlier members may be
completing. The join's record is replaced through ``Backend.update_join``, atomically with the
stores' ``complete``, so it fires exactly once: at ``update_join`` when every input is done by
then, otherwise at the ``complete`` of its last input.

* ``stream``: a chord whose header is a generator nothing has read yet, sent as it is (Celery
  #3021). The join and the body are stored first, the join left open (``OPEN_JOIN`` inputs: it
  counts completed members but cannot fire); then each member is stored and published as the
  generator yields it, so the first members run before the generator is exhausted; then the
  join is closed with the real list of inputs. If the generator raises, the join fails with
  that error (the body fails in turn) and the error reaches the caller.
* ``add_member``: ``self.add_to_chord(sig)`` in a task that feeds a chord's join. The added
  canvas is stored and wired into the join as one more input, then published; the body gets its
  result too, after the caller's own. Its ids derive from the caller's id and the number of
  members it added before, so a redelivered caller adds the very same nodes again, which the
  store stores and wires once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from canvas import dag, states
from canvas.backends.base import OPEN_JOIN, NodeRecord
from canvas.core import complete, dispatch, messages, metas, protocol
from canvas.core.messages import Lineage
from canvas.primitives import chord
from canvas.request import Request, current_request
from canvas.signature import Signature

if TYPE_CHECKING:
    from canvas.app import Canvas

NOT_IN_A_CHORD = "Current task is not member of any chord"
#: a generator header's members are stored and published this many at a time at most...
STREAM_BATCH = 100
#: ... or sooner, once this many seconds passed since the last batch (a slow generator)
STREAM_WAIT = 0.05


def stream(
    app: Canvas,
    sig: chord,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> dag.ResultSpec:
    """Send a chord whose header is an unread generator, publishing members as they come."""
    dispatch.check_options(options)
    lineage = Lineage.of(current_request(), bool(app.conf.task_inherit_parent_priority))
    shell = chord([], sig.body, app=sig._app, **sig.options)
    workflow = dispatch.compile_for(app, shell, None, None, options)
    join = next(n for n in workflow.nodes if n.kind == dag.GATHER and not n.inputs)
    records = [
        dispatch.node_record(workflow, n, n_inputs=OPEN_JOIN if n.id == join.id else None)
        for n in workflow.nodes
    ]
    dispatch.start(app, workflow, lineage, records)
    info = app.backend.workflow_info(workflow.id) or b""
    # What the chord's options and the call's give each header member (as compile would).
    call = dag.flowing({**sig.options, **options})
    feeding: list[str] = []
    specs: list[dag.ResultSpec] = []
    batch: list[tuple[dag.Workflow, tuple[str, ...]]] = []
    flushed = time.monotonic()
    try:
        for index, member in enumerate(sig.header.iter_members()):
            if args or kwargs:
                member = member.clone(args, kwargs)
            sub, outputs, spec = dag.compile_addition(member, join, f"{join.id}/{index}", call)
            batch.append((sub, outputs))
            feeding.extend(outputs)
            specs.append(spec)
            # The first member goes at once, then batches: a slow generator's members go one
            # by one, a fast one's a hundred at a time (one store write, one publish each).
            if index == 0 or len(batch) >= STREAM_BATCH or time.monotonic() - flushed > STREAM_WAIT:
                _store_and_publish(app, workflow.id, batch, join, info, lineage)
                batch, flushed = [], time.monotonic()
        _store_and_publish(app, workflow.id, batch, join, info, lineage)
    except Exception as exc:
        # The generator failed: so does the chord, rather than waiting for ever.
        failed = metas.make_meta(join.id, states.FAILURE, exc=exc)
        complete.resolve_join(app, workflow.id, join, failed, lineage)
        raise
    closed = replace(join, inputs=tuple(feeding))
    record = dispatch.node_record(workflow, closed)
    complete.wire_fired(app, workflow.id, app.backend.update_join(workflow.id, record), lineage)
    header = workflow.result.parent
    assert header is not None
    return replace(workflow.result, parent=replace(header, members=tuple(specs)))


def add_member(app: Canvas, request: Request, sig: Signature) -> dag.ResultSpec:
    """``self.add_to_chord(sig)``: one more member for the chord the running task belongs to."""
    workflow_id, node_id = request.workflow, request.id
    if not workflow_id or not node_id:
        raise ValueError(NOT_IN_A_CHORD)
    own = app.backend.node_specs(workflow_id, [node_id])[0]
    successors = _successors(own) if own is not None else []
    found = [
        (complete.load_node(spec), spec)
        for spec in app.backend.node_specs(workflow_id, successors)
        if spec is not None
    ]
    joins = [(n, s) for n, s in found if n.kind == dag.GATHER and not n.immutable]
    if not joins:
        raise ValueError(NOT_IN_A_CHORD)
    join, join_spec = joins[0]
    index = int(request.options.get("added_to_chord", 0))
    request.options["added_to_chord"] = index + 1
    sub, outputs, result = dag.compile_addition(sig, join, f"{node_id}/added/{index}")
    lineage = Lineage(request.root_id or node_id, node_id, None)
    info = app.backend.workflow_info(workflow_id) or b""
    grown = replace(join, inputs=(*join.inputs, *(o for o in outputs if o not in join.inputs)))
    old = protocol.internal.loads(join_spec)
    spec = protocol.internal.dumps({**old, **grown.to_dict()})
    record = NodeRecord(join.id, spec, tuple(old.get("successors") or ()), len(grown.inputs))
    # Stored before the join counts them, published after: a fast member finds its join ready.
    first = _store(app, workflow_id, [(sub, outputs)], join, info, lineage)
    complete.wire_fired(app, workflow_id, app.backend.update_join(workflow_id, record), lineage)
    messages.publish(app, first)
    return result


def _successors(spec: bytes) -> list[str]:
    data = protocol.internal.loads(spec)
    return [s for s in data.get("successors") or () if isinstance(s, str)]


def _store(
    app: Canvas,
    workflow_id: str,
    added: Sequence[tuple[dag.Workflow, Sequence[str]]],
    join: dag.Node,
    info: bytes,
    lineage: Lineage,
) -> list[Any]:
    """Store added canvases (the nodes that end each feeding ``join``) in one write; their
    first messages."""
    records = [
        dispatch.node_record(sub, n, feeds=(join.id,) if n.id in outputs else ())
        for sub, outputs in added
        for n in sub.nodes
    ]
    if not records:
        return []
    app.backend.save_workflow(workflow_id, records, info)
    return [
        messages.for_node(app, workflow_id, n, n.args, lineage)
        for sub, _ in added
        for n in sub.roots()
        if n.kind == dag.TASK
    ]


def _store_and_publish(
    app: Canvas,
    workflow_id: str,
    added: Sequence[tuple[dag.Workflow, Sequence[str]]],
    join: dag.Node,
    info: bytes,
    lineage: Lineage,
) -> None:
    messages.publish(app, _store(app, workflow_id, added, join, info, lineage))
    for sub, _ in added:
        for node in sub.roots():
            if node.kind == dag.GATHER:
                complete.settle_value(app, workflow_id, node, [], lineage)


__all__ = ["NOT_IN_A_CHORD", "add_member", "stream"]
