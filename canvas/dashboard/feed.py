"""The dashboard's subscription to worker events: a receiver in a thread that never gives up.

It captures with ``app.events.Receiver`` (Celery's API, ``wakeup=True`` so every worker sends a
heartbeat at once) and hands each event to the monitor. When the broker goes away it says so
(the page shows it), waits ``RETRY_DELAY`` seconds and subscribes again; workers keep sending
heartbeats, so the picture is whole again within one heartbeat of the broker's return.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.events.receiver import EventReceiver

logger = logging.getLogger("canvas.dashboard")

#: seconds between two subscription attempts
RETRY_DELAY = 2.0


class EventFeed:
    """Runs ``handler`` on every event until ``close()``; ``status`` hears of outages."""

    def __init__(
        self,
        app: Canvas,
        handler: Callable[[Mapping[str, Any]], None],
        status: Callable[[str | None], None],
    ) -> None:
        self.app = app
        self.handler = handler
        self.status = status
        self._closed = threading.Event()
        self._receiver: EventReceiver | None = None

    def run(self) -> None:
        while not self._closed.is_set():
            try:
                self._capture()
            except Exception as exc:  # the broker went away: say so, and subscribe again
                logger.warning("dashboard: events feed lost (%s); retrying", exc)
                self.status(f"events feed lost: {type(exc).__name__}: {exc}")
                self._closed.wait(RETRY_DELAY)

    def _capture(self) -> None:
        receiver = self.app.events.Receiver(None, handlers={"*": self._handle})
        self._receiver = receiver
        if self._closed.is_set():
            return
        receiver.subscribe()
        self.status(None)
        # No timeout: an idle system is no outage. ``close`` ends the capture.
        receiver.capture(limit=None, timeout=None, wakeup=True)

    def close(self) -> None:
        """End the capture within one poll of the bus."""
        self._closed.set()
        receiver = self._receiver
        if receiver is not None:
            receiver.should_stop = True

    def _handle(self, event: Mapping[str, Any]) -> None:
        try:
            self.handler(event)
        except Exception:  # one odd event must not end the feed
            logger.exception("dashboard: cannot apply event %r", event.get("type"))


__all__ = ["EventFeed", "RETRY_DELAY"]
