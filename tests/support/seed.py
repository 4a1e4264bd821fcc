"""A worker for one broker configuration and the seed document's tasks module bound to it.

Used by the seed examples (``tests/integration/test_seed.py``) and the worker-process tests.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.servers import AMQP_URL, REDIS_URL
from tests.support.workers import CANVAS, ROOT, WorkerProcess

SEED_DIR = ROOT / "tests" / "integration" / "seed"
CONFIGS = {
    "embedded": ("", ""),
    "redis": (REDIS_URL, REDIS_URL),
    "amqp+redis": (AMQP_URL, REDIS_URL),
}


class Seed:
    """A running worker for one broker configuration, and the tasks module bound to it."""

    def __init__(self, name: str, tmp: Path) -> None:
        broker, backend = CONFIGS[name]
        self.state = tmp / "state"
        self.env = {
            "CANVAS_TEST_BROKER": broker,
            "CANVAS_TEST_BACKEND": backend,
            "CANVAS_TEST_QUEUE": f"seed-{name}-{uuid.uuid4().hex[:8]}",
            "CANVAS_TEST_STATE": str(self.state),
            "CANVAS_EMBEDDED_DIR": str(tmp / "embedded"),
            "CANVAS_TEST_LEASE": "3",
            "PYTHONPATH": os.pathsep.join([str(SEED_DIR), str(ROOT)]),
        }
        os.environ.update(self.env)
        sys.path.insert(0, str(SEED_DIR))
        sys.modules.pop("tasks", None)
        self.tasks = importlib.import_module("tasks")
        self.app = self.tasks.app
        self.tmp = tmp
        self.workers: list[WorkerProcess] = []

    def start_worker(self, *args: str) -> WorkerProcess:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*CANVAS, "--app=tasks", "worker", "--loglevel=INFO", "-c", "2", *args],
                cwd=SEED_DIR,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(proc, log)
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def logs(self) -> str:
        return "\n".join(w.output() for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(10)
            worker.kill()
        self.app.close()
        sys.path.remove(str(SEED_DIR))
        sys.modules.pop("tasks", None)
        for key in self.env:
            os.environ.pop(key, None)
