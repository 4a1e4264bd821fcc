"""Redis Cluster failover: the primary holding a case's slots is killed mid-run and its replica
takes over. The ledger says whether anything was lost, run twice as a first delivery, or joined
twice.

The cluster is a private one of ``scripts/redis-cluster.sh`` on ports 7100-7105
(``CANVAS_CHAOS_CLUSTER_PORT`` moves them): killing a primary of the suite's shared cluster would
break other tests. Both cases run under ``make chaos`` (``pytest -m chaos``), the second one
``ROUNDS`` times, alternating the queue's and the workflow's primary.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from canvas.transports.redis_cluster import cluster_client

from .harness import Cluster
from .servers import wait_until
from .test_faults import Producer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "redis-cluster.sh"
PORT = int(os.environ.get("CANVAS_CHAOS_CLUSTER_PORT") or 7100)
ROUNDS = int(os.environ.get("CANVAS_CHAOS_FAILOVER_ROUNDS") or 6)


class StoreKeys:
    """The result store's keys on the cluster (the broker's share it, and need no TTL)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def scan_iter(self, count: int = 1000) -> Iterator[bytes]:
        return iter(self.client.scan_iter(match="canvas-*", count=count))

    def ttl(self, key: bytes) -> int:
        return int(self.client.ttl(key))


class LocalCluster:
    """The six servers of the script, and the faults a case injects into them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {
            **os.environ,
            "REDIS_CLUSTER_PORT": str(PORT),
            "REDIS_CLUSTER_DIR": str(directory),
        }
        self.url = f"redis+cluster://127.0.0.1:{PORT},127.0.0.1:{PORT + 1}/"

    def run(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(SCRIPT), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode:
            pytest.fail(f"redis-cluster.sh {command} failed:\n{done.stdout}{done.stderr}")

    def primary_of(self, key: str) -> int:
        client = cluster_client(self.url)
        try:
            return int(client.get_node_from_key(key).port)
        finally:
            client.close()

    def kill(self, port: int) -> None:
        """SIGKILL one server (no shutdown, no goodbye to the cluster)."""
        pid = int((self.directory / str(port) / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)

    def keep_evidence(self, pattern: str, into: Path) -> None:
        """After a failed round, before the servers go: each node's role, replication offsets,
        cluster view and the case's keys (type, length), and a copy of each node's log. Says
        where undelivered messages were (a queue, a processing list, nowhere) and whether a
        node lost data (a full resync in its log)."""
        lines = []
        for port in range(PORT, PORT + 6):
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
            try:
                info = client.info("replication")
                offset = info.get("master_repl_offset")
                lines.append(f"== {port} {info.get('role')} offset={offset}")
                lines.append(client.execute_command("CLUSTER", "NODES").decode().strip())
                for key in client.scan_iter(match=pattern, count=1000):
                    kind = client.type(key).decode()
                    size = client.llen(key) if kind == "list" else ""
                    lines.append(f"  {key.decode()} {kind} {size}")
            except Exception as exc:  # a node killed by the case
                lines.append(f"== {port} not answering: {exc!r}")
            finally:
                client.close()
            log = self.directory / str(port) / "redis.log"
            if log.exists():
                shutil.copy(log, into / f"redis-{port}.log")
        (into / "cluster-evidence.txt").write_text("\n".join(lines) + "\n")

    def owner_changed(self, key: str, old: int) -> bool:
        try:
            return self.primary_of(key) != old
        except Exception:  # the cluster is still electing
            return False


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    made = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    made.run("start")
    try:
        yield made
    finally:
        made.run("stop")


def _failover_round(local_cluster: LocalCluster, tmp: Path, name: str, target: str) -> None:
    """Tasks and chords flow while the primary of ``target`` ("queue" or "workflow") dies."""
    client = cluster_client(local_cluster.url)
    case = Cluster(
        name,
        local_cluster.url,
        local_cluster.url,
        tmp,
        store=StoreKeys(client),
        extra={"CHAOS_LEASE": "2"},
    )
    try:
        case.start_worker(concurrency=2)
        chord, body = case.ledger.chord(20, 0.05)
        transport: Any = case.app.transport
        key = (
            transport.key(case.queue)
            if target == "queue"
            else case.app.backend._workflow_key(chord.workflow.id)
        )
        producer = Producer(case, 150, seconds=0.005)
        producer.start()
        wait_until(lambda: producer.sent >= 50, 60, "50 confirmed publishes")
        old = local_cluster.primary_of(key)
        local_cluster.kill(old)
        killed = time.monotonic()
        wait_until(lambda: local_cluster.owner_changed(key, old), 30, "a replica to take over")
        promoted = time.monotonic() - killed
        case.ledger.chord(20, 0.01)  # a chord sent after the failover, too
        recover = case.probe(timeout=60)
        producer.finish()
        verdict = case.finish(
            f"primary of the {target} slot SIGKILLed; replica promoted in {promoted:.1f}s; "
            f"{producer.failures} publishes retried",
            time.monotonic() - killed,
        )
        verdict.assert_ok()
        assert recover < 30, f"the workers took {recover:.1f}s to resume"
    except BaseException:
        local_cluster.keep_evidence(f"*{case.queue}*", tmp)
        raise
    finally:
        case.close()
        client.close()
        local_cluster.run("start")  # the killed server comes back as a replica


# Under make chaos only: one round in the full parallel suite (08:59 on 2026-12-03) ended with
# 60 of 193 ids unsettled. The worker did not hang: it ran everything sent after the failover
# (the second chord's header, the probe, the producer's tasks 55-149). Missing were tasks 2-54,
# published and confirmed before the kill and waiting in the queue on the killed primary, one
# of the two chord bodies and six results. Not reproduced since (15 rounds alone, under CPU load);
# a failed round now keeps the cluster's evidence (see keep_evidence).
@pytest.mark.chaos
@pytest.mark.timeout(150)
def test_a_primary_killed_mid_run_loses_nothing(
    local_cluster: LocalCluster, tmp_path: Path
) -> None:
    _failover_round(local_cluster, tmp_path, "cluster-failover", "queue")


@pytest.mark.chaos
@pytest.mark.timeout(150 * ROUNDS)
def test_repeated_failovers_of_queue_and_workflow_primaries(
    local_cluster: LocalCluster, tmp_path: Path
) -> None:
    for i in range(ROUNDS):
        target = "queue" if i % 2 == 0 else "workflow"
        directory = tmp_path / str(i)
        directory.mkdir()
        _failover_round(local_cluster, directory, f"cluster-failover-{i}", target)
