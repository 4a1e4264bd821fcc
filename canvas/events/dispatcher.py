"""Sending events: ``app.events.Dispatcher`` (Celery's ``EventDispatcher``).

A dispatcher adds the fields every event carries (``hostname``, ``pid``, ``clock``,
``utcoffset``, ``timestamp``) and publishes to the app's bus. With ``flush_interval`` it keeps
events in a buffer that a background thread publishes as one batch every ``flush_interval``
seconds (the worker's 0.1 s: one bus message per batch, not per event, is what keeps the cost of
``-E`` low); without it each ``send`` publishes at once.

Events are observations: a publish that fails is logged (once per streak) and the events are
dropped, never raised into the task or the caller that sent them.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from canvas.bus import of_app
from canvas.bus.base import Bus
from canvas.events.event import Event, group_from, pack

if TYPE_CHECKING:
    from canvas.app import Canvas

logger = logging.getLogger("canvas.events")

#: a buffered dispatcher publishes at once when this many events wait
BATCH_MAX = 500


def utcoffset() -> int:
    """Hours east of UTC, as Celery's events carry it."""
    offset = time.altzone if time.daylight and time.localtime().tm_isdst > 0 else time.timezone
    return -offset // 3600


class EventDispatcher:
    """Publishes events for one sender (``hostname``); ``enabled=False`` makes ``send`` free.

    ``groups`` limits what is sent to some event groups (``["worker"]`` sends worker events
    only). The first positional argument is Celery's connection: canvas uses the app's broker,
    so it is accepted and not needed, as are Celery's kombu-specific keyword options.
    """

    def __init__(
        self,
        connection: Any = None,
        hostname: str | None = None,
        enabled: bool = True,
        *,
        app: Canvas | None = None,
        groups: Iterable[str] | None = None,
        flush_interval: float = 0.0,
        bus: Bus | None = None,
        topic: str | None = None,
        **celery_options: Any,
    ) -> None:
        if app is None and (bus is None or topic is None):
            raise TypeError("EventDispatcher needs app= (or both bus= and topic=).")
        self.app = app
        self.hostname = hostname or _default_hostname()
        self.enabled = enabled
        self.groups = set(groups) if groups is not None else None
        self.flush_interval = float(flush_interval)
        self._bus = bus
        self.topic = topic or str(app.conf.event_exchange if app is not None else "")
        self._clock = itertools.count(1)
        self._lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._pid = os.getpid()
        self._failing = False
        self._closed = False

    # -- Celery's API ------------------------------------------------------------------------
    def send(self, type: str, blind: bool = False, **fields: Any) -> dict[str, Any] | None:
        """Send one event of ``type``; returns it (``None`` when disabled or filtered out).

        ``blind=True`` leaves out the clock, as Celery's does for high-frequency events.
        """
        if not self.enabled or (self.groups is not None and group_from(type) not in self.groups):
            return None
        fields.setdefault("hostname", self.hostname)
        fields.setdefault("utcoffset", utcoffset())
        fields.setdefault("pid", os.getpid())
        if not blind:
            fields.setdefault("clock", next(self._clock))
        event = Event(type, fields)
        if self.flush_interval > 0:
            self._buffered(event)
        else:
            self._publish([event])
        return event

    def send_batch(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Send several ``(type, fields)`` events as one bus message (unless buffered)."""
        if not self.enabled:
            return
        events = []
        for type, fields in items:
            if self.groups is not None and group_from(type) not in self.groups:
                continue
            fields = dict(fields)
            fields.setdefault("hostname", self.hostname)
            fields.setdefault("utcoffset", utcoffset())
            fields.setdefault("pid", os.getpid())
            fields.setdefault("clock", next(self._clock))
            events.append(Event(type, fields))
        if self.flush_interval > 0:
            for event in events:
                self._buffered(event)
        elif events:
            self._publish(events)

    def publish(self, type: str, fields: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        """Send ``fields`` as an event of ``type`` (Celery's lower-level form)."""
        self.send(type, **fields)

    def flush(self, *args: Any, **kwargs: Any) -> None:
        """Publish what the buffer holds now."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            self._publish(batch)

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def close(self) -> None:
        """Publish what is buffered and stop the flusher."""
        self._closed = True
        self._wake.set()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(5)
        self.flush()

    def __enter__(self) -> EventDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside --------------------------------------------------------------------------------
    @property
    def bus(self) -> Bus:
        if self._bus is not None:
            return self._bus
        assert self.app is not None
        return of_app(self.app)

    def _buffered(self, event: dict[str, Any]) -> None:
        if self._pid != os.getpid():  # forked: the parent's buffer and thread are not ours
            self._pid, self._buffer, self._flusher = os.getpid(), [], None
            self._lock = threading.Lock()
        with self._lock:
            self._buffer.append(event)
            full = len(self._buffer) >= BATCH_MAX
            if self._flusher is None and not self._closed:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="canvas-events", daemon=True
                )
                self._flusher.start()
        if full:
            self._wake.set()

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def _publish(self, events: list[dict[str, Any]]) -> None:
        try:
            for start in range(0, len(events), BATCH_MAX):
                self.bus.publish(self.topic, pack(events[start : start + BATCH_MAX]))
        except Exception as exc:
            if not self._failing:
                logger.warning("Could not send %d events (%s); dropping them", len(events), exc)
            self._failing = True
        else:
            if self._failing:
                logger.info("Sending events again")
            self._failing = False


def _default_hostname() -> str:
    return f"canvas@{socket.gethostname()}"
