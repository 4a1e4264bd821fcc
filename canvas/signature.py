"""``Signature``: one task call waiting to happen (a task name, partial arguments, call options).

The composition primitives (``chain``, ``group``, ``chord`` in ``canvas.primitives``; ``chunks``
and the maps in ``canvas.maps``) subclass it and register their ``subtask_type`` in
``Signature.TYPES`` (as in Celery), which ``from_dict`` and ``|`` look up: this module never
imports them. Composition only *builds*
shapes; what a shape means when it runs is decided in one place, ``canvas.dag``. A signature
reaches the engine only through its app (``self.app``): ``delay``, ``apply_async``, ``apply`` and
``freeze`` are one call each on ``canvas.app.Canvas``.

Celery compatibility decides two things here. ``set``, ``link`` and ``link_error`` change the
signature in place and return it (Celery code relies on that); ``|`` and ``clone`` build new
objects. And a signature serializes to the same dict shape as Celery's (``task``, ``args``,
``kwargs``, ``options``, ``subtask_type``, ``immutable``), so a task can return a canvas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from canvas._current import default_app
from canvas.stamping import STAMPED_HEADERS, StampingVisitor, combine, stamps_of

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.result import AsyncResult, EagerResult, GroupResult
    from canvas.task import Task

_S = TypeVar("_S", bound="type[Signature]")


def repr_call(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def drop_repeated_module(task_name: str | None, text: str) -> str:
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
    #: ``subtask_type`` -> class, filled by ``register_type`` as the primitives are defined
    TYPES: ClassVar[dict[str, type[Signature]]] = {}
    #: what ``a | b`` builds for a plain signature ``a``, set by ``canvas.primitives``
    compose: ClassVar[Callable[[Signature, Signature], Signature] | None] = None

    @classmethod
    def register_type(cls, name: str | None = None) -> Callable[[_S], _S]:
        """Class decorator: ``from_dict`` rebuilds dicts of this ``subtask_type`` as this class."""

        def register(subclass: _S) -> _S:
            Signature.TYPES[name or subclass.subtask_type or subclass.__name__] = subclass
            return subclass

        return register

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
        self._app = app
        if isinstance(task, Signature | Mapping) and not isinstance(task, str):
            raise TypeError(
                "Signature(): use Signature.from_dict() or .clone() to copy a signature"
            )
        name: str | None
        if task is None or isinstance(task, str):
            name = task
        elif hasattr(task, "run"):
            # A Task, known by its shape: canvas.task imports this module, not the other way.
            self._app = app or task.app
            name = task.name
        else:
            raise TypeError(
                f"Signature(): expected a task or a task name, got {type(task).__name__} "
                f"{shorten(task)}"
            )
        if args is not None and (isinstance(args, str | bytes) or not isinstance(args, Sequence)):
            raise TypeError(f"Signature args must be a list or tuple, got {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"Signature kwargs must be a dict, got {type(kwargs).__name__}")
        self.task: str | None = name
        self.args: tuple[Any, ...] = tuple(args or ())
        self.kwargs: dict[str, Any] = dict(kwargs or {})
        self.options: dict[str, Any] = {**dict(options or {}), **extra_options}
        self.immutable = bool(immutable)

    # -- identity and copying ---------------------------------------------------------------
    @property
    def app(self) -> Canvas:
        return self._app if self._app is not None else default_app()

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
        """Run ``callback`` with this call's result when it succeeds; returns the callback.

        An equal callback linked before is not linked again (Celery's rule): it runs once.
        """
        check_signature(callback, "link")
        return self._add_to_list("link", callback)

    def link_error(self, errback: Signature) -> Signature:
        """Run ``errback`` when this call fails; returns the errback (linked once, as ``link``)."""
        check_signature(errback, "link_error")
        return self._add_to_list("link_error", errback)

    def _add_to_list(self, key: str, sig: Signature) -> Signature:
        items = self.options.setdefault(key, [])
        if not isinstance(items, list):
            items = self.options[key] = list(items) if isinstance(items, tuple) else [items]
        if sig not in items:
            items.append(sig)
        return sig

    def on_error(self, errback: Signature) -> Signature:
        """Like ``link_error`` but returns self, for chaining calls."""
        self.link_error(errback)
        return self

    def freeze(self, _id: str | None = None, **_: Any) -> AsyncResult | GroupResult:
        """Fix the task ids now, so the result handle exists before the call is sent.

        For a chain, group or chord every task id inside it is fixed (in place, as Celery does)
        and the handle has the shape ``apply_async()`` returns: the same ids, the same
        ``.parent`` links, a ``GroupResult`` for a group (see ``canvas.dag.freeze``).
        """
        return self.app.freeze_canvas(self, _id)

    # -- stamping (Celery 5.3; see canvas.stamping) -----------------------------------------
    def stamp(
        self,
        visitor: StampingVisitor | None = None,
        append_stamps: bool = False,
        **headers: Any,
    ) -> Signature:
        """Stamp this call and its callbacks and errbacks with ``headers`` and the visitor's
        stamps; returns self. Composites stamp every task inside them."""
        self.stamp_links(visitor, append_stamps, **headers)
        found = visitor.on_signature(self, **headers) if visitor is not None else None
        self.options.update(self._stamps(headers, found, append_stamps))
        return self

    def stamp_links(
        self,
        visitor: StampingVisitor | None = None,
        append_stamps: bool = False,
        **headers: Any,
    ) -> None:
        """Stamp the callbacks (``on_callback``) and errbacks (``on_errback``) linked here."""
        for key in ("link", "link_error"):
            for linked in self.options.get(key) or ():
                if not isinstance(linked, Signature):
                    continue
                if visitor is None:
                    found = None
                elif key == "link":
                    found = visitor.on_callback(linked, **headers)
                else:
                    found = visitor.on_errback(linked, **headers)
                shared = combine(headers, found, {}, append_stamps)
                linked.stamp(visitor, append_stamps, **shared)

    def _stamps(
        self, given: Mapping[str, Any], found: Mapping[str, Any] | None, append: bool
    ) -> dict[str, Any]:
        """``given`` over the visitor's ``found`` over this signature's own stamps."""
        own = {**stamps_of(self.options), STAMPED_HEADERS: self.options.get(STAMPED_HEADERS)}
        return combine(given, found, own if own[STAMPED_HEADERS] else {}, append)

    # -- calling ---------------------------------------------------------------------------
    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult | GroupResult:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult | GroupResult:
        """Send this canvas to the workers; returns the handle of its last result.

        A ``GroupResult`` when the canvas ends in a group (Celery's shapes: see ``canvas.dag``).
        """
        self._check_arguments(args, kwargs)
        return self.app.send_canvas(self, args, kwargs, **options)

    def _check_arguments(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> None:
        """Celery's ``typing``: ``TypeError`` at the caller when a task this send starts at once
        cannot take its arguments (a later chain step's previous result is not known yet)."""
        if self.subtask_type is not None or self.task is None:
            return  # the primitives check their first tasks; the maps check nothing
        task = self.app.tasks.get(self.task)
        if task is not None and task.typing:  # a task only a remote worker knows: unchecked
            task.check_arguments(*self._partial(args, kwargs))

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult | GroupResult:
        """Run this canvas here and now, in this process; returns a ready result (a
        ``GroupResult`` of ``EagerResult``s when the canvas ends in a group)."""
        return self.app.apply_canvas(self, args, kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function directly, as ``task(*args)`` would (Celery's behaviour)."""
        new_args, new_kwargs = self._partial(args, kwargs)
        return self.type(*new_args, **new_kwargs)

    def __invert__(self) -> Any:
        """``~sig``: send it and wait for its result (Celery's shorthand)."""
        return self.apply_async().get()

    # -- composition -----------------------------------------------------------------------
    def __or__(self, other: Any) -> Signature:
        """``a | b``: Celery's shapes (see ``canvas.primitives``), which set ``compose``: this
        module never imports them."""
        if isinstance(other, Signature):
            if Signature.compose is None:
                raise RuntimeError("import canvas (or canvas.primitives) before composing")
            return Signature.compose(self, other)
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
        subclass = Signature.TYPES.get(kind)
        if subclass is None:
            raise ValueError(f"Unknown subtask_type {kind!r} in signature dict")
        return subclass._from_parts(data, kwargs, options, app)

    @classmethod
    def _from_parts(
        cls,
        data: Mapping[str, Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        app: Canvas | None,
    ) -> Signature:
        """Rebuild one primitive from its dict (each primitive says how)."""
        raise TypeError(f"{cls.__name__} cannot be rebuilt from a dict")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr_call(str(self.task), self.args, self.kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        return Signature.from_dict(self.to_dict(), app=self._app)


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


def check_signature(value: Any, where: str) -> None:
    if not isinstance(value, Signature):
        raise TypeError(
            f"{where}: expected a signature such as task.s(...), got {type(value).__name__} "
            f"{shorten(value)}"
        )


def shorten(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages and log lines."""
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


__all__ = ["Signature", "maybe_signature", "signature", "subtask"]
