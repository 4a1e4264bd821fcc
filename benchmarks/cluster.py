"""Canvas on clusters against the single node: ``python benchmarks/cluster.py``.

A separate script (the main ``run.py`` compares canvas with Celery, which cannot use Redis
Cluster): canvas only, real ``canvas worker`` processes, on this machine.

* **throughput**: a group of ``--n`` ``add`` tasks and a chord of ``--fanout`` members, each
  timed from ``apply_async`` to the last result, with one worker of 2 pool processes, on
  Redis (one node), Redis Cluster, RabbitMQ (classic queues, Redis results) and RabbitMQ quorum
  queues with Redis results and with Redis Cluster results;
* **scaling**: 1, 2 and 4 worker processes (1 pool process each), each on its own queue, the
  queues on different primaries of the Redis Cluster, ``--n`` tasks in all.

It starts the local Redis Cluster with ``scripts/redis-cluster.sh start``. Servers:
``--redis`` (default ``$CANVAS_TEST_REDIS``), ``--amqp`` (default ``$CANVAS_TEST_AMQP``). Prints a
Markdown table and writes it to ``--out`` if given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CANVAS = str(Path(sys.executable).with_name("canvas"))
CLUSTER = "redis+cluster://127.0.0.1:7000/"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--fanout", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--redis", default=os.environ.get("CANVAS_TEST_REDIS", "redis://127.0.0.1:6379/0")
    )
    p.add_argument(
        "--amqp", default=os.environ.get("CANVAS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
    )
    p.add_argument("--out", help="write the Markdown table here too")
    return p.parse_args()


def make_app(
    broker: str, backend: str, queue: str, queue_type: str, replica_wait: str | None = None
) -> Any:
    os.environ.update(
        BENCH_BROKER=broker, BENCH_BACKEND=backend, BENCH_QUEUE=queue, BENCH_QUEUE_TYPE=queue_type
    )
    os.environ.pop("BENCH_REPLICA_WAIT", None)
    if replica_wait is not None:
        os.environ["BENCH_REPLICA_WAIT"] = replica_wait
    sys.path.insert(0, str(HERE))
    import importlib

    module = importlib.import_module("cluster_app")
    module = importlib.reload(module)
    return module.app


@contextmanager
def workers(env: dict[str, str], queues: list[str], concurrency: int) -> Iterator[None]:
    procs = []
    for queue in queues:
        command = [CANVAS, "-A", "cluster_app", "worker", "-l", "WARNING", "-P", "prefork"]
        command += ["-c", str(concurrency), "-Q", queue]
        procs.append(
            subprocess.Popen(
                command,
                cwd=HERE,
                env={**os.environ, **env, "PYTHONPATH": f"{HERE}:{ROOT}"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def timed(canvas: Any) -> float:
    """Seconds from ``apply_async`` to its last result."""
    started = time.perf_counter()
    canvas.apply_async().get(timeout=300)
    return time.perf_counter() - started


def throughput(
    args: argparse.Namespace,
    name: str,
    broker: str,
    backend: str,
    qtype: str,
    replica_wait: str | None = None,
) -> dict[str, Any]:
    from canvas import chord, group

    queue = f"bench-{name.split()[0]}-{uuid.uuid4().hex[:6]}"
    app = make_app(broker, backend, queue, qtype, replica_wait)
    add, tsum = app.tasks["cluster_app.add"], app.tasks["cluster_app.tsum"]
    env = {
        "BENCH_BROKER": broker,
        "BENCH_BACKEND": backend,
        "BENCH_QUEUE": queue,
        "BENCH_QUEUE_TYPE": qtype,
    }
    if replica_wait is not None:
        env["BENCH_REPLICA_WAIT"] = replica_wait
    groups, chords = [], []
    with workers(env, [queue], 2):
        add.delay(0, 0).get(timeout=60)  # the worker is up
        for _ in range(args.runs):
            groups.append(timed(group(add.s(i, 1) for i in range(args.n))))
            chords.append(timed(chord([add.s(i, 1) for i in range(args.fanout)], tsum.s())))
    if broker.startswith("amqp"):
        from kombu import Connection

        with Connection(broker) as conn:
            for made in (queue, queue + ".dlq"):
                conn.channel().queue_delete(made)
    else:
        app.transport.purge(queue)
    app.close()
    return {
        "name": name,
        "group_tps": args.n / statistics.median(groups),
        "chord_s": statistics.median(chords),
    }


def scaling(args: argparse.Namespace, processes: int) -> float:
    """Tasks a second with ``processes`` workers, each on its own queue of the cluster."""
    from canvas.transports.redis_cluster import cluster_client

    client = cluster_client(CLUSTER)
    queues: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(queues) < processes:  # queues on distinct primaries first, then any
        name = f"bench-scale-{uuid.uuid4().hex[:6]}"
        node = client.get_node_from_key(f"canvas:{{q:{name}}}:q:{name}").name
        if node not in seen or len(seen) == 3:
            seen.add(node)
            queues.append(name)
        i += 1
    client.close()
    app = make_app(CLUSTER, CLUSTER, queues[0], "classic")
    add = app.tasks["cluster_app.add"]
    env = {"BENCH_BROKER": CLUSTER, "BENCH_BACKEND": CLUSTER, "BENCH_QUEUE": queues[0]}
    from canvas import group

    with workers(env, queues, 1):
        for queue in queues:
            add.apply_async((0, 0), queue=queue).get(timeout=60)
        per = args.n // processes
        runs = []
        for _ in range(args.runs):
            canvas = group(
                add.s(i, 1).set(queue=queues[i % processes]) for i in range(per * processes)
            )
            runs.append(timed(canvas))
    for queue in queues:
        app.transport.purge(queue)
    app.close()
    return per * processes / statistics.median(runs)


def main() -> int:
    args = parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "redis-cluster.sh"), "start"], check=True)
    configs: list[tuple[str, str, str, str, str | None]] = [
        ("redis", args.redis, args.redis, "classic", None),
        ("redis-cluster", CLUSTER, CLUSTER, "classic", None),
        # what waiting for a replica (publishes, results, completions) costs
        ("redis-cluster (replica_wait 0)", CLUSTER, CLUSTER, "classic", "0"),
        ("rabbitmq+redis", args.amqp, args.redis, "classic", None),
        ("rabbitmq-quorum+redis", args.amqp, args.redis, "quorum", None),
        ("rabbitmq-quorum+redis-cluster", args.amqp, CLUSTER, "quorum", None),
    ]
    rows = [throughput(args, *config) for config in configs]
    base = rows[0]["group_tps"]
    lines = [
        f"Canvas on clusters (this machine, {os.cpu_count()} cores; median of {args.runs}; "
        f"group of {args.n}, chord of {args.fanout}, one worker -c 2)",
        "",
        f"| broker + store | group tasks/s | vs Redis | chord of {args.fanout} (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['group_tps']:.0f} | {row['group_tps'] / base:.2f}x "
            f"| {row['chord_s']:.2f} |"
        )
    lines += [
        "",
        "| worker processes on Redis Cluster (own queue each, -c 1) | tasks/s |",
        "| ---: | ---: |",
    ]
    for processes in (1, 2, 4):
        lines.append(f"| {processes} | {scaling(args, processes):.0f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
