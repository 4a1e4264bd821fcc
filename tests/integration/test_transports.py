"""The transport contract, run against the embedded store, Redis and RabbitMQ.

Every class here runs the same tests (``TransportContract``) on its own broker; leases are one
second long, and waits for a redelivery poll against a deadline. Redis and RabbitMQ must be
answering (``CANVAS_TEST_REDIS``, ``CANVAS_TEST_AMQP``); a missing server fails the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import amqp.exceptions
import pytest

from canvas.exceptions import ImproperlyConfigured
from canvas.transports import create
from canvas.transports.base import (
    REASON_HEADER,
    Consumer,
    Delivery,
    OutgoingMessage,
    reply_queue,
)
from tests.support.servers import amqp_connection, redis_db

pytestmark = pytest.mark.integration

# A database of its own: kombu's Redis lease index is shared by every queue of a database, and a
# one-second lease here would expire the deliveries of other test suites using the same server.
REDIS_URL = redis_db(13)
ROOT = Path(__file__).resolve().parents[2]
LEASE = 1.0

HEADERS = {"task": "proj.add", "id": "abc", "retries": 2, "eta": 1.5, "flag": True}
HEADERS |= {"none": None, "chain": ["a", "b"]}

# Takes one message, says so, then waits to be killed while holding it.
HOLDER = """
import sys, time
from canvas.transports import create
transport = create(sys.argv[1], {"visibility_timeout": float(sys.argv[3])})
consumer = transport.consumer([sys.argv[2]])
delivery = consumer.get(10)
print("holding" if delivery else "nothing", flush=True)
time.sleep(60)
"""


@pytest.fixture(scope="module")
def redis_url(redis_url: str) -> str:
    """The test Redis (checked by conftest's fixture), on a database of this module's own."""
    return REDIS_URL


def message(queue: str, body: bytes = b"body", priority: int | None = None) -> OutgoingMessage:
    return OutgoingMessage(queue, body, dict(HEADERS), "application/json", priority)


def get_within(consumer: Consumer, seconds: float) -> Delivery | None:
    """Poll until a delivery comes or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        delivery = consumer.get(min(remaining, 0.5))
        if delivery is not None:
            return delivery
    return None


class TransportContract:
    """What every transport guarantees (see ``canvas.transports.base``)."""

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    def cleanup(self, transport, names: list[str]) -> None:
        """Remove the queues a test made."""

    @pytest.fixture
    def transport(self, url):
        transport = create(url, {"visibility_timeout": LEASE})
        yield transport
        transport.close()

    @pytest.fixture
    def new_queue(self, transport):
        names: list[str] = []

        def new_queue() -> str:
            name = f"test-{uuid.uuid4().hex[:12]}"
            dlq = transport.dead_letters(name)
            names.extend([name, dlq, transport.dead_letters(dlq)])
            return name

        yield new_queue
        self.cleanup(transport, names)

    @pytest.fixture
    def queue(self, new_queue) -> str:
        return new_queue()

    @pytest.fixture
    def consumer(self, transport, queue):
        """Makes consumers, closed at the end of the test (before their queues are removed)."""
        made: list[Consumer] = []

        def consumer(queues: list[str] | None = None, prefetch: int = 1) -> Consumer:
            made.append(transport.consumer(queues or [queue], prefetch))
            return made[-1]

        yield consumer
        for c in made:
            c.close()

    def test_round_trip_keeps_body_headers_and_content_type(self, transport, queue, consumer):
        transport.publish([message(queue, b"\x00\x01payload")])
        delivery = get_within(consumer(), 5)
        assert delivery is not None
        assert (delivery.queue, delivery.body) == (queue, b"\x00\x01payload")
        assert delivery.headers == HEADERS
        assert delivery.content_type == "application/json"
        assert delivery.redelivered is False
        delivery.ack()
        assert transport.size(queue) == 0

    def test_fifo(self, transport, queue, consumer):
        transport.publish([message(queue, b"%d" % i) for i in range(20)])
        c = consumer()
        bodies = []
        for _ in range(20):
            delivery = get_within(c, 5)
            assert delivery is not None
            bodies.append(delivery.body)
            delivery.ack()
        assert bodies == [b"%d" % i for i in range(20)]

    def test_batch_of_1000_then_drain(self, transport, queue, consumer):
        transport.publish([message(queue, b"%d" % i) for i in range(1000)])
        assert transport.size(queue) == 1000
        c = consumer(prefetch=100)
        seen = set()
        while len(seen) < 1000:
            delivery = get_within(c, 5)
            assert delivery is not None, f"only {len(seen)} of 1000 came"
            seen.add(int(delivery.body))
            delivery.ack()
        assert seen == set(range(1000))
        assert c.get(0.1) is None

    def test_get_returns_none_after_timeout(self, queue, consumer):
        c = consumer()
        started = time.monotonic()
        assert c.get(0.3) is None
        assert 0.25 <= time.monotonic() - started < 2

    def test_a_message_is_picked_up_at_once(self, transport, queue, consumer):
        c = consumer()
        assert c.get(0.1) is None  # the consumer is idle and waiting
        timer = threading.Timer(0.2, transport.publish, [[message(queue)]])
        timer.start()
        started = time.monotonic()
        delivery = c.get(5)
        timer.join()
        assert delivery is not None
        assert time.monotonic() - started < 0.2 + 0.5
        delivery.ack()

    def test_get_without_waiting_still_looks(self, transport, queue, consumer):
        # A client polling its replies (AsyncResult.ready()) calls get(0) again and again.
        c = consumer()
        transport.publish([message(queue)])
        deadline = time.monotonic() + 5
        delivery = c.get(0)
        while delivery is None and time.monotonic() < deadline:
            delivery = c.get(0)
        assert delivery is not None, "get(0) never handed out the waiting message"
        delivery.ack()

    def test_a_reply_queue_round_trip(self, transport, consumer):
        replies = reply_queue(f"test{uuid.uuid4().hex[:12]}")
        try:
            transport.publish([message(replies, b"result")])
            delivery = get_within(consumer([replies]), 5)
            assert delivery is not None and delivery.body == b"result"
            delivery.ack()
        finally:
            self.cleanup(transport, [replies])

    def test_reject_with_requeue_redelivers(self, transport, queue, consumer):
        transport.publish([message(queue)])
        c = consumer()
        first = get_within(c, 5)
        assert first is not None
        first.reject(requeue=True)
        again = get_within(c, 5)
        assert again is not None
        assert again.redelivered is True
        assert (again.body, again.headers) == (first.body, HEADERS)
        again.ack()

    def test_reject_without_requeue_dead_letters_with_reason(self, transport, queue, consumer):
        transport.publish([message(queue, priority=3)])
        delivery = get_within(consumer(), 5)
        assert delivery is not None
        delivery.reject(requeue=False, reason="bad signature")
        dead = get_within(consumer([transport.dead_letters(queue)]), 5)
        assert dead is not None
        assert dead.queue == queue + ".dlq"
        assert dead.body == b"body"
        assert dead.headers == {**HEADERS, REASON_HEADER: "bad signature"}
        assert dead.content_type == "application/json"
        dead.reject(requeue=False, reason="still bad")  # from a dead-letter queue too
        deader = get_within(consumer([transport.dead_letters(dead.queue)]), 5)
        assert deader is not None
        assert deader.headers[REASON_HEADER] == "still bad"
        deader.ack()
        assert transport.size(queue) == transport.size(dead.queue) == 0

    def test_close_without_ack_gives_the_message_back(self, transport, queue, consumer):
        transport.publish([message(queue)])
        first = consumer()
        assert get_within(first, 5) is not None
        first.close()
        delivery = get_within(consumer(), 5)
        assert delivery is not None
        assert delivery.redelivered is True
        assert delivery.headers == HEADERS
        delivery.ack()

    def test_killed_consumer_gives_the_message_back(self, url, transport, queue, consumer):
        transport.publish([message(queue)])
        with subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, queue, str(LEASE)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            try:
                assert holder.stdout is not None
                assert holder.stdout.readline().strip() == "holding"
                waiting = consumer()  # alive: on Redis its polls restore expired leases
                assert waiting.get(0.2) is None  # held, not duplicated
            finally:
                holder.kill()
                holder.wait()
        delivery = get_within(waiting, LEASE + 10)
        assert delivery is not None, "the dead consumer's message never came back"
        assert delivery.redelivered is True
        delivery.ack()

    def test_extend_keeps_a_delivery(self, transport, queue, consumer):
        transport.publish([message(queue)])
        holder, other = consumer(), consumer()
        delivery = get_within(holder, 5)
        assert delivery is not None
        stop = threading.Event()

        def renew() -> None:  # as a worker does, from another thread
            while not stop.wait(LEASE / 4):
                holder.extend([delivery])

        renewer = threading.Thread(target=renew)
        renewer.start()
        try:
            assert other.get(LEASE * 1.75) is None  # past a lease and a sweep
        finally:
            stop.set()
            renewer.join()
        delivery.ack()
        assert other.get(LEASE + 0.3) is None

    def test_publish_from_many_threads(self, transport, queue):
        def publish() -> None:
            for _ in range(10):
                transport.publish([message(queue) for _ in range(5)])

        threads = [threading.Thread(target=publish) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert transport.size(queue) == 8 * 10 * 5

    def test_size_and_purge(self, transport, queue, new_queue):
        transport.publish([])
        transport.publish([message(queue) for _ in range(3)])
        assert transport.size(queue) == 3
        assert transport.purge(queue) == 3
        assert transport.size(queue) == 0
        never_used = new_queue()
        assert transport.size(never_used) == 0
        assert transport.purge(never_used) == 0

    def test_prefetch_bounds_unsettled_deliveries(self, transport, queue, consumer):
        transport.publish([message(queue, b"%d" % i) for i in range(5)])
        c = consumer(prefetch=2)
        first, second = get_within(c, 5), get_within(c, 5)
        assert first is not None and second is not None
        assert c.get(0.5) is None
        first.ack()
        third = get_within(c, 5)
        assert third is not None
        assert [d.body for d in (first, second, third)] == [b"0", b"1", b"2"]
        second.ack()
        third.ack()

    def test_higher_priority_first_then_fifo(self, transport, queue, consumer):
        transport.publish(
            [
                message(queue, b"low", priority=0),
                message(queue, b"high", priority=9),
                message(queue, b"mid", priority=5),
                message(queue, b"none"),
            ]
        )
        c = consumer()
        bodies = []
        for _ in range(4):
            delivery = get_within(c, 5)
            assert delivery is not None
            bodies.append(delivery.body)
            delivery.ack()
        assert bodies == [b"high", b"mid", b"low", b"none"]

    def test_one_consumer_of_several_queues(self, transport, queue, new_queue, consumer):
        other = new_queue()
        transport.publish([message(queue, b"a"), message(other, b"b")])
        c = consumer([queue, other], prefetch=2)
        got = {}
        for _ in range(2):
            delivery = get_within(c, 5)
            assert delivery is not None
            got[delivery.queue] = delivery.body
            delivery.ack()
        assert got == {queue: b"a", other: b"b"}

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_child_publishes_on_its_own_connection(self, transport, queue):
        transport.publish([message(queue, b"parent")])
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                transport.publish([message(queue, b"child")])
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        transport.publish([message(queue, b"parent again")])
        assert transport.size(queue) == 3


class TestEmbedded(TransportContract):
    @pytest.fixture
    def url(self, tmp_path) -> str:
        return f"embedded://{tmp_path}/broker.db"

    def test_replies_nobody_read_within_reply_expires_are_swept(self, url, queue):
        transport = create(url, {"reply_expires": 1e-6})
        gone, fresh = reply_queue("gone"), reply_queue("fresh")
        try:
            # Given an old reply and an old task message
            transport.publish([message(gone), message(queue)])
            # When a reply is published at the next sweep
            transport._next_sweep = 0.0
            transport.publish([message(fresh)])
            # Then only the old reply is gone
            assert (transport.size(gone), transport.size(fresh), transport.size(queue)) == (0, 1, 1)
        finally:
            transport.close()

    def test_memory_url_is_a_private_file_removed_at_close(self):
        transport = create("memory://")
        try:
            transport.publish([message("q")])
            c = transport.consumer(["q"])
            delivery = c.get(1)
            assert delivery is not None
            delivery.ack()
            c.close()
            path = transport.path
            assert path.exists()
        finally:
            transport.close()
        assert not path.exists()

    def test_relative_url(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        transport = create("embedded://data/broker.db")
        try:
            transport.publish([message("q")])
            assert transport.size("q") == 1
        finally:
            transport.close()
        assert (tmp_path / "data" / "broker.db").exists()

    def test_url_without_a_path_is_refused(self):
        with pytest.raises(ImproperlyConfigured, match="names no file"):
            create("embedded://")


class TestRedis(TransportContract):
    @pytest.fixture
    def url(self, redis_url) -> str:
        return redis_url

    def cleanup(self, transport, names: list[str]) -> None:
        for name in names:
            transport.purge(name)

    def test_a_reply_list_expires(self, url):
        transport = create(url, {"reply_expires": 30})
        replies = reply_queue(f"test{uuid.uuid4().hex[:12]}")
        try:
            transport.publish([message(replies)])
            assert 0 < transport.client.ttl(transport.key(replies)) <= 30
        finally:
            self.cleanup(transport, [replies])
            transport.close()

    # -- single sends go on a kept connection (canvas.transports.redis_lane) -----------------
    def _lane_id(self, transport) -> int:
        """The server's id of the kept connection (``CLIENT ID`` asked on it)."""
        conn = transport._lane._conn
        conn.send_command("CLIENT", "ID")
        return int(conn.read_response())

    def test_single_sends_share_one_kept_connection(self, transport, queue):
        for i in range(5):
            transport.publish([message(queue, b"%d" % i)])
        assert transport.size(queue) == 5
        first = self._lane_id(transport)
        transport.publish([message(queue)])
        assert self._lane_id(transport) == first

    def test_a_send_whose_kept_connection_was_killed_goes_through_once(self, transport, queue):
        # Given the kept connection, killed by the server (a restart, an idle timeout, a proxy)
        transport.publish([message(queue, b"first")])
        transport.client.client_kill_filter(_id=self._lane_id(transport))
        # When the next single send finds it dead
        transport.publish([message(queue, b"second")])
        # Then it is sent once, through the client, and the lane connects again after
        assert transport.size(queue) == 2
        transport.publish([message(queue, b"third")])
        assert transport.size(queue) == 3

    def test_threads_never_wait_for_the_kept_connection(self, transport, queue):
        # Eight threads sending at once: one holds the lane, the others use the client's pool
        def send() -> None:
            for i in range(50):
                transport.publish([message(queue, b"%d" % i)])

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert transport.size(queue) == 400

    def test_a_forked_child_sends_on_a_connection_of_its_own(self, transport, queue):
        transport.publish([message(queue, b"parent")])
        parent = self._lane_id(transport)
        pid = os.fork()
        if pid == 0:  # the child: a send, then say whose connection it used
            code = 1
            try:
                transport.publish([message(queue, b"child")])
                code = 0 if self._lane_id(transport) != parent else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        transport.publish([message(queue, b"parent again")])
        assert (self._lane_id(transport), transport.size(queue)) == (parent, 3)

    def test_close_closes_the_kept_connection(self, url, queue):
        transport = create(url)
        transport.publish([message(queue)])
        lane_id = self._lane_id(transport)
        transport.close()
        other = create(url)
        try:
            assert str(lane_id) not in {str(c["id"]) for c in other.client.client_list()}
        finally:
            self.cleanup(other, [queue])
            other.close()


class TestKombuRedis(TransportContract):
    @pytest.fixture
    def url(self, redis_url) -> str:
        return "kombu+" + redis_url

    def cleanup(self, transport, names: list[str]) -> None:
        for name in names:
            transport.purge(name)


class TestAMQP(TransportContract):
    @pytest.fixture
    def url(self, amqp_url) -> str:
        return amqp_url

    def cleanup(self, transport, names: list[str]) -> None:
        conn = amqp_connection()
        try:
            channel = conn.channel()
            # Consuming a dead-letter queue declares its own dead-letter queue too.
            for name in {*names, *map(transport.dead_letters, names)}:
                channel.queue_delete(name)
        finally:
            conn.close()

    def test_a_reply_queue_expires_and_has_no_dead_letter_queue(self, url):
        transport = create(url, {"reply_expires": 30})
        replies = reply_queue(f"test{uuid.uuid4().hex[:12]}")
        conn = amqp_connection()
        try:
            transport.publish([message(replies)])
            channel = conn.channel()
            # Declared as canvas declares it: the same arguments are accepted, so they match
            channel.queue_declare(
                replies, durable=True, auto_delete=False, arguments={"x-expires": 30000}
            )
            with pytest.raises(amqp.exceptions.NotFound):
                channel.queue_declare(transport.dead_letters(replies), passive=True)
        finally:
            conn.close()
            self.cleanup(transport, [replies])
            transport.close()

    def test_broker_dead_letters_land_on_the_dlq(self, transport, queue):
        transport.publish([message(queue)])
        conn = amqp_connection()
        try:
            channel = conn.channel()
            raw = channel.basic_get(queue)
            assert raw is not None
            channel.basic_reject(raw.delivery_tag, requeue=False)
        finally:
            conn.close()
        deadline = time.monotonic() + 5
        while transport.size(transport.dead_letters(queue)) != 1:
            assert time.monotonic() < deadline, "the broker did not dead-letter the message"
            time.sleep(0.02)

    def test_a_batch_beyond_the_confirm_window_arrives_whole_and_in_order(
        self, transport, queue, consumer
    ):
        # 2,500 messages cross the window of unconfirmed ones twice; one body spans frames.
        big = b"x" * (3 * 131072 + 17)
        batch = [message(queue, b"%d" % i) for i in range(2500)] + [message(queue, big)]
        transport.publish(batch)
        assert transport.size(queue) == len(batch)
        c = consumer(prefetch=100)
        for i in range(len(batch)):
            delivery = get_within(c, 5)
            assert delivery is not None
            assert delivery.body == batch[i].body
            assert delivery.headers == HEADERS
            delivery.ack()

    def test_deferred_confirms_are_read_later(self, transport, queue):
        # A worker wiring what an acked call made ready does not wait for each confirm: the
        # publish returns with the message held, and settle_confirms reads its confirm.
        with transport.defer_confirms():
            transport.publish([message(queue, b"later")])
        assert [m.body for link in transport._links.held() for m in link.held.values()] == [
            b"later"
        ]
        transport.settle_confirms()
        assert transport._links.held() == []
        assert transport.size(queue) == 1
        # Outside the block a publish waits for its confirm as before.
        transport.publish([message(queue, b"now")])
        assert transport._links.held() == []

    def test_a_refused_deferred_message_is_logged_by_id(self, url, queue, caplog):
        # The queue takes one message and refuses (nacks) the next.
        limited = {queue: {"x-max-length": 1, "x-overflow": "reject-publish"}}
        transport = create(url, {"queue_arguments": limited})
        try:
            transport.publish([message(queue, b"first")])
            refused = OutgoingMessage(queue, b"second", {**HEADERS, "id": "refused-id"})
            with transport.defer_confirms():
                transport.publish([refused])  # returns: the nack is read later
            with caplog.at_level("ERROR", logger="canvas.transports.kombu"):
                transport.settle_confirms()
            assert "refused (nacked) 1 message" in caplog.text
            assert "refused-id" in caplog.text
            # Without deferral the same refusal is the caller's error, as before.
            with pytest.raises(amqp.exceptions.MessageNacked):
                transport.publish([refused])
            assert transport.size(queue) == 1
        finally:
            self.cleanup(transport, [queue])
            transport.close()

    def test_a_connection_lost_before_the_confirm_publishes_the_message_again(
        self, transport, queue, consumer, monkeypatch
    ):
        with transport.defer_confirms():
            transport.publish([message(queue, b"held")])
        (link,) = transport._links.held()
        # As if the broker had lost it: taken out of the queue before its confirm is read...
        c = consumer()
        first = get_within(c, 5)
        assert first is not None and first.body == b"held"
        first.ack()

        # ...and the connection breaks before its confirm is read (the confirm is in the
        # socket's buffer already: the break is made where the read happens).
        def broken(*args, **kwargs):
            raise ConnectionResetError("connection reset by peer")

        monkeypatch.setattr(link.connection, "drain_events", broken)
        transport.settle_confirms()  # nothing to read on the dead socket: published again
        assert transport._links.held() == []
        again = get_within(c, 5)
        assert again is not None and again.body == b"held"
        again.ack()

    def test_confirms_off_still_delivers(self, url, queue, consumer):
        unconfirmed = create(url, {"confirm": "off"})
        try:
            assert unconfirmed.confirm is False
            unconfirmed.publish([message(queue, b"%d" % i) for i in range(50)])
            c = consumer()
            for i in range(50):
                delivery = get_within(c, 5)
                assert delivery is not None and delivery.body == b"%d" % i
                delivery.ack()
        finally:
            unconfirmed.close()

    @pytest.mark.parametrize(
        ("options", "confirm"),
        [({}, True), ({"confirm": "off"}, False), ({"confirm_publish": False}, False)],
    )
    def test_confirm_settings(self, url, options, confirm):
        assert create(url, options).confirm is confirm

    def test_a_bad_confirm_setting_is_refused(self, url):
        with pytest.raises(ImproperlyConfigured, match="broker_confirm"):
            create(url, {"confirm": "sometimes"})

    def test_new_queues_are_declared_with_storage_version_2(self, transport, queue):
        transport.publish([message(queue)])
        conn = amqp_connection()
        try:
            # RabbitMQ refuses a declaration whose x-queue-version differs from the queue's.
            for name in (queue, transport.dead_letters(queue)):
                declared = {**transport.arguments(name), "x-queue-version": 2}
                conn.channel().queue_declare(
                    name, durable=True, auto_delete=False, arguments=declared
                )
                with pytest.raises(amqp.exceptions.PreconditionFailed):
                    older = {**declared, "x-queue-version": 1}
                    conn.channel().queue_declare(
                        name, durable=True, auto_delete=False, arguments=older
                    )
        finally:
            conn.close()

    def test_a_queue_declared_without_a_version_is_used_quietly(
        self, transport, queue, consumer, caplog
    ):
        # Given the queue an earlier canvas declared: the same arguments, no storage version
        conn = amqp_connection()
        try:
            for name in (queue, transport.dead_letters(queue)):
                unversioned = dict(transport.arguments(name))
                unversioned.pop("x-queue-version")
                conn.channel().queue_declare(
                    name, durable=True, auto_delete=False, arguments=unversioned
                )
        finally:
            conn.close()
        with caplog.at_level("INFO", logger="canvas.transports.kombu"):
            transport.publish([message(queue, b"old")])
            c = consumer()
            delivery = get_within(c, 5)
            assert delivery is not None and delivery.body == b"old"
            delivery.reject(requeue=False, reason="to the old dlq")
        assert transport.size(transport.dead_letters(queue)) == 1
        assert not [r for r in caplog.records if r.levelname == "WARNING"]
        assert any("without a storage version" in r.getMessage() for r in caplog.records)

    @pytest.mark.parametrize(("value", "version"), [(None, 2), (1, 1), ("2", 2), (0, 0)])
    def test_queue_version_settings(self, url, value, version):
        options = {} if value is None else {"queue_version": value}
        transport = create(url, options)
        assert transport.queue_version == version
        assert transport.arguments("q").get("x-queue-version") == (version or None)

    @pytest.mark.parametrize("value", [3, "v2", True])
    def test_a_bad_queue_version_is_refused(self, url, value):
        with pytest.raises(ImproperlyConfigured, match="queue_version"):
            create(url, {"queue_version": value})
