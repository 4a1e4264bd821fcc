"""RabbitMQ cluster failover: the node holding a quorum queue's leader is killed mid-run; a
follower takes over and the workers reconnect to another node. The ledger says whether anything
was lost, run twice as a first delivery, or joined twice.

The cluster is ``scripts/rabbitmq-cluster.sh`` (three nodes on 5701-5703, moved by
``CANVAS_CHAOS_RABBIT_CLUSTER_PORT``), started for this module: about 25 seconds, so every case
here is a ``chaos`` case (``make chaos``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import Cluster
from .servers import wait_until
from .test_faults import Producer

pytestmark = [pytest.mark.chaos]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq-cluster.sh"
PORT = int(os.environ.get("CANVAS_CHAOS_RABBIT_CLUSTER_PORT") or 5701)
ROUNDS = int(os.environ.get("CANVAS_CHAOS_FAILOVER_ROUNDS") or 6)
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class LocalRabbitCluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {
            **os.environ,
            "RABBITMQ_CLUSTER_PORT": str(PORT),
            "RABBITMQ_CLUSTER_DIR": str(directory),
        }
        self.url = self.run("url").strip()

    def run(self, command: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode:
            pytest.fail(f"rabbitmq-cluster.sh {command} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def leader(self, queue: str) -> int:
        """The AMQP port of the node that holds ``queue``'s leader."""
        for port in (PORT, PORT + 1, PORT + 2):
            done = subprocess.run(
                [
                    CTL,
                    "-n",
                    f"canvas-rmq{port}@localhost",
                    "-q",
                    "list_queues",
                    "name",
                    "leader",
                    "--formatter",
                    "json",
                ],
                env={**os.environ, "HOME": str(self.directory)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if done.returncode == 0:
                for row in json.loads(done.stdout or "[]"):
                    if row["name"] == queue:
                        return int(str(row["leader"]).split("@")[0].removeprefix("canvas-rmq"))
        raise AssertionError(f"no leader found for {queue}")

    def kill(self, port: int) -> None:
        pid = int((self.directory / str(port) / "rabbitmq.pid").read_text())
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitCluster]:
    made = LocalRabbitCluster(tmp_path_factory.mktemp("rabbitmq-cluster"))
    made.run("start")
    try:
        yield made
    finally:
        made.run("stop")


def _leader_killed_round(
    rabbit_cluster: LocalRabbitCluster, cluster: Callable[..., Cluster], name: str
) -> None:
    case = cluster(name, broker=rabbit_cluster.url, CHAOS_QUEUE_TYPE="quorum", CHAOS_LEASE="2")
    try:
        case.start_worker(concurrency=2)
        chord, _ = case.ledger.chord(20, 0.05)
        producer = Producer(case, 150, seconds=0.005)
        producer.start()
        wait_until(lambda: producer.sent >= 50, 60, "50 confirmed publishes")
        leader = rabbit_cluster.leader(case.queue)
        rabbit_cluster.kill(leader)
        killed = time.monotonic()
        recover = case.probe(timeout=90)
        # Once a new leader confirms again (until then it nacks, and the producer retries).
        case.ledger.chord(20, 0.01)
        producer.finish()
        verdict = case.finish(
            f"RabbitMQ node {leader} (quorum leader) SIGKILLed; "
            f"{producer.failures} publishes retried",
            time.monotonic() - killed,
        )
        verdict.assert_ok()
        assert recover < 60, f"the workers took {recover:.1f}s to resume"
    finally:
        rabbit_cluster.run("start")  # the killed node comes back and rejoins


@pytest.mark.timeout(600)
def test_the_quorum_leader_s_node_killed_mid_run_loses_nothing(
    rabbit_cluster: LocalRabbitCluster, cluster: Callable[..., Cluster]
) -> None:
    _leader_killed_round(rabbit_cluster, cluster, "quorum-failover")


@pytest.mark.timeout(300 * ROUNDS)
def test_repeated_leader_kills(
    rabbit_cluster: LocalRabbitCluster, cluster: Callable[..., Cluster]
) -> None:
    for i in range(ROUNDS):
        _leader_killed_round(rabbit_cluster, cluster, f"quorum-failover-{i}")
