"""The composition primitives: ``chain``, ``group`` and ``chord`` (the maps are ``canvas.maps``).

Each is a ``Signature`` whose kwargs hold its parts, registered in ``Signature.TYPES`` under its
``subtask_type`` so ``Signature.from_dict`` rebuilds it. They only *build* shapes; what a shape
means when it runs, and where each task id lands, is decided in ``canvas.dag``. Lowercase class
names are Celery's.

What ``|`` and the constructors build is Celery 5.7's, shape for shape (``docs/canvas.md``):

* ``a | b`` is a chain; ``a | group(b)`` unrolls the one-member group; ``group | x`` is a chord
  whose body is x (``group | a | b``: a chord with the chain body ``a | b``); ``chord | task``
  extends the body; ``chain(a, b, ...)`` without options folds its parts with ``|``, so
  ``chain(group(a, b), c)`` is a chord.
* A chain chained into another gives its ``link`` callbacks to its last task and its
  ``link_error`` errbacks to each of its tasks; its other options are dropped.
* ``group.link(cb)`` links an immutable copy of cb to the first member, ``group.link_error(eb)``
  a copy to each member; ``chord.link``/``link_error`` go to the body (and, for errbacks, to the
  header tasks when ``task_allow_error_cb_on_chord_header`` is set, and to chords in the header).
* A chord's header is a list of member signatures (``chord.tasks``): a list given to ``chord()``
  is copied member by member, a group gives its members, a chain its tasks, a generator is kept
  and consumed lazily. Task objects and signature dicts are accepted as members.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from canvas.signature import (
    Signature,
    check_signature,
    drop_repeated_module,
    repr_call,
)
from canvas.stamping import StampingVisitor, combine

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.result import AsyncResult, GroupResult


def as_signature(value: Any, app: Canvas | None, where: str) -> Signature:
    """A canvas part given as a signature, a signature's dict, or a task object."""
    if isinstance(value, Signature):
        return value
    if isinstance(value, Mapping):
        return Signature.from_dict(value, app)
    if hasattr(value, "run") and hasattr(value, "name"):  # a Task: Celery takes it as task.s()
        return Signature(value, app=app)
    check_signature(value, where)
    raise AssertionError  # check_signature raised


def _copied(value: Any, app: Canvas | None, where: str) -> Signature:
    """A member for a chord header given as a list: Celery copies each one."""
    sig = as_signature(value, app, where)
    return sig.clone() if sig is value else sig


def unroll(sig: Signature) -> Signature:
    """A group of one member is that member (Celery's ``maybe_unroll_group``)."""
    if isinstance(sig, group) and len(sig.tasks) == 1:
        return sig.tasks[0]
    return sig


@Signature.register_type()
class chain(Signature):  # lowercase: Celery's name
    """Tasks run one after the other, each getting the previous result as its first argument.

    ``chain(a, b, ...)`` with no options is ``a | b | ...`` (so it may build a chord, or a
    group); with options, or with one signature, it is a chain of exactly what it was given.
    """

    subtask_type = "chain"

    def __new__(cls, *tasks: Any, **options: Any) -> Any:
        if tasks and not options and (len(tasks) != 1 or not isinstance(tasks[0], Signature)):
            parts = tasks[0] if len(tasks) == 1 else tasks
            folded = functools.reduce(
                operator.or_, (as_signature(t, None, "chain") for t in parts), chain._of([])
            )
            if isinstance(folded, chain):
                # Python calls __init__ on what __new__ returns when it is a chain: tell it the
                # chain is built already.
                folded.__dict__["_built"] = True
            return folded
        return super().__new__(cls)

    def __init__(self, *tasks: Any, app: Canvas | None = None, **options: Any) -> None:
        if self.__dict__.pop("_built", False):
            return
        if len(tasks) == 1 and not isinstance(tasks[0], Signature):
            tasks = tuple(tasks[0])
        steps = [as_signature(t, app, "chain") for t in tasks]
        super().__init__("canvas.chain", (), {"tasks": steps}, options, app=app)
        self._app = app or next((t._app for t in steps if t._app), None)

    def _check_arguments(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> None:
        if self.tasks:
            self.tasks[0]._check_arguments(args, kwargs)

    @classmethod
    def _of(cls, tasks: Sequence[Signature], app: Canvas | None = None) -> chain:
        """A chain of exactly ``tasks`` (no folding): what ``|`` builds."""
        made = object.__new__(chain)
        made.__init__(list(tasks), app=app)  # type: ignore[misc]
        return made

    @classmethod
    def _from_parts(
        cls,
        data: Mapping[str, Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        app: Canvas | None,
    ) -> Signature:
        tasks = [Signature.from_dict(t, app) for t in kwargs.get("tasks", ())]
        return restored(chain._of(tasks, app), data, options)

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self.kwargs["tasks"]
        return tasks

    @tasks.setter
    def tasks(self, tasks: Iterable[Signature]) -> None:
        self.kwargs["tasks"] = list(tasks)

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

    def unchain_tasks(self) -> list[Signature]:
        """Copies of the tasks, carrying the chain's callbacks (on the last) and errbacks (on
        each): what a chain becomes when it is chained into another."""
        tasks = [t.clone() for t in self.tasks]
        if tasks:
            for callback in self.options.get("link") or ():
                tasks[-1].link(callback)
            for errback in self.options.get("link_error") or ():
                for task in tasks:
                    task.link_error(errback)
        return tasks

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, group):
            single = unroll(other)
            if not isinstance(single, group):
                return self | single
            tasks = self.unchain_tasks()
            if not tasks:
                return other
            if isinstance(tasks[-1], chord):
                tasks[-1].body = tasks[-1].require_body() | other
                return chain._of(tasks, self._app)
            return chain._of([*tasks, other], self._app)
        if isinstance(other, chain):
            return functools.reduce(operator.or_, other.unchain_tasks(), cast(Signature, self))
        if not isinstance(other, Signature):
            return NotImplemented
        if self.tasks and isinstance(self.tasks[-1], group):
            # A group followed by a task is a chord; two chords in a row fold into one.
            sig = cast(chain, self.clone())
            steps = sig.tasks
            steps[-1] = chord(steps[-1], other, app=self._app)
            if len(steps) > 1 and isinstance(steps[-2], chord):
                steps[-2].body = steps[-2].require_body() | steps[-1]
                del steps[-1]
            return sig
        if self.tasks and isinstance(self.tasks[-1], chord) and not isinstance(other, chord):
            sig = cast(chain, self.clone())
            last = cast(chord, sig.tasks[-1])
            last.body = last.require_body() | other
            return sig
        return chain._of([*self.unchain_tasks(), other], self._app)

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncResult | GroupResult:
        """Celery's ``chain()`` sends the chain."""
        return self.apply_async(args, kwargs)

    def stamp(
        self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: Any
    ) -> Signature:
        found = visitor.on_chain_start(self, **headers) if visitor is not None else None
        shared = self._stamps(headers, found, append_stamps)
        self.stamp_links(visitor, append_stamps, **shared)
        for task in self.tasks:
            task.stamp(visitor, append_stamps, **shared)
        if visitor is not None:
            visitor.on_chain_end(self, **shared)
        return self

    def __repr__(self) -> str:
        if not self.tasks:
            return f"<chain@{id(self):#x}: empty>"
        return drop_repeated_module(
            self.tasks[0].task if type(self.tasks[0]) is Signature else None,
            " | ".join(repr(t) for t in self.tasks),
        )


def _compose(left: Signature, right: Signature) -> Signature:
    """``left | right`` for a signature that is not itself a chain, group or chord."""
    if isinstance(right, chain):
        return chain._of([left, *right.unchain_tasks()], left._app)
    return chain._of([left, unroll(right)], left._app)


Signature.compose = _compose


@Signature.register_type()
class group(Signature):  # lowercase: Celery's name
    """Tasks run in parallel; the result is the list of their results in member order.

    ``group(generator)`` keeps the generator and consumes it lazily: a group (or chord header)
    sent as it is publishes each member as the generator yields it (``canvas.core.dispatch``).
    Anything else that reads the members consumes the rest of it first.
    """

    subtask_type = "group"

    def __init__(self, *tasks: Any, app: Canvas | None = None, **options: Any) -> None:
        members: list[Signature] = []
        self._pending: Iterator[Signature] | None = None
        if len(tasks) == 1 and not isinstance(tasks[0], Signature | Mapping):
            only = tasks[0]
            if isinstance(only, Iterator):
                self._pending = (as_signature(t, app, "group") for t in only)
            else:
                members = [as_signature(t, app, "group") for t in only]
        elif len(tasks) == 1 and isinstance(tasks[0], group):
            members = tasks[0].tasks
        elif len(tasks) == 1 and isinstance(tasks[0], Signature):
            members = [tasks[0].clone()]
        else:
            members = [as_signature(t, app, "group") for t in tasks]
        super().__init__("canvas.group", (), {"tasks": members}, options, app=app)
        self._app = app or next((t._app for t in members if t._app), None)

    @classmethod
    def _from_parts(
        cls,
        data: Mapping[str, Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        app: Canvas | None,
    ) -> Signature:
        tasks = [Signature.from_dict(t, app) for t in kwargs.get("tasks", ())]
        return restored(group(tasks, app=app), data, options)

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self.kwargs["tasks"]
        if self._pending is not None:
            pending, self._pending = self._pending, None
            tasks.extend(pending)
        return tasks

    @tasks.setter
    def tasks(self, tasks: Iterable[Signature]) -> None:
        self._pending = None
        self.kwargs["tasks"] = list(tasks)

    def _check_arguments(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> None:
        if self._pending is None:  # a generator's members are checked by nobody: not read twice
            for task in self.tasks:
                task._check_arguments(args, kwargs)

    @property
    def app(self) -> Canvas:
        if self._app is None:
            # A group built from a generator learns its app from its members once read.
            self._app = next((t._app for t in self.tasks if t._app), None)
        return super().app

    @property
    def id(self) -> str | None:
        """The group's id (Celery keeps it as the group's ``task_id``)."""
        found: str | None = self.options.get("group_id") or self.options.get("task_id")
        return found

    @property
    def is_lazy(self) -> bool:
        """Is part of the group still in a generator that nothing has consumed yet?"""
        return self._pending is not None

    def iter_members(self) -> Iterator[Signature]:
        """The members, consuming a generator only as far as the caller reads."""
        tasks: list[Signature] = self.kwargs["tasks"]
        yield from list(tasks)
        while self._pending is not None:
            member = next(self._pending, None)
            if member is None:
                self._pending = None
                return
            tasks.append(member)
            yield member

    def _copy(self) -> Signature:
        members = self.tasks
        copy = super()._copy()
        copy.kwargs = {"tasks": [t._copy() for t in members]}
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

    def to_dict(self) -> dict[str, Any]:
        self.tasks  # noqa: B018 - a generator is consumed before the members are written out
        return super().to_dict()

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, group) and not other.is_lazy and not other.tasks:
            return self
        if isinstance(other, Signature):
            return chord(self, other, app=self._app)
        return NotImplemented

    def link(self, callback: Signature) -> Signature:
        """Link an immutable copy of ``callback`` to the first member (Celery's rule: it runs
        once, when that member succeeds); returns the copy."""
        check_signature(callback, "link")
        if not self.tasks:
            raise IndexError("group.link(): an empty group has no member to link a callback to")
        return self.tasks[0].link(callback.clone().set(immutable=True))

    def link_error(self, errback: Signature) -> Any:
        """Link a copy of ``errback`` to each member (each failing member runs it); returns
        the copies."""
        check_signature(errback, "link_error")
        return tuple(member.link_error(errback.clone()) for member in self.tasks)

    def set_immutable(self, immutable: bool) -> None:
        for task in self.tasks:
            task.set_immutable(immutable)

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

    def stamp(
        self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: Any
    ) -> Signature:
        found = visitor.on_group_start(self, **headers) if visitor is not None else None
        shared = self._stamps(headers, found, append_stamps)
        self.stamp_links(visitor, append_stamps, **shared)
        _stamp_members(self, visitor, append_stamps, shared)
        if visitor is not None:
            visitor.on_group_end(self, **shared)
        return self

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Signature]:
        return iter(self.tasks)

    def __repr__(self) -> str:
        if self.is_lazy:
            return "group(<generator>)"
        if not self.tasks:
            return "group(<untitled>)"
        first = self.tasks[0]
        return drop_repeated_module(
            first.task if type(first) is Signature else None,
            f"group([{', '.join(repr(t) for t in self.tasks)}])",
        )


def _stamp_members(
    sig: group, visitor: StampingVisitor | None, append: bool, shared: dict[str, Any]
) -> None:
    """Stamp every member, including those a generator has yet to yield (stamped as it does)."""
    for member in sig.kwargs["tasks"]:
        member.stamp(visitor, append, **shared)
    if sig._pending is not None:
        rest = sig._pending
        sig._pending = (m.stamp(visitor, append, **shared) for m in rest)


@Signature.register_type()
class chord(Signature):  # lowercase: Celery's name
    """A header of members run in parallel whose list of results is passed to the body.

    ``len(chord)`` is the number of leaf tasks of the header (Celery's ``__length_hint__``); a
    chord is truthy whatever its size.
    """

    subtask_type = "chord"

    def __init__(
        self,
        header: Any,
        body: Signature | Mapping[str, Any] | None = None,
        app: Canvas | None = None,
        **options: Any,
    ) -> None:
        members = _header(header, app)
        made = None if body is None else as_signature(body, app, "chord body")
        super().__init__("canvas.chord", (), {"header": members, "body": made}, options, app=app)
        self._app = app or members._app or (made._app if made is not None else None)

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
        # Celery writes the header as a list of member dicts; older canvas as a group dict.
        members = (
            [Signature.from_dict(t, app) for t in header]
            if isinstance(header, list | tuple)
            else Signature.from_dict(header, app)
        )
        sig = chord(
            members,
            Signature.from_dict(body, app) if body is not None else None,
            app=app,
        )
        if isinstance(members, list):
            sig.header.tasks = members  # the rebuilt members themselves, not copies
        return restored(sig, data, options)

    def to_dict(self) -> dict[str, Any]:
        """Celery's shape: the header as a list of member dicts, beside the body."""
        data = super().to_dict()
        data["kwargs"] = {
            "kwargs": {},
            "header": [t.to_dict() for t in self.tasks],
            "body": self.body.to_dict() if self.body is not None else None,
        }
        return data

    @property
    def header(self) -> group:
        header: group = self.kwargs["header"]
        return header

    @property
    def tasks(self) -> list[Signature]:
        """The header's members (the members themselves: changing one changes the chord)."""
        return self.header.tasks

    @tasks.setter
    def tasks(self, tasks: Any) -> None:
        self.kwargs["header"] = _header(tasks, self._app)

    def _check_arguments(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> None:
        self.header._check_arguments(args, kwargs)

    @property
    def body(self) -> Signature | None:
        body: Signature | None = self.kwargs["body"]
        return body

    @body.setter
    def body(self, body: Signature | None) -> None:
        self.kwargs["body"] = body

    def require_body(self) -> Signature:
        if self.body is None:
            raise TypeError(
                "chord has no body yet: call chord(header)(body) or chord(header, body)"
            )
        return self.body

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
        """Link ``callback`` to the body."""
        self.require_body().link(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Link ``errback`` to the body; to each header task as an immutable copy when
        ``task_allow_error_cb_on_chord_header`` is set; to chords in the header either way."""
        check_signature(errback, "link_error")
        body = self.require_body()
        if self.app.conf.get("task_allow_error_cb_on_chord_header"):
            for task in self.tasks:
                task.link_error(errback.clone().set(immutable=True))
        for task in self.tasks:
            if isinstance(task, chord):
                task.link_error(errback)
        body.link_error(errback)
        return errback

    def set_immutable(self, immutable: bool) -> None:
        """Sets the header's members only, as in Celery."""
        self.header.set_immutable(immutable)

    def __call__(self, body: Signature | None = None, **options: Any) -> AsyncResult | GroupResult:
        """``chord(header)(body)`` sends the chord with that body."""
        sig = self if body is None else chord(self.header, body, app=self._app, **self.options)
        return sig.apply_async((), {}, **options)

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, Signature) and not isinstance(other, group | chain):
            sig = cast(chord, self.clone())
            sig.body = sig.require_body() | other
            return sig
        if isinstance(other, group) and len(other.tasks) == 1:
            sig = cast(chord, self.clone())
            sig.body = sig.require_body() | unroll(other)
            return sig
        if isinstance(other, Signature):
            return _compose(self, other)
        return NotImplemented

    def stamp(
        self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: Any
    ) -> Signature:
        found = visitor.on_chord_header_start(self, **headers) if visitor is not None else None
        shared = self._stamps(headers, found, append_stamps)
        self.stamp_links(visitor, append_stamps, **shared)
        _stamp_members(self.header, visitor, append_stamps, shared)
        if visitor is not None:
            visitor.on_chord_header_end(self, **shared)
        if self.body is not None:
            found = visitor.on_chord_body(self, **shared) if visitor is not None else None
            self.body.stamp(visitor, append_stamps, **combine(shared, found, {}, append_stamps))
        return self

    def __length_hint__(self) -> int:
        """The number of leaf tasks in the header (a chain counts its last step's)."""
        return sum(_leaves(t) for t in self.tasks)

    def __len__(self) -> int:
        return self.__length_hint__()

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        """Celery's: ``%tsum(group([add(1, 1), add(2, 2)]))``, the body called on the header."""
        body = self.body
        if body is None:
            return f"<chord without body: {self.header!r}>"
        if isinstance(body, chain) and body.tasks:
            first, rest = body.tasks[0], body.tasks[1:]
            head = repr_call(str(first.task), (self.header, *first.args), first.kwargs)
            text = f"%({head} | {chain._of(rest)!r})" if rest else f"%{head}"
            return drop_repeated_module(first.task, text)
        if type(body) is not Signature:
            return f"chord({self.header!r}, {body!r})"
        head = repr_call(str(body.task), (self.header, *body.args), body.kwargs)
        return "%" + drop_repeated_module(body.task, head)


def _header(header: Any, app: Canvas | None) -> group:
    """A chord's header as the group the compiler reads (its members are ``chord.tasks``).

    As Celery's ``_maybe_group``: a group gives its members (its own options are dropped), a
    chain its tasks, one signature itself, a generator stays lazy, a list is copied.
    """
    if isinstance(header, Mapping) and not isinstance(header, Signature):
        header = Signature.from_dict(header, app)
    made = group(app=app)
    if isinstance(header, group):
        made.kwargs["tasks"] = header.kwargs["tasks"]
        made._pending = header._pending
    elif isinstance(header, chain):
        made.kwargs["tasks"] = list(header.tasks)
    elif isinstance(header, Signature):
        made.kwargs["tasks"] = [header]
    elif isinstance(header, Iterator):
        made._pending = (_copied(t, app, "chord header") for t in header)
    else:
        made.kwargs["tasks"] = [_copied(t, app, "chord header") for t in header]
    made._app = app or next((t._app for t in made.kwargs["tasks"] if t._app), None)
    return made


def _leaves(sig: Signature) -> int:
    """How many results ``sig`` contributes to a chord (Celery's chord size count)."""
    if isinstance(sig, group):
        return sum(_leaves(t) for t in sig.tasks)
    if isinstance(sig, chain):
        for step in reversed(sig.tasks):
            size = _leaves(step)
            if size:
                return size
        return 0
    if isinstance(sig, chord):
        return _leaves(sig.body) if sig.body is not None else 0
    return 1


def restored(sig: Signature, data: Mapping[str, Any], options: dict[str, Any]) -> Signature:
    """A primitive rebuilt from its dict takes the dict's options and immutability too."""
    sig.options.update(options)
    sig.immutable = bool(data.get("immutable")) or sig.immutable
    return sig


__all__ = ["as_signature", "chain", "chord", "group", "restored", "unroll"]
