"""Events: what workers and clients report as it happens, for monitors (Celery's API).

    app.events.Dispatcher(hostname="me").send("custom-thing", value=1)
    state = app.events.State()
    app.events.Receiver(None, handlers={"*": state.event}).capture(limit=10)

Workers send worker events (``worker-online``, ``worker-heartbeat`` every 2 s,
``worker-offline``) always, and task events with ``worker -E`` or ``worker_send_task_events``;
clients send ``task-sent`` and ``workflow-started`` with ``task_send_sent_event``. Types and
fields: ``canvas.events.event``; the in-memory picture: ``canvas.events.state``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from canvas.events.dispatcher import EventDispatcher
from canvas.events.event import (
    HEARTBEAT_INTERVAL,
    TASK_EVENTS,
    WORKER_EVENTS,
    WORKFLOW_EVENTS,
    Event,
    group_from,
)
from canvas.events.receiver import EventReceiver
from canvas.events.state import State

if TYPE_CHECKING:
    from canvas.app import Canvas


class Events:
    """``app.events``: dispatchers, receivers and states bound to one app."""

    def __init__(self, app: Canvas) -> None:
        self.app = app

    def Dispatcher(
        self, connection: Any = None, hostname: str | None = None, enabled: bool = True, **kw: Any
    ) -> EventDispatcher:
        return EventDispatcher(connection, hostname, enabled, app=self.app, **kw)

    def Receiver(
        self,
        channel: Any = None,
        handlers: Mapping[str, Any] | None = None,
        routing_key: str = "#",
        node_id: str | None = None,
        **kw: Any,
    ) -> EventReceiver:
        return EventReceiver(channel, handlers, routing_key, node_id, app=self.app, **kw)

    def State(self, **kw: Any) -> State:
        return State(**kw)

    @contextmanager
    def default_dispatcher(
        self, hostname: str | None = None, enabled: bool = True, **kw: Any
    ) -> Iterator[EventDispatcher]:
        """A dispatcher for the ``with`` block, flushed and closed at its end."""
        with self.Dispatcher(None, hostname, enabled, **kw) as dispatcher:
            yield dispatcher


__all__ = [
    "HEARTBEAT_INTERVAL",
    "TASK_EVENTS",
    "WORKER_EVENTS",
    "WORKFLOW_EVENTS",
    "Event",
    "EventDispatcher",
    "EventReceiver",
    "Events",
    "State",
    "group_from",
]
