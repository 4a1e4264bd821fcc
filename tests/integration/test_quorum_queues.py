"""RabbitMQ quorum queues: Celery's settings, the declared arguments, the broker's delivery limit
feeding the dead-letter queue, and a consumer of several quorum queues (no global prefetch).

Against the test RabbitMQ (``CANVAS_TEST_AMQP``); every test uses queues of its own and deletes
them. The workflow tests on quorum queues are in ``test_cluster_workflows``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kombu import Queue
from kombu.connection import Connection

from canvas import Canvas
from canvas.config import queue_options
from canvas.exceptions import ImproperlyConfigured
from canvas.transports import OutgoingMessage
from canvas.transports import create as create_transport
from canvas.transports.kombu import AMQPTransport

pytestmark = pytest.mark.integration


@pytest.fixture
def names(amqp_url: str) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    with Connection(amqp_url) as conn:
        channel = conn.channel()
        for name in made:
            for queue in (name, name + ".dlq"):
                channel.queue_delete(queue)


def _name(names: list[str]) -> str:
    names.append(f"quorum-{uuid.uuid4().hex[:8]}")
    return names[-1]


# -- settings ------------------------------------------------------------------------------------
def test_celery_settings_become_transport_options() -> None:
    app = Canvas("q", set_as_current=False)
    assert queue_options(app.conf) == {}
    app.conf.task_default_queue_type = "quorum"
    app.conf.worker_max_deliveries = 5
    assert queue_options(app.conf) == {
        "queue_type": "quorum",
        "queue_arguments": {},
        "delivery_limit": 5,
    }
    app.conf.task_default_queue_type = "classic"
    app.conf.task_queues = [Queue("orders", queue_arguments={"x-queue-type": "quorum"})]
    assert queue_options(app.conf)["queue_arguments"] == {"orders": {"x-queue-type": "quorum"}}


def test_an_unknown_queue_type_is_named() -> None:
    app = Canvas("q", set_as_current=False, task_default_queue_type="qorum")
    with pytest.raises(ImproperlyConfigured, match="'qorum'"):
        queue_options(app.conf)


def test_declared_arguments_per_queue_type() -> None:
    transport = AMQPTransport(
        "amqp://guest:guest@127.0.0.1:5672//",
        {
            "queue_type": "quorum",
            "delivery_limit": 3,
            "queue_arguments": {"legacy": {"x-queue-type": "classic"}},
        },
    )
    assert transport.arguments("jobs") == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "jobs.dlq",
        "x-delivery-limit": 3,
    }
    assert transport.arguments("jobs.dlq") == {"x-queue-type": "quorum"}
    assert transport.arguments("legacy")["x-max-priority"] == 9
    assert "x-queue-type" not in transport.arguments("legacy")
    # The storage version is a classic queue's: a quorum queue refuses it
    assert transport.arguments("legacy")["x-queue-version"] == 2
    assert "x-queue-version" not in transport.arguments("jobs")
    assert transport.is_quorum("jobs") and not transport.is_quorum("legacy")


# -- on RabbitMQ ---------------------------------------------------------------------------------
def test_the_delivery_limit_dead_letters_into_the_dlq(amqp_url: str, names: list[str]) -> None:
    queue = _name(names)
    transport = create_transport(amqp_url, {"queue_type": "quorum", "delivery_limit": 2})
    consumer = None
    try:
        transport.publish([OutgoingMessage(queue, b"poison", {"id": "p"})])
        consumer = transport.consumer([queue])
        # Given a message handed out three times, given back each time (its workers died)
        counts = []
        for _ in range(3):
            delivery = consumer.get(10.0)
            assert delivery is not None
            counts.append(delivery.headers.get("x-delivery-count", 0))
            delivery.reject(requeue=True)
        # Then the broker moved it to the dead-letter queue, not to a fourth delivery
        assert counts == [0, 1, 2]
        assert consumer.get(1.0) is None
        dead = transport.consumer([queue + ".dlq"])
        try:
            letter = dead.get(10.0)
            assert letter is not None and letter.body == b"poison"
            letter.ack()
        finally:
            dead.close()
    finally:
        if consumer is not None:
            consumer.close()
        transport.close()


@pytest.mark.parametrize("signed", [False, True], ids=["plain", "signed"])
def test_a_message_handed_back_after_an_outage_does_not_count_towards_the_limit(
    amqp_url: str, names: list[str], signed: bool
) -> None:
    # A worker whose result store is failing over hands its message back (release) again and
    # again: the broker's delivery limit is for messages that kill their workers, not for that.
    queue = _name(names)
    keys = {"security_key": "k" * 32} if signed else {}
    app = Canvas(
        "released",
        broker=amqp_url,
        backend="memory://",
        task_default_queue_type="quorum",
        worker_max_deliveries=2,
        set_as_current=False,
        **keys,
    )
    transport = app.transport
    consumer = transport.consumer([queue])
    try:
        transport.publish([OutgoingMessage(queue, b"good", {"id": "g"})])
        seen = []
        for _ in range(5):
            delivery = consumer.get(10.0)
            assert delivery is not None, "the broker dead-lettered a message handed back"
            seen.append((delivery.redelivered, sorted(delivery.headers)))
            delivery.release()
        delivery = consumer.get(10.0)
        assert delivery is not None and delivery.body == b"good"
        delivery.ack()
        # Handed back, it is a redelivery to the worker (its duplicate checks apply), and the
        # marker that says so is not one of the message's headers
        assert seen == [(False, ["id"])] + [(True, ["id"])] * 4
        assert consumer.get(0.5) is None
    finally:
        consumer.close()
        app.close()


def test_one_consumer_of_two_quorum_queues_gets_from_both(amqp_url: str, names: list[str]) -> None:
    first, second = _name(names), _name(names)
    transport = create_transport(amqp_url, {"queue_type": "quorum"})
    try:
        transport.publish([OutgoingMessage(q, q.encode(), {}) for q in (first, second)])
        consumer = transport.consumer([first, second], prefetch=1)
        try:
            got = []
            for _ in range(2):
                delivery = consumer.get(10.0)
                assert delivery is not None
                got.append(delivery.queue)
                delivery.ack()
            assert sorted(got) == sorted([first, second])
        finally:
            consumer.close()
    finally:
        transport.close()


def test_a_classic_queue_asked_for_as_quorum_is_a_clear_error(
    amqp_url: str, names: list[str]
) -> None:
    queue = _name(names)
    classic = create_transport(amqp_url)
    classic.publish([OutgoingMessage(queue, b"x", {})])
    classic.close()
    quorum = create_transport(amqp_url, {"queue_type": "quorum"})
    try:
        with pytest.raises(ImproperlyConfigured, match="task_default_queue_type"):
            quorum.publish([OutgoingMessage(queue, b"y", {})])
    finally:
        quorum.close()
