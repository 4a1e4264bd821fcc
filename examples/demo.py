"""``make demo``: start a worker, run a real workflow on the embedded default, and draw it.

Nothing but this repository is needed: the embedded broker is a SQLite file, the worker is a real
``canvas worker`` process, and the pictures come from graphviz's ``dot``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "demo-out"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(OUT / "cache")  # a private embedded broker for the demo
    sys.path.insert(0, str(HERE))
    import proj

    log = open(OUT / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "canvas.cli.main", "-A", "proj", "worker", "-l", "INFO", "-c", "2"],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        proj.add.delay(0, 0).get(timeout=60)  # the worker is up and consuming
        print("workflow:", proj.workflow)
        started = time.perf_counter()
        result = proj.workflow.apply_async()
        value = result.get(timeout=60)
        elapsed = time.perf_counter() - started
        print(f"result:   {value} (in {elapsed:.2f} s, on a real worker process)")
        assert value == 125, value
        counts = dict(result.workflow.counts())
        print(f"nodes:    {counts} (13 tasks and the join that collects the chord)")
        render = [sys.executable, "-m", "canvas.cli.main"]
        subprocess.run(
            [*render, "render", "proj:workflow", "-o", str(OUT / "workflow.svg")],
            cwd=HERE,
            env={**os.environ, "PYTHONPATH": str(HERE)},
            check=True,
        )
        subprocess.run(
            [*render, "-A", "proj", "render", "--id", result.id, "-o", str(OUT / "run.svg")],
            cwd=HERE,
            env={**os.environ, "PYTHONPATH": str(HERE)},
            check=True,
        )
        tree = subprocess.run(
            [*render, "-A", "proj", "render", "--id", result.id, "--format", "text"],
            cwd=HERE,
            env={**os.environ, "PYTHONPATH": str(HERE)},
            check=True,
            capture_output=True,
            text=True,
        )
        print(tree.stdout)
        print(f"drawn:    {OUT / 'workflow.svg'} (before it ran), {OUT / 'run.svg'} (its run)")
        return 0
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
