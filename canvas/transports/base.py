"""The transport contract: how messages reach a queue and come back out.

A transport moves opaque message bodies with a small dict of headers between a producer and the
consumers of named queues. Every implementation gives the same guarantees:

* ``publish`` returns only once the broker has the message (publisher confirms on AMQP, a reply
  on Redis, a committed transaction for the embedded store).
* A delivery stays owned by its consumer until ``ack`` or ``reject``; if the consumer dies first
  the message comes back (at once on AMQP, after ``visibility_timeout`` seconds elsewhere; a
  consumer that is alive keeps its deliveries by calling ``extend``).
* ``reject(requeue=False)`` moves the message to the queue's dead-letter queue
  (``<queue>.dlq``) with the reason in its headers; it never vanishes.
* A frame that cannot be decoded is still handed out, with ``error`` saying why: it is a bad
  message (the worker dead-letters it), never raised as if the connection had failed.
* A *reply queue* (named ``canvas.rpc.<client>``, see ``reply_queue``) carries results back to
  the one client that reads it (``result_backend='rpc://'``): it has no dead-letter queue, and
  it is dropped ``reply_expires`` seconds (the app's ``result_expires``) after its client
  stopped using it, so a client gone for good leaves nothing behind.

A consumer object belongs to one thread. Producers may be shared by threads.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

DLQ_SUFFIX = ".dlq"
#: the names of reply queues begin with this; no task queue may
REPLY_PREFIX = "canvas.rpc."
#: header that ``reject(requeue=False, reason=...)`` sets on the dead-lettered copy
REASON_HEADER = "x-canvas-reason"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to publish: ``body`` is already serialized; ``headers`` is a flat dict."""

    queue: str
    body: bytes
    headers: dict[str, Any]
    content_type: str = "application/x-msgpack"
    priority: int | None = None


@dataclass
class Delivery:
    """A message received by a consumer; settle it once with ``ack`` or ``reject``."""

    queue: str
    body: bytes
    headers: dict[str, Any]
    content_type: str
    redelivered: bool
    tag: Any = field(repr=False)
    consumer: Consumer = field(repr=False)
    #: why the frame could not be decoded (``headers``/``body`` then hold what could be read):
    #: a bad message, to dead-letter, never a sign of a broken connection
    error: str | None = None
    #: acked or rejected already: an error after that must not requeue it (it would run again)
    settled: bool = field(default=False, repr=False)

    def ack(self) -> None:
        self.consumer.ack(self)
        self.settled = True

    def reject(self, requeue: bool = False, reason: str = "") -> None:
        self.consumer.reject(self, requeue=requeue, reason=reason)
        self.settled = True

    def release(self) -> None:
        self.consumer.release(self)
        self.settled = True


class Consumer(ABC):
    """Receives deliveries from a set of queues; belongs to one thread."""

    @abstractmethod
    def get(self, timeout: float) -> Delivery | None:
        """Wait up to ``timeout`` seconds for one delivery; ``None`` when none came."""

    @abstractmethod
    def ack(self, delivery: Delivery) -> None:
        """The message is done with; remove it for good."""

    @abstractmethod
    def reject(self, delivery: Delivery, requeue: bool, reason: str = "") -> None:
        """Put the message back (``requeue``) with redelivered set, or dead-letter it."""

    def release(self, delivery: Delivery) -> None:
        """Put the message back after an outage stopped its handling (``canvas.transports.outage``):
        redelivered, as ``reject(requeue=True)``, but where the broker itself counts requeues
        towards a limit (RabbitMQ quorum queues), in a way it does not count."""
        self.reject(delivery, requeue=True, reason="handed back after an outage")

    def extend(self, deliveries: Sequence[Delivery]) -> None:  # noqa: B027 - optional hook
        """Keep holding these unsettled deliveries (renews their lease where there is one)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; unsettled deliveries come back to their queues."""


class Transport(ABC):
    """A broker connection factory chosen by URL scheme (see ``canvas.transports``)."""

    #: seconds after which an unsettled delivery of a dead consumer comes back
    visibility_timeout: float = 60.0

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})

    @abstractmethod
    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish a batch, confirmed by the broker before returning; queues are declared."""

    @abstractmethod
    def consumer(self, queues: Iterable[str], prefetch: int = 1) -> Consumer:
        """A consumer of ``queues`` holding at most ``prefetch`` unsettled deliveries."""

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Drop every ready message of ``queue``; returns how many."""

    @abstractmethod
    def size(self, queue: str) -> int:
        """How many messages wait in ``queue`` (ready, not counting unsettled ones)."""

    def defer_confirms(self) -> AbstractContextManager[None]:
        """Inside: ``publish`` may return once the batch is written, its confirms read later.

        For a worker wiring what an acked task made ready: a crash could lose that work whether
        or not it waited, so only the wait goes. A broker that has no confirms to wait for (or
        confirms nothing: ``confirm`` off) publishes as outside."""
        return nullcontext()

    def settle_confirms(self) -> None:  # noqa: B027 - optional hook
        """Wait for the confirms ``defer_confirms`` left to read; publish again what a broken
        connection left unconfirmed. A worker calls it when idle and before it stops."""

    def dead_letters(self, queue: str) -> str:
        """Name of the dead-letter queue that holds what ``queue`` rejected."""
        return queue + DLQ_SUFFIX

    @cached_property
    def space(self) -> str:
        """A short name of the broker this transport reaches, the same for every process.

        Countdown/ETA messages parked in a result store are released only by workers of the
        same ``space``: apps on different brokers may share one store.
        """
        return _digest(self.where())

    def where(self) -> str:
        """The broker's address without credentials (``space`` is its digest)."""
        parts = urlsplit(self.url)
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release producer connections."""


def reply_queue(client_id: str) -> str:
    """The name of the reply queue of the client ``client_id``."""
    return REPLY_PREFIX + client_id


def is_reply_queue(queue: str) -> bool:
    return queue.startswith(REPLY_PREFIX)


def reply_expires(options: dict[str, Any]) -> float:
    """Seconds a reply queue lives unused: the transport option ``reply_expires`` (one day)."""
    return float(options.get("reply_expires") or 86400.0)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
