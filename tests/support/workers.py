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


def stop_or_explain(proc: subprocess.Popen[bytes], log: Path, timeout: float = 15.0) -> None:
    """SIGTERM ``proc`` and wait; one that does not stop is asked for its threads' stacks
    (SIGUSR1: canvas's worker and beat write them to their log) and killed, and the failure
    shows that log, so a hang says where it hung."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while "most recent call first" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise AssertionError(
        f"{log.name}: the process did not stop {timeout}s after SIGTERM; its log, with the "
        f"stacks it dumped:\n{log.read_text(errors='replace')[-20000:]}"
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
