"""The Redis bus: ``PUBLISH``/``SUBSCRIBE``, one command per message.

URL: the broker's (``redis://[:password@]host:port/db``, ``rediss://`` for TLS). Redis pub/sub
channels are shared by every database of a server, so a channel is named after the database as
well as the topic (``canvas-bus:<db>:<topic>``): two deployments on two databases of one server
never hear each other.

``subscribe`` returns once Redis confirmed every channel, so a request published right after it
cannot slip by. A subscriber whose connection drops misses what was published meanwhile, as the
bus contract allows.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.client import PubSub

from canvas.bus.base import Bus, BusMessage, Subscription, check_topic

_parse_url: Any = redis.connection.parse_url  # untyped in redis-py

#: longest wait for Redis to confirm a subscription
SUBSCRIBE_TIMEOUT = 10.0


class RedisBus(Bus):
    """Topics as pub/sub channels; one publishing client per process."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url.removeprefix("kombu+"), options)
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self._prefix = f"canvas-bus:{self.database()}:"

    def database(self) -> int:
        """The database number that names the channels (pub/sub ignores databases)."""
        return int(_parse_url(self.url).get("db", 0))

    def make_client(self) -> Any:
        """A new client (the Redis Cluster bus makes a cluster client)."""
        return redis.Redis.from_url(self.url)

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = self.make_client()
                self._pid = os.getpid()
            return self._client

    def channel(self, topic: str) -> str:
        return self._prefix + check_topic(topic)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(self.channel(topic), payload)

    def subscribe(self, topics: Sequence[str]) -> RedisSubscription:
        return RedisSubscription(self, topics)

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None


class RedisSubscription(Subscription):
    """Its own connection, subscribed to the topics' channels."""

    def __init__(self, bus: RedisBus, topics: Sequence[str]) -> None:
        super().__init__(topics)
        self.bus = bus
        self._client: Any = bus.make_client()
        self._pubsub: PubSub = self._client.pubsub()
        self._names = {bus.channel(t): t for t in self.topics}
        try:
            self._pubsub.subscribe(*self._names)
            self._await_confirmations()
        except BaseException:
            self.close()
            raise

    def _await_confirmations(self) -> None:
        waiting = set(self._names)
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Redis did not confirm the subscription to {sorted(waiting)}.")
            reply = self._pubsub.get_message(timeout=left)
            if reply and reply["type"] == "subscribe":
                waiting.discard(_text(reply["channel"]))

    def get(self, timeout: float) -> BusMessage | None:
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            reply = self._pubsub.get_message(timeout=left)
            if reply is not None and reply["type"] == "message":
                topic = self._names.get(_text(reply["channel"]))
                if topic is not None:
                    return BusMessage(topic, bytes(reply["data"]))
            if time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        try:
            self._pubsub.close()
        finally:
            self._client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
