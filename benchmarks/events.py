"""What task events cost: canvas's throughput with ``worker -E`` against without, on Redis.

    .venv/bin/python benchmarks/events.py                 # 4 runs × 2 modes, 5,000 tasks each
    .venv/bin/python benchmarks/events.py --runs 1 --n 2000 --redis-url redis://127.0.0.1:6379/9

Scenario 1 of ``run.py`` (N ``add(i, i)`` with results, first send to every result stored),
with a worker of ``--concurrency`` pool processes started without and with ``-E``, alternating
which goes first, after one untimed round (the first round on a fresh server runs slower,
whichever mode it is). With events on, a monitor in this process receives every event for the whole
run (``app.events.Receiver``), as a dashboard would, and the number it received is reported: the
events must really flow. The target (issue #15): the drop stays under 15 %.

Writes ``results/events-<date>.json`` and ``.md`` (``--out``) and prints the summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness

HERE = Path(__file__).resolve().parent
TARGET_DROP = 0.15


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--redis-url", help="an existing server (default: a private redis-server)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    return p.parse_args(argv)


class Monitor:
    """Receives every event of the run in a thread, counting them by type."""

    def __init__(self, broker: str) -> None:
        sys.path.insert(0, str(HERE))
        os.environ.update(BENCH_BROKER=broker, BENCH_BACKEND=broker)
        from canvas_app import app  # configured from the variables just set

        self.counts: dict[str, int] = {}
        self.receiver = app.events.Receiver(None, handlers={"*": self._count})
        self.receiver.subscribe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _count(self, event: dict[str, Any]) -> None:
        self.counts[event["type"]] = self.counts.get(event["type"], 0) + 1

    def _run(self) -> None:
        self.receiver.capture(wakeup=False)

    def stop(self) -> dict[str, int]:
        self.receiver.should_stop = True
        self.thread.join(5)
        return dict(self.counts)


def one(
    redis: harness.RedisServer, env: harness.Env, args: argparse.Namespace, events: bool
) -> dict[str, Any]:
    redis.flush()
    extra = ["-E"] if events else []
    worker = harness.Worker(env, args.concurrency, f"events-{'on' if events else 'off'}", extra)
    monitor = None
    try:
        warm = harness.drive(env, "warmup", n=4 * args.concurrency, timeout=60)
        if not warm.get("ok"):
            return {"ok": False, "error": warm.get("error"), "log": worker.log_tail()}
        monitor = Monitor(env.broker) if events else None
        before = worker_cpu(worker)
        result = harness.drive(env, "throughput", n=args.n, timeout=args.timeout)
        if result.get("ok"):
            # CPU seconds of the worker's processes per 1,000 tasks: steadier than throughput
            # on a machine that other work shares.
            spent = worker_cpu(worker) - before
            result["metrics"]["cpu_s_per_1000"] = round(spent * 1000 / args.n, 3)
        if monitor is not None:
            deadline = time.monotonic() + 5  # the last batch is at most 0.1 s behind
            while monitor.counts.get("task-succeeded", 0) < args.n and time.monotonic() < deadline:
                time.sleep(0.05)
            result["events"] = monitor.stop()
        return result
    finally:
        if monitor is not None:
            monitor.stop()
        worker.stop()


def worker_cpu(worker: harness.Worker) -> float:
    """User + system CPU seconds of the worker's supervisor and pool processes so far."""
    total = 0.0
    for pid in [worker.proc.pid, *harness._children(worker.proc.pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="canvas-bench-events-"))
    redis = harness.RedisServer(args.redis_url, workdir)
    env = harness.Env("canvas", redis.url, redis.url, workdir)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    runs: list[dict[str, Any]] = []
    try:
        one(redis, env, args, False)  # untimed: the first round on a fresh server is slower
        for run in range(args.runs):
            order = (False, True) if run % 2 == 0 else (True, False)
            for events in order:
                mode = "on" if events else "off"
                result = one(redis, env, args, events)
                runs.append({"run": run, "events": mode, **result})
                if not result.get("ok"):
                    print(f"run {run} events {mode}: ERROR {result.get('error')}", flush=True)
                    continue
                rate = float(result["metrics"]["tasks_per_s"])
                rates[mode].append(rate)
                cpu[mode].append(float(result["metrics"]["cpu_s_per_1000"]))
                seen = result.get("events", {})
                print(
                    f"run {run} events {mode}: {rate:,.0f} tasks/s, "
                    f"{cpu[mode][-1]:.3f} CPU s per 1,000 tasks {seen or ''}",
                    flush=True,
                )
    finally:
        redis.stop()
    if not rates["off"] or not rates["on"]:
        print("no comparison: a mode failed in every run")
        return 1
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    drop = 1 - on / off
    verdict = "within" if drop < TARGET_DROP else "OVER"
    summary = (
        f"Redis, worker -c {args.concurrency}, {args.n} add tasks, median of {args.runs}: "
        f"events off {off:,.0f} tasks/s, events on {on:,.0f} tasks/s: drop {drop:.1%} "
        f"({verdict} the {TARGET_DROP:.0%} target); worker CPU per 1,000 tasks "
        f"{cpu_off:.3f} s off, {cpu_on:.3f} s on ({cpu_on / cpu_off - 1:+.1%})"
    )
    print(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M")
    (args.out / f"events-{stamp}.json").write_text(
        json.dumps(
            {"summary": summary, "off": rates["off"], "on": rates["on"], "runs": runs}, indent=2
        )
    )
    (args.out / f"events-{stamp}.md").write_text(f"# Events cost\n\n{summary}\n")
    return 0 if drop < TARGET_DROP else 2


if __name__ == "__main__":
    sys.exit(main())
