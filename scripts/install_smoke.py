"""One task through a real worker of the installed package (run by scripts/install-smoke.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

workdir = Path(os.environ["SMOKE_DIR"])
workdir.mkdir(parents=True)
queue = f"smoke-{uuid.uuid4().hex[:8]}"
(workdir / "smoke_tasks.py").write_text(
    textwrap.dedent(
        f"""
        from canvas import Canvas

        app = Canvas(
            "smoke_tasks",
            broker={os.environ["SMOKE_BROKER"] or None!r},
            backend={os.environ["SMOKE_BACKEND"] or None!r},
            task_default_queue={queue!r},
            embedded_dir={str(workdir / "embedded")!r},
        )


        @app.task
        def add(x, y):
            return x + y
        """
    )
)
sys.path.insert(0, str(workdir))
import canvas  # noqa: E402

assert "site-packages" in canvas.__file__, f"canvas imported from {canvas.__file__}"
from smoke_tasks import add, app  # noqa: E402

log = workdir / "worker.log"
with open(log, "wb") as out:
    worker = subprocess.Popen(
        [sys.executable, "-m", "canvas.cli.main", "--app=smoke_tasks", "worker", "-c", "1"],
        cwd=workdir,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
try:
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the worker did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    result = add.delay(2, 3).get(timeout=30)
    assert result == 5, result
finally:
    worker.terminate()
    worker.wait(30)
    app.close()
