"""Workers as real processes, one cluster per case, and the report table.

A ``Cluster`` is one case's world: a queue of its own on the private broker, the private result
store, a file of effects, the client app the test publishes with, the ledger, and the workers it
started (``canvas -A tests.chaos.app worker``, each in its own process group so that a kill takes
the whole tree). ``finish`` stops the workers, asks the ledger for its verdict, and adds a row to
the table printed at the end of the run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canvas import security

from .app import client
from .ledger import Ledger, Verdict
from .servers import wait_until

ROOT = Path(__file__).resolve().parents[2]
CANVAS = [sys.executable, "-m", "canvas.cli.main"]


@dataclass
class Row:
    case: str
    messages: int
    faults: str
    lost: int
    duplicated: int
    reruns: int
    recover_s: float | None
    seconds: float
    ok: bool


#: rows of the table printed by ``pytest_terminal_summary`` (tests/chaos/conftest.py)
REPORT: list[Row] = []


def table(rows: list[Row]) -> str:
    head = ("case", "messages", "faults injected", "lost", "dup", "re-runs", "recover s", "time s")
    lines = [
        (
            r.case + ("" if r.ok else " (FAILED)"),
            str(r.messages),
            r.faults,
            str(r.lost),
            str(r.duplicated),
            str(r.reruns),
            "-" if r.recover_s is None else f"{r.recover_s:.1f}",
            f"{r.seconds:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 2) else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join(
        [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*line) for line in lines]
    )


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Worker:
    """One ``canvas worker`` process tree."""

    def __init__(self, env: dict[str, str], log: Path, args: list[str]) -> None:
        self.log = log
        self.env = env
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [*CANVAS, "-A", "tests.chaos.app", "worker", "-l", "INFO", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> Worker:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()[-3000:]}")
            return " ready." in self.output()

        wait_until(ready, timeout, "the worker to be ready")
        return self

    def children(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split()]

    def kill_child(self, rng: random.Random | None = None) -> int:
        """SIGKILL one pool process (the supervisor starts another); returns its pid."""
        children = wait_until(self.children, 10, "a pool process to kill")
        pid: int = (rng or random).choice(children)
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        """SIGKILL the whole worker: supervisor and pool processes at once."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def term(self, timeout: float = 30.0) -> int:
        """Warm shutdown; a cold kill if it does not end in ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Pool processes that outlived their supervisor would keep consuming: none may.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.proc.returncode

    def memory_kib(self) -> tuple[int, int]:
        """RSS of the supervisor and of its largest pool process."""
        return rss_kib(self.proc.pid), max((rss_kib(c) for c in self.children()), default=0)


@dataclass
class Cluster:
    """One case: its queue, store, effects file, client app, ledger and workers."""

    name: str
    broker: str
    backend: str
    tmp: Path
    store: Any = None  # redis.Redis of the result store (TTL check)
    extra: dict[str, str] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.queue = f"chaos-{self.name}-{uuid.uuid4().hex[:6]}"
        self.effects = str(self.tmp / "effects.sqlite")
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CHAOS_BROKER": self.broker,
            "CHAOS_BACKEND": self.backend,
            "CHAOS_QUEUE": self.queue,
            "CHAOS_EFFECTS": self.effects,
            **self.extra,
        }
        self.app = client(self.env)
        self.ledger = Ledger(self.app, self.effects, self.store)

    def start_worker(
        self,
        *args: str,
        concurrency: int = 2,
        ready: bool = True,
        env: dict[str, str] | None = None,
    ) -> Worker:
        env = {**self.env, "CHAOS_WORKER": "1", **(env or {})}
        log = self.tmp / f"worker-{len(self.workers)}.log"
        worker = Worker(env, log, ["-P", "prefork", "-c", str(concurrency), *args])
        self.workers.append(worker)
        return worker.wait_ready() if ready else worker

    def logs(self) -> str:
        return "\n".join(w.output() for w in self.workers)

    def probe(self, timeout: float = 60.0) -> float:
        """Seconds until a fresh task sent now has run: how long recovery took from here."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            try:
                task_id = self.ledger.send("chaos.work", (-1,))
                break
            except Exception:  # the producer may still be reconnecting: that is the outage
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        while True:
            try:
                self.app.AsyncResult(task_id).get(timeout=max(0.5, deadline - time.monotonic()))
                return time.monotonic() - started
            except TimeoutError:
                raise
            except Exception:  # the result store may still be coming back
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def wait_for_runs(self, n: int, task: str = "chaos.work", timeout: float = 30.0) -> None:
        """Wait until ``n`` runs of ``task`` have started (so a fault lands mid-task)."""
        db = self.ledger.effects

        def started() -> bool:
            row = db.execute(
                "SELECT count(*) FROM runs WHERE task = ? AND phase = 'start'", (task,)
            ).fetchone()
            return int(row[0]) >= n

        wait_until(started, timeout, f"{n} started runs of {task}")

    def finish(
        self,
        faults: str,
        recover_s: float | None = None,
        settle_timeout: float = 120.0,
    ) -> Verdict:
        """Wait for every id, stop the workers, verify, and add this case to the table."""
        verdict = Verdict()
        try:
            self.ledger.wait_settled(settle_timeout)
            self.ledger.wait_idle(30)
        finally:
            for worker in self.workers:
                worker.term()
            verdict = self.ledger.verify()
            REPORT.append(
                Row(
                    case=self.name,
                    messages=verdict.messages,
                    faults=faults,
                    lost=len(verdict.lost),
                    duplicated=len(set(verdict.duplicated)),
                    reruns=verdict.reruns,
                    recover_s=recover_s,
                    seconds=time.monotonic() - self.started,
                    ok=not verdict.problems,
                )
            )
        return verdict

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        transport = security.unwrap(self.app.transport)
        for queue in (self.queue, transport.dead_letters(self.queue)):
            try:
                transport.purge(queue)
            except Exception:  # the broker may be the thing a failed case left down
                pass
        self.ledger.close()
        self.app.close()
