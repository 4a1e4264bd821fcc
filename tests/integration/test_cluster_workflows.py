"""The workflow tests of ``test_canvas_worker`` on clusters, against a real worker.

Two set-ups, one worker each (``canvas worker -c 2 -P prefork``):

* ``cluster``: Redis Cluster as broker and result store (``scripts/redis-cluster.sh``);
* ``quorum+cluster``: RabbitMQ quorum queues (``task_default_queue_type='quorum'``, on
  ``CANVAS_TEST_AMQP``) with the Redis Cluster result store.

The tests are the single-node ones (chains, groups, chords of 1,000, nested chords, duplicate
and late deliveries), taken from that module and run here with this module's harness.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import amqp.exceptions
import pytest
from kombu.connection import Connection

from canvas.transports.redis_cluster import RedisClusterTransport
from tests.integration import test_canvas_worker as single
from tests.support.redis_cluster import start_cluster
from tests.support.servers import AMQP_URL, check_amqp
from tests.support.worker_harness import clean_up_after

pytestmark = pytest.mark.integration

Harness = single.Harness
SETUPS = {"cluster": "redis+cluster", "quorum+cluster": "amqp"}

# The single node's workflow tests, run here on this module's ``h``.
test_chain = single.test_chain
test_group = single.test_group
test_issue_example_chord_after_chain = single.test_issue_example_chord_after_chain
test_chord_in_a_chain_in_a_group = single.test_chord_in_a_chain_in_a_group
test_chain_of_nine_chords = single.test_chain_of_nine_chords
test_group_of_chords_with_chain_bodies = single.test_group_of_chords_with_chain_bodies
test_chord_header_with_chains_and_nested_group = (
    single.test_chord_header_with_chains_and_nested_group
)
test_failed_chord_header_raises_the_first_failing_member_in_order = (
    single.test_failed_chord_header_raises_the_first_failing_member_in_order
)
test_chord_body_errback_fires_once = single.test_chord_body_errback_fires_once
test_retry_inside_a_chain = single.test_retry_inside_a_chain
test_duplicate_delivery_wires_the_chord_body_once = (
    single.test_duplicate_delivery_wires_the_chord_body_once
)
test_a_node_redelivered_after_the_fact_publishes_nothing = (
    single.test_a_node_redelivered_after_the_fact_publishes_nothing
)
test_thousand_member_group = single.test_thousand_member_group
test_thousand_member_chord = single.test_thousand_member_chord


@pytest.fixture(scope="module", params=list(SETUPS))
def h(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    cluster = start_cluster()
    quorum = request.param == "quorum+cluster"
    broker = check_amqp() if quorum else cluster
    tmp = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    saved = os.environ.get("CANVAS_IT_QUEUE_TYPE")
    os.environ["CANVAS_IT_QUEUE_TYPE"] = "quorum" if quorum else "classic"
    try:
        harness = single._start_worker(request.param, broker, cluster, tmp)
    finally:
        if saved is None:
            os.environ.pop("CANVAS_IT_QUEUE_TYPE")
        else:
            os.environ["CANVAS_IT_QUEUE_TYPE"] = saved
    try:
        started = time.monotonic()
        ping = harness.tasks.ping.delay()
        harness.sent.append(ping)
        harness.wait_for("the worker to answer a ping", lambda: ping.ready(), timeout=60)
        harness.timings["start"] = time.monotonic() - started
        yield harness
    finally:
        single._stop_worker(harness)
        clean_up_after(harness.app, harness.sent, AMQP_URL if quorum else None)
        shown = [f"{k} {v:.2f}s" for k, v in harness.timings.items()]
        sys.stderr.write(f"\n[{request.param}] {', '.join(shown)}\n")


def test_the_queue_is_of_the_kind_asked_for(h: Harness) -> None:
    queue = str(h.app.conf.task_default_queue)
    if h.name == "cluster":
        assert isinstance(h.app.transport, RedisClusterTransport)
        assert "{q:" + queue + "}" in h.app.transport.key(queue)
        return
    # A quorum queue: declaring it as a classic one is refused, and the worker consumes it.
    with Connection(AMQP_URL) as conn:
        channel = conn.channel()
        assert channel.queue_declare(queue, passive=True).consumer_count >= 1
        classic = h.app.transport.arguments(queue)  # type: ignore[attr-defined]
        classic.pop("x-queue-type")
        classic.pop("x-delivery-limit")
        with pytest.raises(amqp.exceptions.PreconditionFailed, match="x-queue-type"):
            channel.queue_declare(queue, durable=True, auto_delete=False, arguments=classic)
    assert h.send(h.tasks.add.s(1, 2)).get(timeout=single.DEADLINE) == 3


def test_a_countdown_is_parked_in_the_cluster_store_and_runs_when_due(h: Harness) -> None:
    started = time.monotonic()
    result = h.send(h.tasks.add.s(2, 3), countdown=1)
    assert result.get(timeout=single.DEADLINE) == 5
    assert time.monotonic() - started >= 0.9
