"""A running workflow for render: found by its id or a task's, read as snapshots until it ends.

A snapshot is ``WorkflowView.graph()``: the stored workflow as a ``dag.Workflow`` whose vertices
also carry ``state`` and ``meta``; the writers colour nodes from those. Reading takes two queries
of the result store (the node records, then every node's meta), whatever the workflow's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from canvas import dag, states
from canvas.core import metas
from canvas.core.workflow_view import WorkflowView

if TYPE_CHECKING:
    from canvas.app import Canvas


def find(app: Canvas, an_id: str) -> WorkflowView:
    """The workflow with this id, or the one the task with this id belongs to.

    A ``LookupError`` says which it was not, and where we looked.
    """
    view = WorkflowView(app, an_id)
    if view.exists():
        return view
    meta = metas.decode(app.backend.get([an_id])[0])
    where = _store_name(app)
    if meta is None:
        raise LookupError(
            f"No workflow or task with id {an_id!r} in the result store {where}; check the id and "
            "--app (results expire after result_expires)."
        )
    workflow_id = meta.get("workflow")
    if not workflow_id:
        raise LookupError(
            f"Task {an_id!r} ({meta.get('status')}) was sent on its own, not as part of a "
            "workflow: there is no graph to draw."
        )
    view = WorkflowView(app, str(workflow_id))
    if not view.exists():
        raise LookupError(
            f"Task {an_id!r} belongs to workflow {workflow_id!r}, which is no longer in the "
            f"result store {where} (expired?)."
        )
    return view


def snapshot(view: WorkflowView) -> dag.Workflow:
    """The workflow as stored now, each vertex with its ``state`` and ``meta``."""
    return view.graph()


def finished(workflow: dag.Workflow) -> bool:
    """True when every node that can run has reached a ready state (errbacks aside)."""
    graph = workflow.graph
    return all(
        graph.nodes[node.id].get("state", states.PENDING) in states.READY_STATES
        for node in workflow.nodes
        if node.kind != dag.ERRBACK
    )


def follow(
    view: WorkflowView,
    interval: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dag.Workflow]:
    """Snapshots every ``interval`` seconds until the workflow finishes (the last one is done)."""
    if interval <= 0:
        raise ValueError(f"the watch interval must be positive seconds, got {interval!r}")
    while True:
        workflow = snapshot(view)
        yield workflow
        if finished(workflow):
            return
        sleep(interval)


def _store_name(app: Canvas) -> str:
    """The store's URL without credentials, for error messages."""
    url = urlsplit(app.backend_url)
    if url.password is None and url.username is None:
        return app.backend_url
    host = url.hostname or ""
    netloc = f"{host}:{url.port}" if url.port else host
    return url._replace(netloc=netloc).geturl()


__all__ = ["find", "finished", "follow", "snapshot"]
