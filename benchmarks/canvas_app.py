"""The canvas side of the benchmark: one app and three tasks, configured from the environment.

Used by the driver (``driver.py --system canvas``) and by the worker the harness starts with
``canvas -A canvas_app worker``. Settings are canvas's defaults except the queue name and a short
result expiry; ``celery_app.py`` is the same app for Celery.
"""

from __future__ import annotations

import os

import bench_hooks

bench_hooks.install()

from canvas import Canvas  # noqa: E402 - after the hooks, so they see every publish

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/9")
BACKEND = os.environ.get("BENCH_BACKEND", BROKER)
QUEUE = os.environ.get("BENCH_QUEUE", "bench-canvas")

app = Canvas(
    "benchapp",
    broker=BROKER,
    backend=BACKEND,
    task_default_queue=QUEUE,
    result_expires=3600,
    # RabbitMQ publisher confirms: on by default; run.py's "-noconfirm" rows set "off" (Celery's
    # default), to show what the confirm round trip of a single call costs.
    broker_confirm=os.environ.get("BENCH_CONFIRM", "on"),
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
