"""Signatures and the composition primitives: ``chain``, ``group``, ``chord``, ``chunks``, maps.

A signature is one task call waiting to happen: a task name, partial arguments and call options.
Composition only *builds* shapes (``a | b`` is a chain, ``group | b`` a chord); what a shape means
when it runs is decided in one place, ``canvas.dag.compile``.

Celery compatibility decides two things here. ``set``, ``link`` and ``link_error`` change the
signature in place and return it (Celery code relies on that); ``|`` and ``clone`` build new
objects. And a signature serializes to the same dict shape as Celery's (``task``, ``args``,
``kwargs``, ``options``, ``subtask_type``, ``immutable``), so a task can return a canvas.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.result import AsyncResult, EagerResult
    from canvas.task import Task


def _resolve_app(app: Canvas | None) -> Canvas:
    from canvas.app import default_app

    return app if app is not None else default_app()


def _repr_call(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _drop_repeated_module(task_name: str | None, text: str) -> str:
    """Celery's ``remove_repeating_from_task``: keep the first ``module.`` prefix, drop the rest.

    ``tasks.add(2, 2) | tasks.mul(4)`` reads ``tasks.add(2, 2) | mul(4)``, as Celery prints it.
    """
    module = str(task_name).rpartition(".")[0] + "."
    if module == ".":
        return text
    index = text.find(module)
    if index < 0:
        return text
    cut = index + len(module)
    return text[:cut] + text[cut:].replace(module, "")


class Signature:
    """One task call: name, partial args/kwargs, options (queue, countdown, link, ...)."""

    subtask_type: str | None = None

    def __init__(
        self,
        task: str | Task | Signature | Mapping[str, Any] | None = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        immutable: bool = False,
        app: Canvas | None = None,
        **extra_options: Any,
    ) -> None:
        from canvas.task import Task

        self._app = app
        if isinstance(task, Task):
            self._app = app or task.app
            task = task.name
        if isinstance(task, Signature | Mapping) and not isinstance(task, str):
            raise TypeError(
                "Signature(): use Signature.from_dict() or .clone() to copy a signature"
            )
        if args is not None and (isinstance(args, str | bytes) or not isinstance(args, Sequence)):
            raise TypeError(f"Signature args must be a list or tuple, got {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"Signature kwargs must be a dict, got {type(kwargs).__name__}")
        self.task: str | None = task
        self.args: tuple[Any, ...] = tuple(args or ())
        self.kwargs: dict[str, Any] = dict(kwargs or {})
        self.options: dict[str, Any] = {**dict(options or {}), **extra_options}
        self.immutable = bool(immutable)

    # -- identity and copying ---------------------------------------------------------------
    @property
    def app(self) -> Canvas:
        return _resolve_app(self._app)

    @property
    def name(self) -> str | None:
        return self.task

    @property
    def id(self) -> str | None:
        task_id: str | None = self.options.get("task_id")
        return task_id

    @property
    def type(self) -> Task:
        """The registered task this signature calls."""
        assert self.task is not None
        return self.app.tasks[self.task]

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A copy with ``args`` *prepended* and ``kwargs`` merged (ignored when immutable)."""
        new_args, new_kwargs = self._partial(args, kwargs)
        clone = self._copy()
        clone.args, clone.kwargs = new_args, new_kwargs
        clone.options = {**_copy_options(self.options), **options}
        return clone

    def _copy(self) -> Signature:
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.options = _copy_options(self.options)
        copy.kwargs = dict(self.kwargs)
        return copy

    def _partial(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.immutable:
            return self.args, dict(self.kwargs)
        return tuple(args or ()) + self.args, {**self.kwargs, **dict(kwargs or {})}

    __copy__ = _copy

    # -- options, in place as in Celery ----------------------------------------------------
    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set call options in place (``queue``, ``countdown``, ``kwargsrepr``...); returns self."""
        if immutable is not None:
            self.immutable = immutable
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self.immutable = immutable

    def link(self, callback: Signature) -> Signature:
        """Run ``callback`` with this call's result when it succeeds; returns the callback."""
        _check_signature(callback, "link")
        self.options.setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Run ``errback`` when this call fails; returns the errback."""
        _check_signature(errback, "link_error")
        self.options.setdefault("link_error", []).append(errback)
        return errback

    def on_error(self, errback: Signature) -> Signature:
        """Like ``link_error`` but returns self, for chaining calls."""
        self.link_error(errback)
        return self

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        """Fix the task ids now, so the result handle exists before the call is sent.

        For a chain, group or chord every task id inside it is fixed (in place, as Celery does)
        and the handle has the shape ``apply_async()`` returns: the same ids, the same
        ``.parent`` links, a ``GroupResult`` for a group.
        """
        from canvas.result import AsyncResult

        if _id is not None:
            self.options["task_id"] = _id
        task_id = self.options.setdefault("task_id", str(uuid.uuid4()))
        return AsyncResult(task_id, app=self._app)

    def _freeze_ids(self) -> None:
        """Fix every id inside this canvas (composites override; link callbacks included)."""
        self.options.setdefault("task_id", str(uuid.uuid4()))
        for callback in self.options.get("link") or ():
            callback._freeze_ids()

    def _freeze_composite(self, _id: str | None) -> Any:
        from canvas import dag
        from canvas.result import from_spec

        if _id is not None:
            self.options["task_id"] = _id
        self._freeze_ids()
        return from_spec(dag.compile(self).result, self.app)

    # -- calling ---------------------------------------------------------------------------
    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send this canvas to the workers; returns the handle of its last result.

        A ``GroupResult`` when the canvas ends in a group (Celery's shapes: see ``canvas.dag``).
        """
        result: AsyncResult = self.app.send_canvas(self, args, kwargs, **options)
        return result

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult:
        """Run this canvas here and now, in this process; returns a ready result."""
        from canvas.core.eager import run_eagerly

        result: EagerResult = run_eagerly(self.app, self, args, kwargs, options)
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function directly, as ``task(*args)`` would (Celery's behaviour)."""
        new_args, new_kwargs = self._partial(args, kwargs)
        return self.type(*new_args, **new_kwargs)

    # -- composition -----------------------------------------------------------------------
    def __or__(self, other: Any) -> Signature:
        if isinstance(other, Signature):
            return chain(self, other, app=self._app)
        return NotImplemented

    def __ror__(self, other: Any) -> Signature:
        return NotImplemented

    # -- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Celery's dict shape; nested signatures become dicts too."""
        return {
            "task": self.task,
            "args": _to_plain(list(self.args)),
            "kwargs": _to_plain(self.kwargs),
            "options": _to_plain(self.options),
            "subtask_type": self.subtask_type,
            "immutable": self.immutable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Canvas | None = None) -> Signature:
        """Rebuild any signature or canvas from ``to_dict()`` output (or a Celery dict)."""
        if isinstance(data, Signature):
            return data
        kind = data.get("subtask_type")
        options = _from_plain(dict(data.get("options") or {}), app)
        kwargs = dict(data.get("kwargs") or {})
        if kind is None:
            return Signature(
                data["task"],
                data.get("args") or (),
                kwargs,
                options,
                immutable=bool(data.get("immutable")),
                app=app,
            )
        if kind in ("xmap", "xstarmap"):
            # Ours keep (task, items) in args; Celery's dict keeps them in kwargs task/it.
            task_name, items = data["args"] if data.get("args") else (kwargs["task"], kwargs["it"])
            mapper = xmap if kind == "xmap" else xstarmap
            return mapper(task_name, items, app=app, **options)
        builder = _SUBTASK_TYPES.get(kind)
        if builder is None:
            raise ValueError(f"Unknown subtask_type {kind!r} in signature dict")
        sig: Signature = builder(kwargs, app)
        sig.options.update(options)
        sig.immutable = bool(data.get("immutable")) or sig.immutable
        return sig

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return _repr_call(str(self.task), self.args, self.kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        return Signature.from_dict(self.to_dict(), app=self._app)


class chain(Signature):  # lowercase: Celery's name
    """Tasks run one after the other, each getting the previous result as its first argument."""

    subtask_type = "chain"

    def __init__(self, *tasks: Any, app: Canvas | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Signature):
            tasks = tuple(tasks[0])
        flat: list[Signature] = []
        for task in tasks:
            _check_signature(task, "chain")
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

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Celery's ``chain()`` sends the chain."""
        return self.apply_async(args, kwargs)

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        return self._freeze_composite(_id)

    def _freeze_ids(self) -> None:
        last_id = self.options.pop("task_id", None)
        for index, task in enumerate(self.tasks):
            if last_id and index == len(self.tasks) - 1:
                task.options.setdefault("task_id", last_id)
            task._freeze_ids()
        for callback in self.options.get("link") or ():
            callback._freeze_ids()

    def __repr__(self) -> str:
        if not self.tasks:
            return f"<chain@{id(self):#x}: empty>"
        return _drop_repeated_module(
            self.tasks[0].task if type(self.tasks[0]) is Signature else None,
            " | ".join(repr(t) for t in self.tasks),
        )


class group(Signature):  # lowercase: Celery's name
    """Tasks run in parallel; the result is the list of their results in member order."""

    subtask_type = "group"

    def __init__(self, *tasks: Any, app: Canvas | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Signature):
            tasks = tuple(tasks[0])
        members: list[Signature] = []
        for task in tasks:
            _check_signature(task, "group")
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
    ) -> Any:
        if "link" in options or "link_error" in options:
            raise TypeError(
                "group.apply_async() does not take link/link_error: call group.link(sig) or "
                "group.link_error(sig) instead, or use a chord to run a task after the group."
            )
        return super().apply_async(args, kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Any:
        return iter(self.tasks)

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        if _id is not None:
            self.options["group_id"] = _id
        return self._freeze_composite(None)

    def _freeze_ids(self) -> None:
        group_id = self.options.pop("task_id", None) or str(uuid.uuid4())
        self.options.setdefault("group_id", group_id)
        for task in self.tasks:
            task._freeze_ids()
        for callback in self.options.get("link") or ():
            callback._freeze_ids()

    def __repr__(self) -> str:
        if not self.tasks:
            return "group(<untitled>)"
        first = self.tasks[0]
        return _drop_repeated_module(
            first.task if type(first) is Signature else None,
            f"group([{', '.join(repr(t) for t in self.tasks)}])",
        )


class chord(Signature):  # lowercase: Celery's name
    """A group (the header) whose list of results is passed to one more task (the body)."""

    subtask_type = "chord"

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
            _check_signature(body, "chord body")
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

    def __call__(self, body: Signature | None = None, **options: Any) -> Any:
        """``chord(header)(body)`` sends the chord with that body."""
        sig = self if body is None else chord(self.header, body, app=self._app, **self.options)
        return sig.apply_async((), {}, **options)

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, Signature):
            return chain(self, other, app=self._app)
        return NotImplemented

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        return self._freeze_composite(_id)

    def _freeze_ids(self) -> None:
        task_id = self.options.pop("task_id", None)
        group_id = self.options.pop("group_id", None)
        if group_id:
            self.header.options.setdefault("group_id", group_id)
        self.header._freeze_ids()
        if self.body is not None:
            if task_id:
                self.body.options.setdefault("task_id", task_id)
            self.body._freeze_ids()

    def __repr__(self) -> str:
        """Celery's: ``%tsum(group([add(1, 1), add(2, 2)]))``, the body called on the header."""
        body = self.body
        if body is None:
            return f"<chord without body: {self.header!r}>"
        if isinstance(body, chain) and body.tasks:
            first, rest = body.tasks[0], body.tasks[1:]
            head = _repr_call(str(first.task), (self.header, *first.args), first.kwargs)
            text = f"%({head} | {chain(*rest)!r})" if rest else f"%{head}"
            return _drop_repeated_module(first.task, text)
        if type(body) is not Signature:
            return f"chord({self.header!r}, {body!r})"
        head = _repr_call(str(body.task), (self.header, *body.args), body.kwargs)
        return "%" + _drop_repeated_module(body.task, head)


class xmap(Signature):  # lowercase: Celery's name
    """``T.map(items)``: one message that calls ``T(item)`` for each item in order.

    Immutable, as in Celery: in a chain it ignores the previous result (its items are fixed).
    """

    subtask_type = "xmap"
    builtin = "canvas.map"

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
        return f"[{task}(x) for x in {_short(items)}]"


class xstarmap(xmap):  # lowercase: Celery's name
    """``T.starmap(items)``: one message that calls ``T(*item)`` for each item in order."""

    subtask_type = "xstarmap"
    builtin = "canvas.starmap"

    def __repr__(self) -> str:
        task, items = self.args
        return f"[{task}(*x) for x in {_short(items)}]"


class chunks(Signature):  # lowercase: Celery's name
    """``T.chunks(items, n)``: the items split into messages of ``n`` calls each."""

    subtask_type = "chunks"

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

    def freeze(self, _id: str | None = None, **_: Any) -> Any:
        if _id is not None:
            self.options["group_id"] = _id
        return self._freeze_composite(None)

    def _freeze_ids(self) -> None:
        group_id = self.options.pop("task_id", None) or str(uuid.uuid4())
        self.options.setdefault("group_id", group_id)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async()

    def __repr__(self) -> str:
        return f"chunks({self.kwargs['task']}, {_short(self.kwargs['it'])}, {self.kwargs['n']})"


def signature(
    varies: str | Signature | Mapping[str, Any],
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    app: Canvas | None = None,
    **options: Any,
) -> Signature:
    """Celery's ``signature()``: a name, a task, a dict or a signature in; a signature out."""
    if isinstance(varies, Signature):
        return varies.clone() if args is None and kwargs is None else varies.clone(args, kwargs)
    if isinstance(varies, Mapping):
        return Signature.from_dict(varies, app)
    return Signature(varies, args, kwargs, options, app=app)


maybe_signature = signature
subtask = signature


def _task_name(task: str | Signature | Mapping[str, Any]) -> str:
    """A map's task as a name: Celery passes ``T.s()`` (or its dict) where we keep the name."""
    if isinstance(task, Signature):
        return str(task.task)
    if isinstance(task, Mapping):
        return str(task["task"])
    if not isinstance(task, str):
        raise TypeError(f"map/chunks: expected a task name or signature, got {_short(task)}")
    return task


def _check_signature(value: Any, where: str) -> None:
    if not isinstance(value, Signature):
        raise TypeError(
            f"{where}: expected a signature such as task.s(...), got {type(value).__name__} "
            f"{_short(value)}"
        )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _copy_options(options: Mapping[str, Any]) -> dict[str, Any]:
    copied = dict(options)
    for key in ("link", "link_error"):
        if key in copied:
            copied[key] = list(copied[key])
    return copied


def _to_plain(value: Any) -> Any:
    if isinstance(value, Signature):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    return value


def _from_plain(options: dict[str, Any], app: Canvas | None) -> dict[str, Any]:
    for key in ("link", "link_error"):
        if key in options:
            options[key] = [Signature.from_dict(s, app) for s in options[key]]
    return options


def _chain_from(kwargs: dict[str, Any], app: Canvas | None) -> Signature:
    return chain(*(Signature.from_dict(t, app) for t in kwargs.get("tasks", ())), app=app)


def _group_from(kwargs: dict[str, Any], app: Canvas | None) -> Signature:
    return group(*(Signature.from_dict(t, app) for t in kwargs.get("tasks", ())), app=app)


def _chord_from(kwargs: dict[str, Any], app: Canvas | None) -> Signature:
    body = kwargs.get("body")
    header = kwargs["header"]
    return chord(
        # Celery 5 keeps the header as a list of task dicts; ours is a group dict.
        [Signature.from_dict(t, app) for t in header]
        if isinstance(header, list | tuple)
        else Signature.from_dict(header, app),
        Signature.from_dict(body, app) if body is not None else None,
        app=app,
    )


def _chunks_from(kwargs: dict[str, Any], app: Canvas | None) -> Signature:
    return chunks(kwargs["task"], kwargs["it"], kwargs["n"], app=app)


_SUBTASK_TYPES: dict[str, Any] = {
    "chain": _chain_from,
    "group": _group_from,
    "chord": _chord_from,
    "chunks": _chunks_from,
}

__all__ = [
    "Signature",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
