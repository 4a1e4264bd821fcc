"""Driving the real engine in-process: the worker's handler over an app's queue, no process."""

from __future__ import annotations

from canvas import Canvas
from canvas.core.consumer import Handler


def drain(app: Canvas) -> int:
    """Run every queued message through the worker's handler until the queue is empty."""
    consumer = app.transport.consumer([str(app.conf.task_default_queue)], 1)
    handler = Handler(app, "property-worker")
    handled = 0
    try:
        while (delivery := consumer.get(timeout=0)) is not None:
            handler.handle(delivery)
            handled += 1
    finally:
        consumer.close()
    return handled
