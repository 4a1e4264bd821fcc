"""Errors raised by canvas, named as in Celery so ``celery.exceptions`` imports carry over.

CanvasError
├── ImproperlyConfigured      bad settings, unknown transport/backend scheme
├── NotRegistered             a task name the worker does not know
├── WorkflowError             a canvas that cannot compile (cycle, too large, too deep)
├── PayloadTooLarge           an argument list over ``task_max_payload_bytes``
├── ContentDisallowed         a message in a serializer not in ``accept_content``
├── SecurityError             an unsigned, altered, expired or replayed message or record
├── RemoteError               a task's exception whose type cannot be rebuilt here
├── ChordError                a chord body that cannot run because a header task failed
├── TimeoutError              ``AsyncResult.get`` ran out of time (also builtin TimeoutError)
├── Retry                     raised by ``Task.retry`` to ask for another run
├── Reject                    raised by a task to reject its message (requeue or dead-letter)
├── Ignore                    raised by a task to leave its state untouched
├── TaskRevokedError          ``get()`` on a task that was revoked or expired before it ran
├── TaskRejectedError         ``get()`` on a task whose message was dead-lettered
├── SoftTimeLimitExceeded     raised inside a task at its ``soft_time_limit``
├── TimeLimitExceeded         a task killed at its ``time_limit``
├── WorkerLostError           the process running a task died
└── MaxRetriesExceededError   ``Task.retry`` past ``max_retries`` with no exception to re-raise

Replace (outside the tree: not an error) is raised by ``Task.replace`` to hand the worker the
canvas that takes the call's place.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canvas.signature import Signature


class CanvasError(Exception):
    """Root of every error canvas raises."""


class ImproperlyConfigured(CanvasError):
    """A setting or URL is wrong; the message names it and how to fix it."""


class NotRegistered(CanvasError, KeyError):
    """A task name that no ``@app.task`` registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class WorkflowError(CanvasError):
    """A canvas that cannot be compiled into a workflow."""


class PayloadTooLarge(CanvasError, ValueError):
    """A message body over the configured limit; nothing was published."""


class ContentDisallowed(CanvasError):
    """A message whose content type is not in ``accept_content``."""


class SecurityError(CanvasError):
    """A message or record that is unsigned, altered, too old, replayed or undecryptable."""


class RemoteError(CanvasError):
    """A task failed with an exception type that cannot be rebuilt in this process."""

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


class ChordError(CanvasError):
    """A chord body was not run because a task of its header failed."""


class TimeoutError(CanvasError, builtins.TimeoutError):
    """The operation timed out."""


class Retry(CanvasError):
    """Raised by ``Task.retry``: the task will run again."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | None = None,
        *,
        countdown: float | None = None,
        eta: float | None = None,
        call_args: list[Any] | None = None,
        call_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message or (f"Retry in {when}s" if when is not None else "Retry"))
        self.exc = exc
        self.when = when
        #: when to run again: seconds from now, or an epoch time
        self.countdown = countdown
        self.eta = eta
        #: new arguments for the next run (``None``: the same as this run)
        self.call_args = call_args
        self.call_kwargs = call_kwargs


class Reject(CanvasError):
    """Raised by a task to reject its message: ``requeue=True`` redelivers, else dead-letters."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requeue = requeue

    def __repr__(self) -> str:
        return f"reject requeue={self.requeue}: {self.reason}"


class Ignore(CanvasError):
    """Raised by a task to leave its state as the task set it."""


class TaskRevokedError(CanvasError):
    """The task was revoked or expired before it ran."""


class TaskRejectedError(CanvasError):
    """The task's message was rejected to the dead-letter queue."""


class SoftTimeLimitExceeded(CanvasError):
    """Raised inside a task when its ``soft_time_limit`` passes, so it can clean up."""


class TimeLimitExceeded(CanvasError):
    """The task ran past its ``time_limit`` and its process was stopped."""


class WorkerLostError(CanvasError):
    """The process running the task died."""


class MaxRetriesExceededError(CanvasError):
    """``Task.retry`` was called after ``max_retries`` runs."""


class Replace(Exception):
    """Raised by ``Task.replace``: the worker swaps this call for ``sig``."""

    def __init__(self, sig: Signature) -> None:
        super().__init__(repr(sig))
        self.sig = sig


__all__ = [
    "CanvasError",
    "ChordError",
    "ContentDisallowed",
    "Ignore",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "NotRegistered",
    "PayloadTooLarge",
    "Reject",
    "RemoteError",
    "Replace",
    "Retry",
    "SecurityError",
    "SoftTimeLimitExceeded",
    "TaskRejectedError",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
    "WorkflowError",
]
