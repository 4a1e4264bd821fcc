"""The worker lets what an acked call publishes skip the wait for the broker's confirm, and only
that: a late-acked call's successors are confirmed before its ack (``Transport.defer_confirms``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from canvas import Canvas, chain
from canvas.core.consumer import Handler
from tests.support.engine import memory_app


def _published_deferred(app: Canvas) -> list[bool]:
    """For each publish of ``app`` from now on: whether it was inside ``defer_confirms``."""
    transport = app.transport
    inside = [False]
    seen: list[bool] = []
    real_publish = transport.publish

    @contextmanager
    def defer_confirms() -> Iterator[None]:
        inside[0] = True
        try:
            yield
        finally:
            inside[0] = False

    def publish(messages):  # type: ignore[no-untyped-def]
        seen.append(inside[0])
        real_publish(messages)

    transport.defer_confirms = defer_confirms  # type: ignore[method-assign]
    transport.publish = publish  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize(("acks_late", "deferred"), [(False, True), (True, False)])
def test_a_successor_skips_the_confirm_wait_only_when_its_trigger_was_acked(
    acks_late: bool, deferred: bool
) -> None:
    app = memory_app("deferred", task_acks_late=acks_late, result_expires=3600)

    @app.task(name="deferred.add")
    def add(x: int, y: int) -> int:
        return x + y

    result = chain(add.s(1, 2), add.s(3)).apply_async()
    seen = _published_deferred(app)
    queue = str(app.conf.task_default_queue)
    consumer = app.transport.consumer([queue], 1)
    handler = Handler(app, "deferred-worker")
    try:
        first = consumer.get(timeout=0)
        assert first is not None
        handler.handle(first)  # publishes the chain's second step
        assert seen == [deferred]
        second = consumer.get(timeout=0)
        assert second is not None
        handler.handle(second)
    finally:
        consumer.close()
    assert result.get(timeout=1) == 6
