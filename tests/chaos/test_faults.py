"""Long chaos cases (``pytest -m chaos tests/chaos``): broker restarts, a 30-second blackhole,
dropped connections, a result-store outage during chords, and chord members killed.

Brokers and stores are the suite's private servers; the blackhole and the connection drop go
through a loopback proxy that only the workers use, so the test keeps publishing meanwhile.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from canvas import chord

from .harness import Cluster
from .proxy import Proxy
from .servers import RabbitServer, RedisServer, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


class Producer(threading.Thread):
    """Publishes ``n`` tasks one by one, each retried until the broker confirms it.

    ``pace`` seconds between publishes spread them over time, so that a restart lands in the
    middle of the stream rather than after it.
    """

    def __init__(self, case: Cluster, n: int, seconds: float = 0.0, pace: float = 0.01) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.case = case
        self.n = n
        self.seconds = seconds
        self.pace = threading.Event()
        self.interval = pace
        self.sent = 0
        self.failures = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(self.n):
                _, failures = self.case.ledger.send_until_confirmed("chaos.work", (i, self.seconds))
                self.failures += failures
                self.sent += 1
                self.pace.wait(self.interval)  # pacing, not synchronisation
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 120.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"the producer is stuck after {self.sent} of {self.n}"
        assert self.error is None, f"the producer gave up: {self.error!r}"


def _restart_case(case: Cluster, restart: Any, label: str) -> None:
    """Publish 600 tasks while workers consume; restart the broker after a third of them."""
    case.start_worker(concurrency=2)
    producer = Producer(case, 600, seconds=0.005)
    producer.start()
    wait_until(lambda: producer.sent >= 200, 60, "200 confirmed publishes")
    restart()
    restored = time.monotonic()
    recover = case.probe(timeout=90)
    producer.finish()
    verdict = case.finish(f"{label}; {producer.failures} publishes retried", recover)
    verdict.assert_ok()
    assert producer.failures > 0, "the restart did not land while publishing"
    assert recover < 30, f"the workers took {recover:.1f}s to resume"
    assert time.monotonic() - restored < 180


def test_redis_restart_mid_publish_and_mid_consume(cluster, broker_redis: RedisServer) -> None:
    case = cluster("redis-restart", CHAOS_LEASE="2")
    _restart_case(case, lambda: broker_redis.restart(down_for=2.0), "Redis broker down 2s")


def test_rabbitmq_restart_mid_publish_and_mid_consume(cluster, rabbit: RabbitServer) -> None:
    case = cluster("rabbitmq-restart", broker=rabbit.url, CHAOS_LEASE="2")

    def restart() -> None:
        rabbit.stop_app()
        time.sleep(2.0)  # the outage itself
        rabbit.start_app()

    _restart_case(case, restart, "RabbitMQ stop_app 2s + start_app")


def _blackhole_case(case: Cluster, proxy: Proxy, seconds: float) -> None:
    worker_broker = case.broker.replace(f":{proxy.target_port}", f":{proxy.port}")
    case.start_worker(concurrency=2, env={"CHAOS_BROKER": worker_broker})
    for i in range(20):
        case.ledger.send("chaos.work", (i, 0.2))
    case.wait_for_runs(2)
    proxy.blackhole()
    sent_during = [case.ledger.send("chaos.work", (i,)) for i in range(20)]
    time.sleep(seconds)  # the blackhole itself lasts this long
    proxy.restore()
    recover = case.probe(timeout=90)
    verdict = case.finish(f"{seconds:.0f}s blackhole of the workers' broker traffic", recover)
    verdict.assert_ok()
    assert len(sent_during) == 20
    assert recover < 20, f"the workers took {recover:.1f}s to resume after the blackhole"


def test_a_30s_blackhole_on_redis(cluster, broker_redis: RedisServer, proxies) -> None:
    case = cluster("blackhole-redis", CHAOS_LEASE="2")
    _blackhole_case(case, proxies(broker_redis.port), 30.0)


def test_a_30s_blackhole_on_rabbitmq(cluster, rabbit: RabbitServer, proxies) -> None:
    case = cluster("blackhole-rabbitmq", broker=rabbit.url, CHAOS_LEASE="2")
    _blackhole_case(case, proxies(rabbit.port), 30.0)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_dropped_connections_are_reopened(cluster, broker_redis, rabbit, proxies, broker) -> None:
    server = broker_redis if broker == "redis" else rabbit
    url = broker_redis.url() if broker == "redis" else rabbit.url
    case = cluster(f"drop-{broker}", broker=url, CHAOS_LEASE="2")
    proxy = proxies(server.port)
    case.start_worker(
        concurrency=2, env={"CHAOS_BROKER": url.replace(f":{server.port}", f":{proxy.port}")}
    )
    for i in range(30):
        case.ledger.send("chaos.work", (i, 0.05))
    case.wait_for_runs(3)
    for _ in range(3):
        opened = proxy.connections
        proxy.sever()
        wait_until(lambda n=opened: proxy.connections > n, 30, "the workers to connect again")
    recover = case.probe(timeout=60)
    verdict = case.finish("3 drops of every worker connection", recover)
    verdict.assert_ok()
    assert recover < 15


def test_result_store_outage_pauses_chords_which_then_finish_exactly(
    cluster, store_redis: RedisServer
) -> None:
    case = cluster("store-outage-chords", CHAOS_LEASE="2")
    case.start_worker(concurrency=2)
    bodies = [case.ledger.chord(8, seconds=0.05)[1] for _ in range(10)]
    case.wait_for_runs(10)
    store_redis.restart(down_for=5.0)
    recover = case.probe(timeout=90)
    verdict = case.finish("result store down 5s during 10 chords", recover, settle_timeout=180)
    verdict.assert_ok()
    assert len(bodies) == 10


def test_a_chord_member_killed_mid_task(cluster) -> None:
    case = cluster("chord-member-killed", CHAOS_LEASE="1")
    case.start_worker(concurrency=2)
    _, body = case.ledger.chord(10)
    # Traps are set once the ids exist; the members have not run yet while the worker warms up.
    victims = [t for t, e in case.ledger.expected.items() if t != body][:3]
    case.ledger.effects.executemany(
        "INSERT INTO traps (id, kind) VALUES (?, 'die-once')", [(v,) for v in victims]
    )
    verdict = case.finish("3 chord members SIGKILLed mid-task", case.probe())
    verdict.assert_ok()


def _chord_with_a_trapped_body(case: Cluster, trap: str, seconds: float = 0.0) -> None:
    header = [case.ledger.sig("chaos.work", i) for i in range(5)]
    body = case.ledger.sig("chaos.tsum", kwargs={"seconds": seconds})
    case.ledger.effects.execute(
        "INSERT INTO traps (id, kind) VALUES (?, ?)", (body.options["task_id"], trap)
    )
    case.ledger.send_canvas(chord(header, body), [*header, body], {body.options["task_id"]: 5})
    case.start_worker(concurrency=2)


def test_a_chord_member_killed_before_publishing_the_body(cluster) -> None:
    # Whichever member completes last dies after complete(), before it publishes the body.
    case = cluster("chord-kill-before-publish", CHAOS_LEASE="1")
    _chord_with_a_trapped_body(case, "die-before-publish")
    case.finish("SIGKILL between complete() and the body's publish", settle_timeout=20).assert_ok()


def test_a_chord_member_killed_after_publishing_the_body(cluster) -> None:
    # Whichever member completes last dies after publishing the body, before acking itself; its
    # message comes back while the body still runs.
    case = cluster("chord-kill-after-publish", CHAOS_LEASE="1")
    _chord_with_a_trapped_body(case, "die-after-publish", seconds=4.0)
    case.finish("SIGKILL between the body's publish and the ack", settle_timeout=20).assert_ok()


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_other_pools_survive_a_broker_restart(cluster, broker_redis: RedisServer, pool) -> None:
    case = cluster(f"redis-restart-{pool}", CHAOS_LEASE="2")
    worker = case.start_worker("-P", pool, concurrency=2)
    for i in range(20):
        case.ledger.send("chaos.work", (i, 0.05))
    case.wait_for_runs(2)
    broker_redis.restart(down_for=2.0)
    assert worker.proc.poll() is None, f"the {pool} worker exited:\n{worker.output()[-2000:]}"
    recover = case.probe(timeout=30)
    case.finish(f"Redis broker down 2s ({pool} pool)", recover).assert_ok()


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_producer_never_reports_sent_while_the_broker_is_unreachable(
    cluster, broker_redis, rabbit, proxies, broker
) -> None:
    server = broker_redis if broker == "redis" else rabbit
    url = broker_redis.url() if broker == "redis" else rabbit.url
    proxy = proxies(server.port)
    behind = url.replace(f":{server.port}", f":{proxy.port}")
    case = cluster(f"producer-blackhole-{broker}", broker=behind, CHAOS_LEASE="2")
    case.start_worker(concurrency=1, env={"CHAOS_BROKER": url})
    case.ledger.send("chaos.work", (0,))  # connections are open before the blackhole
    proxy.blackhole()
    outcome: dict[str, Any] = {}

    def publish() -> None:
        try:
            outcome["id"] = case.ledger.send("chaos.work", (1,))
            outcome["returned_at"] = time.monotonic()
        except Exception as exc:  # a refusal is a correct answer too
            outcome["error"] = exc

    sender = threading.Thread(target=publish, daemon=True)
    sender.start()
    sender.join(3.0)  # three seconds of blackhole: the publish must not have been confirmed
    assert "id" not in outcome, "publish returned although the broker could not have confirmed"
    restored = time.monotonic()
    proxy.restore()
    sender.join(60)
    assert not sender.is_alive()
    if "id" in outcome:
        assert outcome["returned_at"] >= restored
    case.finish(
        f"publish during a blackhole: {'confirmed after' if 'id' in outcome else 'raised'}"
    ).assert_ok()
