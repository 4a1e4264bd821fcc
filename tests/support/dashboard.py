"""Helpers for the dashboard tests: the test app imported afresh, a real ``canvas dashboard``."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tests.support.workers import CANVAS, ROOT, wait_for

APP_DIR = ROOT / "tests" / "integration" / "dashboard_app"
APP_MODULE = "dashboard_tasks"


@dataclass(frozen=True)
class DashEnv:
    """Where one test's app lives: the variables ``dashboard_tasks`` reads."""

    directory: Path
    broker: str = ""
    backend: str = ""
    queue: str = "dashboard"

    def variables(self) -> dict[str, str]:
        return {
            "CANVAS_DASH_DIR": str(self.directory),
            "CANVAS_DASH_BROKER": self.broker,
            "CANVAS_DASH_BACKEND": self.backend,
            "CANVAS_DASH_QUEUE": self.queue,
        }

    def process_env(self) -> dict[str, str]:
        """The environment of a subprocess (worker, dashboard) running this app."""
        path = os.pathsep.join([str(APP_DIR), str(ROOT)])
        return {**os.environ, **self.variables(), "PYTHONPATH": path}


@contextmanager
def imported_app(env: DashEnv) -> Iterator[ModuleType]:
    """``dashboard_tasks`` imported in this process for ``env``; closed and forgotten after."""
    saved = {k: os.environ.get(k) for k in env.variables()}
    os.environ.update(env.variables())
    sys.path.insert(0, str(APP_DIR))
    sys.modules.pop(APP_MODULE, None)
    try:
        module = importlib.import_module(APP_MODULE)
        try:
            yield module
        finally:
            module.app.close()
    finally:
        sys.modules.pop(APP_MODULE, None)
        sys.path.remove(str(APP_DIR))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Dashboard:
    """A real ``canvas dashboard`` process; ``url`` once it answers."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextmanager
def running_dashboard(env: DashEnv, log: Path, *args: str) -> Iterator[Dashboard]:
    """Start ``canvas -A dashboard_tasks dashboard`` on a free port; wait until it answers."""
    port = free_port()
    argv = [*CANVAS, "-A", APP_MODULE, "dashboard", "--port", str(port), "--interval", "0.3", *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, cwd=APP_DIR, env=env.process_env(), stdout=out, stderr=subprocess.STDOUT
        )
    dashboard = Dashboard(proc, f"http://127.0.0.1:{port}", log)

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited early:\n{dashboard.output()}")
        try:
            with urllib.request.urlopen(dashboard.url + "/static/dashboard.css", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answers, with its auth guard
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        wait_for(answers, 30, "the dashboard to answer", interval=0.1)
        yield dashboard
    finally:
        dashboard.stop()
