"""The bus contract (``canvas.bus.base``), run on memory, the embedded file, Redis and RabbitMQ.

Every class runs the same tests (``BusContract``) on its own bus; Redis and RabbitMQ must be
answering (``CANVAS_TEST_REDIS``, ``CANVAS_TEST_AMQP``): a missing server fails the tests.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from canvas.bus import for_transport
from canvas.bus.base import Bus, BusMessage, Subscription
from canvas.bus.memory import MemoryBus
from canvas.transports import create
from tests.support.servers import AMQP_URL, REDIS_URL, redis_db, require_service

pytestmark = pytest.mark.integration


def drain(sub: Subscription, count: int, timeout: float = 5.0) -> list[BusMessage]:
    """``count`` messages, or fewer when the deadline passes first."""
    got: list[BusMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        message = sub.get(timeout=max(0.0, deadline - time.monotonic()))
        if message is not None:
            got.append(message)
    return got


class BusContract:
    @pytest.fixture
    def bus(self) -> Iterator[Bus]:
        raise NotImplementedError

    @pytest.fixture
    def topic(self) -> str:
        return f"test.{uuid.uuid4().hex[:10]}"

    def test_a_subscriber_gets_what_is_published_after_it_subscribed(
        self, bus: Bus, topic: str
    ) -> None:
        # Given a message before the subscription and one after it
        bus.publish(topic, b"before")
        with bus.subscribe([topic]) as sub:
            bus.publish(topic, b"\x00after\xff")
            # Then only the second arrives, bytes intact, with its topic
            assert drain(sub, 2, timeout=1.0) == [BusMessage(topic, b"\x00after\xff")]

    def test_every_subscriber_gets_its_own_copy(self, bus: Bus, topic: str) -> None:
        with bus.subscribe([topic]) as one, bus.subscribe([topic]) as two:
            bus.publish(topic, b"hello")
            assert [m.payload for m in drain(one, 1)] == [b"hello"]
            assert [m.payload for m in drain(two, 1)] == [b"hello"]

    def test_topics_are_separate_and_one_subscription_may_hold_several(
        self, bus: Bus, topic: str
    ) -> None:
        other, third = topic + ".other", topic + ".third"
        with bus.subscribe([topic, other]) as sub:
            bus.publish(third, b"not mine")
            bus.publish(other, b"o")
            bus.publish(topic, b"t")
            got = drain(sub, 3, timeout=1.0)
        assert sorted((m.topic, m.payload) for m in got) == sorted([(other, b"o"), (topic, b"t")])

    def test_one_publishers_order_is_kept(self, bus: Bus, topic: str) -> None:
        with bus.subscribe([topic]) as sub:
            for i in range(200):
                bus.publish(topic, str(i).encode())
            assert [int(m.payload) for m in drain(sub, 200)] == list(range(200))

    def test_get_waits_for_its_timeout_then_returns_none(self, bus: Bus, topic: str) -> None:
        with bus.subscribe([topic]) as sub:
            started = time.monotonic()
            assert sub.get(timeout=0.3) is None
            assert 0.25 <= time.monotonic() - started < 3.0

    def test_publish_from_other_threads(self, bus: Bus, topic: str) -> None:
        with bus.subscribe([topic]) as sub:
            threads = [
                threading.Thread(target=bus.publish, args=(topic, f"{i}".encode()))
                for i in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(int(m.payload) for m in drain(sub, 8)) == list(range(8))

    def test_a_bad_topic_is_refused_with_its_name(self, bus: Bus) -> None:
        with pytest.raises(ValueError, match="a#b"):
            bus.publish("a#b", b"x")
        with pytest.raises(ValueError, match="no topic|at least one topic"):
            bus.subscribe([])


class TestMemory(BusContract):
    @pytest.fixture
    def bus(self) -> Iterator[Bus]:
        yield MemoryBus()


class ForkContract(BusContract):
    def test_a_forked_child_publishes_on_its_own_connection(self, bus: Bus, topic: str) -> None:
        with bus.subscribe([topic]) as sub:
            bus.publish(topic, b"parent")
            pid = os.fork()
            if pid == 0:
                try:
                    bus.publish(topic, b"child")
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            bus.publish(topic, b"parent again")
            got = sorted(m.payload for m in drain(sub, 3))
        assert got == [b"child", b"parent", b"parent again"]


class TestEmbedded(ForkContract):
    @pytest.fixture
    def bus(self, tmp_path: Path) -> Iterator[Bus]:
        transport = create(f"embedded://{tmp_path}/broker.db")
        bus = for_transport(transport)
        yield bus
        bus.close()
        transport.close()

    def test_memory_url_shares_the_transports_private_file(self, topic: str) -> None:
        transport = create("memory://")
        try:
            one, two = for_transport(transport), for_transport(transport)
            with one.subscribe([topic]) as sub:
                two.publish(topic, b"x")
                assert [m.payload for m in drain(sub, 1)] == [b"x"]
        finally:
            transport.close()


class TestRedis(ForkContract):
    @pytest.fixture
    def bus(self) -> Iterator[Bus]:
        require_service("Redis", REDIS_URL)
        bus = for_transport(create(REDIS_URL))
        yield bus
        bus.close()

    def test_databases_of_one_server_do_not_hear_each_other(self, bus: Bus, topic: str) -> None:
        other = for_transport(create(redis_db(12)))
        try:
            with bus.subscribe([topic]) as sub:
                other.publish(topic, b"other database")
                bus.publish(topic, b"mine")
                assert [m.payload for m in drain(sub, 2, timeout=1.0)] == [b"mine"]
        finally:
            other.close()


class TestAMQP(BusContract):
    @pytest.fixture
    def bus(self) -> Iterator[Bus]:
        require_service("RabbitMQ", AMQP_URL)
        bus = for_transport(create(AMQP_URL))
        yield bus
        bus.close()
