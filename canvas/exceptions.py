"""Errors raised by canvas, named as in Celery so ``celery.exceptions`` imports carry over.

CanvasError (alias CeleryError)
├── ImproperlyConfigured      bad settings, unknown transport/backend scheme
├── WorkflowError             a canvas that cannot compile (cycle, too large, too deep)
├── PayloadTooLarge           an argument list over ``task_max_payload_bytes``
├── ContentDisallowed         a message in a serializer not in ``accept_content``
├── SecurityError             an unsigned, altered, expired or replayed message or record
├── RemoteError               a task's exception whose type cannot be rebuilt here
├── OperationalError          a broker or store could not be reached
├── BackendError              the result store failed an operation
│   ├── BackendGetMetaError   ... reading a task's state
│   └── BackendStoreError     ... storing a task's state
├── TaskPredicate             raised by a task to tell the worker what to do with its call
│   ├── Retry                 ask for another run (``Task.retry``)
│   ├── Reject                reject the message (requeue or dead-letter)
│   └── Ignore                leave the task's state untouched
├── TaskError                 a task could not be found, sent or finished
│   ├── NotRegistered         a task name the worker does not know
│   ├── AlreadyRegistered     a task name registered twice
│   ├── QueueNotFound         a queue not in ``task_queues`` (``task_create_missing_queues`` off)
│   ├── InvalidTaskError      a message that is not a task call
│   ├── IncompleteStream      ``collect()`` met a result that is not ready
│   ├── ChordError            a chord body that cannot run because a header task failed
│   ├── TimeoutError          ``AsyncResult.get`` ran out of time (also builtin TimeoutError)
│   ├── TaskRevokedError      ``get()`` on a task that was revoked or expired before it ran
│   ├── TaskRejectedError     ``get()`` on a task whose message was dead-lettered
│   └── MaxRetriesExceededError  ``Task.retry`` past ``max_retries`` with no exception to re-raise
├── SoftTimeLimitExceeded     raised inside a task at its ``soft_time_limit``
├── TimeLimitExceeded         a task killed at its ``time_limit``
├── Terminated                a task stopped by ``revoke(terminate=True)``
└── WorkerLostError           the process running a task died

Outside the tree: ``Replace`` (not an error) is raised by ``Task.replace`` to hand the worker the
canvas that takes the call's place; ``WorkerShutdown``/``WorkerTerminate`` are ``SystemExit``s, as
in Celery; ``CeleryWarning`` (``SecurityWarning``, ``NotConfigured``, ``AlwaysEagerIgnored``) are
warnings.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canvas.signature import Signature


class CanvasError(Exception):
    """Root of every error canvas raises."""


#: Celery's name for the root error: ``except CeleryError`` catches every canvas error
CeleryError = CanvasError


class TaskPredicate(CanvasError):
    """Raised by a task to tell the worker what to do with its call (retry, reject, ignore)."""


class TaskError(CanvasError):
    """A task could not be found, sent or finished."""


class OperationalError(CanvasError):
    """A broker or result store could not be reached."""


class BackendError(CanvasError):
    """The result store failed an operation."""


class BackendGetMetaError(BackendError):
    """Reading a task's state from the result store failed."""


class BackendStoreError(BackendError):
    """Storing a task's state in the result store failed."""


class ImproperlyConfigured(CanvasError):
    """A setting or URL is wrong; the message names it and how to fix it."""


class NotRegistered(TaskError, KeyError):
    """A task name that no ``@app.task`` registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class AlreadyRegistered(TaskError):
    """A task name registered twice."""


class QueueNotFound(TaskError, KeyError):
    """A queue that ``task_queues`` does not list, with ``task_create_missing_queues`` off."""


class InvalidTaskError(TaskError):
    """A message that is not a valid task call."""


class IncompleteStream(TaskError):
    """``collect()``/``iterdeps()`` met a result that is not ready yet."""


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


class ChordError(TaskError):
    """A chord body was not run because a task of its header failed."""


class TimeoutError(TaskError, builtins.TimeoutError):
    """The operation timed out."""


class Retry(TaskPredicate):
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


class Reject(TaskPredicate):
    """Raised by a task to reject its message: ``requeue=True`` redelivers, else dead-letters."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requeue = requeue

    def __repr__(self) -> str:
        return f"reject requeue={self.requeue}: {self.reason}"


class Ignore(TaskPredicate):
    """Raised by a task to leave its state as the task set it."""


class TaskRevokedError(TaskError):
    """The task was revoked or expired before it ran."""


class TaskRejectedError(TaskError):
    """The task's message was rejected to the dead-letter queue."""


class SoftTimeLimitExceeded(CanvasError):
    """Raised inside a task when its ``soft_time_limit`` passes, so it can clean up."""


class TimeLimitExceeded(CanvasError):
    """The task ran past its ``time_limit`` and its process was stopped."""


class WorkerLostError(CanvasError):
    """The process running the task died."""


class Terminated(CanvasError):
    """The task was stopped by ``revoke(terminate=True)``."""


class WorkerShutdown(SystemExit):
    """Raised to ask the worker for a warm shutdown (a ``SystemExit``, as in Celery)."""


class WorkerTerminate(SystemExit):
    """Raised to ask the worker for a cold shutdown (a ``SystemExit``, as in Celery)."""


class CeleryWarning(UserWarning):
    """Root of the warnings canvas issues under Celery's names."""


class SecurityWarning(CeleryWarning):
    """Message signing or encryption is weaker than it should be."""


class NotConfigured(CeleryWarning):
    """A setting a feature needs was left unset and a default was used."""


class CDeprecationWarning(CeleryWarning):
    """A Celery name or form that still works but is deprecated (old setting names)."""


class AlwaysEagerIgnored(CeleryWarning):
    """An option that has no effect with ``task_always_eager``."""


class MaxRetriesExceededError(TaskError):
    """``Task.retry`` was called after ``max_retries`` runs."""


class Replace(Exception):
    """Raised by ``Task.replace``: the worker swaps this call for ``sig``."""

    def __init__(self, sig: Signature) -> None:
        super().__init__(repr(sig))
        self.sig = sig


__all__ = [
    "AlreadyRegistered",
    "AlwaysEagerIgnored",
    "BackendError",
    "BackendGetMetaError",
    "BackendStoreError",
    "CDeprecationWarning",
    "CanvasError",
    "CeleryError",
    "CeleryWarning",
    "ChordError",
    "ContentDisallowed",
    "Ignore",
    "ImproperlyConfigured",
    "IncompleteStream",
    "InvalidTaskError",
    "MaxRetriesExceededError",
    "NotConfigured",
    "NotRegistered",
    "OperationalError",
    "PayloadTooLarge",
    "QueueNotFound",
    "Reject",
    "RemoteError",
    "Replace",
    "Retry",
    "SecurityError",
    "SecurityWarning",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskPredicate",
    "TaskRejectedError",
    "TaskRevokedError",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
    "WorkerShutdown",
    "WorkerTerminate",
    "WorkflowError",
]
