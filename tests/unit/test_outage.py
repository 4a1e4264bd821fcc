"""An outage while a message is handled does not count as one of its deliveries.

The outage is injected into the in-memory store (its ``store`` refuses writes for a while), the
one stand-in here: a failover of a real cluster is exercised by the chaos suite.
"""

from __future__ import annotations

import sqlite3

import pytest
import redis.exceptions

from canvas import Canvas, states
from canvas.core.consumer import Handler
from canvas.transports.base import Delivery
from canvas.transports.outage import is_outage
from tests.support.engine import memory_app


class Refused(Exception):
    """Not an outage: the store answered and said no (a corrupted record, say)."""


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.ClusterDownError("The cluster is down"),
        redis.exceptions.TryAgainError("TRYAGAIN"),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        ConnectionResetError(104, "reset"),
        sqlite3.OperationalError("database is locked"),
    ],
)
def test_unreachable_servers_are_outages(exc: Exception) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ResponseError("WRONGTYPE Operation against a key"),
        ValueError("bad record"),
        KeyError("node"),
    ],
)
def test_answers_that_say_no_are_not_outages(exc: Exception) -> None:
    assert not is_outage(exc)


def test_an_error_raised_from_an_outage_is_one() -> None:
    try:
        try:
            raise redis.exceptions.ConnectionError("gone")
        except redis.exceptions.ConnectionError as cause:
            raise RuntimeError("could not complete") from cause
    except RuntimeError as exc:
        assert is_outage(exc)


def _app_failing_stores(error: Exception, failures: int) -> tuple[Canvas, list[str]]:
    """An app whose store refuses its first ``failures`` result writes with ``error``."""
    app = memory_app("outage", worker_max_deliveries=2, task_acks_late=True, result_expires=3600)
    ran: list[str] = []

    @app.task(name="outage.record")
    def record(x: str) -> str:
        ran.append(x)
        return x

    backend = app.backend
    real_store = backend.store
    left = [failures]

    def store(task_id: str, status: str, meta: bytes) -> None:
        if status in states.READY_STATES and left[0] > 0:
            left[0] -= 1
            raise error
        real_store(task_id, status, meta)

    backend.store = store  # type: ignore[method-assign]
    return app, ran


def _handle_as_the_worker_does(app: Canvas, rounds: int) -> list[Delivery]:
    """Fetch and handle ``rounds`` times, requeueing what fails as the worker's loop does;
    returns what reached the dead-letter queue."""
    queue = str(app.conf.task_default_queue)
    consumer = app.transport.consumer([queue], 1)
    handler = Handler(app, "outage-worker")
    try:
        for _ in range(rounds):
            delivery = consumer.get(timeout=0)
            if delivery is None:
                break
            try:
                handler.handle(delivery)
            except Exception:
                if not delivery.settled:
                    delivery.reject(requeue=True, reason="internal error in the worker")
    finally:
        consumer.close()
    dlq = app.transport.consumer([queue + ".dlq"], 1)
    dead = []
    try:
        while (delivery := dlq.get(timeout=0)) is not None:
            dead.append(delivery)
            delivery.ack()
    finally:
        dlq.close()
    return dead


def test_a_store_outage_longer_than_max_deliveries_loses_nothing() -> None:
    app, ran = _app_failing_stores(redis.exceptions.ClusterDownError("failing over"), 5)
    result = app.tasks["outage.record"].delay("a")
    assert _handle_as_the_worker_does(app, rounds=10) == []
    assert result.get(timeout=1) == "a"
    assert ran == ["a"] * 6  # at least once: each failed completion ran it again
    # the delivery that ran to the end is the one that counts
    assert app.backend.incr("deliveries:" + result.id, 60, by=0) == 1


def test_a_message_that_fails_its_store_writes_otherwise_is_still_dead_lettered() -> None:
    app, ran = _app_failing_stores(Refused("no"), 5)
    result = app.tasks["outage.record"].delay("b")
    dead = _handle_as_the_worker_does(app, rounds=10)
    assert [d.headers["id"] for d in dead] == [result.id]
    assert "worker_max_deliveries=2" in dead[0].headers["x-canvas-reason"]
    assert len(ran) == 2


class Broker:
    """A consumer's settling side whose release and reject fail as told."""

    def __init__(self, release_fails: bool, reject_fails: bool) -> None:
        self.release_fails, self.reject_fails = release_fails, reject_fails
        self.calls: list[str] = []

    def release(self, delivery: Delivery) -> None:
        self.calls.append("release")
        if self.release_fails:
            raise ConnectionError("confirm nacked")

    def reject(self, delivery: Delivery, requeue: bool = False, reason: str = "") -> None:
        self.calls.append(f"reject requeue={requeue}")
        if self.reject_fails:
            raise ConnectionError("channel closed")


@pytest.mark.parametrize(
    ("release_fails", "reject_fails", "calls", "handed_back"),
    [
        (False, False, ["release"], True),
        (True, False, ["release", "reject requeue=True"], True),
        (True, True, ["release", "reject requeue=True"], False),
    ],
)
def test_a_message_that_cannot_be_released_is_requeued_or_reported_held(
    release_fails: bool, reject_fails: bool, calls: list[str], handed_back: bool
) -> None:
    from canvas.core.worker import _hand_back

    broker = Broker(release_fails, reject_fails)
    delivery = Delivery("q", b"", {"id": "t1"}, "application/x-msgpack", False, None, broker)  # type: ignore[arg-type]
    outage = redis.exceptions.ConnectionError("Connection refused")
    # False tells the worker to close its consumer: the broker then returns what it held
    assert _hand_back(delivery, outage) is handed_back
    assert broker.calls == calls
