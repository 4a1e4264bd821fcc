"""Receiving events: ``app.events.Receiver`` (Celery's ``EventReceiver``).

    recv = app.events.Receiver(None, handlers={"task-failed": on_failed, "*": state.event})
    recv.capture(limit=None, timeout=None, wakeup=True)

``capture`` subscribes to the app's event topic and calls the handler of each event's type (or
the ``"*"`` handler) until ``limit`` events were handled, ``should_stop`` is set, or no event came
for ``timeout`` seconds (then it raises ``TimeoutError``, as Celery's raises ``socket.timeout``).
With ``wakeup`` it first asks every worker for a heartbeat, so a new monitor sees the workers at
once. Each event gets ``local_received``, the time this process received it.

A receiver sees the events sent after it subscribed, never older ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from canvas.bus import of_app
from canvas.bus.base import Subscription
from canvas.events.event import unpack

if TYPE_CHECKING:
    from canvas.app import Canvas

Handler = Callable[[dict[str, Any]], Any]

#: how long one wait on the bus lasts, so ``should_stop`` is noticed quickly
_POLL = 0.25


class EventReceiver:
    """Calls ``handlers[event["type"]]`` (or ``handlers["*"]``) for each event received.

    The first positional argument is Celery's connection (or channel): canvas uses the app's
    broker, so it is accepted and not needed, as are Celery's queue options.
    """

    def __init__(
        self,
        channel: Any = None,
        handlers: Mapping[str, Handler] | None = None,
        routing_key: str = "#",
        node_id: str | None = None,
        *,
        app: Canvas,
        **celery_options: Any,
    ) -> None:
        self.app = app
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.routing_key = routing_key
        self.node_id = node_id
        self.should_stop = False
        self.topic = str(app.conf.event_exchange)
        self._subscription: Subscription | None = None

    def process(self, type: str, event: dict[str, Any]) -> None:
        """Hand one event to its handler."""
        handler = self.handlers.get(type) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def subscribe(self) -> Subscription:
        """Start receiving now (``capture`` does this itself; call it first to miss nothing
        that happens between now and ``capture``)."""
        if self._subscription is None:
            self._subscription = of_app(self.app).subscribe([self.topic])
        return self._subscription

    def wakeup_workers(self) -> None:
        """Ask every worker to send a heartbeat now."""
        self.app.control.broadcast("heartbeat")

    def itercapture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Like ``capture``, yielding each event after its handler ran."""
        subscription = self.subscribe()
        try:
            if wakeup:
                self.wakeup_workers()
            handled = 0
            idle_since = time.monotonic()
            while not self.should_stop and (limit is None or handled < limit):
                message = subscription.get(timeout=_POLL)
                if message is None:
                    if timeout is not None and time.monotonic() - idle_since >= timeout:
                        raise TimeoutError(f"No event within {timeout} s.")
                    continue
                idle_since = time.monotonic()
                received = time.time()
                for event in unpack(message.payload):
                    event["local_received"] = received
                    self.process(event["type"], event)
                    handled += 1
                    yield event
                    if self.should_stop or (limit is not None and handled >= limit):
                        break
        finally:
            self.close()

    def capture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> None:
        """Receive and handle events until ``limit``, ``should_stop`` or ``timeout`` idle."""
        for _ in self.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
            pass

    def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    def __enter__(self) -> EventReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
