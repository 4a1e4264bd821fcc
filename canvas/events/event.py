"""What an event is: a flat dict with a ``type``, and how a batch of them travels on the bus.

Types and fields follow Celery's (``task-sent``, ``task-received``, ``task-started``,
``task-succeeded`` ... ``worker-heartbeat``) so that monitors written for Celery read them; canvas
adds ``workflow-started`` and ``workflow-finished``, and a ``workflow`` field on the task events
of workflow nodes. Every event sent by a dispatcher carries ``hostname``, ``pid``, ``clock``,
``utcoffset`` and ``timestamp``; a receiver adds ``local_received``.

Arguments appear only as ``argsrepr``/``kwargsrepr`` strings (the ``args``/``kwargs`` fields hold
those strings, as Celery's do): the real arguments never travel in an event.

On the bus, one message holds a batch: a msgpack list of event dicts, published to the topic
``event_exchange`` (setting, default ``canvasev``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

#: the task events, in the order a task's life passes through them
TASK_EVENTS = (
    "task-sent",
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
    "task-revoked",
    "task-rejected",
)
WORKER_EVENTS = ("worker-online", "worker-heartbeat", "worker-offline")
WORKFLOW_EVENTS = ("workflow-started", "workflow-finished")
#: seconds between two heartbeats of a worker (Celery's default)
HEARTBEAT_INTERVAL = 2.0
#: longest repr of a value (args, result, exception) put in an event
REPR_MAX = 1024


def Event(type: str, _fields: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An event dict of ``type``; ``timestamp`` is now unless given."""
    event = dict(_fields or {}, **fields)
    event["type"] = type
    event.setdefault("timestamp", time.time())
    return event


def group_from(type: str) -> str:
    """The group of an event type: ``task`` for ``task-sent``, ``worker`` for ``worker-online``."""
    return type.split("-", 1)[0]


def short_repr(value: Any, limit: int = REPR_MAX) -> str:
    """A bounded ``repr``, as monitors show values (never the value itself)."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the event
        text = f"<unrepresentable {type(value).__name__}: {exc}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pack(events: Sequence[Mapping[str, Any]]) -> bytes:
    """A batch of events as one bus payload; a value msgpack cannot hold travels as its repr."""
    data: bytes = msgpack.packb([dict(e) for e in events], default=short_repr, use_bin_type=True)
    return data


def unpack(payload: bytes) -> list[dict[str, Any]]:
    """The events of one bus payload; anything that is not a list of dicts is dropped."""
    try:
        batch = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:
        return []
    if isinstance(batch, dict):
        batch = [batch]
    if not isinstance(batch, list):
        return []
    return [e for e in batch if isinstance(e, dict) and isinstance(e.get("type"), str)]
