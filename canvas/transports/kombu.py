"""RabbitMQ and Redis transports, on kombu.

URL format (kombu's): ``amqp://user:password@host[:port][/vhost]`` (also ``amqps://`` and
``pyamqp://``), ``redis://[:password@]host[:port][/db]`` (``rediss://`` for TLS).

Guarantees, as ``canvas.transports.base`` promises them:

* ``publish`` sends the batch on one pooled connection (opened lazily, per process) and returns
  when the broker has all of it: on RabbitMQ it waits for all the batch's confirms at once, not
  one round trip per message as kombu's ``confirm_publish`` does (with ``confirm`` off it returns
  once the batch is written, as Celery's default does); on Redis it is one pipeline. A
  batch that fails on a broken connection is sent once more on a new one: at least once.
  Inside ``defer_confirms`` (a worker wiring what an acked task made ready) a RabbitMQ publish
  returns once written: its messages are held until their confirms are read (by the next publish
  on that connection, or ``settle_confirms``); a broken connection's held messages are published
  again with the next batch, and those RabbitMQ refused are logged by id.
* ``reject(requeue=True)`` is the broker's own requeue; both mark the redelivery (RabbitMQ's
  ``redelivered`` flag; kombu's Redis restore marks the stored message). ``release`` on a
  quorum queue, whose broker counts requeues towards ``x-delivery-limit``, publishes a confirmed
  copy marked ``x-canvas-released`` (read as redelivered) and acks the original.
* ``reject(requeue=False, reason=...)`` publishes a confirmed copy with ``x-canvas-reason`` to
  ``<queue>.dlq``, then acks: one way for both brokers, and the reason survives (RabbitMQ's own
  dead-lettering would only say "rejected").

RabbitMQ: durable queues, persistent messages. Each queue is declared, on publish and on consume,
with ``x-dead-letter-exchange: ""`` and ``x-dead-letter-routing-key: <queue>.dlq`` (so dead letters
made by the broker itself land there too) and ``x-max-priority``; classic queues, ``<queue>.dlq``
too, with ``x-queue-version: 2`` (RabbitMQ 3.10's second storage, which confirms a persistent
message once it is written to the broker's files; version 1 calls fsync for each message first,
and a confirmed single publish then takes about twice as long). A queue that exists without a
version (an earlier canvas declared it) is used as it is, quietly. A queue that already exists
with other arguments (Celery declared it) is used as it is, with one warning: the worker's own
dead letters still go to ``<queue>.dlq``. A dead consumer's deliveries come back at once.
``prefetch`` is ``basic.qos``.

Redis: kombu's lists with ack emulation. A delivery waits in kombu's ``unacked`` hash, scored by
time in ``unacked_index``; one older than ``visibility_timeout`` goes back to its queue. Kombu
does that only on idle polls, so each consumer also runs the sweep from ``get`` every
``visibility_timeout / 4`` seconds (at most 5); ``extend`` re-scores held deliveries. The index is
shared by all queues of a database: every consumer of one database needs the same
``visibility_timeout``. Restored messages are marked ``redelivered``; that header is taken out
again, so it is reserved on Redis. Priorities are ten lists per queue, the higher served first
(kombu's own numbers run the other way).

RabbitMQ publishing writes a whole batch in a few socket writes and then reads the confirms
(at most ``_CONFIRM_WINDOW`` unconfirmed at a time); consumers read the socket 4 KB at a time.

Options: ``visibility_timeout`` (Redis, seconds, default 60), ``max_priority`` (RabbitMQ, default 9;
0 declares queues without it; it must match queues that already exist), ``confirm`` (RabbitMQ:
the app's ``broker_confirm``, default on; ``"off"`` publishes without waiting for the broker, as
Celery does by default, and so does kombu's ``confirm_publish: False``), ``confirm_timeout``
(seconds, default 30), ``connect_timeout`` (seconds, default 5), ``queue_type`` (RabbitMQ,
``classic`` or ``quorum``: Celery's ``task_default_queue_type``), ``queue_arguments`` (RabbitMQ,
per queue name: Celery's ``task_queues`` arguments, ``x-queue-type`` among them),
``delivery_limit`` (quorum queues' ``x-delivery-limit``; the app gives
``worker_max_deliveries``), ``queue_version`` (RabbitMQ classic queues' ``x-queue-version``:
2, the default; 1 for an fsync before each confirm; 0 declares none: the broker's default).
Any other option goes to kombu's transport as it is (Celery's ``broker_transport_options``), and
so does the dict ``transport_options``.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import amqp
import amqp.exceptions
import amqp.serialization
import amqp.spec
import amqp.transport as _amqp_transport
from kombu import connection as _connection
from kombu import entity as _entity
from kombu import messaging as _messaging
from kombu.transport import redis as _kombu_redis

from canvas.exceptions import ImproperlyConfigured
from canvas.transports.base import (
    DLQ_SUFFIX,
    REASON_HEADER,
    Consumer,
    Delivery,
    OutgoingMessage,
    Transport,
    is_reply_queue,
    reply_expires,
)

logger = logging.getLogger(__name__)

#: set on the copy that ``AMQPConsumer.release`` puts back; read (and removed) as "redelivered"
RELEASED_HEADER = "x-canvas-released"

# kombu has no annotations: its classes are used through Any.
_KombuConnection: Any = _connection.Connection
_KombuMessageConsumer: Any = _messaging.Consumer
_KombuQueue: Any = _entity.Queue
_KombuRedisChannel: Any = _kombu_redis.Channel

# Options this module reads; kombu gets all others.
_OWN_OPTIONS = frozenset(
    [
        "visibility_timeout",
        "max_priority",
        "confirm",
        "confirm_timeout",
        "connect_timeout",
        "transport_options",
        "queue_type",
        "queue_arguments",
        "delivery_limit",
        "queue_version",
        "reply_expires",
    ]
)
PERSISTENT = {"delivery_mode": 2}
# AMQP frames (0-9-1, section 4.2.3): type, channel, size, payload, end octet.
_FRAME_HEAD = struct.Struct(">BHI")
_FRAME_END = b"\xce"
_CONTENT_HEAD = struct.Struct(">HHQ")  # class id, weight, body size
_PUBLISH_METHOD = struct.pack(">HH", *amqp.spec.Basic.Publish)
#: unconfirmed messages a batch may have in flight before it waits for confirms
_CONFIRM_WINDOW = 1000
#: bytes gathered before one socket write
_WRITE_BYTES = 256 * 1024
#: bytes asked of one socket read (a few small messages: slicing the rest off stays cheap)
_READ_BYTES = 4096


@dataclass(eq=False)
class _Link:
    """A connection and its channel, used by one thread at a time (publish, size, purge)."""

    connection: Any
    channel: Any
    broken: bool = False
    # RabbitMQ publisher confirms: the channel's next sequence number, the unconfirmed ones
    # (ascending: the broker's ``multiple`` confirms settle a prefix, in O(settled)).
    confirming: bool = False
    next_seq: int = 1
    unconfirmed: deque[int] = field(default_factory=deque)
    nacked: int = 0
    # Messages published under ``defer_confirms`` by sequence number, until confirmed; those
    # the broker refused, for the next reader of confirms to report.
    held: dict[int, OutgoingMessage] = field(default_factory=dict)
    refused: list[OutgoingMessage] = field(default_factory=list)

    def on_confirm(self, nack: bool, seq: int, multiple: bool) -> None:
        pending, settled = self.unconfirmed, []
        if multiple:
            while pending and pending[0] <= seq:
                settled.append(pending.popleft())
        elif pending and pending[0] == seq:
            settled.append(pending.popleft())
        elif seq in pending:  # out of order: rare, and the deque stays short then
            pending.remove(seq)
            settled.append(seq)
        held = self.held
        if not held:  # nothing deferred on this link: the common case
            if nack:
                self.nacked += len(settled)
            return
        for number in settled:
            message = held.pop(number, None)
            if not nack:
                continue
            if message is None:
                self.nacked += 1
            else:
                self.refused.append(message)

    def close(self) -> None:
        try:
            self.connection.release()
        except Exception:  # a dead connection has nothing left to close
            logger.debug("closing a broker connection failed", exc_info=True)


def _read_in_bulk(conn: Any) -> None:
    """Let py-amqp's plain TCP transport read up to 4 KB per ``recv``.

    It asks the socket for exactly the bytes it needs next (a frame's header, its payload, its
    end octet: nine ``recv`` calls per message); what one larger ``recv`` brings beyond that
    stays in its own read buffer, which its reads already serve first.
    """
    transport: Any = getattr(getattr(conn, "connection", None), "transport", None)
    if type(transport) is not _amqp_transport.TCPTransport or transport.sock is None:
        return  # TLS or another transport: left as it is
    recv = transport.sock.recv
    transport._quick_recv = lambda n: recv(max(n, _READ_BYTES))


def confirm_setting(value: Any) -> bool:
    """``broker_confirm``: on (True, the default) or off (False, Celery's default)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise ImproperlyConfigured(f"broker_confirm must be 'on' or 'off' (or a bool), not {value!r}.")


def queue_version_setting(value: Any) -> int:
    """``queue_version``: RabbitMQ's classic queue storage version (2, 1, or 0 for the broker's
    own default: no ``x-queue-version`` argument)."""
    try:
        version = int(value if value is not None else 0)
    except (TypeError, ValueError):
        version = -1
    if version not in (0, 1, 2) or isinstance(value, bool):
        raise ImproperlyConfigured(
            f"queue_version must be 2, 1, or 0 for the broker's default, not {value!r}."
        )
    return version


class _LinkPool:
    """Idle links for any thread to borrow; opened on demand, dropped after a fork or an error.
    ``dropped`` hears of each link dropped after an error (its held messages are unconfirmed)."""

    def __init__(
        self, open_link: Callable[[], _Link], dropped: Callable[[_Link], None] | None = None
    ) -> None:
        self._open = open_link
        self._dropped = dropped
        self._thread_lock = threading.Lock()
        self._idle: list[_Link] = []
        self._all: list[_Link] = []
        self._pid = os.getpid()
        # A forked child must not talk on its parent's sockets, nor close them (closing an AMQP
        # connection sends a frame): it keeps them referenced and never touches them.
        self._inherited: list[_Link] = []

    def _lock(self) -> threading.Lock:
        if self._pid != os.getpid():  # forked: a copied lock may be held by a lost thread
            self._thread_lock = threading.Lock()
            self._inherited += self._all
            self._idle, self._all, self._pid = [], [], os.getpid()
        return self._thread_lock

    @contextmanager
    def acquire(self) -> Iterator[_Link]:
        with self._lock():
            link = self._idle.pop() if self._idle else None
        if link is None:
            link = self._open()
            with self._lock():
                self._all.append(link)
        with self.lend(link):
            yield link

    def take_idle(self, wanted: Callable[[_Link], bool]) -> _Link | None:
        """An idle link that is ``wanted``, out of the pool until ``lend`` gives it back."""
        with self._lock():
            for i, link in enumerate(self._idle):
                if wanted(link):
                    return self._idle.pop(i)
        return None

    @contextmanager
    def lend(self, link: _Link) -> Iterator[_Link]:
        """Use ``link``, then put it back among the idle ones, or drop it after an error."""
        try:
            yield link
        except BaseException:
            link.broken = True
            raise
        finally:
            with self._lock():
                keep = not link.broken and link in self._all  # not if the pool closed meanwhile
                if keep:
                    self._idle.append(link)
                elif link in self._all:
                    self._all.remove(link)
            if not keep:
                if link.broken and self._dropped is not None:
                    self._dropped(link)
                link.close()

    def held(self) -> list[_Link]:
        """Every link of this process that holds unconfirmed messages."""
        with self._lock():
            return [link for link in self._all if link.held]

    def close(self) -> None:
        with self._lock():
            links, self._idle, self._all = self._all, [], []
        for link in links:
            link.close()


class KombuTransport(Transport):
    """What both brokers share: kombu connections, the producer pool, publish with one retry."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.confirm_timeout = float(self.options.get("confirm_timeout") or 30.0)
        self.connect_timeout = float(self.options.get("connect_timeout") or 5.0)
        self._links = _LinkPool(self._open_link, dropped=self._orphan)
        self._declared: set[str] = set()
        # Messages published under defer_confirms whose connection broke before they were
        # confirmed: published again with the next batch (or by settle_confirms).
        self._orphans: list[OutgoingMessage] = []
        self._orphans_lock = threading.Lock()
        unconnected = _KombuConnection(url)
        # Kombu counts KeyError as a Redis connection error; a retry is for a broken connection.
        self._retry_errors: tuple[type[BaseException], ...] = tuple(
            e for e in unconnected.connection_errors if not issubclass(e, LookupError)
        )
        self._safe_url = unconnected.as_uri()  # password masked

    def transport_options(self) -> dict[str, Any]:
        """Options for kombu's transport: the options canvas does not use itself (as in Celery's
        ``broker_transport_options``), then ``options["transport_options"]``, over ours."""
        passed = {k: v for k, v in self.options.items() if k not in _OWN_OPTIONS}
        return {**passed, **dict(self.options.get("transport_options") or {})}

    def connect(self) -> Any:
        """A new connected ``kombu.Connection``; raises at once if the broker does not answer."""
        conn = _KombuConnection(
            self.url,
            transport_options=self.transport_options(),
            connect_timeout=self.connect_timeout,
        )
        try:
            self._configure(conn)
            conn.connect()
            conn.default_channel  # noqa: B018 - opens the channel now, not on first use
            _read_in_bulk(conn)
        except BaseException:
            conn.release()
            raise
        return conn

    def _configure(self, connection: Any) -> None:
        """Adjust a kombu connection before it connects."""

    def _open_link(self) -> _Link:
        conn = self.connect()
        return _Link(conn, conn.default_channel)

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        batch = self._with_orphans(messages)
        if not batch:
            return
        try:
            try:
                self._publish_once(batch)
            except self._retry_errors as exc:
                logger.warning("publish to %s failed (%r); retrying once", self._safe_url, exc)
                batch = self._with_orphans(batch)
                self._publish_once(batch)
        except BaseException:
            # The caller hears of its own messages; the orphans wait for the next publish.
            own = {id(m) for m in messages}
            self._keep_orphans([m for m in batch if id(m) not in own])
            raise

    def _orphan(self, link: _Link) -> None:
        if link.held:
            self._keep_orphans(list(link.held.values()))
            link.held.clear()

    def _keep_orphans(self, messages: list[OutgoingMessage]) -> None:
        if messages:
            with self._orphans_lock:
                self._orphans.extend(messages)

    def _with_orphans(self, messages: Sequence[OutgoingMessage]) -> Sequence[OutgoingMessage]:
        """``messages`` after the orphans waiting to be published again (each message once)."""
        if not self._orphans:
            return messages
        with self._orphans_lock:
            orphans, self._orphans = self._orphans, []
        logger.warning(
            "publishing again %d message(s) whose connection to %s broke before RabbitMQ "
            "confirmed them",
            len(orphans),
            self._safe_url,
        )
        again = {id(m) for m in orphans}
        return [*orphans, *(m for m in messages if id(m) not in again)]

    def _publish_once(self, messages: Sequence[OutgoingMessage]) -> None:
        with self._links.acquire() as link:
            new = {m.queue for m in messages} - self._declared
            for queue in sorted(new):
                self.declare(link.channel, queue)
            self._declared |= new
            self._send(link, messages)

    def size(self, queue: str) -> int:
        with self._links.acquire() as link:
            return self._size(link, queue)

    def purge(self, queue: str) -> int:
        with self._links.acquire() as link:
            return self._purge(link, queue)

    def close(self) -> None:
        self._links.close()

    def declare(self, channel: Any, queue: str) -> None:
        """Create ``queue`` and its dead-letter queue on the broker if it needs that."""

    @abstractmethod
    def _send(self, link: _Link, messages: Sequence[OutgoingMessage]) -> None: ...

    @abstractmethod
    def _size(self, link: _Link, queue: str) -> int: ...

    @abstractmethod
    def _purge(self, link: _Link, queue: str) -> int: ...


class KombuConsumer(Consumer):
    """One kombu connection and channel, consuming ``queues`` into a local buffer."""

    #: longest wait inside one ``drain_events`` call, so that ``_maintain`` gets its turns
    _max_wait = float("inf")

    def __init__(self, transport: KombuTransport, queues: Iterable[str], prefetch: int) -> None:
        self.transport = transport
        self.queues = list(queues)
        if not self.queues:
            raise ValueError("A consumer needs at least one queue name.")
        self.prefetch = max(1, prefetch)
        # Filled by kombu's callbacks on this thread; other threads only take snapshots.
        self._buffer: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._connection = transport.connect()
        try:
            self._channel = self._connection.default_channel
            self._setup()
            # One kombu consumer per queue, so that each callback knows its queue's name.
            self._consumers = [
                _KombuMessageConsumer(
                    self._channel,
                    queues=[_KombuQueue(queue, no_declare=True)],
                    on_message=partial(self._on_message, queue),
                    auto_declare=False,
                )
                for queue in self.queues
            ]
            for message_consumer in self._consumers:
                message_consumer.consume()
        except BaseException:
            self._connection.release()
            raise

    def _setup(self) -> None:
        """Declare what the broker needs and set the prefetch, before consuming starts."""
        self._channel.basic_qos(0, self.prefetch, False)

    def _maintain(self) -> None:
        """Periodic duties of a polling consumer (Redis restores expired deliveries)."""

    def _on_message(self, queue: str, message: Any) -> None:
        self._buffer.append((queue, message))

    def get(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        while not self._buffer:
            self._maintain()
            remaining = deadline - time.monotonic()
            try:
                self._connection.drain_events(timeout=max(0.001, min(remaining, self._max_wait)))
            except TimeoutError:  # socket.timeout: nothing came
                if time.monotonic() >= deadline:
                    return None
        queue, message = self._buffer.popleft()
        return self._delivery(queue, message)

    def _delivery(self, queue: str, message: Any) -> Delivery:
        body, headers = message.body, message.headers
        redelivered = bool(message.delivery_info.get("redelivered"))
        content_type = message.content_type
        if not isinstance(body, bytes | bytearray | memoryview | str) or not isinstance(
            headers or {}, dict
        ):
            # A bad message, not a bad connection: the worker dead-letters it with this reason.
            return Delivery(
                queue=queue,
                body=repr(body).encode(),
                headers={},
                content_type="application/octet-stream",
                redelivered=redelivered,
                tag=message,
                consumer=self,
                error=f"undecodable message: body {type(body).__name__}, "
                f"headers {type(headers).__name__}",
            )
        headers = dict(headers or {})
        if headers.pop(RELEASED_HEADER, None):  # a copy put back by release(): delivered before
            redelivered = True
        return Delivery(
            queue=queue,
            body=body.encode() if isinstance(body, str) else bytes(body),
            headers=headers,
            content_type=content_type if isinstance(content_type, str) else "",
            redelivered=redelivered,
            tag=message,
            consumer=self,
        )

    def ack(self, delivery: Delivery) -> None:
        delivery.tag.ack()

    def reject(self, delivery: Delivery, requeue: bool, reason: str = "") -> None:
        message = delivery.tag
        if requeue and delivery.error is None:
            message.reject(requeue=True)
            return
        self._move(delivery, self.transport.dead_letters(delivery.queue), REASON_HEADER, reason)

    def _move(self, delivery: Delivery, queue: str, header: str, value: Any) -> None:
        """Publish a copy of ``delivery`` to ``queue`` with one more header, then ack it."""
        message = delivery.tag
        copy = self._channel.prepare_message(
            delivery.body,
            message.properties.get("priority"),
            delivery.content_type,
            "binary",
            {**delivery.headers, header: value},
            dict(PERSISTENT),
        )
        self._channel.basic_publish(copy, "", queue)
        message.ack()

    def close(self) -> None:
        """Close the connection: RabbitMQ requeues what we held, kombu's Redis QoS restores it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._connection.release()
        finally:
            self._buffer.clear()


class AMQPTransport(KombuTransport):
    """RabbitMQ through py-amqp: durable queues with dead-lettering and priorities."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.max_priority = int(self.options.get("max_priority", 9) or 0)
        # Off if either says off: ``broker_confirm``, or kombu's own ``confirm_publish`` in
        # ``broker_transport_options`` (Celery's way to turn confirms on, or leave them off).
        self.confirm = confirm_setting(self.options.get("confirm", True)) and confirm_setting(
            self.options.get("confirm_publish", True)
        )
        # Celery's task_default_queue_type and per-queue x-queue-type (task_queues).
        self.queue_type = str(self.options.get("queue_type") or "classic")
        self.queue_arguments: dict[str, dict[str, Any]] = dict(
            self.options.get("queue_arguments") or {}
        )
        self.delivery_limit = int(self.options.get("delivery_limit") or 0)
        self.queue_version = queue_version_setting(self.options.get("queue_version", 2))
        #: ``on`` while this thread is inside ``defer_confirms``
        self._deferring = threading.local()
        #: queues declared before canvas with other arguments, used as they are (``_adopt``)
        self._adopted: set[str] = set()

    def arguments(self, queue: str) -> dict[str, Any]:
        """What ``queue`` is declared with (a dead-letter queue takes its queue's type).

        A quorum queue has no ``x-max-priority``; its ``x-delivery-limit`` dead-letters, into
        ``<queue>.dlq``, a message the broker handed out that many times more (one that kills
        every worker that takes it, before canvas's own count can move it there).

        A reply queue is a classic queue that RabbitMQ deletes once unused for
        ``reply_expires`` seconds (``x-expires``)."""
        if is_reply_queue(queue):
            return {"x-expires": max(1, int(reply_expires(self.options) * 1000))}
        base = queue.removesuffix(DLQ_SUFFIX)
        given = dict(self.queue_arguments.get(base) or {})
        kind = str(given.pop("x-queue-type", None) or self.queue_type)
        arguments: dict[str, Any] = {} if kind == "classic" else {"x-queue-type": kind}
        if kind == "classic" and self.queue_version:
            arguments["x-queue-version"] = self.queue_version
        if queue.endswith(DLQ_SUFFIX):
            return arguments
        arguments["x-dead-letter-exchange"] = ""
        arguments["x-dead-letter-routing-key"] = self.dead_letters(queue)
        if kind == "quorum":
            if self.delivery_limit:
                arguments["x-delivery-limit"] = self.delivery_limit
        elif self.max_priority:
            arguments["x-max-priority"] = self.max_priority
        return {**arguments, **given}

    def is_quorum(self, queue: str) -> bool:
        return self.arguments(queue).get("x-queue-type") == "quorum"

    def transport_options(self) -> dict[str, Any]:
        # Consumers publish dead letters with the channel's basic_publish: confirmed one by one.
        # Producers confirm whole batches themselves (see _send).
        return {"confirm_publish": True, **super().transport_options()}

    def declare(self, channel: Any, queue: str) -> None:
        # A dead-letter queue has no dead-lettering of its own, but gets its own queue: what
        # it rejects must land somewhere.
        self._declare(channel, queue, self.arguments(queue))
        if not is_reply_queue(queue):  # a reply is read by its client, never dead-lettered
            dlq = self.dead_letters(queue)
            self._declare(channel, dlq, self.arguments(dlq))

    def _declare(self, channel: Any, queue: str, arguments: dict[str, Any]) -> None:
        if not arguments:
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            return
        refused = self._refusal(channel, queue, arguments)
        if refused is None or self._declared_without_version(channel, queue, arguments):
            return
        if "x-queue-type" in arguments:
            # A queue type was asked for (quorum): using the queue as it is would not give it.
            raise ImproperlyConfigured(
                f"RabbitMQ already has a queue {queue!r} declared with other arguments than "
                f"{arguments!r} ({refused}). Delete the queue, or set the transport option "
                "'max_priority' (or task_default_queue_type) to match it."
            ) from refused
        self._adopt(queue, arguments, refused)

    @staticmethod
    def _refusal(
        channel: Any, queue: str, arguments: dict[str, Any]
    ) -> amqp.exceptions.PreconditionFailed | None:
        """Declare ``queue`` with ``arguments``; the broker's refusal if it exists with others.

        Probed on a channel of its own: RabbitMQ closes the channel a declaration with other
        arguments fails on, and ``channel`` must stay usable."""
        probe = channel.connection.channel()
        try:
            probe.queue_declare(queue=queue, durable=True, auto_delete=False, arguments=arguments)
            return None
        except amqp.exceptions.PreconditionFailed as exc:
            return exc
        finally:
            with suppress(Exception):
                probe.close()

    def _declared_without_version(
        self, channel: Any, queue: str, arguments: dict[str, Any]
    ) -> bool:
        """Whether ``queue`` exists with ``arguments`` but no storage version (declared by an
        earlier canvas, say): then it is used as it is, its confirms waiting for an fsync each."""
        if "x-queue-version" not in arguments:
            return False
        unversioned = {k: v for k, v in arguments.items() if k != "x-queue-version"}
        if self._refusal(channel, queue, unversioned) is not None:
            return False
        if queue not in self._adopted:
            self._adopted.add(queue)
            logger.info(
                "RabbitMQ queue %r was declared without a storage version: used as it is. "
                "Its publisher confirms wait for an fsync per message; delete and redeclare it "
                "(empty) for version %d's faster confirms.",
                queue,
                self.queue_version,
            )
        return True

    def _adopt(self, queue: str, arguments: dict[str, Any], exc: BaseException) -> None:
        """A queue declared before canvas (by Celery, say) with other arguments: use it as it
        is, and say once what it lacks. Dead letters still reach ``<queue>.dlq``: the worker
        publishes them there itself (see ``AMQPConsumer.reject``)."""
        if queue in self._adopted:
            return
        self._adopted.add(queue)
        logger.warning(
            "RabbitMQ already has queue %r with other arguments than canvas's %r (%s): using "
            "it as it is. Messages the broker itself drops are not dead-lettered and priorities "
            "are as declared; the worker still sends its dead letters to %r. Redeclare the queue "
            "to get canvas's arguments.",
            queue,
            arguments,
            exc,
            self.dead_letters(queue),
        )

    def consumer(self, queues: Iterable[str], prefetch: int = 1) -> Consumer:
        return AMQPConsumer(self, queues, prefetch)

    @contextmanager
    def defer_confirms(self) -> Iterator[None]:
        """This thread's publishes return once written; their confirms are read by the next
        publish on the same connection or by ``settle_confirms`` (a refusal is logged then)."""
        before = getattr(self._deferring, "on", False)
        self._deferring.on = self.confirm
        try:
            yield
        finally:
            self._deferring.on = before

    def settle_confirms(self) -> None:
        while (link := self._links.take_idle(_unsettled)) is not None:
            try:
                with self._links.lend(link):
                    deadline = time.monotonic() + self.confirm_timeout
                    self._await_confirms(link, len(link.unconfirmed), deadline, keep=0)
            except self._retry_errors as exc:  # its unconfirmed messages are orphans now
                logger.warning("reading confirms from %s failed (%r)", self._safe_url, exc)
        if self._orphans:
            self.publish([])

    def close(self) -> None:
        try:
            self.settle_confirms()
        except Exception as exc:  # the broker is gone: what it did not confirm is logged
            self._keep_orphans([m for link in self._links.held() for m in link.held.values()])
            if self._orphans:
                logger.error(
                    "closing the connection to %s with %d message(s) RabbitMQ never "
                    "confirmed (%r): %s",
                    self._safe_url,
                    len(self._orphans),
                    exc,
                    _ids(self._orphans),
                )
        super().close()

    def _send(self, link: _Link, messages: Sequence[OutgoingMessage]) -> None:
        channel = link.channel
        if self.confirm and not link.confirming:
            channel.events["basic_ack"].add(partial(link.on_confirm, False))
            channel.events["basic_nack"].add(partial(link.on_confirm, True))
            channel._confirm_selected = True  # so py-amqp never selects again
            channel.confirm_select()
            link.confirming = True
        # The whole batch goes out in a few socket writes (py-amqp writes each message on its
        # own, and polls for connection.blocked before each), then the confirms are awaited
        # together: one round trip per batch, not per message. A batch larger than the window
        # waits for the window's confirms before sending more, which bounds what is in flight.
        # Under defer_confirms the confirms are left to read later (the window still bounds
        # what is in flight) and each message is held until its confirm comes.
        writer = _FrameWriter(link)
        top, window = self.max_priority, _CONFIRM_WINDOW
        deadline = time.monotonic() + self.confirm_timeout
        deferred = self.confirm and getattr(self._deferring, "on", False)
        for m in messages:
            priority = None if m.priority is None or not top else max(0, min(top, m.priority))
            writer.publish(m.queue, m.body, m.content_type, m.headers, priority)
            if self.confirm:
                link.unconfirmed.append(link.next_seq)
                if deferred:
                    link.held[link.next_seq] = m
                link.next_seq += 1
                if writer.pending >= window or len(link.unconfirmed) >= window:
                    writer.flush()
                    self._await_confirms(link, len(messages), deadline, keep=window // 2)
        writer.flush()
        if self.confirm and not deferred:
            self._await_confirms(link, len(messages), deadline, keep=0)

    def _await_confirms(self, link: _Link, sent: int, deadline: float, keep: int) -> None:
        """Read confirms until at most ``keep`` are outstanding; raise on a nack or a timeout."""
        while len(link.unconfirmed) > keep:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                link.broken = True
                raise TimeoutError(
                    f"RabbitMQ did not confirm {len(link.unconfirmed)} of {sent} "
                    f"messages within confirm_timeout={self.confirm_timeout}s."
                )
            link.connection.drain_events(timeout=remaining)
        if link.refused:
            refused, link.refused = link.refused, []
            logger.error(
                "RabbitMQ refused (nacked) %d message(s) published without waiting for their "
                "confirm; they will not run: %s",
                len(refused),
                _ids(refused),
            )
        if link.nacked:
            nacked, link.nacked = link.nacked, 0
            raise amqp.exceptions.MessageNacked(
                f"RabbitMQ refused (nacked) {nacked} of {sent} messages."
            )

    def _size(self, link: _Link, queue: str) -> int:
        return self._unless_missing(link, lambda: link.channel.queue_declare(queue, passive=True))

    def _purge(self, link: _Link, queue: str) -> int:
        return self._unless_missing(link, lambda: link.channel.queue_purge(queue))

    @staticmethod
    def _unless_missing(link: _Link, call: Callable[[], Any]) -> int:
        """A message count, or 0 for a queue that does not exist (which closes the channel)."""
        try:
            result = call()
        except amqp.exceptions.NotFound:
            link.broken = True
            return 0
        return int(getattr(result, "message_count", result) or 0)


def _unsettled(link: _Link) -> bool:
    return bool(link.unconfirmed)


def _ids(messages: Sequence[OutgoingMessage]) -> str:
    """The task ids and queues of ``messages``, for a log line."""
    return ", ".join(f"{m.headers.get('id')} ({m.queue})" for m in messages[:20]) + (
        f" and {len(messages) - 20} more" if len(messages) > 20 else ""
    )


class _FrameWriter:
    """AMQP ``basic.publish`` frames for many messages, written to the socket in few writes.

    The frames are py-amqp's (its ``Message`` encodes the properties); only the writes are
    coalesced. Used on a link's own connection by the one thread that holds the link.
    """

    def __init__(self, link: _Link) -> None:
        connection = link.channel.connection
        self.connection = connection
        self.write = connection.transport.write
        self.channel_id = link.channel.channel_id
        self.chunk = connection.frame_max - 8
        self.parts: list[bytes] = []
        self.size = 0
        self.pending = 0

    def publish(
        self,
        queue: str,
        body: bytes,
        content_type: str,
        headers: Mapping[str, Any],
        priority: int | None,
    ) -> None:
        message = amqp.Message(
            body,
            priority=priority,
            content_type=content_type,
            content_encoding="binary",
            application_headers=dict(headers),
            delivery_mode=2,
        )
        properties = message._serialize_properties()
        channel, parts = self.channel_id, self.parts
        method = _PUBLISH_METHOD + amqp.serialization.dumps("Bssbb", (0, "", queue, False, False))
        parts.append(_FRAME_HEAD.pack(1, channel, len(method)) + method + _FRAME_END)
        header = _CONTENT_HEAD.pack(60, 0, len(body)) + properties
        parts.append(_FRAME_HEAD.pack(2, channel, len(header)) + header + _FRAME_END)
        for i in range(0, len(body), self.chunk):
            piece = body[i : i + self.chunk]
            parts.append(_FRAME_HEAD.pack(3, channel, len(piece)) + piece + _FRAME_END)
        self.size += len(method) + len(header) + len(body) + 24
        self.pending += 1
        if self.size >= _WRITE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            data, self.parts, self.size, self.pending = b"".join(self.parts), [], 0, 0
            self.write(data)
            self.connection.bytes_sent += 1  # py-amqp's heartbeat bookkeeping


class AMQPConsumer(KombuConsumer):
    """Holds deliveries as RabbitMQ unacked messages; nothing to renew."""

    transport: AMQPTransport

    def release(self, delivery: Delivery) -> None:
        """A quorum queue counts every requeue towards its ``x-delivery-limit``, an outage's too:
        there the message goes back as a confirmed copy (marked as delivered before, so that
        the worker's duplicate checks still apply) and the original is acked."""
        if delivery.error is not None or not self.transport.is_quorum(delivery.queue):
            super().release(delivery)
            return
        self._move(delivery, delivery.queue, RELEASED_HEADER, 1)

    def _setup(self) -> None:
        for queue in self.queues:
            self.transport.declare(self._channel, queue)
        # Per consumer, and per channel too when there are several queues, so that the channel
        # never holds more than ``prefetch`` in total.
        self._channel.basic_qos(0, self.prefetch, False)
        # Quorum queues refuse a channel-wide (global) prefetch, as Celery's
        # worker_detect_quorum_queues knows: with one, each queue's consumer holds up to prefetch.
        quorum = any(self.transport.is_quorum(q) for q in self.queues)
        if len(self.queues) > 1 and not quorum:
            self._channel.basic_qos(0, self.prefetch, True)

    def close(self) -> None:
        # Cancel first, so that no delivery is still on its way when the channel closes.
        if not self._closed:
            for message_consumer in self._consumers:
                try:
                    message_consumer.cancel()
                except Exception:  # closing anyway; the broker requeues what we held
                    logger.debug("cancelling a consumer failed", exc_info=True)
        super().close()


class KombuRedisTransport(KombuTransport):
    """Redis through kombu's virtual transport, with a bounded visibility timeout."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.visibility_timeout = float(self.options.get("visibility_timeout") or 60.0)

    def transport_options(self) -> dict[str, Any]:
        return {
            "visibility_timeout": self.visibility_timeout,
            # A sweeper killed while holding kombu's restore mutex blocks sweeps this long.
            "unacked_mutex_expire": int(min(300, max(5, self.visibility_timeout))),
            "priority_steps": list(range(10)),
            **super().transport_options(),
        }

    def consumer(self, queues: Iterable[str], prefetch: int = 1) -> Consumer:
        return KombuRedisConsumer(self, queues, prefetch)

    def _configure(self, connection: Any) -> None:
        transport = connection.transport
        if transport.Channel is _KombuRedisChannel:  # not Sentinel's
            transport.Channel = _RedisChannel

    @staticmethod
    def kombu_priority(priority: int | None) -> int:
        """Kombu's Redis serves 0 first: ours is reversed, and ``None`` is the lowest."""
        return 9 - max(0, min(9, priority or 0))

    def _send(self, link: _Link, messages: Sequence[OutgoingMessage]) -> None:
        # Kombu's channel formats and routes each message, handing its Redis commands to our
        # collector (the hook of kombu's own publish batches); they run in one pipeline.
        channel, commands = link.channel, _Commands()
        for m in messages:
            priority, headers = self.kombu_priority(m.priority), dict(m.headers)
            message = channel.prepare_message(
                m.body, priority, m.content_type, "binary", headers, dict(PERSISTENT)
            )
            channel.basic_publish(message, "", m.queue, _publish_batch=commands)
        with channel.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            for name, args in commands:
                getattr(pipe, name)(*args)
            pipe.execute()

    def _size(self, link: _Link, queue: str) -> int:
        return int(link.channel.queue_declare(queue=queue).message_count)

    def _purge(self, link: _Link, queue: str) -> int:
        return int(link.channel.queue_purge(queue) or 0)


class _Commands(list[tuple[str, tuple[Any, ...]]]):
    """Collects the Redis commands kombu's channel would run to publish a message."""

    def add(self, name: str, *args: Any) -> None:
        self.append((name, args))


class _RedisChannel(_KombuRedisChannel):  # type: ignore[misc] # kombu's is untyped
    """Kombu's Redis channel, keeping one client object where kombu builds one per command.

    A redis-py client is thread-safe and cheap to share but costly to build; with the round trips
    that is what a message costs, so sharing it nearly doubles a consumer's rate.
    """

    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the BRPOP client, one per channel already
            return super()._create_client(asynchronous=True)
        if self._shared_client is None:
            self._shared_client = super()._create_client()
        return self._shared_client

    def _disconnect_pools(self) -> None:
        self._shared_client = None
        super()._disconnect_pools()


class KombuRedisConsumer(KombuConsumer):
    """Holds deliveries on a lease that ``extend`` renews and any consumer's sweep expires."""

    transport: KombuRedisTransport

    def _setup(self) -> None:
        super()._setup()
        self._max_wait = min(5.0, max(0.1, self.transport.visibility_timeout / 4))
        self._next_sweep = 0.0
        # close() waits for an outstanding BRPOP's reply (it may carry a message): keep short
        # leases' consumers quick to close too. Fractional timeouts need Redis 6.
        self._channel.brpop_timeout = min(self._channel.brpop_timeout, self._max_wait)

    def _maintain(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self._max_wait
            channel = self._channel
            channel.qos.restore_visible(num=channel.unacked_restore_limit, interval=1)

    def _delivery(self, queue: str, message: Any) -> Delivery:
        delivery = super()._delivery(queue, message)
        if delivery.redelivered:
            delivery.headers.pop("redelivered", None)  # kombu's restore marker
        return delivery

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Re-score the deliveries and those still buffered; safe from another thread."""
        tags = {d.tag.delivery_tag for d in deliveries}
        tags.update(message.delivery_tag for _, message in list(self._buffer))
        if not tags:
            return
        with self._lock:
            if self._closed:
                return
            # XX: a delivery settled meanwhile must not come back to the index.
            scores = dict.fromkeys(tags, time.time())
            with self._channel.conn_or_acquire() as client:  # shared, thread-safe
                client.zadd(self._channel.unacked_index_key, scores, xx=True)
