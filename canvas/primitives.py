"""The composition primitives: ``chain``, ``group``, ``chord``, ``chunks``, ``xmap``, ``xstarmap``.

Each is a ``Signature`` whose kwargs hold its parts, registered in ``Signature.TYPES`` under its
``subtask_type`` so ``Signature.from_dict`` rebuilds it. They only *build* shapes and normalise
them once (nested chains flatten here); what a shape means when it runs, and where each task id
lands, is decided in ``canvas.dag``. Lowercase class names are Celery's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from canvas.signature import (
    Signature,
    check_signature,
    drop_repeated_module,
    repr_call,
    shorten,
)

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.result import AsyncResult, GroupResult


@Signature.register_type()
class chain(Signature):  # lowercase: Celery's name
    """Tasks run one after the other, each getting the previous result as its first argument."""

    subtask_type = "chain"

    @classmethod
    def _from_parts(
        cls,
        data: Mapping[str, Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        app: Canvas | None,
    ) -> Signature:
        tasks = (Signature.from_dict(t, app) for t in kwargs.get("tasks", ()))
        return _restored(chain(*tasks, app=app), data, options)

    def __init__(self, *tasks: Any, app: Canvas | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Signature):
            tasks = tuple(tasks[0])
        flat: list[Signature] = []
        for task in tasks:
            check_signature(task, "chain")
            # Nested chains flatten once, here; later code never sees a chain in a chain.
            if type(task) is chain and not task.options and not task.immutable:
                flat.extend(task.tasks)
            else:
                flat.append(task)
        super().__init__("canvas.chain", (), {"tasks": flat}, options, app=app)
        self._app = app or next((t._app for t in flat if t._app), None)

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self.kwargs["tasks"]
        return tasks

    def _copy(self) -> Signature:
        copy = super()._copy()
        copy.kwargs = {"tasks": [t._copy() for t in self.tasks]}
        return copy

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        clone = self._copy()
        clone.options.update(options)
        if (args or kwargs) and clone.kwargs["tasks"]:
            tasks = clone.kwargs["tasks"]
            tasks[0] = tasks[0].clone(args, kwargs)
        return clone

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, Signature):
            return chain(self, other, app=self._app)
        return NotImplemented

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncResult | GroupResult:
        """Celery's ``chain()`` sends the chain."""
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        if not self.tasks:
            return f"<chain@{id(self):#x}: empty>"
        return drop_repeated_module(
            self.tasks[0].task if type(self.tasks[0]) is Signature else None,
            " | ".join(repr(t) for t in self.tasks),
        )


@Signature.register_type()
class group(Signature):  # lowercase: Celery's name
    """Tasks run in parallel; the result is the list of their results in member order."""

    subtask_type = "group"

    @classmethod
    def _from_parts(
        cls,
        data: Mapping[str, Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        app: Canvas | None,
    ) -> Signature:
        tasks = (Signature.from_dict(t, app) for t in kwargs.get("tasks", ()))
        return _restored(group(*tasks, app=app), data, options)

    def __init__(self, *tasks: Any, app: Canvas | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Signature):
            tasks = tuple(tasks[0])
        members: list[Signature] = []
        for task in tasks:
            check_signature(task, "group")
            members.append(task)
        super().__init__("canvas.group", (), {"tasks": members}, options, app=app)
        self._app = app or next((t._app for t in members if t._app), None)

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self.kwargs["tasks"]
        return tasks

    def _copy(self) -> Signature:
        copy = super()._copy()
        copy.kwargs = {"tasks": [t._copy() for t in self.tasks]}
        return copy

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        clone = self._copy()
        clone.options.update(options)
        if args or kwargs:
            clone.kwargs["tasks"] = [t.clone(args, kwargs) for t in clone.kwargs["tasks"]]
        return clone

    def __or__(self, other: Any) -> Signature:
        # Celery: group | task is a chord whose body is the task.
        if isinstance(other, Signature) and not isinstance(other, group):
            return chord(self, other, app=self._app)
        if isinstance(other, Signature):
            return chain(self, other, app=self._app)
        return NotImplemented

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        if "link" in options or "link_error" in options:
            raise TypeError(
                "group.apply_async() does not take link/link_error: call group.link(sig) or "
                "group.link_error(sig) instead, or use a chord to run a task after the group."
            )
        # A group's handle is always a GroupResult (canvas.dag: the spec of a group).
        return cast("GroupResult", super().apply_async(args, kwargs, **options))

    def __call__(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Signature]:
        return iter(self.tasks)

    def __repr__(self) -> str:
        if not self.tasks:
            return "group(<untitled>)"
        first = self.tasks[0]
        return drop_repeated_module(
            first.task if type(first) is Signature else None,
            f"group([{', '.join(repr(t) for t in self.tasks)}])",
        )


@Signature.register_type()
class chord(Signature):  # lowercase: Celery's name
    """A group (the header) whose list of results is passed to one more task (the body)."""

    subtask_type = "chord"

    @classmethod
    def _from_parts(
        cls,
        data: Mapping[str, Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        app: Canvas | None,
    ) -> Signature:
        body = kwargs.get("body")
        header = kwargs["header"]
        sig = chord(
            # Celery 5 keeps the header as a list of task dicts; ours is a group dict.
            [Signature.from_dict(t, app) for t in header]
            if isinstance(header, list | tuple)
            else Signature.from_dict(header, app),
            Signature.from_dict(body, app) if body is not None else None,
            app=app,
        )
        return _restored(sig, data, options)

    def __init__(
        self,
        header: Any,
        body: Signature | None = None,
        app: Canvas | None = None,
        **options: Any,
    ) -> None:
        if isinstance(header, Mapping) and not isinstance(header, Signature):
            header = Signature.from_dict(header, app)
        if not isinstance(header, group):
            header = group(*header) if not isinstance(header, Signature) else group(header)
        if body is not None:
            check_signature(body, "chord body")
        super().__init__("canvas.chord", (), {"header": header, "body": body}, options, app=app)
        self._app = app or header._app or (body._app if body is not None else None)

    @property
    def header(self) -> group:
        header: group = self.kwargs["header"]
        return header

    @property
    def body(self) -> Signature | None:
        body: Signature | None = self.kwargs["body"]
        return body

    def _copy(self) -> Signature:
        copy = super()._copy()
        body = self.body._copy() if self.body is not None else None
        copy.kwargs = {"header": self.header._copy(), "body": body}
        return copy

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        clone = self._copy()
        clone.options.update(options)
        if args or kwargs:
            clone.kwargs["header"] = self.header.clone(args, kwargs)
        return clone

    def link(self, callback: Signature) -> Signature:
        self._require_body().link(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        self._require_body().link_error(errback)
        return errback

    def _require_body(self) -> Signature:
        if self.body is None:
            raise TypeError(
                "chord has no body yet: call chord(header)(body) or chord(header, body)"
            )
        return self.body

    def __call__(self, body: Signature | None = None, **options: Any) -> AsyncResult | GroupResult:
        """``chord(header)(body)`` sends the chord with that body."""
        sig = self if body is None else chord(self.header, body, app=self._app, **self.options)
        return sig.apply_async((), {}, **options)

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, Signature):
            return chain(self, other, app=self._app)
        return NotImplemented

    def __repr__(self) -> str:
        """Celery's: ``%tsum(group([add(1, 1), add(2, 2)]))``, the body called on the header."""
        body = self.body
        if body is None:
            return f"<chord without body: {self.header!r}>"
        if isinstance(body, chain) and body.tasks:
            first, rest = body.tasks[0], body.tasks[1:]
            head = repr_call(str(first.task), (self.header, *first.args), first.kwargs)
            text = f"%({head} | {chain(*rest)!r})" if rest else f"%{head}"
            return drop_repeated_module(first.task, text)
        if type(body) is not Signature:
            return f"chord({self.header!r}, {body!r})"
        head = repr_call(str(body.task), (self.header, *body.args), body.kwargs)
        return "%" + drop_repeated_module(body.task, head)


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
        return _restored(sig, data, options)

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
        return group(*members, app=self._app, **options)

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


def _restored(sig: Signature, data: Mapping[str, Any], options: dict[str, Any]) -> Signature:
    """A primitive rebuilt from its dict takes the dict's options and immutability too."""
    sig.options.update(options)
    sig.immutable = bool(data.get("immutable")) or sig.immutable
    return sig


__all__ = ["chain", "chord", "chunks", "group", "xmap", "xstarmap"]
