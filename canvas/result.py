"""Result handles: ``AsyncResult``, ``GroupResult``, ``ResultSet``, ``EagerResult``.

``get()`` waits on the store without busy polling where the store can notify (Redis pub/sub,
PostgreSQL LISTEN). Calling ``get()`` inside a running task raises ``RuntimeError``, as in Celery:
a task that waits on another can deadlock the pool. Use a chain or chord instead, or wrap the call
in ``allow_join_result()`` if you really mean it.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from canvas import states
from canvas._current import default_app
from canvas.core import metas
from canvas.core.workflow_view import WorkflowView
from canvas.exceptions import IncompleteStream, TaskRejectedError, TaskRevokedError, TimeoutError
from canvas.request import current_request

if TYPE_CHECKING:
    import networkx

    from canvas.app import Canvas
    from canvas.backends.base import Backend
    from canvas.core.eager import Settled
    from canvas.dag import ResultSpec

_join_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("canvas_join", default=False)


@contextlib.contextmanager
def allow_join_result() -> Iterator[None]:
    """Let a task wait on another task's result (not recommended; see the module docstring)."""
    token = _join_allowed.set(True)
    try:
        yield
    finally:
        _join_allowed.reset(token)


def _assert_will_not_block(app: Canvas) -> None:
    request = current_request()
    if request is None or request.called_directly or request.is_eager:
        return
    if _join_allowed.get() or app.conf.task_allow_join_result:
        return
    raise RuntimeError(
        "Never call result.get() within a task! Waiting on another task can deadlock the "
        "worker pool. Chain the tasks instead (a.s() | b.s()), or wrap the call in "
        "canvas.result.allow_join_result() if you accept the risk."
    )


class ResultBase:
    """What every result handle is (Celery's ``ResultBase``): ``isinstance(v, ResultBase)``."""


class AsyncResult(ResultBase):
    """The handle of one task call; ``parent`` is the previous call in its chain."""

    def __init__(
        self,
        id: str,
        app: Canvas | None = None,
        parent: AsyncResult | GroupResult | None = None,
        task_name: str | None = None,
    ) -> None:
        self.id = id
        self.app = app if app is not None else default_app()
        self.parent = parent
        self.task_name = task_name
        self._cache: dict[str, Any] | None = None

    # -- reading -----------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        if self._cache is not None:
            return self._cache
        meta = metas.decode(self.app.backend.get([self.id])[0]) or {"status": states.PENDING}
        if meta.get("status") in states.READY_STATES:
            self._cache = meta
        return meta

    @property
    def state(self) -> str:
        return str(self._meta().get("status", states.PENDING))

    status = state

    @property
    def result(self) -> Any:
        meta = self._meta()
        if meta.get("status") in states.EXCEPTION_STATES and isinstance(meta.get("result"), dict):
            return metas.exception_from_dict(self.app, meta["result"])
        return meta.get("result")

    info = result

    @property
    def traceback(self) -> str | None:
        tb: str | None = self._meta().get("traceback")
        return tb

    @property
    def date_done(self) -> float | None:
        done: float | None = self._meta().get("date_done")
        return done

    @property
    def name(self) -> str | None:
        return self.task_name or self._meta().get("name")

    @property
    def workflow(self) -> WorkflowView:
        """Every node of the workflow this call belongs to, with its state."""
        workflow_id = self._meta().get("workflow") or self.id
        return WorkflowView(self.app, workflow_id)

    # -- Celery's other readers ------------------------------------------------------------
    @property
    def task_id(self) -> str:
        return self.id

    @property
    def backend(self) -> Backend:
        return self.app.backend

    @property
    def ignored(self) -> bool:
        """Whether the task's results are not stored (``ignore_result``)."""
        task = self.app.tasks.get(self.name or "")
        return bool(task is not None and task.ignore_result)

    @property
    def children(self) -> list[AsyncResult | GroupResult] | None:
        """Handles of what the task sent while it ran (``None`` until it is done, as Celery)."""
        found = self._meta().get("children")
        if found is None:
            return None
        return [result_from_tuple(child, self.app) for child in found]

    # With result_extended=True the worker stores these too (args/kwargs as logs show them).
    @property
    def args(self) -> Any:
        return self._meta().get("args")

    @property
    def kwargs(self) -> Any:
        return self._meta().get("kwargs")

    @property
    def queue(self) -> str | None:
        queue: str | None = self._meta().get("queue")
        return queue

    @property
    def worker(self) -> str | None:
        worker: str | None = self._meta().get("worker")
        return worker

    @property
    def retries(self) -> int | None:
        retries: int | None = self._meta().get("retries")
        return retries

    def exists(self) -> bool:
        """Whether the store holds anything for this id: a PENDING id that was never sent (or
        whose result expired) answers ``False``."""
        return self.app.backend.get([self.id])[0] is not None

    def iterdeps(
        self, intermediate: bool = False
    ) -> Iterator[tuple[AsyncResult | GroupResult | None, AsyncResult | GroupResult]]:
        """``(parent, result)`` for this result and, breadth first, what each one sent;
        ``IncompleteStream`` at a result not ready yet unless ``intermediate``."""
        stack: deque[tuple[Any, Any]] = deque([(None, self)])
        while stack:
            parent, node = stack.popleft()
            yield parent, node
            if node.ready():
                stack.extend((node, child) for child in node.children or [])
            elif not intermediate:
                raise IncompleteStream(f"{node!r} is not ready yet")

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """``(result, value)`` for this result and everything it sent, as they are ready."""
        for _, node in self.iterdeps(intermediate=intermediate):
            yield node, node.get(**kwargs)

    def get_leaf(self) -> Any:
        """The value of the last result ``iterdeps`` reaches."""
        value = None
        for _, node in self.iterdeps():
            value = node.get()
        return value

    @property
    def graph(self) -> networkx.DiGraph:
        """This result and what it sent, as a graph (edges from a result to what it sent)."""
        import networkx  # heavy: only callers of .graph load it

        graph = networkx.DiGraph()
        for parent, node in self.iterdeps(intermediate=True):
            graph.add_node(node)
            if parent is not None:
                graph.add_edge(parent, node)
        return graph

    def then(
        self, callback: Callable[[Any], Any], on_error: Callable[[BaseException], Any] | None = None
    ) -> threading.Thread:
        """Call ``callback(self)`` once the result is ready (``on_error(exc)`` if waiting
        fails), from a background thread: canvas has no event loop to run Celery's promises."""

        def wait() -> None:
            try:
                with allow_join_result():
                    self.get(propagate=False, disable_sync_subtasks=False)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(exc)
                return
            callback(self)

        thread = threading.Thread(target=wait, name=f"canvas-then-{self.id}", daemon=True)
        thread.start()
        return thread

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        follow_parents: bool = True,
        **_: Any,
    ) -> Any:
        """Wait for the result; re-raise the task's exception when ``propagate``.

        As in Celery, with ``follow_parents`` a failure raises the exception of the earliest
        failed ``.parent`` first: a chord whose header failed raises the member's own error,
        not the body's ``ChordError`` (``follow_parents=False`` gives that).
        """
        if disable_sync_subtasks:
            _assert_will_not_block(self.app)
        meta = self._wait(timeout)
        if propagate and follow_parents and meta.get("status") in states.PROPAGATE_STATES:
            raise_earliest_failure(self)
        return self._outcome(meta, propagate)

    wait = get

    def _wait(self, timeout: float | None) -> dict[str, Any]:
        meta = self._cache
        if meta is None:
            # One read first: a result that is already there costs no subscription.
            meta = metas.decode(self.app.backend.get([self.id])[0])
            if meta is None or meta.get("status") not in states.READY_STATES:
                meta = metas.decode(self.app.backend.wait(self.id, timeout))
            if meta is None or meta.get("status") not in states.READY_STATES:
                raise TimeoutError(
                    f"Task {self.id} was not ready within {timeout} s "
                    f"(state {meta.get('status') if meta else states.PENDING})."
                )
            self._cache = meta
        return meta

    def maybe_throw(self, propagate: bool = True, callback: Any = None) -> Any:
        """Raise the task's exception if it failed (``propagate``); its value otherwise."""
        meta = self._meta()
        if meta.get("status") in states.READY_STATES:
            value = self._outcome(meta, propagate)
        else:
            value = meta.get("result")
        if callback is not None:
            callback(self.id, value)
        return value

    maybe_reraise = maybe_throw

    def throw(self, exc: BaseException | None = None, tb: Any = None) -> None:
        """Raise ``exc``, or the task's own exception when none is given (Celery's promise
        ``throw``; canvas has no pending promise to hand it to)."""
        if exc is None:
            self.maybe_throw(propagate=True)
            return
        raise exc

    def as_tuple(self) -> tuple[Any, ...]:
        """Celery's serializable form: ``((id, parent tuple), None)``."""
        return _as_tuple(self)

    def _outcome(self, meta: dict[str, Any], propagate: bool) -> Any:
        status = meta.get("status")
        value = meta.get("result")
        if status == states.SUCCESS or not propagate:
            if status != states.SUCCESS and isinstance(value, dict):
                return metas.exception_from_dict(self.app, value)
            return value
        if isinstance(value, dict) and "exc_type" in value:
            exc = metas.exception_from_dict(self.app, value)
        elif status == states.REVOKED:
            exc = TaskRevokedError(f"Task {self.id} was revoked.")
        else:
            exc = TaskRejectedError(f"Task {self.id} ended {status}: {value!r}")
        raise exc

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Revoke this task (``app.control.revoke``); ``wait`` collects the workers' replies."""
        return self.app.control.revoke(
            self.id,
            terminate=terminate,
            signal=signal or "SIGTERM",
            reply=wait,
            timeout=timeout if timeout is not None else 1.0,
        )

    def forget(self) -> None:
        self._cache = None
        self.app.backend.forget(self.id)

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return self.id == other.id
        if isinstance(other, str):
            return self.id == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)


class ResultSet(ResultBase):
    """Several results, read in member order."""

    def __init__(
        self, results: Sequence[AsyncResult | GroupResult], app: Canvas | None = None, **_: Any
    ) -> None:
        self.results = list(results)
        self.app = app if app is not None else default_app()

    def __iter__(self) -> Iterator[AsyncResult | GroupResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    # -- the set, as Celery's ------------------------------------------------------------------
    def add(self, result: Any) -> None:
        """Add ``result`` unless it is a member already."""
        if result not in self.results:
            self.results.append(result)

    def remove(self, result: Any) -> None:
        """Remove a member (a result or its id); ``KeyError`` when it is not one."""
        if isinstance(result, str):
            result = AsyncResult(result, app=self.app)
        try:
            self.results.remove(result)
        except ValueError:
            raise KeyError(result) from None

    def discard(self, result: Any) -> None:
        """Remove a member if it is one."""
        try:
            self.remove(result)
        except KeyError:
            pass

    def update(self, results: Iterable[Any]) -> None:
        """Add the results that are not members yet."""
        self.results.extend(r for r in results if r not in self.results)

    def clear(self) -> None:
        """Remove every member (the same list, emptied)."""
        self.results[:] = []

    def maybe_throw(self, propagate: bool = True, callback: Any = None) -> None:
        """Raise the exception of the first failed member, in member order."""
        self._prefetch()
        for member in self.results:
            member.maybe_throw(propagate=propagate, callback=callback)

    maybe_reraise = maybe_throw

    def __getitem__(self, index: int) -> AsyncResult | GroupResult:
        return self.results[index]

    def ready(self) -> bool:
        self._prefetch()
        return all(r.ready() for r in self.results)

    def successful(self) -> bool:
        self._prefetch()
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        self._prefetch()
        return any(r.failed() for r in self.results)

    def completed_count(self) -> int:
        self._prefetch()
        return sum(1 for r in self.results if r.successful())

    def waiting(self) -> bool:
        return not self.ready()

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        **_: Any,
    ) -> list[Any]:
        """Every member's value in member order; ``timeout`` bounds the whole wait."""
        if disable_sync_subtasks:
            _assert_will_not_block(self.app)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._prefetch()
        values = []
        for member in self.results:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(
                member.get(
                    timeout=left, propagate=propagate, disable_sync_subtasks=disable_sync_subtasks
                )
            )
        return values

    join = get

    def join_native(
        self, timeout: float | None = None, propagate: bool = True, **kwargs: Any
    ) -> list[Any]:
        """``get()``: canvas always joins natively (one read for every member)."""
        return list(self.get(timeout=timeout, propagate=propagate, **kwargs))

    def iter_native(
        self, timeout: float | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(task id, meta)`` for each member once all are ready, as Celery's native join."""
        self.get(timeout=timeout, propagate=False, **kwargs)
        for member in self.results:
            if isinstance(member, AsyncResult):
                meta = member._meta()
                yield (
                    member.id,
                    {
                        "status": meta.get("status"),
                        "result": member.result,
                        "traceback": meta.get("traceback"),
                        "task_id": member.id,
                    },
                )

    def then(
        self, callback: Callable[[Any], Any], on_error: Callable[[BaseException], Any] | None = None
    ) -> threading.Thread:
        """Call ``callback(self)`` once every member is ready (see ``AsyncResult.then``)."""

        def wait() -> None:
            try:
                with allow_join_result():
                    self.get(propagate=False, disable_sync_subtasks=False)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(exc)
                return
            callback(self)

        thread = threading.Thread(target=wait, name="canvas-then", daemon=True)
        thread.start()
        return thread

    def _prefetch(self, batch: int = 1000) -> None:
        """Read the members' metas in a few batched reads (one MGET per thousand on Redis), so
        a finished group of a thousand costs one round trip, not a thousand."""
        plain = [m for m in self.results if type(m) is AsyncResult and m._cache is None]
        for start in range(0, len(plain), batch):
            chunk = plain[start : start + batch]
            for member, data in zip(
                chunk, self.app.backend.get([m.id for m in chunk]), strict=True
            ):
                meta = metas.decode(data)
                if meta is not None and meta.get("status") in states.READY_STATES:
                    member._cache = meta

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Revoke every member (one broadcast for all of them)."""
        return self.app.control.revoke(
            [str(r.id) for r in self.results],
            terminate=terminate,
            signal=signal or "SIGTERM",
            reply=wait,
            timeout=timeout if timeout is not None else 1.0,
        )

    def forget(self) -> None:
        for member in self.results:
            member.forget()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(str(r.id) for r in self.results)}]>"


class GroupResult(ResultSet):
    """The results of a group, with the group's id and Celery's ``.parent``."""

    def __init__(
        self,
        id: str | None = None,
        results: Sequence[AsyncResult | GroupResult] = (),
        app: Canvas | None = None,
        parent: AsyncResult | GroupResult | None = None,
        **_: Any,
    ) -> None:
        super().__init__(results, app=app)
        self.id = id
        self.parent = parent

    @property
    def children(self) -> list[AsyncResult | GroupResult]:
        return self.results

    @property
    def workflow(self) -> WorkflowView:
        return WorkflowView(self.app, self.id or "")

    # -- saved groups, as Celery's ---------------------------------------------------------
    def save(self, backend: Backend | None = None) -> GroupResult:
        """Store this group (its id and members) for ``GroupResult.restore(id)``."""
        meta = metas.make_meta(_group_key(self.id), states.SUCCESS, self.as_tuple())
        (backend or self.app.backend).store(_group_key(self.id), states.SUCCESS, metas.encode(meta))
        return self

    @classmethod
    def restore(
        cls, id: str, backend: Backend | None = None, app: Canvas | None = None
    ) -> GroupResult | None:
        """The group saved under ``id``, or ``None``."""
        app = app if app is not None else default_app()
        meta = metas.decode((backend or app.backend).get([_group_key(id)])[0])
        if meta is None:
            return None
        restored = result_from_tuple(meta["result"], app)
        return restored if isinstance(restored, GroupResult) else None

    def delete(self, backend: Backend | None = None) -> None:
        """Remove the saved record of this group."""
        (backend or self.app.backend).forget(_group_key(self.id))

    def as_tuple(self) -> tuple[Any, ...]:
        """Celery's serializable form: ``((id, parent tuple), [member tuples])``."""
        return _as_tuple(self)

    def __bool__(self) -> bool:
        return bool(self.id or self.results)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return str(self.id)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(str(r.id) for r in self.results)}]>"


class EagerResult(AsyncResult):
    """The result of ``apply()``: already ready, held in memory."""

    def __init__(
        self,
        id: str,
        value: Any,
        state: str,
        traceback: str | None = None,
        app: Canvas | None = None,
        parent: AsyncResult | GroupResult | None = None,
    ) -> None:
        super().__init__(id, app=app, parent=parent)
        exc_dict = metas.exception_to_dict(value) if isinstance(value, BaseException) else None
        self._exc = value if isinstance(value, BaseException) else None
        self._cache = {
            "status": state,
            "result": exc_dict if exc_dict is not None else value,
            "traceback": traceback,
            "task_id": id,
        }

    @property
    def result(self) -> Any:
        if self._exc is not None:
            return self._exc
        return self._cache["result"] if self._cache else None

    info = result

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        follow_parents: bool = True,
        **_: Any,
    ) -> Any:
        assert self._cache is not None
        if self._exc is not None:
            if propagate:
                if follow_parents:
                    raise_earliest_failure(self)
                raise self._exc
            return self._exc
        return self._cache["result"]

    def forget(self) -> None:
        """Nothing is stored for an eager result."""

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"


def raise_earliest_failure(result: AsyncResult) -> None:
    """Raise the exception of the earliest failed result on ``result``'s ``.parent`` path
    (a failed group raises its first failed member's); nothing if none failed."""
    lineage: list[Any] = []
    node = result.parent
    while node is not None:
        lineage.append(node)
        node = node.parent
    plain = [n for n in lineage if type(n) is AsyncResult and n._cache is None]
    if plain:
        ResultSet(plain, app=result.app)._prefetch()
    for node in reversed(lineage):
        node.maybe_throw()


def result_from_tuple(data: Any, app: Canvas | None = None) -> AsyncResult | GroupResult:
    """A handle from ``as_tuple()``'s form (or an id): Celery's ``result_from_tuple``."""
    app = app if app is not None else default_app()
    if isinstance(data, AsyncResult | GroupResult):
        return data
    if isinstance(data, str):
        return AsyncResult(data, app=app)
    head, members = data
    result_id, parent = head if isinstance(head, list | tuple) else (head, None)
    found = result_from_tuple(parent, app) if parent else None
    if members is not None:
        children = [result_from_tuple(m, app) for m in members]
        return GroupResult(result_id, children, app=app, parent=found)
    return AsyncResult(result_id, app=app, parent=found)


def _as_tuple(result: Any) -> tuple[Any, ...]:
    """Celery's nested tuple form, built along ``.parent`` without recursing on it (a chain of
    thousands of steps has as many parents)."""
    lineage = []
    node = result
    while node is not None:
        lineage.append(node)
        node = node.parent
    built: tuple[Any, ...] | None = None
    for item in reversed(lineage):
        members = [_as_tuple(m) for m in item.results] if isinstance(item, ResultSet) else None
        built = ((item.id, built), members)
    assert built is not None
    return built


def _group_key(group_id: str | None) -> str:
    """Where a saved group lives in the store, beside (never on) its members' results."""
    return f"canvas-group-{group_id}"


def from_spec(
    spec: ResultSpec,
    app: Canvas,
    outcomes: Mapping[str, Settled] | None = None,
    _seen: dict[int, AsyncResult | GroupResult] | None = None,
) -> AsyncResult | GroupResult:
    """The handle described by a compiled workflow's result spec (``canvas.dag``).

    With ``outcomes`` (an eager run's, by node id) the handles are ``EagerResult``s holding
    them. Iterative along ``.parent`` and memoised by spec, because a 1,000-step chain is a
    1,000-deep spec and the members of a group share one parent.
    """
    seen = {} if _seen is None else _seen
    lineage = []
    current: ResultSpec | None = spec
    while current is not None and id(current) not in seen:
        lineage.append(current)
        current = current.parent
    handle = seen.get(id(current)) if current is not None else None
    for item in reversed(lineage):
        if item.kind == "group":
            members = [from_spec(m, app, outcomes, seen) for m in item.members]
            group_id = item.id or str(uuid.uuid4())
            handle = GroupResult(group_id, members, app=app, parent=handle)
        elif outcomes is None:
            handle = AsyncResult(item.id, app=app, parent=handle, task_name=item.name)
        else:
            done = outcomes.get(item.id)
            if done is None:
                handle = EagerResult(item.id, None, states.PENDING, app=app, parent=handle)
            else:
                handle = EagerResult(
                    item.id, done.value, done.state, done.traceback, app=app, parent=handle
                )
        seen[id(item)] = handle
    assert handle is not None
    return handle
