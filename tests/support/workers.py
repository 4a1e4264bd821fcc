"""Real worker processes started from the CLI, and waiting on conditions with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CANVAS = [sys.executable, "-m", "canvas.cli.main"]


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_or_explain(
    procs: list[tuple[subprocess.Popen[bytes], Path]], timeout: float = 15.0
) -> None:
    """SIGTERM every process at once, then wait for them all; any that has not stopped
    ``timeout`` seconds later is asked for its threads' stacks (SIGUSR1: canvas's worker and
    beat write them to their log) and killed, and the failure shows each one's log, so a hang
    says where it hung.

    At once, not one after the other: a process's exit is mostly the interpreter's teardown,
    which on a loaded machine took up to 6 s, and a test stopping two beats in turn spent twice
    that out of pytest's 60 s per test (a pytest timeout there reads as a hang, with no stacks).
    """
    running = [(proc, log) for proc, log in procs if proc.poll() is None]
    for proc, _ in running:
        proc.terminate()
    deadline = time.monotonic() + timeout
    hung = []
    for proc, log in running:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            hung.append((proc, log))
    deadline = time.monotonic() + 5
    for proc, log in hung:
        while "most recent call first" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        proc.kill()
        proc.wait(5)
    assert not hung, "\n".join(
        f"{log.name}: the process did not stop {timeout}s after SIGTERM; its log, with the "
        f"stacks it dumped:\n{log.read_text(errors='replace')[-20000:]}"
        for _, log in hung
    )


@dataclass
class WorkerProcess:
    """A real ``canvas worker`` started from the CLI; its log is kept for assertions."""

    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()}")
            return " ready." in self.output()

        wait_for(ready, timeout, "the worker to be ready")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
