"""Running one task call in this process: request context, signals, and what came of it.

Shared by the worker and by eager mode, so ``apply()`` behaves as a worker would.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canvas import signals, states
from canvas.core import metas
from canvas.exceptions import Ignore, Reject, Replace, Retry
from canvas.request import Request, reset_request, set_request
from canvas.signature import Signature

if TYPE_CHECKING:
    from canvas.task import Task

RETRY, REJECTED, IGNORED, REPLACED = states.RETRY, states.REJECTED, "IGNORED", "REPLACED"


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
