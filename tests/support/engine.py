"""Driving the real engine in-process: the worker's handler over an app's queue, no process.

Every message is encoded, published, consumed, run, recorded and wired exactly as a worker does
it; ``memory_app`` gives an app whose broker and result store live in this process.
"""

from __future__ import annotations

from canvas import Canvas
from canvas.core.consumer import Handler


def memory_app(name: str, **settings: object) -> Canvas:
    """An app on the in-memory broker and store (nothing to start)."""
    return Canvas(name, broker="memory://", backend="memory://", set_as_current=False, **settings)


def drain(app: Canvas, queues: list[str] | None = None) -> int:
    """Run every queued message through the worker's handler until the queues are empty."""
    names = queues or [str(app.conf.task_default_queue)]
    consumer = app.transport.consumer(names, 1)
    handler = Handler(app, "property-worker")
    handled = 0
    try:
        while (delivery := consumer.get(timeout=0)) is not None:
            handler.handle(delivery)
            handled += 1
    finally:
        consumer.close()
    return handled
