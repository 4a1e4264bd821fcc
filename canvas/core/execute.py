"""Running one task call in this process: request context, signals, and what came of it.

Shared by the worker and by eager mode, so ``apply()`` behaves as a worker would.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canvas import signals, states
from canvas.core import metas
from canvas.exceptions import Ignore, Reject, Replace, Retry
from canvas.request import Request, reset_request, set_request
from canvas.signature import Signature

if TYPE_CHECKING:
    from canvas.task import Task

RETRY, REJECTED, IGNORED, REPLACED = states.RETRY, states.REJECTED, states.IGNORED, "REPLACED"

logger = logging.getLogger("canvas.worker")


@dataclass(frozen=True)
class ExceptionInfo:
    """The ``einfo`` a task's ``on_failure``/``on_retry``/``after_return`` handlers receive:
    the exception, its type and the formatted traceback, under Celery's attribute names."""

    exception: BaseException
    traceback: str

    @property
    def type(self) -> type[BaseException]:
        return type(self.exception)

    @property
    def tb(self) -> object:
        return self.exception.__traceback__

    def __str__(self) -> str:
        return self.traceback


@dataclass
class Outcome:
    """How a call ended; exactly one of value / exc / retry / reject / replace is meaningful."""

    state: str
    value: Any = None
    exc: BaseException | None = None
    traceback: str | None = None
    runtime: float = 0.0
    retry: Retry | None = None
    reject: Reject | None = None
    replace: Signature | None = None


def run_call(task: Task, request: Request, args: list[Any], kwargs: dict[str, Any]) -> Outcome:
    """Call ``task`` with ``request`` as ``self.request``; never raises for the task's errors."""
    token = set_request(request)
    started = time.perf_counter()
    outcome: Outcome
    try:
        signals.task_prerun.send(
            sender=task, task_id=request.id, task=task, args=args, kwargs=kwargs
        )
        try:
            task.before_start(request.id or "", args, kwargs)
            value = task.run_with_retries(args, kwargs)
        except Retry as exc:
            outcome = Outcome(RETRY, exc=exc.exc or exc, retry=exc)
        except Reject as exc:
            outcome = Outcome(REJECTED, exc=exc, reject=exc)
        except Ignore:
            outcome = Outcome(IGNORED)
        except Replace as exc:
            outcome = Outcome(REPLACED, replace=exc.sig)
        except Exception as exc:
            outcome = Outcome(states.FAILURE, exc=exc, traceback=metas.format_traceback(exc))
        else:
            outcome = Outcome(states.SUCCESS, value=value)
        outcome.runtime = time.perf_counter() - started
        _run_handlers(task, request, args, kwargs, outcome)
        if outcome.state == states.SUCCESS and _is_handle(outcome.value):
            # As Celery stores a returned AsyncResult/GroupResult: its id tuple (as_tuple()).
            outcome.value = outcome.value.as_tuple()
        if outcome.state == states.SUCCESS:
            signals.task_success.send(sender=task, result=outcome.value)
        elif outcome.state == states.FAILURE:
            assert outcome.exc is not None
            signals.task_failure.send(
                sender=task,
                task_id=request.id,
                exception=outcome.exc,
                args=args,
                kwargs=kwargs,
                traceback=outcome.traceback,
                einfo=outcome.traceback,
            )
        elif outcome.state == RETRY:
            signals.task_retry.send(sender=task, request=request, reason=outcome.exc)
        signals.task_postrun.send(
            sender=task,
            task_id=request.id,
            task=task,
            args=args,
            kwargs=kwargs,
            retval=outcome.value if outcome.exc is None else outcome.exc,
            state=outcome.state,
        )
        return outcome
    finally:
        reset_request(token)


def _is_handle(value: Any) -> bool:
    """A result handle (``AsyncResult``/``GroupResult``): the engine knows them by shape."""
    return callable(getattr(value, "as_tuple", None)) and hasattr(value, "id")


def _run_handlers(
    task: Task, request: Request, args: list[Any], kwargs: dict[str, Any], outcome: Outcome
) -> None:
    """Celery's task handlers, by how the call ended; one that raises is logged and the outcome
    stands (a handler observes the call, it cannot undo it)."""
    task_id = request.id or ""
    einfo = None
    if outcome.exc is not None:
        einfo = ExceptionInfo(outcome.exc, outcome.traceback or metas.format_traceback(outcome.exc))
    calls: list[tuple[str, Callable[[], object]]] = []
    if outcome.state == states.SUCCESS:
        calls.append(("on_success", lambda: task.on_success(outcome.value, task_id, args, kwargs)))
    elif outcome.state == states.FAILURE:
        assert outcome.exc is not None
        exc = outcome.exc
        calls.append(("on_failure", lambda: task.on_failure(exc, task_id, args, kwargs, einfo)))
    elif outcome.state == RETRY:
        assert outcome.exc is not None
        exc = outcome.exc
        calls.append(("on_retry", lambda: task.on_retry(exc, task_id, args, kwargs, einfo)))
    if outcome.state in (states.SUCCESS, states.FAILURE, RETRY, REJECTED, IGNORED):
        retval = outcome.value if outcome.exc is None else outcome.exc
        state = outcome.state
        calls.append(
            ("after_return", lambda: task.after_return(state, retval, task_id, args, kwargs, einfo))
        )
    for name, call in calls:
        try:
            call()
        except Exception:
            logger.exception("Task %s[%s]: handler %s raised", task.name, task_id, name)
            signals.task_internal_error.send(
                sender=task, task_id=task_id, args=args, kwargs=kwargs, request=request
            )


def errback_takes_request(task: Task) -> bool:
    """Does this errback take ``(request, exc, traceback)`` rather than the failed task's id?

    Decided as Celery does, from the function's arity: more than one positional parameter
    (after ``self`` for a bound task), or ``*args``, is the new style.
    """
    try:
        params = list(inspect.signature(task.run).parameters.values())
    except (TypeError, ValueError):
        return False
    if task.bind:
        params = params[1:]
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) > 1 or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
