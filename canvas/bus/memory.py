"""An in-process bus: unit tests, and apps whose workers run in the same process.

Every instance has its own subscribers; nothing crosses a process boundary.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

from canvas.bus.base import Bus, BusMessage, Subscription, check_topic


class MemoryBus(Bus):
    """Topic -> the queues of its subscriptions, behind one lock."""

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[queue.SimpleQueue[BusMessage]]] = {}

    def publish(self, topic: str, payload: bytes) -> None:
        message = BusMessage(check_topic(topic), bytes(payload))
        with self._lock:
            targets = list(self._subscribers.get(topic, ()))
        for target in targets:
            target.put(message)

    def subscribe(self, topics: Sequence[str]) -> MemorySubscription:
        return MemorySubscription(self, topics)

    def _add(self, topics: Sequence[str], inbox: queue.SimpleQueue[BusMessage]) -> None:
        with self._lock:
            for topic in topics:
                self._subscribers.setdefault(topic, []).append(inbox)

    def _remove(self, topics: Sequence[str], inbox: queue.SimpleQueue[BusMessage]) -> None:
        with self._lock:
            for topic in topics:
                held = self._subscribers.get(topic, [])
                if inbox in held:
                    held.remove(inbox)


class MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, topics: Sequence[str]) -> None:
        super().__init__(topics)
        self.bus = bus
        self.inbox: queue.SimpleQueue[BusMessage] = queue.SimpleQueue()
        bus._add(self.topics, self.inbox)

    def get(self, timeout: float) -> BusMessage | None:
        try:
            return self.inbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self) -> None:
        self.bus._remove(self.topics, self.inbox)
