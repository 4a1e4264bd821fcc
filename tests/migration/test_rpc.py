"""``result_backend='rpc://'``, Celery's tutorial default: results come back to the client that
sent the task as messages on its own reply queue, on RabbitMQ, Redis and Redis Cluster.

Real worker processes (``canvas -A tasks worker``) run ``tests/migration/rpc_first_steps``;
the test process is the client (and, with a second app, a second client).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from canvas import Canvas, chain, chord, group
from canvas.backends.rpc import RpcBackend
from canvas.exceptions import TimeoutError as CanvasTimeoutError
from canvas.exceptions import WorkerLostError
from canvas.transports.base import Consumer
from canvas.transports.kombu import KombuConsumer
from tests.support.migration import Project
from tests.support.redis_cluster import CLUSTER_URL, start_cluster
from tests.support.servers import AMQP_URL, REDIS_URL, check_amqp
from tests.support.workers import wait_for

pytestmark = pytest.mark.integration

BROKERS = {"rabbitmq": AMQP_URL, "redis": REDIS_URL, "redis-cluster": CLUSTER_URL}


@pytest.fixture(params=sorted(BROKERS))
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    if request.param == "rabbitmq":
        check_amqp()
    if request.param == "redis-cluster":
        start_cluster()
    proj = Project(
        "rpc_first_steps",
        tmp_path,
        broker_url=BROKERS[request.param],
        result_backend="rpc://",
        embedded_dir=str(tmp_path / "machine-a"),  # where a SQLite state store would live
    )
    try:
        yield proj
    finally:
        proj.close()


def second_client(tasks: Any) -> Canvas:
    """Another client of the same project: an app of its own, with its own reply queue."""
    other = Canvas("tasks", set_as_current=False)
    other.config_from_object("celeryconfig")
    return other


def backend_of(app: Canvas) -> RpcBackend:
    backend = app.backend
    assert isinstance(backend, RpcBackend)
    return backend


def cut(consumer: Consumer | None) -> None:
    """Shut the sockets under a consumer, as a broker restart or a reset connection would."""
    if isinstance(consumer, KombuConsumer):
        sockets = [consumer._connection.connection.sock]
    else:  # canvas's Redis consumer: its own client's connections (a cluster's: every node's)
        client: Any = getattr(consumer, "client", None)
        if isinstance(client, redis.RedisCluster):
            pools = [node.redis_connection.connection_pool for node in client.get_nodes()]
        else:
            pools = [client.connection_pool]
        sockets = [c._sock for pool in pools for c in pool._available_connections]
    sockets = [sock for sock in sockets if sock is not None]
    assert sockets, f"no socket found under {consumer!r}"
    for sock in sockets:
        sock.shutdown(socket.SHUT_RDWR)


def test_results_and_failures_come_back_to_the_caller(project: Project) -> None:
    project.worker("tasks", "-P", "threads", "-c", "2")
    tasks = project.load("tasks")
    # Given the tutorial's call
    result = tasks.add.delay(4, 4)
    # Then its result comes back as a message, as the tutorial shows: ready() sees it...
    wait_for(result.ready, 20, "the result to be ready")
    # ...and get() returns it
    assert result.get(timeout=20) == 8
    assert result.ready() and result.successful() and result.state == "SUCCESS"
    # And a failure raises the task's own exception
    failed = tasks.fail.delay("boom")
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=20)
    assert failed.state == "FAILURE"
    # And nothing was written to a store: the result travelled as a message
    backend = backend_of(tasks.app)
    assert backend.inner.get([result.id, failed.id]) == [None, None]


def test_states_before_the_outcome_come_back_too(project: Project) -> None:
    project.worker("tasks", "-P", "threads", "-c", "2")
    tasks = project.load("tasks")
    # Given a task that reports progress, then works on for a while
    result = tasks.report_progress.delay(2.0)
    # Then the client sees the custom state while it runs, then the outcome
    wait_for(lambda: result.state == "PROGRESS", 20, "the PROGRESS state")
    assert result.info == {"done": 1}
    assert result.get(timeout=20) == "finished"
    assert result.state == "SUCCESS"


def test_a_task_whose_process_dies_fails_at_its_caller(project: Project) -> None:
    # Given the prefork pool, whose supervisor records a call whose process died
    project.worker("tasks", "-c", "1")
    tasks = project.load("tasks")
    # Then the caller gets WorkerLostError as a reply, not a wait for ever
    with pytest.raises(WorkerLostError):
        tasks.exit_process.delay().get(timeout=30)
    assert tasks.add.delay(1, 1).get(timeout=30) == 2


def test_results_read_out_of_order_are_kept(project: Project) -> None:
    project.worker("tasks", "-P", "threads", "-c", "2")
    tasks = project.load("tasks")
    backend = backend_of(tasks.app)
    # Given a slow call sent first and a quick one after it
    slow = tasks.slow_add.delay(1, 1, 1.0)
    quick = tasks.add.delay(2, 3)
    # When the client waits for the slow one (the quick reply arrives first, on the way)
    assert slow.get(timeout=20) == 2
    # Then the quick one's reply was read and kept: nothing is left on the reply queue, and
    # its result is there at once
    assert tasks.app.transport.size(backend.queue) == 0
    assert quick.id in backend._replies
    assert quick.get(timeout=5) == 5


def test_a_second_client_does_not_take_another_clients_results(project: Project) -> None:
    project.worker("tasks", "-P", "threads", "-c", "2")
    tasks = project.load("tasks")
    other = second_client(tasks)
    try:
        # Given a call of the first client whose result is not read yet
        mine = tasks.add.delay(1, 1)
        # When a second client sends and reads its own calls meanwhile
        theirs = [other.send_task("tasks.add", (i, i)) for i in range(5)]
        assert [r.get(timeout=20) for r in theirs] == [0, 2, 4, 6, 8]
        assert backend_of(other).queue != backend_of(tasks.app).queue
        # Then the first client still gets its own result
        assert mine.get(timeout=20) == 2
        # And the second client never sees it (only the sender gets a result, as in Celery)
        foreign = other.AsyncResult(mine.id)
        assert foreign.state == "PENDING"
        with pytest.raises(CanvasTimeoutError):
            foreign.get(timeout=1)
    finally:
        other.close()


def test_a_reply_sent_after_the_reply_connection_broke_comes_back(project: Project) -> None:
    project.worker("tasks", "-P", "threads", "-c", "2")
    tasks = project.load("tasks")
    backend = backend_of(tasks.app)
    # Given a client reading its reply queue
    assert tasks.add.delay(1, 1).get(timeout=20) == 2
    # When the connection under its reply consumer breaks (a broker restart, a failover). On
    # RabbitMQ that consumer is dead for good; redis-py connects again by itself.
    cut(backend._consumer)
    # Then the reply of a call sent afterwards is read all the same, and so are later ones
    assert tasks.add.delay(2, 2).get(timeout=20) == 4
    assert tasks.add.delay(3, 3).get(timeout=20) == 6
    assert tasks.app.transport.size(backend.queue) == 0


def test_workflows_on_one_machine(project: Project) -> None:
    # Given the worker on the client's machine (the same state store), with its default
    # (prefork) pool: each pool process replies on its own connection
    project.worker("tasks", "-c", "2")
    tasks = project.load("tasks")
    # Then a chain, a group and a chord return their results
    assert chain(tasks.add.s(1, 2), tasks.add.s(3)).delay().get(timeout=20) == 6
    assert group(tasks.add.s(i, i) for i in range(4)).delay().get(timeout=20) == [0, 2, 4, 6]
    header = [tasks.add.s(i, 1) for i in range(3)]
    assert chord(header)(tasks.tsum.s()).get(timeout=20) == 6
    # And a failing step fails the chain's result
    with pytest.raises(ValueError, match="early"):
        chain(tasks.fail.s("early"), tasks.add.s(1)).delay().get(timeout=20)


def test_a_workflow_sent_to_a_worker_of_another_machine_fails_naming_the_fix(
    tmp_path: Path,
) -> None:
    # Given RabbitMQ and rpc://, where workflow state is a SQLite file on each machine, and a
    # worker on "machine b" (its own copy of the project, its own state store directory)
    check_amqp()
    settings = {
        "broker_url": AMQP_URL,
        "result_backend": "rpc://",
        "task_default_queue": f"migration-rpc-{uuid.uuid4().hex[:8]}",
    }
    machine_a, machine_b = tmp_path / "a", tmp_path / "b"
    client = Project("rpc_first_steps", machine_a, embedded_dir=str(machine_a), **settings)
    far = Project("rpc_first_steps", machine_b, embedded_dir=str(machine_b), **settings)
    try:
        worker = far.worker("tasks", "-P", "threads", "-c", "2")
        assert str(machine_b) in worker.output()  # its start-up line names its own store
        tasks = client.load("tasks")
        # Plain calls and groups work across machines: their results travel as messages
        assert tasks.add.delay(2, 2).get(timeout=20) == 4
        assert group(tasks.add.s(i, i) for i in range(3)).delay().get(timeout=20) == [0, 2, 4]
        # When the client sends a chain, whose state that worker cannot see
        result = chain(tasks.add.s(1, 2), tasks.add.s(3)).delay()
        # Then its result is an error naming the fix, not a wait for ever
        with pytest.raises(Exception, match="not in this worker's store") as failure:
            result.get(timeout=20)
        assert "redis://" in str(failure.value)
    finally:
        far.close()
        client.close()
