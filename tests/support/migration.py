"""A Celery-style project from ``tests/migration/`` run against a real worker.

Each project is written as Celery's docs teach, imports swapped; like the tutorial, it reads its
settings with ``app.config_from_object('celeryconfig')``. The harness copies the project to a
temporary directory, writes that ``celeryconfig.py`` (this session's Redis, a queue of its own),
starts the worker as the project's docs say, and imports the project here to send it work.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.servers import REDIS_URL, require_service
from tests.support.workers import ROOT, WorkerProcess, wait_for

PROJECTS = ROOT / "tests" / "migration"


class Project:
    """One copied project, its ``celeryconfig`` and the workers started for it."""

    def __init__(self, name: str, tmp: Path, **settings: Any) -> None:
        require_service("Redis", REDIS_URL)
        self.dir = tmp / name
        shutil.copytree(PROJECTS / name, self.dir)
        config = {
            "broker_url": REDIS_URL,
            "result_backend": REDIS_URL,
            "task_default_queue": f"migration-{name}-{uuid.uuid4().hex[:8]}",
            **settings,
        }
        lines = [f"{key} = {value!r}" for key, value in config.items()]
        (self.dir / "celeryconfig.py").write_text("\n".join(lines) + "\n")
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.dir), str(ROOT)])}
        self.workers: list[WorkerProcess] = []
        self.modules: list[str] = []

    def start(self, *command: str, ready: str = " ready.") -> WorkerProcess:
        """Start ``command`` in the project's directory; wait until it logs ``ready``."""
        log = self.dir / f"worker-{len(self.workers)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *command],
                cwd=self.dir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(proc, log)
        self.workers.append(worker)
        wait_for(lambda: ready in worker.output() or proc.poll() is not None, 30, ready)
        if proc.poll() is not None:
            raise AssertionError(f"{' '.join(command)} exited early:\n{worker.output()}")
        return worker

    def worker(self, module: str, *args: str) -> WorkerProcess:
        """``canvas -A module worker -l INFO`` (Celery's ``celery -A module worker``)."""
        return self.start("-m", "canvas.cli.main", "-A", module, "worker", "-l", "INFO", *args)

    def refused_start(self, module: str) -> str:
        """``canvas -A module worker`` that must refuse to start: its stderr (no traceback)."""
        run = subprocess.run(
            [sys.executable, "-m", "canvas.cli.main", "-A", module, "worker"],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode != 0, run.stdout + run.stderr
        assert "Traceback" not in run.stderr, run.stderr
        return run.stderr

    def load(self, module: str) -> ModuleType:
        """Import one of the project's modules here, as its client code would."""
        sys.path.insert(0, str(self.dir))
        for name in ("celeryconfig", module):
            sys.modules.pop(name, None)
        self.modules.append(module)
        return importlib.import_module(module)

    def logs(self) -> str:
        return "\n".join(w.output() for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(10)
            worker.kill()
        for name in ("celeryconfig", *self.modules):
            module = sys.modules.pop(name, None)
            app = getattr(module, "app", None)
            if app is not None:
                app.close()
        if str(self.dir) in sys.path:
            sys.path.remove(str(self.dir))
