"""The Celery side of the benchmark: the same app and tasks as ``canvas_app.py``.

Runs only in the benchmark's own venv (``benchmarks/.venv-celery``): used by the driver
(``driver.py --system celery``) and by ``celery -A celery_app worker``. Settings are Celery's
defaults except the queue name, a short result expiry and the startup-retry warning.
"""

from __future__ import annotations

import os

import bench_hooks

bench_hooks.install()

from celery import Celery  # noqa: E402 - after the hooks, so they see every publish

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/9")
BACKEND = os.environ.get("BENCH_BACKEND", BROKER)
QUEUE = os.environ.get("BENCH_QUEUE", "bench-celery")

app = Celery("benchapp", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_default_queue=QUEUE,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
)

_counter = None


def _count(name: str) -> None:
    """One INCR in the result database: how often a chord body really ran."""
    global _counter
    if _counter is None or _counter[0] != os.getpid():
        import redis

        _counter = (os.getpid(), redis.Redis.from_url(BACKEND))
    _counter[1].incr(f"bench:calls:{name}")


@app.task
def add(x, y):
    return x + y


@app.task(ignore_result=True)
def noop():
    return None


@app.task
def tsum(numbers):
    _count("tsum")
    return sum(numbers)
