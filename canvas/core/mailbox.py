"""The remote-control wire: requests broadcast to workers, replies sent back to the asker.

A request is published to the topic ``<control_exchange>.control`` (``canvas.control`` by
default), which every worker's supervisor subscribes to; a msgpack dict::

    {"method": "ping", "arguments": {...}, "destination": ["w1@host"] | None,
     "pattern": "w*@host" | None, "reply_to": "canvas.reply.<client id>" | None,
     "ticket": "<uuid>", "sent_at": <epoch seconds>}

A worker whose name matches ``destination`` (or ``pattern``; all workers when both are empty)
runs the command and, when ``reply_to`` is set, publishes ``{"ticket", "hostname", "reply"}`` to
that topic. The asker subscribed to its reply topic *before* publishing, so no reply slips by, and
collects replies until ``timeout`` seconds pass, ``limit`` replies came, or every named
destination answered. Replies are returned as Celery returns them: ``[{hostname: reply}, ...]``.

Requests older than ``EXPIRES`` seconds when a worker reads them are dropped, so a worker that was
paused does not act on stale orders (a shutdown sent a minute ago).
"""

from __future__ import annotations

import fnmatch
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from canvas.bus.base import Bus
from canvas.events.event import short_repr

#: a request older than this many seconds is not acted on
EXPIRES = 30.0


def control_topic(exchange: str) -> str:
    return f"{exchange}.control"


def reply_topic(exchange: str, client_id: str) -> str:
    return f"{exchange}.reply.{client_id}"


@dataclass(frozen=True)
class Request:
    """One control request as it travels."""

    method: str
    arguments: dict[str, Any] = field(default_factory=dict)
    destination: tuple[str, ...] | None = None
    pattern: str | None = None
    matcher: str | None = None
    reply_to: str | None = None
    ticket: str = field(default_factory=lambda: uuid.uuid4().hex)
    sent_at: float = field(default_factory=time.time)

    def encode(self) -> bytes:
        return _pack(
            {
                "method": self.method,
                "arguments": self.arguments,
                "destination": list(self.destination) if self.destination is not None else None,
                "pattern": self.pattern,
                "matcher": self.matcher,
                "reply_to": self.reply_to,
                "ticket": self.ticket,
                "sent_at": self.sent_at,
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> Request:
        """The request in ``payload``; ``ValueError`` naming what is wrong with it."""
        try:
            data = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except Exception as exc:
            raise ValueError(f"control request is not msgpack: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            raise ValueError("control request has no method")
        arguments = data.get("arguments") or {}
        destination = data.get("destination")
        if not isinstance(arguments, dict):
            raise ValueError(f"control request {data['method']!r}: arguments is not a mapping")
        if destination is not None and not isinstance(destination, list | tuple):
            raise ValueError(f"control request {data['method']!r}: destination is not a list")
        return cls(
            method=data["method"],
            arguments=arguments,
            destination=tuple(str(d) for d in destination) if destination is not None else None,
            pattern=_opt_str(data.get("pattern")),
            matcher=_opt_str(data.get("matcher")),
            reply_to=_opt_str(data.get("reply_to")),
            ticket=str(data.get("ticket") or ""),
            sent_at=float(data.get("sent_at") or 0.0),
        )

    def is_for(self, hostname: str) -> bool:
        """Whether the worker named ``hostname`` should act on this request."""
        if self.destination:
            return hostname in self.destination
        if self.pattern:
            return matches(hostname, self.pattern, self.matcher)
        return True

    def expired(self, now: float | None = None) -> bool:
        return bool(self.sent_at) and (now or time.time()) - self.sent_at > EXPIRES


def matches(hostname: str, pattern: str, matcher: str | None = None) -> bool:
    """Celery's matchers: ``glob`` (the default) or ``pcre``."""
    if matcher in (None, "glob"):
        return fnmatch.fnmatchcase(hostname, pattern)
    if matcher == "pcre":
        return re.search(pattern, hostname) is not None
    raise ValueError(f"Unknown matcher {matcher!r}; use 'glob' or 'pcre'.")


def encode_reply(ticket: str, hostname: str, reply: Any) -> bytes:
    return _pack({"ticket": ticket, "hostname": hostname, "reply": reply})


def decode_reply(payload: bytes) -> tuple[str, str, Any] | None:
    """``(ticket, hostname, reply)``, or ``None`` for a payload that is not a reply."""
    try:
        data = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("hostname"), str):
        return None
    return str(data.get("ticket") or ""), data["hostname"], data.get("reply")


def broadcast(
    bus: Bus,
    exchange: str,
    request: Request,
    *,
    reply: bool = False,
    timeout: float = 1.0,
    limit: int | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> list[dict[str, Any]] | None:
    """Publish ``request``; with ``reply``, collect ``[{hostname: reply}]`` until the deadline."""
    if not reply:
        bus.publish(control_topic(exchange), request.encode())
        return None
    client_id = uuid.uuid4().hex
    topic = reply_topic(exchange, client_id)
    request = Request(
        request.method,
        request.arguments,
        request.destination,
        request.pattern,
        request.matcher,
        topic,
        request.ticket,
        request.sent_at,
    )
    if limit is None and request.destination:
        limit = len(request.destination)
    replies: list[dict[str, Any]] = []
    with bus.subscribe([topic]) as subscription:
        bus.publish(control_topic(exchange), request.encode())
        deadline = time.monotonic() + timeout
        while limit is None or len(replies) < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            message = subscription.get(timeout=left)
            decoded = decode_reply(message.payload) if message is not None else None
            if decoded is None or decoded[0] != request.ticket:
                continue
            item = {decoded[1]: decoded[2]}
            replies.append(item)
            if callback is not None:
                callback(item)
    return replies


def _pack(value: Mapping[str, Any]) -> bytes:
    data: bytes = msgpack.packb(dict(value), default=short_repr, use_bin_type=True)
    return data


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def as_destination(destination: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Celery takes a list of names; a single name is accepted too."""
    if destination is None:
        return None
    if isinstance(destination, str):
        return (destination,)
    return tuple(str(d) for d in destination)
