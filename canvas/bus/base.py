"""The bus contract: broadcast messages between the processes of one deployment.

Remote control (``app.control``), its replies and events travel on the bus, beside the task
queues on the broker already configured; no other server is needed. A message is opaque bytes
published to a *topic*; every subscription to that topic gets its own copy. Every implementation
gives the same guarantees:

* A subscription receives each message published to its topics after ``subscribe()`` returned,
  in the order one publisher sent them, for as long as its connection holds.
* Nothing is kept for later subscribers, nor for a subscriber that reconnects: the bus is for
  live traffic (a request with a deadline, a monitor's stream). What must survive a restart,
  such as a revoke, is written to the result store as well.
* ``publish`` returns once the broker has the message; it may be called from any thread.
  A subscription is used by one thread at a time (it may be made in another).

Topics are short dotted names (``canvas.control``, ``canvas.reply.<id>``, ``canvasev``); the
characters ``*`` and ``#`` are refused, because RabbitMQ would read them as wildcards.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_TOPIC = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")


@dataclass(frozen=True)
class BusMessage:
    """One message as a subscription received it."""

    topic: str
    payload: bytes


def check_topic(topic: str) -> str:
    """The topic itself, or a ``ValueError`` naming what is wrong with it."""
    if not isinstance(topic, str) or not _TOPIC.match(topic):
        raise ValueError(
            f"Bad bus topic {topic!r}: use 1 to 200 letters, digits and '_.:@-' "
            "(no spaces or wildcards)."
        )
    return topic


class Subscription(ABC):
    """Messages of some topics, for one thread at a time; ``close()`` ends it."""

    def __init__(self, topics: Sequence[str]) -> None:
        if not topics:
            raise ValueError("A bus subscription needs at least one topic.")
        self.topics = tuple(check_topic(t) for t in topics)

    @abstractmethod
    def get(self, timeout: float) -> BusMessage | None:
        """Wait up to ``timeout`` seconds for the next message; ``None`` when none came."""

    @abstractmethod
    def close(self) -> None:
        """Stop receiving and release the connection."""

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus(ABC):
    """Publish to topics and subscribe to them, on the broker the app already uses."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})

    @classmethod
    def for_transport(cls, transport: Any) -> Bus:
        """The bus on the same broker as ``transport`` (its URL and options)."""
        return cls(str(transport.url), dict(getattr(transport, "options", None) or {}))

    @abstractmethod
    def publish(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` to every current subscriber of ``topic`` (none is fine)."""

    @abstractmethod
    def subscribe(self, topics: Sequence[str]) -> Subscription:
        """A subscription that already receives: nothing published after this returns is
        missed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release this process's publishing connection."""
