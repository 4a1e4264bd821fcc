"""One benchmark scenario, run as a client of canvas or Celery; prints one JSON object.

``run.py`` starts this file with the right venv's Python for each scenario (a fresh process per
scenario, so a failure or a hang stays in its own process and the harness can bound it), with the
broker, backend and queue in the environment (see ``canvas_app.py``). It works the same way for
both systems: the same calls (``add.delay``, ``chain``, ``group``, ``chord``, ``.get()``), and the
same neutral observers, which never go through either library:

* "results ready": a separate Redis client asks ``EXISTS`` for the result keys (each library's own
  key name for a task id) every 10 ms until all exist; neither system writes a result key before
  the task has finished (no ``track_started``).
* "queue drained": no message of the queue is waiting: every Redis list whose name contains the
  queue's name is empty (each system's own key layout and priority lists), or RabbitMQ reports no
  ready message. Messages a worker already took are not waited for: at most the prefetch window
  (canvas 1 per pool process, Celery 4 per pool process by default), a few milliseconds of no-ops.
* Redis commands: ``INFO commandstats`` before and after, less the observer's own commands
  (counted on its client). Commands that Lua scripts run count as commands, as Redis counts them.
* broker bytes: see ``bench_hooks.py``.

Usage: ``python driver.py --system canvas|celery --scenario NAME [--n N] [--lengths 50,200]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback
from collections import Counter
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_hooks  # noqa: E402
import redis  # noqa: E402 - both venvs have redis-py

POLL = 0.01


class CountingRedis(redis.Redis):
    """A client that counts its own commands, so they can be taken out of INFO commandstats."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.own: Counter[str] = Counter()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        name = str(args[0]).split()[0].lower()
        self.own[name] += 1
        return super().execute_command(*args, **options)


class System:
    """The few things that differ between canvas and Celery: imports and result key names."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "canvas":
            import canvas_app as module

            from canvas import chain, chord, group
        elif name == "celery":
            import celery_app as module
            from celery import chain, chord, group
        else:
            raise SystemExit(f"unknown system {name!r}")
        self.module = module
        self.app = module.app
        self.add, self.noop, self.tsum = module.add, module.noop, module.tsum
        self.chain, self.group, self.chord = chain, group, chord
        self.queue = module.QUEUE
        self.broker_url = module.BROKER
        self.backend_url = module.BACKEND

    def meta_key(self, task_id: str) -> str:
        backend = self.app.backend
        if self.name == "celery":
            key = backend.get_key_for_task(task_id)
            return key.decode() if isinstance(key, bytes) else str(key)
        make = getattr(backend, "_meta_key", None)
        if make is not None:
            return str(make(task_id))
        return f"canvas-task-meta-{task_id}"

    def result(self, task_id: str) -> Any:
        return self.app.AsyncResult(task_id)


class Observer:
    """Neutral eyes on Redis (results, commandstats) and on the broker (queue depth)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.store = CountingRedis.from_url(system.backend_url)
        self.broker_is_redis = system.broker_url.startswith(("redis://", "rediss://"))
        self.broker = CountingRedis.from_url(system.broker_url) if self.broker_is_redis else None
        self._amqp: Any = None

    # -- commands ----------------------------------------------------------------------------
    def commandstats(self) -> dict[str, int]:
        stats = self.store.info("commandstats")
        out = {}
        for key, value in stats.items():
            name = key[len("cmdstat_") :] if key.startswith("cmdstat_") else key
            out[name] = int(value["calls"] if isinstance(value, dict) else value)
        return out

    def start_counting(self) -> dict[str, int]:
        before = self.commandstats()
        self.store.own.clear()
        if self.broker is not None:
            self.broker.own.clear()
        self.store.own["info"] += 1  # the INFO above is counted by the server after it answered
        return before

    def commands_since(self, before: dict[str, int]) -> Counter[str]:
        after = self.commandstats()
        diff: Counter[str] = Counter()
        for name, calls in after.items():
            delta = calls - before.get(name, 0)
            if delta:
                diff[name.replace("|", " ")] = delta
        own = Counter(self.store.own)
        if self.broker is not None and _same_server(
            self.system.broker_url, self.system.backend_url
        ):
            own.update(self.broker.own)
        for name, calls in own.items():
            if name in diff:
                diff[name] -= calls
                if diff[name] <= 0:
                    del diff[name]
        return diff

    # -- results -----------------------------------------------------------------------------
    def wait_keys(self, keys: list[str], deadline: float) -> None:
        """Until every key exists; checks the oldest pending keys first, 1,000 per call."""
        pending = list(keys)
        while pending:
            while pending:
                chunk = pending[:1000]
                if self.store.exists(*chunk) != len(chunk):
                    break
                del pending[:1000]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} of {len(keys)} results not ready in time")
            time.sleep(POLL)

    # -- broker ------------------------------------------------------------------------------
    def _queue_lists(self) -> list[bytes]:
        assert self.broker is not None
        return [
            k
            for k in self.broker.scan_iter(match=f"*{self.system.queue}*", count=1000)
            if not k.endswith(b".dlq") and self.broker.type(k) == b"list"
        ]

    def queued(self) -> int:
        """Ready messages in the queue (all priority lists)."""
        if self.broker is not None:
            return sum(int(self.broker.llen(k)) for k in self._queue_lists())
        return self._amqp_count()

    def _amqp_count(self) -> int:
        if self._amqp is None:
            conn = amqp_connect(self.system.broker_url)
            self._amqp = (conn, conn.channel())
        conn, channel = self._amqp
        try:
            _, count, _ = channel.queue_declare(self.system.queue, passive=True)
        except amqp_errors() as exc:  # not declared yet: the broker closed our channel
            if "NOT_FOUND" not in str(exc) and "404" not in str(exc):
                raise
            self._amqp = (conn, conn.channel())
            return 0
        return int(count)

    def wait_drained(self, deadline: float) -> None:
        if self.broker is not None:
            lists = self._queue_lists()
            while True:
                if not any(self.broker.llen(k) for k in lists):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"queue not drained in time ({self.queued()} left)")
                time.sleep(POLL)
        while self._amqp_count():
            if time.monotonic() > deadline:
                raise TimeoutError("queue not drained in time")
            time.sleep(POLL)

    def purge(self) -> int:
        """Drop whatever waits in the benchmark queue (after an enqueue-only run or a failure)."""
        if self.broker is not None:
            lists = self._queue_lists()
            n = sum(int(self.broker.llen(k)) for k in lists)
            if lists:
                self.broker.delete(*lists)
            return n
        if not self._amqp_count():
            return 0
        _, channel = self._amqp
        return int(channel.queue_purge(self.system.queue) or 0)


def amqp_errors() -> tuple[type[BaseException], ...]:
    import amqp.exceptions

    return (amqp.exceptions.NotFound,)


def amqp_connect(url: str) -> Any:
    """A py-amqp connection for ``amqp://user:password@host:port/vhost`` (kombu's URL form)."""
    from urllib.parse import unquote, urlsplit

    import amqp

    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
    conn = amqp.Connection(
        host=f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost or "/",
    )
    conn.connect()
    return conn


def _same_server(a: str, b: str) -> bool:
    def host(url: str) -> str:
        return url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]

    return a.startswith("redis") and b.startswith("redis") and host(a) == host(b)


def _sizes() -> list[int]:
    path = os.environ.get("BENCH_BYTES_FILE")
    return bench_hooks.read(path) if path else []


def _reset_sizes() -> None:
    path = os.environ.get("BENCH_BYTES_FILE")
    if path:
        bench_hooks.reset(path)


def _commands(diff: Counter[str], n: int) -> dict[str, Any]:
    total = sum(diff.values())
    return {
        "redis_commands": total,
        "redis_commands_per_task": round(total / n, 2),
        "redis_commands_by_name": dict(diff.most_common()),
    }


def _verify(system: System, ids: list[str], expected: dict[str, Any], sample: int = 25) -> None:
    """Read a sample of results back through the library's own API and check their values."""
    chosen = random.sample(ids, min(sample, len(ids))) + [ids[-1]]
    for task_id in chosen:
        value = system.result(task_id).get(timeout=10)
        if value != expected[task_id]:
            raise AssertionError(
                f"result of {task_id} is {value!r}, expected {expected[task_id]!r}"
            )


# -- scenarios ----------------------------------------------------------------------------------
def warmup(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """Wait until the worker answers (every pool process, probably), warming caches."""
    deadline = time.monotonic() + args.timeout
    t0 = time.perf_counter()
    first = system.add.delay(1, 1)
    while True:
        try:
            value = first.get(timeout=1)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    assert value == 2, value
    ready = time.perf_counter() - t0
    results = [system.add.delay(i, i) for i in range(args.n)]
    for i, r in enumerate(results):
        assert r.get(timeout=max(1.0, deadline - time.monotonic())) == 2 * i
    return {"first_result_s": round(ready, 3)}


def throughput(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """N ``add(i, i)`` with results: first send to every result stored."""
    n = args.n
    observer = Observer(system)
    _reset_sizes()
    before = observer.start_counting()
    t0 = time.perf_counter()
    # The handles stay alive until the end, as in an app that waits for its results: Celery's
    # AsyncResult unsubscribes from its result channel when it is garbage collected (one more
    # round trip per task, on the sending thread), which is not what its users pay who keep them.
    handles = [system.add.delay(i, i) for i in range(n)]
    t_sent = time.perf_counter()
    ids = [h.id for h in handles]
    observer.wait_keys([system.meta_key(t) for t in ids], time.monotonic() + args.timeout)
    t_done = time.perf_counter()
    diff = observer.commands_since(before)
    sizes = _sizes()
    _verify(system, ids, {t: 2 * i for i, t in enumerate(ids)})
    return {
        "seconds": round(t_done - t0, 4),
        "tasks_per_s": round(n / (t_done - t0), 1),
        "sends_per_s_while_running": round(n / (t_sent - t0), 1),
        "message_bytes_avg": round(sum(sizes) / len(sizes), 1) if sizes else None,
        "messages_seen": len(sizes),
        **_commands(diff, n),
    }


def noop(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """N no-op tasks with ``ignore_result``: first send to the queue drained."""
    n = args.n
    observer = Observer(system)
    before = observer.start_counting()
    t0 = time.perf_counter()
    for _ in range(n):
        system.noop.delay()
    t_sent = time.perf_counter()
    observer.wait_drained(time.monotonic() + args.timeout)
    t_done = time.perf_counter()
    diff = observer.commands_since(before)
    return {
        "seconds": round(t_done - t0, 4),
        "tasks_per_s": round(n / (t_done - t0), 1),
        "sends_per_s_while_running": round(n / (t_sent - t0), 1),
        **_commands(diff, n),
    }


def enqueue(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """No worker: N single ``add.delay`` calls, then one group of N; sends per second each."""
    n = args.n
    observer = Observer(system)
    observer.purge()
    out: dict[str, Any] = {}
    _reset_sizes()
    t0 = time.perf_counter()
    handles = [system.add.delay(i, i) for i in range(n)]  # kept: see throughput()
    single = time.perf_counter() - t0
    del handles
    sizes = _sizes()
    out["single_per_s"] = round(n / single, 1)
    out["single_message_bytes_avg"] = round(sum(sizes) / len(sizes), 1) if sizes else None
    out["single_queued"] = observer.queued()
    observer.purge()
    _reset_sizes()
    t0 = time.perf_counter()
    system.group([system.add.s(i, i) for i in range(n)]).apply_async()
    batch = time.perf_counter() - t0
    sizes = _sizes()
    out["group_per_s"] = round(n / batch, 1)
    out["group_message_bytes_avg"] = round(sum(sizes) / len(sizes), 1) if sizes else None
    out["group_queued"] = observer.queued()
    observer.purge()
    for key in ("single_queued", "group_queued"):
        if out[key] != n:
            out.setdefault("warnings", []).append(f"{key}={out[key]}, expected {n}")
    return out


def _warm(system: System, sig: Any, timeout: float) -> None:
    """One small untimed call of the same shape first: the timings are of a warm client.

    A fresh process pays first-use costs once (canvas imports its compiler lazily, Celery builds
    its canvas machinery): real for a one-shot script, not for an app that sends many.
    """
    sig.apply_async().get(timeout=timeout)


def chains(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """Chains of ``add``: time to the final result, and the bytes its messages put on the broker."""
    observer = Observer(system)
    out: dict[str, Any] = {}
    _warm(system, system.chain(system.add.s(1, 1), system.add.s(1)), args.timeout)
    for length in [int(x) for x in args.lengths.split(",") if x]:
        try:
            workflows_before = set(observer.store.scan_iter(match="*workflow*", count=1000))
            sig = system.chain(system.add.s(1, 1), *[system.add.s(1) for _ in range(length - 1)])
            _reset_sizes()
            t0 = time.perf_counter()
            result = sig.apply_async()
            t_sent = time.perf_counter()
            value = result.get(timeout=args.timeout)
            seconds = time.perf_counter() - t0
            if value != length + 1:
                raise AssertionError(f"chain of {length} returned {value!r}, expected {length + 1}")
            sizes = _sizes()
            new = set(observer.store.scan_iter(match="*workflow*", count=1000)) - workflows_before
            stored = sum(int(observer.store.memory_usage(k) or 0) for k in new)
            out[str(length)] = {
                "seconds": round(seconds, 4),
                "publish_s": round(t_sent - t0, 4),
                "ms_per_step": round(1000 * seconds / length, 3),
                "messages": len(sizes),
                "first_bytes": sizes[0] if sizes else None,
                "max_bytes": max(sizes) if sizes else None,
                "total_bytes": sum(sizes),
                "workflow_store_bytes": stored,
            }
        except Exception as exc:
            out[str(length)] = {"error": _short_error(exc)}
            try:
                observer.purge()
            except Exception:
                pass
            time.sleep(1.0)
    return out


def chord(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """A chord of N ``add`` with a ``tsum`` body: time to the body's result; body runs counted."""
    n = args.n
    observer = Observer(system)
    _warm(system, system.chord([system.add.s(1, 1)], system.tsum.s()), args.timeout)
    observer.store.delete("bench:calls:tsum")
    header = [system.add.s(i, i) for i in range(n)]
    t0 = time.perf_counter()
    result = system.chord(header, system.tsum.s()).apply_async()
    t_sent = time.perf_counter()
    value = result.get(timeout=args.timeout)
    seconds = time.perf_counter() - t0
    expected = sum(2 * i for i in range(n))
    if value != expected:
        raise AssertionError(f"chord returned {value!r}, expected {expected}")
    time.sleep(0.5)  # a second run of the body would show up here
    runs = int(observer.store.get("bench:calls:tsum") or 0)
    return {"seconds": round(seconds, 4), "publish_s": round(t_sent - t0, 4), "body_runs": runs}


def group(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """A group of N ``add``: time to the list of results."""
    n = args.n
    _warm(system, system.group([system.add.s(1, 1), system.add.s(2, 2)]), args.timeout)
    t0 = time.perf_counter()
    result = system.group([system.add.s(i, i) for i in range(n)]).apply_async()
    t_sent = time.perf_counter()
    values = result.get(timeout=args.timeout)
    seconds = time.perf_counter() - t0
    if list(values) != [2 * i for i in range(n)]:
        raise AssertionError("group returned wrong values")
    return {"seconds": round(seconds, 4), "publish_s": round(t_sent - t0, 4)}


def purge(system: System, args: argparse.Namespace) -> dict[str, Any]:
    return {"purged": Observer(system).purge()}


SCENARIOS = {
    "warmup": warmup,
    "throughput": throughput,
    "noop": noop,
    "enqueue": enqueue,
    "chains": chains,
    "chord": chord,
    "group": group,
    "purge": purge,
}


def _short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", required=True, choices=["canvas", "celery"])
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--lengths", default="50,200,500,1000")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    try:
        system = System(args.system)
        result = SCENARIOS[args.scenario](system, args)
        payload: dict[str, Any] = {"ok": True, "metrics": result}
    except BaseException as exc:
        traceback.print_exc(file=sys.stderr)
        payload = {"ok": False, "error": _short_error(exc)}
    sys.stdout.write("\n" + json.dumps(payload) + "\n")
    sys.stdout.flush()
    os._exit(0)  # don't wait for either library's background threads or pools to wind down


if __name__ == "__main__":
    sys.exit(main())
