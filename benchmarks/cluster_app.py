"""The app of ``cluster.py``'s workers: broker, store and queue type from the environment."""

from __future__ import annotations

import os

from canvas import Canvas

# Redis Cluster only: seconds a publish or a result waits for a replica (unset: canvas's default)
_wait = os.environ.get("BENCH_REPLICA_WAIT")
_options = {} if _wait is None else {"replica_wait": float(_wait)}

app = Canvas(
    "benchcluster",
    broker=os.environ["BENCH_BROKER"],
    backend=os.environ["BENCH_BACKEND"],
    task_default_queue=os.environ.get("BENCH_QUEUE", "bench-cluster"),
    task_default_queue_type=os.environ.get("BENCH_QUEUE_TYPE") or "classic",
    result_expires=900,
    broker_transport_options=_options,
    result_backend_transport_options=_options,
)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def tsum(numbers: list[int]) -> int:
    return sum(numbers)
