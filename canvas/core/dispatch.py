"""Dispatch: turn calls into messages, and start workflows (store once, publish ready nodes).

A plain call with no callbacks is one message and nothing else. Any other canvas is compiled,
saved once in the result store (one record per node), and only its ready nodes are published.
Successors are published later by the worker that completes their last input
(``canvas.core.complete``), so a message never carries the rest of its workflow.
"""

from __future__ import annotations

import fnmatch
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from canvas import dag, signals
from canvas.backends.base import NodeRecord
from canvas.core import protocol
from canvas.exceptions import ImproperlyConfigured, PayloadTooLarge
from canvas.signature import Signature
from canvas.transports.base import OutgoingMessage

if TYPE_CHECKING:
    from canvas.app import Canvas

HOSTNAME = socket.gethostname()

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
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise TypeError(
            f"apply_async() got unknown option(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(sorted(_KNOWN_OPTIONS))}."
        )


def route(app: Canvas, task_name: str, options: Mapping[str, Any]) -> str:
    """The queue for a call: explicit option, then ``task_routes``, task default, app default."""
    queue = options.get("queue")
    if queue:
        return str(queue)
    routes = app.conf.task_routes
    for table in routes if isinstance(routes, list | tuple) else [routes]:
        if not table:
            continue
        if callable(table):
            found = table(task_name, (), {}, dict(options))
            if found and found.get("queue"):
                return str(found["queue"])
            continue
        for pattern, target in table.items():
            if pattern == task_name or fnmatch.fnmatchcase(task_name, pattern):
                queue = target.get("queue") if isinstance(target, Mapping) else target
                if queue:
                    return str(queue)
    task = app.tasks.get(task_name)
    if task is not None and task.queue:
        return task.queue
    return str(app.conf.task_default_queue)


def build_message(
    app: Canvas,
    task_name: str,
    task_id: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    workflow: str | None = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> OutgoingMessage:
    """One task call as a message; refuses bodies over ``task_max_payload_bytes``."""
    now = time.time() if now is None else now
    eta = protocol.to_epoch(options.get("eta"), now)
    if eta is None and options.get("countdown") is not None:
        eta = now + float(options["countdown"])
    expires = protocol.to_epoch(options.get("expires"), now)
    task = app.tasks.get(task_name)
    serializer = options.get("serializer") or (task.serializer if task else None)
    body, content_type = protocol.encode_body(args, kwargs, serializer or app.conf.task_serializer)
    limit = app.conf.task_max_payload_bytes
    if limit and len(body) > limit:
        raise PayloadTooLarge(
            f"{task_name}[{task_id}]: arguments are {len(body)} bytes, over "
            f"task_max_payload_bytes={limit}. Pass ids or a storage key instead of the data."
        )
    headers: dict[str, Any] = dict(options.get("headers") or {})
    headers.update(
        {
            "task": task_name,
            "id": task_id,
            "root_id": root_id or task_id,
            "parent_id": parent_id,
            "retries": int(options.get("retries") or 0),
            "eta": eta,
            "expires": expires,
            "argsrepr": options.get("argsrepr"),
            "kwargsrepr": options.get("kwargsrepr"),
            "origin": HOSTNAME,
        }
    )
    for key in ("time_limit", "soft_time_limit", "ignore_result", "group"):
        if options.get(key) is not None:
            headers[key] = options[key]
    if workflow is not None:
        headers["workflow"] = workflow
    if extra:
        headers.update(extra)
    priority = options.get("priority")
    if priority is None and task is not None:
        priority = task.priority
    return OutgoingMessage(
        queue=route(app, task_name, options),
        body=body,
        headers=headers,
        content_type=content_type,
        priority=priority,
    )


def publish(app: Canvas, messages: Sequence[OutgoingMessage]) -> None:
    if not messages:
        return
    for message in messages:
        signals.before_task_publish.send(
            sender=message.headers["task"],
            body=message.body,
            headers=message.headers,
            routing_key=message.queue,
        )
    app.transport.publish(messages)
    for message in messages:
        signals.after_task_publish.send(
            sender=message.headers["task"],
            body=message.body,
            headers=message.headers,
            routing_key=message.queue,
        )


def send(
    app: Canvas,
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> Any:
    """Send any canvas; returns the handle of its last result (see ``canvas.result``)."""
    from canvas.result import AsyncResult, from_spec

    check_options(options)
    if type(sig) is Signature and not _has_callbacks(sig, options):
        merged = {**sig.options, **options}
        call_args, call_kwargs = sig._partial(args, kwargs)
        task_id = merged.pop("task_id", None) or str(uuid.uuid4())
        if not sig.task:
            raise ImproperlyConfigured(f"Signature {sig!r} names no task.")
        message = build_message(app, sig.task, task_id, call_args, call_kwargs, merged)
        publish(app, [message])
        return AsyncResult(task_id, app=app, task_name=sig.task)
    workflow = dag.compile(
        sig,
        args,
        kwargs,
        options,
        max_nodes=app.conf.canvas_max_nodes,
        max_depth=app.conf.canvas_max_depth,
    )
    start(app, workflow)
    return from_spec(workflow.result, app)


def _has_callbacks(sig: Signature, options: Mapping[str, Any]) -> bool:
    return bool(
        sig.options.get("link")
        or sig.options.get("link_error")
        or options.get("link")
        or options.get("link_error")
    )


def node_record(workflow: dag.Workflow, node: dag.Node) -> NodeRecord:
    # Errbacks are successors in the store too: the one atomic ``complete`` that settles a
    # node also hands out its errbacks, so a redelivered failure fires them once.
    successors = (*workflow.successors(node.id), *node.errbacks)
    edges = workflow.graph.adj[node.id]
    links = [s for s in successors if edges[s].get("kind") == dag.LINK]
    spec = protocol.internal.dumps(
        {**node.to_dict(), "successors": list(successors), "links": links}
    )
    return NodeRecord(node.id, spec, successors, len(node.inputs))


def start(app: Canvas, workflow: dag.Workflow) -> None:
    """Store the workflow once, then publish its ready nodes (and resolve empty joins)."""
    from canvas.core import complete

    records = [node_record(workflow, node) for node in workflow.nodes]
    limit = app.conf.task_max_payload_bytes
    for record in records if limit else ():
        if len(record.spec) > limit:  # a node's own arguments dominate its spec
            node = workflow.node(record.id)
            raise PayloadTooLarge(
                f"{node.task}[{node.id}]: arguments are about {len(record.spec)} bytes, over "
                f"task_max_payload_bytes={limit}; nothing was published. Pass ids or a storage "
                "key instead of the data."
            )
    # Build the first messages before storing anything: a refusal leaves no trace.
    messages = [
        node_message(app, workflow.id, node, node.args)
        for node in workflow.roots()
        if node.kind == dag.TASK
    ]
    empty_joins = [node for node in workflow.roots() if node.kind != dag.TASK]
    clusters = [[c.id, c.kind, list(c.members), c.join] for c in workflow.clusters]
    info = protocol.internal.dumps(
        {"id": workflow.id, "created": time.time(), "clusters": clusters}
    )
    app.backend.save_workflow(workflow.id, records, info)
    publish(app, messages)
    for node in empty_joins:
        complete.settle_value(app, workflow.id, node, [])


def node_message(
    app: Canvas,
    workflow_id: str,
    node: dag.Node,
    args: Sequence[Any],
    parent_id: str | None = None,
) -> OutgoingMessage:
    assert node.task is not None
    options = dict(node.options)
    if node.group:
        options["group"] = node.group
    return build_message(
        app,
        node.task,
        node.id,
        args,
        node.kwargs,
        options,
        workflow=workflow_id,
        root_id=workflow_id,
        parent_id=parent_id,
    )
