"""``Request``: what a running task knows about its own call (``self.request``).

The current request lives in a ``ContextVar``, so threads and nested calls never see each other's.
The worker and eager mode set it around each call (``set_request``/``reset_request``); a task
reads it through ``Task.request``. This module sits below both ``canvas.task`` and
``canvas.core``, so the engine never imports the task API.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    """What a running task knows about its own call (``self.request``)."""

    id: str | None = None
    task: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    eta: float | None = None
    expires: float | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    workflow: str | None = None
    hostname: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=lambda: {"redelivered": False})
    headers: dict[str, Any] = field(default_factory=dict)
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    origin: str | None = None
    is_eager: bool = False
    called_directly: bool = True
    timelimit: tuple[float | None, float | None] = (None, None)
    #: Celery 5.3's stamps: name -> value, and the names (see ``canvas.stamping``)
    stamps: dict[str, Any] = field(default_factory=dict)
    stamped_headers: list[str] = field(default_factory=list)
    #: options to reuse when this call is sent again (retry)
    options: dict[str, Any] = field(default_factory=dict)
    #: handles of the calls this one sent while it ran (Celery's ``request.children``)
    children: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "args": self.args if self.argsrepr is None else self.argsrepr,
            "kwargs": self.kwargs if self.kwargsrepr is None else self.kwargsrepr,
            "retries": self.retries,
            "root_id": self.root_id,
            "parent_id": self.parent_id,
            "group": self.group,
            "workflow": self.workflow,
            "hostname": self.hostname,
            "delivery_info": self.delivery_info,
        }


# A default (not a module-level ``set``): a new thread starts with an empty context, and
# ``get()`` there must answer ``None``, not raise LookupError.
_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "canvas_request", default=None
)


def current_request() -> Request | None:
    """The request of the call running in this context, or ``None`` outside a task."""
    return _request.get()


def set_request(request: Request | None) -> contextvars.Token[Request | None]:
    return _request.set(request)


def reset_request(token: contextvars.Token[Request | None]) -> None:
    _request.reset(token)
