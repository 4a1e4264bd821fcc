"""``Task``: a registered function with Celery's calling API, options and ``self.request``.

``@app.task`` returns a ``Task``. Calling it runs the function here; ``delay``/``apply_async``
send it to a worker; ``s``/``si``/``signature`` build signatures for the canvas. Per-call state
(``self.request``) lives in a ``ContextVar``, so threads and nested calls never see each other's.
"""

from __future__ import annotations

import inspect
import random
import types
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, cast

from canvas._current import default_app
from canvas.core import metas, ratelimit
from canvas.exceptions import ImproperlyConfigured, MaxRetriesExceededError, Replace, Retry
from canvas.maps import chunks, xmap, xstarmap
from canvas.primitives import chain
from canvas.request import Request, current_request, reset_request, set_request
from canvas.signature import Signature

if TYPE_CHECKING:
    from canvas.app import Canvas
    from canvas.result import AsyncResult, EagerResult, GroupResult
    from canvas.result import AsyncResult as _Handle  # the method AsyncResult shadows the name

#: the options ``@app.task(...)`` accepts; anything else is an error naming it
TASK_OPTIONS = frozenset(
    {
        "name",
        "bind",
        "base",
        "acks_late",
        "ignore_result",
        "store_errors_even_if_ignored",
        "track_started",
        "autoretry_for",
        "dont_autoretry_for",
        "retry_kwargs",
        "retry_backoff",
        "retry_backoff_max",
        "retry_jitter",
        "max_retries",
        "default_retry_delay",
        "queue",
        "priority",
        "time_limit",
        "soft_time_limit",
        "serializer",
        "typing",
        "throws",
        "shared",
        # Celery's other @app.task options, each honoured (see docs/migrating.md)
        "rate_limit",
        "expires",
        "reject_on_worker_lost",
        "acks_on_failure_or_timeout",
        "send_events",
        "store_eager_result",
        "backend",
        "trail",
        "resultrepr_maxsize",
        "routing_key",
        "exchange",
        "compression",
        "abstract",
        "lazy",
        "filter",
    }
)


#: Celery's task handlers: also accepted as ``@app.task`` options (``on_failure=report``)
HANDLERS = frozenset(
    {"before_start", "on_success", "on_failure", "on_retry", "after_return", "on_replace"}
)


class Task:
    """A function registered on an app, with Celery's options and calling API.

    As in Celery, a subclass's class attributes are the defaults of its tasks' options
    (``@app.task(base=MyTask)``, ``class MyTask(app.Task)``), and its handlers ``before_start``,
    ``on_success``, ``on_failure``, ``on_retry``, ``after_return`` and ``on_replace`` run in the
    worker with Celery's arguments. A class-based task defines ``run`` and is registered with
    ``app.register_task(MyTask())``.
    """

    name: str
    #: the app a task of this class belongs to when none is given (``app.Task`` sets it); a task
    #: with none at all (``@shared_task``) belongs to whichever app is current when it is used
    _app: Canvas | None = None
    acks_late: bool | None = None
    ignore_result: bool | None = None
    store_errors_even_if_ignored: bool | None = None
    track_started: bool | None = None
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    max_retries: int | None = 3
    default_retry_delay: float = 180
    queue: str | None = None
    priority: int | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    serializer: str | None = None
    typing: bool = True
    throws: tuple[type[BaseException], ...] = ()
    bind = False
    #: Celery's per-worker rate limit: ``"10/s"``, ``"100/m"``, ``"5/h"`` or tasks per second
    rate_limit: str | float | None = None
    #: default ``expires`` of each call: seconds, a ``timedelta`` or a ``datetime``
    expires: float | timedelta | datetime | None = None
    reject_on_worker_lost: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    send_events: bool = True
    store_eager_result: bool | None = None
    trail: bool = True
    resultrepr_maxsize: int = 1024
    routing_key: str | None = None
    exchange: str | None = None
    compression: str | None = None
    abstract: ClassVar[bool] = False
    #: raised by ``retry`` past ``max_retries`` (Celery's ``task.MaxRetriesExceededError``)
    MaxRetriesExceededError: ClassVar[type[MaxRetriesExceededError]] = MaxRetriesExceededError

    def __init__(
        self, app: Canvas | None = None, fun: Callable[..., Any] | None = None, **options: Any
    ) -> None:
        class_based = fun is None
        if fun is None:
            if type(self).run is Task.run:
                raise TypeError(
                    f"{type(self).__name__}() has no body: define a run() method, or decorate a "
                    "function with @app.task(base=...)"
                )
            fun = self.run  # a class-based task: its own bound method
            self.bind = False
        declared = {
            k
            for k in dir(type(self))
            if not k.startswith("_") and not callable(inspect.getattr_static(type(self), k))
        }
        unknown = sorted(set(options) - TASK_OPTIONS - HANDLERS - declared)
        if unknown:
            raise TypeError(
                f"@app.task got unknown option(s) {', '.join(map(repr, unknown))} for "
                f"{fun.__qualname__}; known options: {', '.join(sorted(TASK_OPTIONS))} (or an "
                "attribute declared on the base class)."
            )
        options.pop("base", None)
        options.pop("shared", None)
        options.pop("lazy", None)  # canvas registers at once; a task needs no lazy binding
        if app is not None:
            self._app = app
        backend = options.pop("backend", None)
        if backend is not None:
            self.backend = backend
        self.run = fun  # type: ignore[method-assign]
        if class_based:
            default = getattr(type(self), "name", None) or (
                f"{type(self).__module__}.{type(self).__name__}"
            )
        else:
            default = _default_name(self._app, fun)
        self.name = options.pop("name", None) or default
        for key, value in options.items():
            # A handler given as an option is a method of the task, as in Celery (it gets self).
            setattr(self, key, types.MethodType(value, self) if key in HANDLERS else value)
        try:
            ratelimit.rate(self.rate_limit)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{self.name}: rate_limit {exc}") from None
        self.autoretry_for = tuple(self.autoretry_for or ())
        self.__doc__ = fun.__doc__
        self.__name__ = fun.__name__
        self.__qualname__ = fun.__qualname__
        self.__module__ = fun.__module__
        self.__wrapped__ = fun

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The task's body: the decorated function, or a class-based task's own method."""
        raise NotImplementedError("Tasks must define the run method.")

    @property
    def app(self) -> Canvas:
        return self._app if self._app is not None else default_app()

    @app.setter
    def app(self, app: Canvas) -> None:
        self._app = app

    @property
    def backend(self) -> Any:
        """The result store this task's results go to (Celery's ``task.backend``)."""
        own = self.__dict__.get("_backend")
        return own if own is not None else self.app.backend

    @backend.setter
    def backend(self, value: Any) -> None:
        if isinstance(value, str):
            raise ImproperlyConfigured(
                f"{self.__class__.__name__}: a per-task result backend URL ({value!r}) is not "
                "supported; canvas keeps a workflow's results in one store (set result_backend)."
            )
        self.__dict__["_backend"] = value

    # -- handlers: Celery's, called by the worker (and by apply()) -------------------------
    def before_start(self, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Called before the body runs."""

    def on_success(
        self, retval: Any, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        """Called when the body returned."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Called when the body raised (``einfo``: an ``ExceptionInfo``)."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Called when the body asked to be retried."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Called after any of the above, with the final state."""

    def on_replace(self, sig: Signature) -> None:
        """Called by ``replace`` before the call is swapped for ``sig``."""

    def shadow_name(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> str | None:
        """The name logs show for a call instead of the task's (Celery's ``shadow``)."""
        return None

    # -- calling here ----------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_request() is None:
            token = set_request(Request(task=self.name, args=list(args), kwargs=kwargs))
            try:
                return self._call(args, kwargs)
            finally:
                reset_request(token)
        return self._call(args, kwargs)

    def _call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if self.bind:
            return self.run(self, *args, **kwargs)
        return self.run(*args, **kwargs)

    def run_with_retries(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Run the function, turning ``autoretry_for`` exceptions into ``self.retry``."""
        if not self.autoretry_for:
            return self._call(args, kwargs)
        try:
            return self._call(args, kwargs)
        except Retry:
            raise
        except self.autoretry_for as exc:
            if self.dont_autoretry_for and isinstance(exc, tuple(self.dont_autoretry_for)):
                raise
            retry_kwargs = dict(self.retry_kwargs or {})
            if self.retry_backoff:
                retry_kwargs.setdefault("countdown", self.backoff(self.request.retries))
            raise self.retry(exc=exc, **retry_kwargs) from exc

    def backoff(self, retries: int) -> float:
        """Exponential backoff for ``retry_backoff``: factor * 2**retries, capped, jittered."""
        factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
        countdown = min(float(self.retry_backoff_max), factor * (2.0**retries))
        if self.retry_jitter:
            countdown = random.uniform(0, countdown)
        return max(0.0, countdown)

    @property
    def request(self) -> Request:
        current = current_request()
        return current if current is not None else Request(task=self.name)

    # -- sending -----------------------------------------------------------------------------
    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send the call to a worker (see Celery's ``apply_async`` for the options)."""
        if self.typing:
            self.check_arguments(args or (), kwargs or {})
        sig = Signature(self.name, app=self.app)
        return cast("AsyncResult", self.app.send_canvas(sig, args, kwargs, **options))

    def _call_signature(self) -> inspect.Signature | None:
        """The parameters a caller passes (``self`` dropped for ``bind=True``), computed once."""
        cached = self.__dict__.get("_signature", False)
        if cached is not False:
            return cast("inspect.Signature | None", cached)
        try:
            signature: inspect.Signature | None = inspect.signature(self.run)
        except (TypeError, ValueError):
            signature = None
        if signature is not None and self.bind:
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        self.__dict__["_signature"] = signature
        return signature

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """``TypeError`` now, at the caller, when the call cannot bind to the task's parameters
        (Celery's ``typing=True``), rather than a failure on the worker later."""
        signature = self._call_signature()
        if signature is None:
            return  # a builtin or C function: nothing to check against
        fits = self.__dict__.get("_positional_fits")
        if fits is None:
            fits = self.__dict__["_positional_fits"] = _positional_range(signature)
        if not kwargs and fits and fits[0] <= len(args) <= fits[1]:
            return  # the common call, checked without binding (bind costs ~10 us a send)
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}() called with the wrong arguments: {exc}") from None

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """``delay`` once the current Django transaction commits; nothing is sent on rollback."""
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """``apply_async`` once the current Django transaction commits (Celery 5.4's name).

        The task id is chosen now, so the caller may store it in that same transaction (Celery
        returns nothing here). Outside a transaction the call is sent at once; after a rollback
        nothing is sent and the id stays PENDING.
        """
        from django.db import transaction  # Django is an optional extra

        task_id = str(options.pop("task_id", None) or uuid.uuid4())
        transaction.on_commit(lambda: self.apply_async(args, kwargs, task_id=task_id, **options))
        return self.AsyncResult(task_id)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult:
        """Run the call here, now, with a request as a worker would give it."""
        sig = Signature(self.name, app=self.app)
        return cast("EagerResult", self.app.apply_canvas(sig, args, kwargs, **options))

    def AsyncResult(self, task_id: str) -> AsyncResult:
        return self.app.AsyncResult(task_id)

    # -- signatures --------------------------------------------------------------------------
    def signature(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *starargs: Any,
        **options: Any,
    ) -> Signature:
        """``add.signature((2, 2), countdown=1)``: keywords here are options, as in Celery."""
        immutable = options.pop("immutable", False)
        return Signature(self.name, args, kwargs, options, immutable=immutable, app=self.app)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        return Signature(self.name, args, kwargs, app=self.app)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        return Signature(self.name, args, kwargs, immutable=True, app=self.app)

    def map(self, it: Iterable[Any]) -> xmap:
        return xmap(self.name, it, app=self.app)

    def starmap(self, it: Iterable[Any]) -> xstarmap:
        return xstarmap(self.name, it, app=self.app)

    def chunks(self, it: Iterable[Any], n: int) -> chunks:
        return chunks(self.name, it, n, app=self.app)

    # -- inside a running task ---------------------------------------------------------------
    def retry(
        self,
        args: Sequence[Any] | BaseException | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Ask for another run of this call; raise what it returns (``raise self.retry(...)``).

        Past ``max_retries`` the original exception is raised again (or
        ``MaxRetriesExceededError`` when there is none), as in Celery.
        """
        if isinstance(args, BaseException) and exc is None:
            # ``self.retry(exc, countdown=10)`` as Celery's docs write it: the first positional
            # argument is ``args`` there; an exception can only have meant ``exc``.
            args, exc = None, args
        assert not isinstance(args, BaseException)
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if request.called_directly:
            raise exc if exc is not None else Retry("Task can be retried", None)
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}: max_retries={limit} reached"
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        when = eta.timestamp() if eta is not None else None
        retry = Retry(
            exc=exc,
            when=countdown if when is None else when,
            countdown=countdown,
            eta=when,
            call_args=None if args is None else list(args),
            call_kwargs=None if kwargs is None else dict(kwargs),
        )
        if not throw:
            return retry
        raise retry

    def replace(self, sig: Signature) -> NoReturn:
        """Swap this call for ``sig``: same task id, same place in the workflow.

        An empty chain fails the task with ``ImproperlyConfigured``, as in Celery; the
        replacement takes this call's stamps.
        """
        if not isinstance(sig, Signature):
            raise TypeError(f"replace() takes a signature, got {type(sig).__name__}")
        if isinstance(sig, chain) and not sig.tasks:
            raise ImproperlyConfigured("Cannot replace with an empty chain")
        if self.request.stamps:
            sig = sig.clone()
            sig.stamp(**self.request.stamps)
        self.on_replace(sig)
        raise Replace(sig)

    def add_to_chord(self, sig: Signature, lazy: bool = False) -> _Handle | GroupResult:
        """Add ``sig`` to the chord this task is a header member of: the body waits for it and
        gets its result too. ``ValueError`` outside a chord header, as in Celery."""
        if lazy:
            raise NotImplementedError(
                "add_to_chord(lazy=True) is not supported: the added member is sent with the "
                "chord; call add_to_chord(sig) instead."
            )
        return self.app.add_to_chord(self.request, sig)

    def send_event(
        self, type_: str, retry: bool = True, retry_policy: Any = None, **fields: Any
    ) -> None:
        """Send a custom event about the running call (``self.send_event('task-progress',
        current=3)``), as Celery's: monitors see it with the call's ``uuid``."""
        if not self.send_events:
            return
        request = self.request
        with self.app.events.default_dispatcher(hostname=request.hostname) as dispatcher:
            dispatcher.send(type_, uuid=request.id, **fields)

    def update_state(
        self, task_id: str | None = None, state: str | None = None, meta: Any = None, **_: Any
    ) -> None:
        """Record a custom state (e.g. progress) for this or another task."""
        target = task_id or self.request.id
        if target is None:
            raise ValueError("update_state() outside a task needs task_id=")
        metas.store(self.app, target, state or "PENDING", meta, task=self.name)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main or 'canvas'}>"


def _default_name(app: Canvas | None, fun: Callable[..., Any]) -> str:
    module = fun.__module__
    if module == "__main__" and app is not None and app.main:
        module = app.main
    return f"{module}.{fun.__name__}"


__all__ = ["TASK_OPTIONS", "Replace", "Request", "Task", "current_request"]


def _positional_range(signature: inspect.Signature) -> tuple[int, float] | tuple[()]:
    """How many positional arguments alone bind to ``signature`` (least, most), or ``()`` when
    a keyword-only parameter is required and positional arguments alone never bind."""
    least, most = 0, 0.0
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            most = float("inf")
        elif parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            most += 1
            least += parameter.default is parameter.empty
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return ()
    return least, most
