"""The RabbitMQ bus: one topic exchange, an exclusive queue per subscription.

URL: the broker's (``amqp://user:password@host[:port][/vhost]``, ``amqps://``, ``pyamqp://``).
Every topic is a routing key on the exchange ``canvas.bus`` (option ``bus_exchange``), and every
subscription binds its own exclusive, auto-deleted queue to its topics: for a topic that many
subscribe to (the workers' control topic, the events topic) that is a fanout, and a reply topic
with one subscriber is a direct reply queue. The exchange and the queues are transient and the
messages not persistent (live traffic only). A subscription's queue drops messages older than
``bus_message_ttl`` seconds (default 60), so a stalled monitor cannot fill the broker.

``publish`` waits for RabbitMQ's confirm. A broken publishing connection is replaced and the
message sent once more.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import amqp
from kombu import connection as _connection

from canvas.bus.base import Bus, BusMessage, Subscription, check_topic

_KombuConnection: Any = _connection.Connection


class AMQPBus(Bus):
    """A topic exchange on the broker; one confirmed publishing channel per process."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.exchange = str(self.options.get("bus_exchange") or "canvas.bus")
        self.message_ttl = float(self.options.get("bus_message_ttl") or 60.0)
        self.connect_timeout = float(self.options.get("connect_timeout") or 5.0)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0

    def connect(self) -> Any:
        """A connected kombu connection whose default channel has the exchange declared."""
        conn = _KombuConnection(
            self.url,
            connect_timeout=self.connect_timeout,
            transport_options={"confirm_publish": True},
        )
        try:
            conn.connect()
            conn.default_channel.exchange_declare(
                self.exchange, "topic", durable=False, auto_delete=False
            )
        except BaseException:
            conn.release()
            raise
        return conn

    def publish(self, topic: str, payload: bytes) -> None:
        message = amqp.Message(bytes(payload), delivery_mode=1)
        check_topic(topic)
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._pid != os.getpid():
                    self._conn, self._pid = self.connect(), os.getpid()
                try:
                    self._conn.default_channel.basic_publish(message, self.exchange, topic)
                    return
                except (OSError, amqp.exceptions.AMQPError):
                    self._drop()
                    if attempt == 2:
                        raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.release()
            except Exception:  # already broken: nothing to release
                pass

    def subscribe(self, topics: Sequence[str]) -> AMQPSubscription:
        return AMQPSubscription(self, topics)

    def close(self) -> None:
        with self._lock:
            self._drop()


class AMQPSubscription(Subscription):
    """An exclusive queue bound to each topic; deliveries need no ack."""

    def __init__(self, bus: AMQPBus, topics: Sequence[str]) -> None:
        super().__init__(topics)
        self._buffer: deque[BusMessage] = deque()
        self._conn = bus.connect()
        try:
            channel = self._conn.default_channel
            declared = channel.queue_declare(
                queue="",
                exclusive=True,
                auto_delete=True,
                arguments={"x-message-ttl": int(bus.message_ttl * 1000)},
            )
            for topic in self.topics:
                channel.queue_bind(declared.queue, bus.exchange, topic)
            channel.basic_consume(declared.queue, no_ack=True, callback=self._on_message)
        except BaseException:
            self._conn.release()
            raise

    def _on_message(self, message: Any) -> None:
        body = message.body
        topic = str(message.delivery_info.get("routing_key", ""))
        self._buffer.append(BusMessage(topic, body.encode() if isinstance(body, str) else body))

    def get(self, timeout: float) -> BusMessage | None:
        deadline = time.monotonic() + timeout
        while not self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self._conn.drain_events(timeout=max(0.001, left))
            except TimeoutError:  # socket.timeout: nothing came
                return None
        return self._buffer.popleft()

    def close(self) -> None:
        self._conn.release()
