"""Checking a message's headers once, before anything acts on them.

Headers come from the wire: a buggy producer or anyone with write access to the broker decides
what they hold. ``check`` looks at every field the worker reads (the table in
``canvas.core.protocol``) and raises ``BadMessage`` naming the first field that is wrong, so the
message is dead-lettered at once with that reason instead of failing later, somewhere that looks
like an outage (and is retried with backoff, or kills a helper thread).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from canvas.exceptions import CanvasError
from canvas.transports.base import is_reply_queue

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")


class BadMessage(CanvasError, ValueError):
    """A message that can never run as sent: dead-letter it, with this as the reason."""


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _name(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value >= 0


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _priority(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def _flag(value: Any) -> bool:
    return isinstance(value, bool | int)


def _names(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _reply_queue(value: Any) -> bool:
    # Only a reply queue: a forged reply_to must not aim results at a task queue.
    return isinstance(value, str) and is_reply_queue(value) and bool(_QUEUE_NAME.match(value))


def _errback_for(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False


#: field -> (test, what it must be); ``None`` is allowed for every field but ``task`` and ``id``
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "task": (_name, "a task name"),
    "id": (_name, "a task id"),
    "root_id": (_text, "a task id"),
    "parent_id": (_text, "a task id"),
    "workflow": (_name, "a workflow id"),
    "group": (_text, "a group id"),
    "eta": (_number, "finite epoch seconds"),
    "expires": (_number, "finite epoch seconds"),
    "retries": (_count, "a count (int >= 0)"),
    "time_limit": (_positive, "seconds (a finite number >= 0)"),
    "soft_time_limit": (_positive, "seconds (a finite number >= 0)"),
    "priority": (_priority, "an int from 0 to 255"),
    "argsrepr": (_text, "a string"),
    "kwargsrepr": (_text, "a string"),
    "origin": (_text, "a string"),
    "ignore_result": (_flag, "a boolean"),
    "errback_for": (_errback_for, "a JSON object"),
    "reply_to": (_reply_queue, "a reply queue name (canvas.rpc.<client id>)"),
    "stamped_headers": (_names, "a list of names"),
    "stamps": (_mapping, "a mapping of names"),
}
REQUIRED = ("task", "id")


def check(headers: Any) -> Mapping[str, Any]:
    """``headers`` if every field the worker reads is well formed; else ``BadMessage``."""
    if not isinstance(headers, dict):
        raise BadMessage(f"headers are a {type(headers).__name__}, not a mapping")
    for field in REQUIRED:
        if headers.get(field) is None:
            raise BadMessage(f"header {field!r} is missing")
    for field, (test, what) in FIELDS.items():
        value = headers.get(field)
        if value is not None and not test(value):
            raise BadMessage(f"header {field!r} must be {what}, not {_shown(value)}")
    return headers


def check_size(body: bytes, limit: int | None) -> None:
    """Refuse a body over ``task_max_payload_bytes`` on receipt, as producers do on sending."""
    if limit and len(body) > limit:
        raise BadMessage(f"body is {len(body)} bytes, over task_max_payload_bytes={limit}")


def _shown(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with control characters (newlines, terminal escape codes) shown escaped, so
    what came from a message can neither forge a log line nor drive a terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def printable(value: Any, limit: int = 200) -> str:
    """``value`` as text safe for a log line or a terminal, at most ``limit`` characters."""
    text = escape_controls(value if isinstance(value, str) else repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
