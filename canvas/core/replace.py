"""``self.replace(sig)``: swap a running call for another canvas, keeping its id and place.

The replacement is compiled with fresh ids and added to the call's workflow (a plain call gets a
workflow named after its own id). The replaced node becomes a *forward* node whose one input is
the replacement's result (a gather when the replacement ends in a group); it keeps its id and its
successors, so whoever waits on the original id, and whatever came next in the workflow, gets the
replacement's value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from canvas import dag
from canvas.backends.base import NodeRecord
from canvas.core import dispatch, protocol
from canvas.signature import Signature
from canvas.task import Request

if TYPE_CHECKING:
    from canvas.app import Canvas


def replace_node(app: Canvas, request: Request, sig: Signature) -> None:
    assert request.id is not None
    workflow_id = request.workflow or request.id
    sub = dag.compile_replacement(sig, request.id)
    successors: tuple[str, ...] = ()
    if request.workflow:
        old = app.backend.node_specs(workflow_id, [request.id])[0]
        if old is not None:
            successors = tuple(protocol.internal.loads(old).get("successors") or ())
    records = []
    for node in sub.nodes:
        if node.id == request.id:
            spec = protocol.internal.dumps(
                {**node.to_dict(), "successors": list(successors), "links": []}
            )
            records.append(NodeRecord(node.id, spec, successors, len(node.inputs)))
        else:
            records.append(dispatch.node_record(sub, node))
    info = protocol.internal.dumps({"id": workflow_id, "replaced": request.id})
    app.backend.save_workflow(workflow_id, records, info)
    messages = [
        dispatch.node_message(app, workflow_id, node, node.args, parent_id=request.id)
        for node in sub.roots()
        if node.kind == dag.TASK
    ]
    dispatch.publish(app, messages)
    from canvas.core import complete

    for node in sub.roots():
        if node.kind == dag.GATHER:
            complete.settle_value(app, workflow_id, node, [])
