"""Maps and chunks: ``T.map(xs)``, ``T.starmap(xs)`` and ``T.chunks(xs, n)``, as in Celery.

A map is one call of a builtin task (``canvas.map``/``canvas.starmap``) that calls ``T`` for each
item in order, in one worker; it is immutable (in a chain it ignores the previous result).
``chunks`` splits the items into ``n``-sized ``starmap`` calls run as a group.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from canvas.primitives import restored
from canvas.signature import Signature, shorten

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.primitives import group
    from canvas.result import GroupResult


@Signature.register_type()
class xmap(Signature):  # lowercase: Celery's name
    """``T.map(items)``: one message that calls ``T(item)`` for each item in order.

    Immutable, as in Celery: in a chain it ignores the previous result (its items are fixed).
    """

    subtask_type = "xmap"
    builtin = "canvas.map"

    @classmethod
    def _from_parts(
        cls,
        data: Mapping[str, Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        app: Canvas | None,
    ) -> Signature:
        # Ours keep (task, items) in args; Celery's dict keeps them in kwargs task/it.
        task_name, items = data["args"] if data.get("args") else (kwargs["task"], kwargs["it"])
        return cls(task_name, items, app=app, **options)

    def __init__(
        self,
        task: str | Signature | Mapping[str, Any],
        it: Iterable[Any],
        app: Canvas | None = None,
        **options: Any,
    ) -> None:
        options.pop("immutable", None)
        super().__init__(
            self.builtin, (_task_name(task), list(it)), {}, options, immutable=True, app=app
        )

    def __repr__(self) -> str:
        task, items = self.args
        return f"[{task}(x) for x in {shorten(items)}]"


@Signature.register_type()
class xstarmap(xmap):  # lowercase: Celery's name
    """``T.starmap(items)``: one message that calls ``T(*item)`` for each item in order."""

    subtask_type = "xstarmap"
    builtin = "canvas.starmap"

    def __repr__(self) -> str:
        task, items = self.args
        return f"[{task}(*x) for x in {shorten(items)}]"


@Signature.register_type()
class chunks(Signature):  # lowercase: Celery's name
    """``T.chunks(items, n)``: the items split into messages of ``n`` calls each."""

    subtask_type = "chunks"

    @classmethod
    def _from_parts(
        cls,
        data: Mapping[str, Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        app: Canvas | None,
    ) -> Signature:
        sig = chunks(kwargs["task"], kwargs["it"], kwargs["n"], app=app)
        return restored(sig, data, options)

    def __init__(
        self,
        task: str | Signature | Mapping[str, Any],
        it: Iterable[Any],
        n: int,
        app: Canvas | None = None,
        **options: Any,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"chunks(): chunk size must be a positive int, got {n!r}")
        options.pop("immutable", None)
        kwargs = {"task": _task_name(task), "it": list(it), "n": n}
        super().__init__("canvas.chunks", (), kwargs, options, immutable=True, app=app)

    def group(self) -> group:
        """The chunks as a group of ``starmap`` calls (what runs).

        Once the chunks are frozen (a ``group_id``), the member ids derive from it, so the
        group built at send time has the ids that ``freeze()`` returned.
        """
        items = self.kwargs["it"]
        n = self.kwargs["n"]
        parts = [items[i : i + n] for i in range(0, len(items), n)]
        options = {k: v for k, v in self.options.items() if k != "task_id"}
        group_id = options.get("group_id") or self.options.get("task_id")
        members = []
        for index, part in enumerate(parts):
            member = xstarmap(self.kwargs["task"], part, app=self._app)
            if group_id:
                member.options["task_id"] = str(uuid.uuid5(uuid.UUID(int=0), f"{group_id}:{index}"))
            members.append(member)
        if group_id:
            options["group_id"] = group_id
        # The group class is looked up where primitives registered it (no import cycle).
        make: Any = Signature.TYPES["group"]
        return cast("group", make(members, app=self._app, **options))

    def __call__(self, *args: Any, **kwargs: Any) -> GroupResult:
        return cast("GroupResult", self.apply_async())

    def __repr__(self) -> str:
        return f"chunks({self.kwargs['task']}, {shorten(self.kwargs['it'])}, {self.kwargs['n']})"


def _task_name(task: str | Signature | Mapping[str, Any]) -> str:
    """A map's task as a name: Celery passes ``T.s()`` (or its dict) where we keep the name."""
    if isinstance(task, Signature):
        return str(task.task)
    if isinstance(task, Mapping):
        return str(task["task"])
    if not isinstance(task, str):
        raise TypeError(f"map/chunks: expected a task name or signature, got {shorten(task)}")
    return task


__all__ = ["chunks", "xmap", "xstarmap"]
