"""Redis Cluster as broker, result store and bus: the key layout, polling and completion.

The cluster is the local one of ``scripts/redis-cluster.sh`` (started once per session, a
failure to start fails the tests). Every test uses names of its own, so runs may share it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import RedisCluster

from canvas import Canvas
from canvas.backends import NodeRecord
from canvas.backends import create as create_backend
from canvas.backends.redis_cluster import RedisClusterBackend
from canvas.bus import for_transport
from canvas.exceptions import ImproperlyConfigured
from canvas.transports import OutgoingMessage
from canvas.transports import create as create_transport
from canvas.transports.redis_cluster import RedisClusterTransport, cluster_client
from tests.support.redis_cluster import start_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def cluster_url() -> str:
    return start_cluster()


@pytest.fixture
def client(cluster_url: str) -> Iterator[RedisCluster]:
    made = cluster_client(cluster_url)
    yield made
    made.close()


@pytest.fixture
def transport(cluster_url: str) -> Iterator[RedisClusterTransport]:
    made = create_transport(cluster_url, {"prefix": f"t{uuid.uuid4().hex[:6]}"})
    assert isinstance(made, RedisClusterTransport)
    yield made
    made.close()


@pytest.fixture
def store(cluster_url: str) -> Iterator[RedisClusterBackend]:
    made = create_backend(cluster_url, {"prefix": f"s{uuid.uuid4().hex[:6]}", "expires": 600})
    assert isinstance(made, RedisClusterBackend)
    yield made
    made.close()


def _queues_on_every_primary(client: RedisCluster, transport: RedisClusterTransport) -> list[str]:
    """Queue names whose keys land on three different primaries."""
    found: dict[Any, str] = {}
    for i in range(200):
        name = f"q{i}"
        node = client.get_node_from_key(transport.key(name))
        found.setdefault(node.name, name)
        if len(found) == 3:
            return list(found.values())
    raise AssertionError("three queues on three primaries not found")


# -- URLs ----------------------------------------------------------------------------------------
def test_a_url_names_several_nodes_and_a_bad_one_is_named(cluster_url: str) -> None:
    made = cluster_client("redis+cluster://127.0.0.1:7001,127.0.0.1:7002/")
    try:
        assert made.ping()
    finally:
        made.close()
    with pytest.raises(ImproperlyConfigured, match="host:port, got 'nohost'"):
        cluster_client("redis+cluster://127.0.0.1:7000,nohost/")


# -- the transport -------------------------------------------------------------------------------
def test_a_queue_and_its_dead_letters_share_one_slot(
    client: RedisCluster, transport: RedisClusterTransport
) -> None:
    slot = client.keyslot(transport.key("orders"))
    assert {
        client.keyslot(key)
        for key in (
            transport.key("orders", 9),
            transport.key("orders.dlq"),
            f"{transport.key_space('orders')}:consumers",
        )
    } == {slot}
    assert client.keyslot(transport.key("invoices")) != slot


def test_one_consumer_polls_queues_on_three_primaries_fairly(
    client: RedisCluster, transport: RedisClusterTransport
) -> None:
    queues = _queues_on_every_primary(client, transport)
    # Given ten messages in each of three queues, each queue on another primary
    transport.publish(
        [OutgoingMessage(q, f"{q}-{i}".encode(), {"n": i}) for i in range(10) for q in queues]
    )
    consumer = transport.consumer(queues, prefetch=100)
    try:
        # When one consumer takes nine
        first = [consumer.get(5.0) for _ in range(9)]
        # Then each queue gave three: none waits for another to drain
        assert sorted(d.queue for d in first if d) == sorted(queues * 3)
        for delivery in first:
            assert delivery is not None
            delivery.ack()
        rest = []
        while (delivery := consumer.get(0.5)) is not None:
            rest.append(delivery)
            delivery.ack()
        assert len(rest) == 21
        assert all(transport.size(q) == 0 for q in queues)
    finally:
        consumer.close()


def test_reject_dead_letters_in_the_queue_slot_and_close_gives_back(
    transport: RedisClusterTransport,
) -> None:
    transport.publish([OutgoingMessage("jobs", b"a", {}), OutgoingMessage("jobs", b"b", {})])
    consumer = transport.consumer(["jobs"], prefetch=2)
    first, second = consumer.get(5.0), consumer.get(5.0)
    assert first is not None and second is not None
    first.reject(requeue=False, reason="bad input")
    consumer.close()  # second is still held: it goes back
    assert transport.size("jobs.dlq") == 1 and transport.size("jobs") == 1
    again = transport.consumer(["jobs.dlq", "jobs"], prefetch=2)
    try:
        got = {d.queue: d for d in (again.get(5.0), again.get(5.0)) if d}
        assert got["jobs.dlq"].headers["x-canvas-reason"] == "bad input"
        assert got["jobs"].redelivered and got["jobs"].body == second.body
    finally:
        again.close()


def test_a_dead_consumer_s_deliveries_come_back_in_each_slot(
    client: RedisCluster, cluster_url: str
) -> None:
    transport = create_transport(cluster_url, {"prefix": f"t{uuid.uuid4().hex[:6]}"})
    transport.visibility_timeout = 0.5
    queues = _queues_on_every_primary(client, transport)
    transport.publish([OutgoingMessage(q, q.encode(), {}) for q in queues])
    dead = transport.consumer(queues, prefetch=3)
    held = [dead.get(5.0) for _ in queues]
    assert all(held)
    dead.client.close()  # it stops beating, and never settles
    survivor = transport.consumer(queues, prefetch=3)
    try:
        back = []
        while len(back) < 3:
            delivery = survivor.get(10.0)
            assert delivery is not None, "a dead consumer's delivery never came back"
            back.append(delivery)
            delivery.ack()
        assert sorted(d.queue for d in back) == sorted(queues) and all(d.redelivered for d in back)
    finally:
        survivor.close()
        transport.close()


# -- the store -----------------------------------------------------------------------------------
def _chord(store: RedisClusterBackend, workflow: str, members: int) -> list[str]:
    ids = [f"m{i}" for i in range(members)]
    nodes = [NodeRecord(i, f"spec-{i}".encode(), ("body",), 0) for i in ids]
    nodes.append(NodeRecord("body", b"spec-body", (), members))
    store.save_workflow(workflow, nodes, b"info")
    return ids


def test_store_keys_of_a_workflow_share_its_slot(
    client: RedisCluster, store: RedisClusterBackend
) -> None:
    key = store._workflow_key("w1")
    assert "{wf:w1}" in key
    assert client.keyslot(key) == client.keyslot("{wf:w1}")


def test_a_chord_join_fires_once_and_metas_are_found_by_task_id(
    store: RedisClusterBackend,
) -> None:
    workflow = uuid.uuid4().hex
    ids = _chord(store, workflow, 50)
    fired = [f for i in ids for f in store.complete(workflow, i, "SUCCESS", i.encode())]
    assert [(f.id, f.spec) for f in fired] == [("body", b"spec-body")]
    assert store.get(ids) == [i.encode() for i in ids]  # one MGET per slot
    assert store.wait(ids[-1], timeout=5) == ids[-1].encode()
    store.forget(ids)
    assert store.get(ids) == [None] * 50


def test_complete_again_after_a_crash_between_its_steps_hands_out_the_same_join(
    store: RedisClusterBackend,
) -> None:
    workflow = uuid.uuid4().hex
    ids = _chord(store, workflow, 2)
    store.complete(workflow, ids[0], "SUCCESS", b"0")
    # Given a worker that died after step 1 of the last member's complete (no meta, no mark)
    script = store._conn().scripts["complete_workflow"]
    meta = b"SUCCESS\n1"
    first = script(keys=store._workflow_keys(workflow), args=[ids[1], meta, 60000])
    assert first[1:] == [1, b"body", b"spec-body"] and store.get([ids[1]]) == [None]
    # When its message runs again: the join comes out again, and the meta is written
    again = store.complete(workflow, ids[1], "SUCCESS", b"1")
    assert [(f.id, f.spec) for f in again] == [("body", b"spec-body")]
    assert store.get([ids[1]]) == [b"1"]
    # Then once the meta is marked written, a third run changes nothing (the first meta wins)
    assert store.complete(workflow, ids[1], "FAILURE", b"x") == []
    assert store.get([ids[1]]) == [b"1"]


def test_a_join_fired_while_an_input_is_between_steps_writes_that_input_s_meta(
    store: RedisClusterBackend,
) -> None:
    workflow = uuid.uuid4().hex
    ids = _chord(store, workflow, 2)
    # Given a member whose worker finished step 1 (counted) but not yet step 2 (its meta)
    script = store._conn().scripts["complete_workflow"]
    script(keys=store._workflow_keys(workflow), args=[ids[0], b"SUCCESS\n0", 60000])
    assert store.get([ids[0]]) == [None]
    # When the last member completes and fires the join
    fired = store.complete(workflow, ids[1], "SUCCESS", b"1")
    # Then every input of the join can be read by the caller that wires it
    assert [f.id for f in fired] == ["body"]
    assert store.get(ids) == [b"0", b"1"]
    # And the first member's own step 2 keeps that meta (the first terminal meta wins)
    assert store.complete(workflow, ids[0], "SUCCESS", b"0") == []
    assert store.get([ids[0]]) == [b"0"]


def test_a_run_claim_counts_in_the_workflow_slot_with_the_spec(
    store: RedisClusterBackend,
) -> None:
    workflow = uuid.uuid4().hex
    ids = _chord(store, workflow, 1)
    key = f"claim:{{{workflow}}}:{ids[0]}:0"
    assert store.claim_node(workflow, ids[0], key, 60) == (1, f"spec-{ids[0]}".encode())
    assert store.claim_node(workflow, ids[0], key, 60)[0] == 2
    assert store.claim_node(workflow, "m0", "other-key", 60) == (1, b"spec-m0")


def test_a_task_outside_any_workflow_is_stored_and_wakes_its_waiter(
    store: RedisClusterBackend,
) -> None:
    task = uuid.uuid4().hex
    assert store.complete("none", task, "SUCCESS", b"done") == []
    assert store.wait(task, timeout=5) == b"done"


def test_delayed_messages_leases_counters_and_revokes(store: RedisClusterBackend) -> None:
    store.schedule("k1", 1.0, b"p1")
    assert store.claim_due(2.0, lease=30) == [("k1", b"p1")]
    store.ack_scheduled(["k1"])
    assert store.next_due() is None
    assert store.acquire_lease("beat", "me", 5) and not store.acquire_lease("beat", "you", 5)
    assert store.incr("c", 60) == 1 and store.incr("c", 60) == 2
    store.add_revoked(["r1"], ttl=60)
    assert [t for t, _ in store.revoked_since(0)] == ["r1"]


# -- the bus -------------------------------------------------------------------------------------
def test_the_bus_reaches_a_subscriber_on_another_node(transport: RedisClusterTransport) -> None:
    bus = for_transport(transport)
    subscription = bus.subscribe(["scale-test"])
    try:
        bus.publish("scale-test", b"hello")
        message = subscription.get(5.0)
        assert message is not None and message.payload == b"hello"
    finally:
        subscription.close()
        bus.close()


def _wait_calls(client: RedisCluster, node: Any) -> int:
    stats = client.get_redis_connection(node).info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


def test_a_publish_waits_for_a_replica_of_its_queue_s_primary(
    client: RedisCluster, transport: RedisClusterTransport
) -> None:
    # Redis replicates asynchronously: a publish the primary confirmed is lost if the primary
    # dies before its replica has it, so the publish also waits for one replica (WAIT 1).
    queue = f"waited-{uuid.uuid4().hex[:6]}"
    key = transport.key(queue)
    primary = client.get_node_from_key(key)
    before = _wait_calls(client, primary)
    transport.publish([OutgoingMessage(queue, b"body", {"id": "w1", "task": "t"})])
    transport.publish(
        [OutgoingMessage(queue, b"body", {"id": f"w{i}", "task": "t"}) for i in range(2, 5)]
    )
    assert _wait_calls(client, primary) >= before + 2
    assert transport.size(queue) == 4


def test_a_completion_waits_for_a_replica_of_each_primary_it_wrote_to(
    client: RedisCluster, store: RedisClusterBackend
) -> None:
    # The worker acks a node's message after complete(): a primary that died before its replica
    # had the outcome would take it with it, so the outcome waits as a publish does.
    workflow, member = next(
        (w, "m0")
        for w in (uuid.uuid4().hex for _ in range(100))
        if client.get_node_from_key(store._workflow_key(w)).name
        != client.get_node_from_key(store._meta_key("m0")).name
    )
    _chord(store, workflow, 1)
    primaries = [
        client.get_node_from_key(store._workflow_key(workflow)),
        client.get_node_from_key(store._meta_key(member)),
    ]
    before = [_wait_calls(client, node) for node in primaries]
    assert [f.id for f in store.complete(workflow, member, "SUCCESS", b"1")] == ["body"]
    after = [_wait_calls(client, node) for node in primaries]
    assert all(a >= b + 1 for a, b in zip(after, before, strict=True)), (before, after)


def test_a_ready_result_waits_for_a_replica_and_progress_does_not(
    client: RedisCluster, store: RedisClusterBackend
) -> None:
    task = uuid.uuid4().hex
    primary = client.get_node_from_key(store._meta_key(task))
    before = _wait_calls(client, primary)
    store.store(task, "PROGRESS", b"half")
    assert _wait_calls(client, primary) == before
    store.store(task, "SUCCESS", b"done")
    assert _wait_calls(client, primary) == before + 1


def test_the_store_takes_replica_wait_from_result_backend_transport_options(
    cluster_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = Canvas(
        "replica-wait",
        broker="memory://",
        backend=cluster_url,
        result_backend_transport_options={"replica_wait": 0.5, "retry_policy": {}},
        set_as_current=False,
    )
    with caplog.at_level(logging.WARNING, logger="canvas"):
        backend = app.backend
    assert isinstance(backend, RedisClusterBackend) and backend.replica_wait.seconds == 0.5
    assert "'retry_policy' not read by the RedisClusterBackend store" in caplog.text
    backend.close()


def test_a_bad_replica_wait_is_refused_by_name(cluster_url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="replica_wait='soon'"):
        RedisClusterTransport(cluster_url, {"replica_wait": "soon"})
