"""``self.replace(sig)``: swap a running call for another canvas, keeping its id and place.

The replacement is compiled and added to the call's workflow (a plain call gets a workflow named
after its own id). It ends in a *forward* node whose one input is the replacement's result (a
gather when the replacement ends in a group) and which, when it resolves, completes the replaced
node with that outcome. The replaced node keeps its id, its successors and its errbacks, so
whoever waits on the original id, and whatever came next in the workflow, gets the
replacement's value, and the original's ``link_error`` fires if the replacement fails.

The replacement's ids derive from the replaced node's id: a redelivered task that replaces
itself again stores the same nodes and publishes the same messages, and the store's idempotent
``complete`` wires them once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from canvas import dag
from canvas.core import complete, dispatch, messages, protocol
from canvas.core.messages import Lineage
from canvas.request import Request
from canvas.signature import Signature

if TYPE_CHECKING:
    from canvas.app import Canvas


def replace_node(app: Canvas, request: Request, sig: Signature) -> None:
    """Store and start ``sig`` in place of the running call: its first tasks have the replaced
    call as parent and its root (as Celery sends a replacement from inside the task)."""
    assert request.id is not None
    workflow_id = request.workflow or request.id
    replaced = dag.Node(request.id, dag.TASK, request.task, group=request.group)
    sub = dag.compile_replacement(sig, replaced)
    records = [dispatch.node_record(sub, node) for node in sub.nodes]
    # A workflow keeps its info (clusters); a plain call replaced starts one.
    info = app.backend.workflow_info(workflow_id) or protocol.internal.dumps(
        {"id": workflow_id, "replaced": request.id}
    )
    app.backend.save_workflow(workflow_id, records, info)
    inherit = app.conf.task_inherit_parent_priority
    priority = request.delivery_info.get("priority") if inherit else None
    lineage = Lineage(request.root_id or request.id, request.id, priority)
    roots = sub.roots()
    first = [
        messages.for_node(app, workflow_id, node, node.args, lineage)
        for node in roots
        if node.kind == dag.TASK
    ]
    messages.publish(app, first)
    for node in roots:
        if node.kind == dag.GATHER:
            complete.settle_value(app, workflow_id, node, [], lineage)
