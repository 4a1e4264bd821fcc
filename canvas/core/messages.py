"""Messages: which queue a call goes to, how a call becomes a message, and publishing.

``build`` turns one task call into an ``OutgoingMessage`` (headers as ``canvas.core.protocol``
lists them; a body over ``task_max_payload_bytes`` is refused before anything is sent);
``for_node`` does the same for a node of a stored workflow; ``route`` picks the queue; ``publish``
sends a batch through the app's transport between the ``before/after_task_publish`` signals.
"""

from __future__ import annotations

import fnmatch
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canvas import dag, signals, signing
from canvas.backends.rpc import is_rpc_url
from canvas.core import monitor, protocol
from canvas.exceptions import PayloadTooLarge
from canvas.request import Request
from canvas.stamping import STAMPED_HEADERS
from canvas.transports.base import OutgoingMessage

if TYPE_CHECKING:
    from canvas.app import Canvas

HOSTNAME = socket.gethostname()


@dataclass(frozen=True)
class Lineage:
    """Who sends a batch of calls, as Celery records it: the ``root_id`` they inherit (``None``:
    each is its own root), the ``parent_id`` of the first calls, and the ``priority`` that calls
    without one inherit (with ``task_inherit_parent_priority``)."""

    root_id: str | None = None
    parent_id: str | None = None
    priority: int | None = None

    @classmethod
    def of(cls, request: Request | None, inherit_priority: bool = False) -> Lineage:
        """The lineage of calls sent by the task running ``request`` (none outside a task)."""
        if request is None or request.called_directly or request.id is None:
            return cls()
        priority = request.delivery_info.get("priority") if inherit_priority else None
        return cls(request.root_id or request.id, request.id, priority)


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


def build(
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
    task = app.tasks.get(task_name)
    # A task's own ``expires`` and ``shadow_name`` apply however the call is sent (delay, a
    # signature, a workflow node), as Celery's task defaults do.
    expires = protocol.to_epoch(
        options.get("expires", task.expires if task is not None else None), now
    )
    serializer = options.get("serializer") or (task.serializer if task else None)
    name = signing.body_serializer(app.conf, serializer or app.conf.task_serializer)
    body, content_type = protocol.encode_body(args, kwargs, name)
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
    for key in ("time_limit", "soft_time_limit", "ignore_result", "group", "shadow"):
        if options.get(key) is not None:
            headers[key] = options[key]
    if "shadow" not in headers and task is not None:
        shadow = task.shadow_name(args, kwargs, options)
        if shadow:
            headers["shadow"] = shadow
    stamped = list(options.get(STAMPED_HEADERS) or ())
    if stamped:
        # Celery's two headers: the names, and each stamp's value by name.
        headers["stamped_headers"] = stamped
        headers["stamps"] = {name: options.get(name) for name in stamped}
    if workflow is not None:
        headers["workflow"] = workflow
    if is_rpc_url(app.conf.result_backend):
        reply_to = app.backend.reply_to()
        if reply_to:
            headers["reply_to"] = reply_to
    if extra:
        headers.update(extra)
    priority = options.get("priority")
    if priority is None and task is not None:
        priority = task.priority
    if priority is None:
        priority = app.conf.task_default_priority
    if priority is not None:
        # The broker orders by it; the header gives the worker self.request.delivery_info's.
        headers["priority"] = priority
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
    if app.conf.task_send_sent_event:
        monitor.announce_sent(app, messages)
    for message in messages:
        signals.after_task_publish.send(
            sender=message.headers["task"],
            body=message.body,
            headers=message.headers,
            routing_key=message.queue,
        )


def for_node(
    app: Canvas,
    workflow_id: str | None,
    node: dag.Node,
    args: Sequence[Any],
    lineage: Lineage = Lineage(),
    parent_id: str | None = None,
) -> OutgoingMessage:
    """The message of a node: its root is the lineage's (or itself), its parent ``parent_id``
    (or the lineage's: what sent it). Without ``workflow_id`` it is a plain call."""
    assert node.task is not None
    options = dict(node.options)
    if node.group:
        options["group"] = node.group
    if options.get("priority") is None and lineage.priority is not None:
        options["priority"] = lineage.priority
    return build(
        app,
        node.task,
        node.id,
        args,
        node.kwargs,
        options,
        workflow=workflow_id,
        root_id=lineage.root_id or node.id,
        parent_id=parent_id or lineage.parent_id,
    )
