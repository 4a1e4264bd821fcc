"""The app that the canvas integration tests run in a real ``canvas worker`` subprocess.

The worker loads it with ``canvas -A tests.integration.apps.canvas_app worker``; the tests build
the same app in their own process with ``make_app``. Configuration comes from the environment:

``CANVAS_IT_BROKER`` / ``CANVAS_IT_BACKEND``   broker and result store URLs (empty: embedded)
``CANVAS_IT_QUEUE``                            the queue of this test session
``CANVAS_IT_QUEUE_TYPE``                       ``quorum`` for RabbitMQ quorum queues
``CANVAS_IT_DIR``                              a directory of the test session: the embedded
                                               queue and store, and the record files below

Record files (one JSON object a line, appended with O_APPEND by whichever process):

``runs.log``      a ``record`` task ran: ``{"tag", "value", "pid"}``
``errbacks.log``  an errback ran: ``{"tag", "style", "id", "exc"}``
``wire.log``      a message was published: ``{"workflow", "task", "bytes"}``, where ``bytes``
                  is the body plus the msgpack-encoded headers, what canvas hands the broker
``settled.log``   the completion step for a node returned: ``{"id"}``

The worker records them; the test process, which imports this module without
``CANVAS_IT_DIR``, installs nothing. ``settled.log`` exists because a duplicate delivery that
wires nothing leaves no other trace: the test waits for the duplicate's completion step to
return before it counts body runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgpack

from canvas import Canvas, group, signals
from canvas.core import complete
from canvas.task import Task


class IntegrationError(Exception):
    """An exception type defined next to the tasks: rebuilt by type on the caller's side."""


def _append(name: str, record: dict[str, Any]) -> None:
    directory = os.environ.get("CANVAS_IT_DIR")
    if not directory:
        return
    line = (json.dumps(record, default=repr) + "\n").encode()
    fd = os.open(Path(directory) / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_records(directory: Path, name: str) -> list[dict[str, Any]]:
    path = directory / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def make_app(broker: str | None, backend: str | None, queue: str, directory: str) -> Canvas:
    """The test app; ``broker``/``backend`` None gives the embedded default under ``directory``."""
    app = Canvas(
        "canvas-it",
        broker=broker or None,
        backend=backend or None,
        set_as_current=False,
        task_default_queue=queue,
        embedded_dir=str(Path(directory) / "embedded"),
        result_expires=900,
        worker_prefetch_multiplier=1,
        task_default_queue_type=os.environ.get("CANVAS_IT_QUEUE_TYPE") or "classic",
    )

    @app.task(name="it.ping")
    def ping() -> str:
        return "pong"

    @app.task(name="it.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="it.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="it.tsum")
    def tsum(values: list[Any]) -> int:
        return sum(v if isinstance(v, int) else tsum(v) for v in values)

    @app.task(name="it.ident")
    def ident(value: Any) -> Any:
        return value

    @app.task(name="it.fail")
    def fail(*args: Any) -> None:
        raise ValueError("fail", *args)

    @app.task(name="it.fail_with")
    def fail_with(message: str, *args: Any) -> None:
        raise IntegrationError(message)

    @app.task(name="it.record")
    def record(value: Any, tag: str = "") -> Any:
        _append("runs.log", {"tag": tag, "value": value, "pid": os.getpid()})
        return value

    @app.task(name="it.on_error")
    def on_error(task_id: str, *, tag: str = "") -> None:
        _append("errbacks.log", {"tag": tag, "style": "old", "id": task_id, "exc": None})

    @app.task(name="it.on_error_new")
    def on_error_new(request: Any, exc: BaseException, traceback: Any, tag: str = "") -> None:
        text = f"{type(exc).__name__}: {exc}"
        _append("errbacks.log", {"tag": tag, "style": "new", "id": request.id, "exc": text})

    @app.task(name="it.replace_with_chain", bind=True)
    def replace_with_chain(self: Task, x: int) -> Any:
        return self.replace(add.s(x, 100) | mul.s(2))

    @app.task(name="it.replace_with_group", bind=True)
    def replace_with_group(self: Task, x: int) -> Any:
        return self.replace(group(add.s(x, 1), add.s(x, 2)))

    @app.task(name="it.flaky", bind=True, max_retries=3)
    def flaky(self: Task, value: Any, fails: int) -> Any:
        if self.request.retries < fails:
            raise self.retry(countdown=0.05, exc=IntegrationError(f"try {self.request.retries}"))
        return value

    return app


# -- instrumentation: in the worker only (the tests measure their own publishes) -------------
def _measure(sender: Any = None, body: bytes = b"", headers: Any = None, **_: Any) -> None:
    headers = dict(headers or {})
    size = len(body) + len(msgpack.packb(headers, use_bin_type=True, default=repr))
    _append("wire.log", {"workflow": headers.get("workflow"), "task": sender, "bytes": size})


_settle = complete.settle


def _settle_and_log(app: Canvas, workflow_id: str, node: Any, meta: Any, *rest: Any) -> None:
    _settle(app, workflow_id, node, meta, *rest)
    _append("settled.log", {"id": node.id})


if os.environ.get("CANVAS_IT_DIR"):
    signals.before_task_publish.connect(_measure)
    complete.settle = _settle_and_log

app = make_app(
    os.environ.get("CANVAS_IT_BROKER"),
    os.environ.get("CANVAS_IT_BACKEND"),
    os.environ.get("CANVAS_IT_QUEUE", "canvas-it"),
    os.environ.get("CANVAS_IT_DIR", ".canvas-it"),
)
