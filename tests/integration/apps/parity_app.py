"""The app the Celery-parity integration tests run in a real ``canvas worker`` subprocess.

The worker loads it with ``canvas -A tests.integration.apps.parity_app worker``; the tests build the
same app in their own process with ``make_app``. Configuration comes from the environment
(``CANVAS_IT_BROKER``, ``CANVAS_IT_BACKEND``, ``CANVAS_IT_QUEUE``, ``CANVAS_IT_DIR``), as for
``canvas_app``.

Record files (one JSON object a line, appended by whichever process):

``runs.log``      a ``record`` task ran: ``{"tag", "args"}``
``errbacks.log``  an errback ran: ``{"tag", "style", "id", "exc"}``
``members.log``   a ``member`` task ran: ``{"tag", "i"}`` (written before it returns)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from canvas import Canvas, Signature, chain, chord, group
from canvas.task import Task
from tests.support.worker_harness import append_record


class ParityError(Exception):
    """Raised by ``fail``; defined beside the tasks so results rebuild it by type."""


def make_app(broker: str | None, backend: str | None, queue: str, directory: str) -> Canvas:
    """The test app; ``broker``/``backend`` None gives the embedded default under ``directory``."""
    app = Canvas(
        "canvas-parity-it",
        broker=broker or None,
        backend=backend or None,
        set_as_current=False,
        task_default_queue=queue,
        embedded_dir=str(Path(directory) / "embedded"),
        result_expires=900,
        worker_prefetch_multiplier=1,
    )

    @app.task(name="pa.ping")
    def ping() -> str:
        return "pong"

    @app.task(name="pa.add")
    def add(x: Any, y: Any = 0) -> Any:
        return x + y

    @app.task(name="pa.tsum")
    def tsum(values: list[Any]) -> int:
        return sum(v if isinstance(v, int) else tsum(v) for v in values)

    @app.task(name="pa.identity")
    def identity(value: Any) -> Any:
        return value

    @app.task(name="pa.fail")
    def fail(*args: Any) -> None:
        raise ParityError("boom", *args)

    @app.task(name="pa.ids", bind=True)
    def ids(self: Task, i: int) -> list[Any]:
        return [self.request.root_id, self.request.parent_id, i]

    @app.task(name="pa.collect_ids", bind=True)
    def collect_ids(self: Task, previous: Any, i: int) -> list[Any]:
        return [previous, [self.request.root_id, self.request.parent_id, i]]

    @app.task(name="pa.priority", bind=True)
    def priority(self: Task, *_: Any) -> Any:
        return self.request.delivery_info.get("priority")

    @app.task(name="pa.stamps", bind=True)
    def stamps(self: Task, *_: Any) -> Any:
        return dict(self.request.stamps or {})

    @app.task(name="pa.retry_stamps", bind=True, max_retries=1)
    def retry_stamps(self: Task) -> Any:
        if not self.request.retries:
            raise self.retry(countdown=0.05)
        return dict(self.request.stamps or {})

    @app.task(name="pa.record")
    def record(*args: Any, tag: str = "") -> list[Any]:
        append_record("runs.log", {"tag": tag, "args": list(args)})
        return list(args)

    @app.task(name="pa.member")
    def member(i: int, tag: str = "") -> int:
        append_record("members.log", {"tag": tag, "i": i})
        return i

    @app.task(name="pa.on_error")
    def on_error(task_id: str, *, tag: str = "") -> None:
        append_record("errbacks.log", {"tag": tag, "style": "old", "id": task_id, "exc": None})

    @app.task(name="pa.on_error_new")
    def on_error_new(request: Any, exc: BaseException, traceback: Any, tag: str = "") -> None:
        text = f"{type(exc).__name__}: {exc}"
        append_record("errbacks.log", {"tag": tag, "style": "new", "id": request.id, "exc": text})

    @app.task(name="pa.replace_with_nothing", bind=True)
    def replace_with_nothing(self: Task, *_: Any) -> Any:
        return self.replace(chain())

    @app.task(name="pa.replace_with_ids", bind=True)
    def replace_with_ids(self: Task, *_: Any) -> Any:
        return self.replace(ids.si(10) | ids.si(11))

    @app.task(name="pa.fail_replaced", bind=True)
    def fail_replaced(self: Task, *args: Any) -> Any:
        return self.replace(fail.si(*args))

    @app.task(name="pa.add_to_chord", bind=True)
    def add_members(self: Task, numbers: list[int], value: int) -> int:
        for number in numbers:
            self.add_to_chord(add.s(number, value))
        return 0

    @app.task(name="pa.add_chord_to_chord", bind=True)
    def add_chord(self: Task, numbers: list[int], value: int) -> int:
        self.add_to_chord(group(add.s(n, value) for n in numbers) | tsum.s())
        return 0

    @app.task(name="pa.send_from_task", bind=True)
    def send_from_task(self: Task) -> list[str]:
        result = (ids.si(1) | ids.si(2)).apply_async()
        return [result.id, result.parent.id]

    @app.task(name="pa.nested")
    def nested(kind: str) -> Signature:
        shapes = {
            "chain in chord": chord([add.s(1, 1) | add.s(2)], tsum.s()),
            "chord in chain": add.s(1, 1) | chord([add.s(1), add.s(2)], tsum.s()),
            "chord in group": group(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(3, 3)),
            "group in chord": chord([group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)], tsum.s()),
            "chord in chord": chord([chord([add.s(1, 1), add.s(2, 2)], tsum.s())], tsum.s()),
        }
        return shapes[kind]

    @app.task(name="pa.rebuild")
    def rebuild(data: dict[str, Any]) -> list[Any]:
        """Rebuild a canvas from its dict and describe every level, failing on a lost member."""

        def shape(sig: Any) -> Any:
            if not isinstance(sig, Signature):
                raise TypeError(f"{sig!r} is not a signature")
            if isinstance(sig, chord):
                return ["chord", [shape(t) for t in sig.tasks], shape(sig.body)]
            if isinstance(sig, chain | group):
                return [type(sig).__name__, [shape(t) for t in sig.tasks]]
            return sig.task

        return [shape(Signature.from_dict(data, app=app)), data]

    return app


app = make_app(
    os.environ.get("CANVAS_IT_BROKER"),
    os.environ.get("CANVAS_IT_BACKEND"),
    os.environ.get("CANVAS_IT_QUEUE", "canvas-parity-it"),
    os.environ.get("CANVAS_IT_DIR", ".canvas-parity-it"),
)
