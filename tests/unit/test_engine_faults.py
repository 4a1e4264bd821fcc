"""Workflows finish even when a node's worker dies mid-completion, a node raises Ignore, a node's
message is dead-lettered, or a result is too big to pass on. Runs the real engine in-process
(memory broker and store, the worker's own ``Handler``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from canvas import Canvas, chord, states
from canvas.core import complete, metas
from canvas.exceptions import Ignore, PayloadTooLarge, TaskRejectedError, TaskRevokedError
from canvas.transports.base import OutgoingMessage
from tests.support.engine import drain


@pytest.fixture
def app() -> Iterator[Canvas]:
    app = Canvas("faults", broker="memory://", backend="memory://", set_as_current=False)

    @app.task(name="faults.add")
    def add(x, y):
        return x + y

    @app.task(name="faults.tsum")
    def tsum(numbers):
        return sum(numbers)

    @app.task(name="faults.ignored")
    def ignored(x):
        raise Ignore()

    @app.task(name="faults.big")
    def big(x):
        return "x" * 5000

    yield app
    app.close()


def test_a_worker_dying_between_complete_and_publish_loses_nothing(app: Canvas) -> None:
    # Given a chain a -> b whose first node completed in the store, but whose worker died before
    # publishing b (simulated: complete() without the publishing step),
    add = app.tasks["faults.add"]
    result = (add.s(1, 1) | add.s(10)).apply_async()
    first = result.parent
    consumer = app.transport.consumer([str(app.conf.task_default_queue)], 1)
    delivery = consumer.get(timeout=0)
    assert delivery is not None and delivery.headers["id"] == first.id
    meta = metas.make_meta(first.id, states.SUCCESS, 2, workflow=result.id)
    app.backend.complete(result.id, first.id, states.SUCCESS, metas.encode(meta))
    # when the node's message comes back (its lease ran out) and a worker handles it,
    delivery.reject(requeue=True)
    consumer.close()
    drain(app)
    # then the successor was published after all, and ran once.
    assert result.get(timeout=1) == 12
    assert app.transport.size(str(app.conf.task_default_queue)) == 0


def test_rewire_does_not_republish_what_already_ran(app: Canvas) -> None:
    add = app.tasks["faults.add"]
    result = (add.s(1, 1) | add.s(10)).apply_async()
    drain(app)
    assert result.get(timeout=1) == 12
    complete.rewire(app, result.id, result.parent.id)
    assert drain(app) == 0


def test_ignore_inside_a_workflow_settles_its_descendants(app: Canvas) -> None:
    add, ignored = app.tasks["faults.add"], app.tasks["faults.ignored"]
    result = (add.s(1, 1) | ignored.s() | add.s(3)).apply_async()
    drain(app)
    with pytest.raises(TaskRevokedError, match="Ignore"):
        result.get(timeout=1)


def test_a_dead_lettered_workflow_node_fails_its_descendants(app: Canvas) -> None:
    add, tsum = app.tasks["faults.add"], app.tasks["faults.tsum"]
    result = chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()
    first = result.parent.results[0]
    # Replace the first header message by one with a body no serializer can read.
    consumer = app.transport.consumer([str(app.conf.task_default_queue)], 2)
    held = [consumer.get(timeout=0), consumer.get(timeout=0)]
    for delivery in held:
        assert delivery is not None
        if delivery.headers["id"] == first.id:
            garbled = OutgoingMessage(delivery.queue, b"\xc1", dict(delivery.headers))
            app.transport.publish([garbled])
        else:
            app.transport.publish(
                [OutgoingMessage(delivery.queue, delivery.body, dict(delivery.headers))]
            )
        delivery.ack()
    consumer.close()
    drain(app)
    with pytest.raises(TaskRejectedError, match="dead-lettered"):
        result.get(timeout=1)
    assert app.transport.size(str(app.conf.task_default_queue) + ".dlq") == 1


def test_a_result_too_big_to_pass_on_fails_the_successor(app: Canvas) -> None:
    app.conf.task_max_payload_bytes = 1000
    big, add = app.tasks["faults.big"], app.tasks["faults.add"]
    result = (big.s(1) | add.s("y")).apply_async()
    drain(app)
    with pytest.raises(PayloadTooLarge):
        result.get(timeout=1)


def test_an_oversized_later_node_is_refused_before_anything_is_published(app: Canvas) -> None:
    app.conf.task_max_payload_bytes = 1000
    add = app.tasks["faults.add"]
    with pytest.raises(PayloadTooLarge, match="nothing was published"):
        (add.s(1, 1) | add.s("x" * 5000)).apply_async()
    assert app.transport.size(str(app.conf.task_default_queue)) == 0
