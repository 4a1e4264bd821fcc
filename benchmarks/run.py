"""``make bench``: canvas and Celery side by side, same broker, same machine, one run.

Runs every selected scenario for both systems on Redis (broker and results) and on RabbitMQ with
Redis results, with a worker of 2 pool processes and of 1, alternating the systems (which goes
first changes every session), ``--runs`` times each. It writes ``results/<date>.md`` (the table,
machine, versions and commands), ``results/<date>.json`` (every raw number) and
``results/<date>.png`` (the ratios), and puts the summary in ``README.md``. A scenario that fails
or hangs is reported as an error in the table; the others still run. See README.md for the method.

Examples::

    .venv/bin/python benchmarks/run.py                      # the full run (about 15 minutes)
    .venv/bin/python benchmarks/run.py --quick              # 1 run, small sizes, Redis, c=2
    .venv/bin/python benchmarks/run.py --scenarios chains,chord --brokers redis --runs 1
    .venv/bin/python benchmarks/run.py --report-only benchmarks/results/2025-11-25.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import report

SYSTEMS = ("canvas", "celery")
WORKER_SCENARIOS = ("throughput", "noop", "chains", "chord", "group")
ALL_SCENARIOS = ("enqueue", *WORKER_SCENARIOS, "memory")
NOCONFIRM = report.NOCONFIRM
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, help="runs per system and config (default 3)")
    p.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma-separated subset of {','.join(ALL_SCENARIOS)}",
    )
    p.add_argument("--brokers", help="redis, rabbitmq or both (default both)")
    p.add_argument("--concurrency", help="worker pool sizes (default 2,1)")
    p.add_argument("--systems", default="canvas,celery")
    p.add_argument("--n", type=int, help="tasks in scenarios 1-3 (default 5000)")
    p.add_argument("--fanout", type=int, help="chord header and group size (default 1000)")
    p.add_argument("--lengths", help="chain lengths (default 50,200,500,1000)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per scenario")
    p.add_argument(
        "--quick",
        action="store_true",
        help="defaults for a smoke test: 1 run, n=1000, fanout 200, chains 50,200, "
        "Redis only, c=2 (explicit flags still win)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before each session, wait up to this many seconds for the rest of the machine to "
        "use less than --quiet-below percent of the CPU (default 10; 0 to not wait)",
    )
    p.add_argument("--quiet-below", type=float, default=30.0, help="percent (default 30)")
    p.add_argument(
        "--redis-url",
        default=None,
        help="use this Redis (and its database) instead of a private redis-server",
    )
    p.add_argument("--rabbitmq-url", default=RABBITMQ_URL)
    p.add_argument("--out", default=None, help="results file stem (default results/<date>)")
    p.add_argument("--no-readme", action="store_true", help="don't update README.md")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--report-only", metavar="JSON", help="rebuild the report from a raw file")
    args = p.parse_args(argv)
    defaults = (
        {
            "runs": 1,
            "n": 1000,
            "fanout": 200,
            "lengths": "50,200",
            "brokers": "redis",
            "concurrency": "2",
        }
        if args.quick
        else {
            "runs": 3,
            "n": 5000,
            "fanout": 1000,
            "lengths": "50,200,500,1000",
            "brokers": "redis,rabbitmq",
            "concurrency": "2,1",
        }
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.brokers == "both":
        args.brokers = "redis,rabbitmq"
    return args


def split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


class Run:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.scenarios = split(args.scenarios)
        unknown = set(self.scenarios) - set(ALL_SCENARIOS)
        if unknown:
            raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; known: {ALL_SCENARIOS}")
        self.systems = split(args.systems)
        self.brokers = split(args.brokers)
        self.concurrencies = [int(c) for c in split(args.concurrency)]
        self.records: list[dict[str, Any]] = []
        self.commands: dict[str, str] = {}

    def record(self, base: dict[str, Any], scenario: str, result: dict[str, Any]) -> None:
        entry = {**base, "scenario": scenario, **result}
        self.records.append(entry)
        cpu = result.get("cpu") or {}
        shares = (
            f" [CPU: foreign {cpu.get('foreign_pct')}%, ours {cpu.get('ours_pct')}%, "
            f"RabbitMQ {cpu.get('rabbitmq_pct')}%]"
            if cpu
            else ""
        )
        if not result.get("ok"):
            log(f"  {scenario}: ERROR {result.get('error')}{shares}")
        else:
            line = report.one_line(scenario.removesuffix(NOCONFIRM), result.get("metrics", {}))
            log(f"  {scenario}: {line}{shares}")

    def session(
        self,
        redis_server: harness.RedisServer,
        broker: str,
        concurrency: int,
        system: str,
        run: int,
    ) -> None:
        args = self.args
        broker_url = redis_server.url if broker == "redis" else args.rabbitmq_url
        env = harness.Env(system, broker_url, redis_server.url, self.workdir)
        # Nothing of ours runs now: what is busy is the rest of the machine.
        waited, background = 0.0, harness.busy_cpu()
        while background > args.quiet_below and waited < args.quiet_wait:
            background = harness.busy_cpu(2.0)
            waited += 2.0
        base = {
            "run": run,
            "broker": broker,
            "concurrency": concurrency,
            "system": system,
            "load": round(os.getloadavg()[0], 2),
            "background_cpu": background,
        }
        log(
            f"run {run} · {broker} · c={concurrency} · {system} (load {base['load']}, "
            f"background CPU {base['background_cpu']}%)"
        )
        redis_server.flush()
        if broker == "rabbitmq":
            harness.purge_rabbitmq_queue(broker_url, env.queue)
        env.bytes_file.write_bytes(b"")

        # canvas on RabbitMQ runs the producer-bound scenarios once more without publisher
        # confirms (broker_confirm="off", Celery's default): what the confirm round trip costs.
        unconfirmed = [
            s
            for s in ("enqueue", "throughput", "noop")
            if s in self.scenarios and system == "canvas" and broker == "rabbitmq"
        ]
        if "enqueue" in self.scenarios and concurrency == max(self.concurrencies):
            result = harness.drive(env, "enqueue", n=args.n, timeout=args.timeout)
            self.record(base, "enqueue", result)
            if "enqueue" in unconfirmed:
                result = harness.drive(
                    env, "enqueue", n=args.n, timeout=args.timeout, confirm="off"
                )
                self.record(base, "enqueue" + NOCONFIRM, result)
            self.commands.setdefault(
                f"driver ({system})",
                " ".join(
                    [
                        str(harness.python_for(system)),
                        "benchmarks/driver.py",
                        "--system",
                        system,
                        "--scenario",
                        "<scenario>",
                        "--n",
                        str(args.n),
                    ]
                ),
            )

        wanted = [s for s in WORKER_SCENARIOS if s in self.scenarios]
        if not wanted and "memory" not in self.scenarios:
            return
        worker = harness.Worker(env, concurrency, f"{system}-{broker}-c{concurrency}-r{run}")
        self.commands.setdefault(
            f"worker ({system}, c={concurrency})", " ".join(shlex.quote(c) for c in worker.command)
        )
        try:
            ready = harness.drive(env, "warmup", n=4 * concurrency, timeout=60)
            if not ready.get("ok"):
                ready["error"] = f"worker not ready: {ready.get('error')}"
                ready["worker_log"] = worker.log_tail()
                for scenario in wanted:
                    self.record(base, scenario, dict(ready))
                return
            time.sleep(1.0)
            idle = worker.memory()
            for scenario in wanted:
                if not worker.alive():
                    self.record(
                        base,
                        scenario,
                        {"ok": False, "error": "worker died", "worker_log": worker.log_tail()},
                    )
                    continue
                n = args.fanout if scenario in ("chord", "group") else args.n
                timeout = args.timeout * (2 if scenario == "chains" else 1)
                result = harness.drive(env, scenario, n=n, timeout=timeout, lengths=args.lengths)
                self.record(base, scenario, result)
                if not result.get("ok"):
                    harness.drive(env, "purge", n=0, timeout=30)
                    time.sleep(1.0)
            for scenario in [s for s in unconfirmed if s in wanted]:
                result = harness.drive(env, scenario, n=args.n, timeout=args.timeout, confirm="off")
                self.record(base, scenario + NOCONFIRM, result)
                if not result.get("ok"):
                    harness.drive(env, "purge", n=0, timeout=30)
                    time.sleep(1.0)
            after = worker.memory()
            if "memory" in self.scenarios:
                self.record(base, "memory", {"ok": True, "metrics": {"idle": idle, "after": after}})
        finally:
            shutdown = worker.stop()
            if shutdown > 15:
                log(f"  worker took {shutdown:.1f}s to stop")

    def execute(self) -> dict[str, Any]:
        args = self.args
        started = dt.datetime.now().astimezone()
        redis_server = harness.RedisServer(args.redis_url, self.workdir)
        rabbit_version = None
        if "rabbitmq" in self.brokers:
            rabbit_version = harness.rabbitmq_version(args.rabbitmq_url)
            if rabbit_version is None:
                log(f"RabbitMQ does not answer at {args.rabbitmq_url}: its configs are errors")
        load_start = os.getloadavg()
        tree_start = harness.canvas_tree()
        t0 = time.monotonic()
        try:
            configs = [(b, c) for b in self.brokers for c in self.concurrencies]
            for run in range(1, args.runs + 1):
                for index, (broker, concurrency) in enumerate(configs):
                    order = self.systems if (run + index) % 2 else list(reversed(self.systems))
                    for system in order:
                        if broker == "rabbitmq" and rabbit_version is None:
                            for s in self.scenarios:
                                self.record(
                                    {
                                        "run": run,
                                        "broker": broker,
                                        "system": system,
                                        "concurrency": concurrency,
                                    },
                                    s,
                                    {"ok": False, "error": "RabbitMQ not reachable"},
                                )
                            continue
                        self.session(redis_server, broker, concurrency, system, run)
            redis_version = redis_server.version()
        finally:
            redis_server.stop()
        return {
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - t0, 1),
            "settings": {
                k: getattr(args, k)
                for k in (
                    "runs",
                    "n",
                    "fanout",
                    "lengths",
                    "timeout",
                    "quick",
                    "scenarios",
                    "brokers",
                    "concurrency",
                    "systems",
                )
            },
            "machine": {
                **harness.machine(),
                "load_start": [round(x, 2) for x in load_start],
                "load_end": [round(x, 2) for x in os.getloadavg()],
            },
            "versions": {
                **harness.versions(),
                "canvas_tree_start": tree_start,
                "canvas_tree_end": harness.canvas_tree(),
                "redis_server": redis_version,
                "rabbitmq_server": rabbit_version,
            },
            "redis": (
                f"private redis-server on loopback, database {harness.BENCH_DB}"
                if redis_server.private
                else f"existing server {args.redis_url}"
            ),
            "commands": {
                "run": "benchmarks/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                **self.commands,
            },
            "records": self.records,
        }


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so that workers and Redis are stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    results_dir = harness.HERE / "results"
    if args.report_only:
        raw = json.loads(Path(args.report_only).read_text())
        stem = Path(args.report_only).with_suffix("")
    else:
        harness.ensure_celery_venv(log)
        with tempfile.TemporaryDirectory(prefix="canvas-bench-") as tmp:
            raw = Run(args, Path(tmp)).execute()
        results_dir.mkdir(exist_ok=True)
        stem = Path(args.out) if args.out else results_dir / dt.date.today().isoformat()
        stem.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    chart = None if args.no_chart else report.chart(raw, stem.with_suffix(".png"), log)
    markdown = report.markdown(raw, chart)
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    if not args.no_readme:
        report.update_readme(harness.HERE / "README.md", raw, stem)
    log(f"wrote {stem.with_suffix('.md')}" + (f" and {chart}" if chart else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
