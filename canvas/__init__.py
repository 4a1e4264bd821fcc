"""canvas: a task queue for Python web applications, built around its workflow canvas.

    from canvas import Canvas
    app = Canvas("proj", broker="redis://localhost:6379")

Code written for Celery runs after changing its imports: ``celery`` -> ``canvas`` and
``Celery`` -> ``Canvas``.
"""

from __future__ import annotations

# the application
from canvas.app import Canvas, Celery, current_app, current_task, default_app, shared_task

# composition
from canvas.dag import Workflow
from canvas.dag import compile as compile_workflow
from canvas.maps import chunks, xmap, xstarmap
from canvas.primitives import chain, chord, group

# results
from canvas.result import AsyncResult, EagerResult, GroupResult, ResultSet, allow_join_result

# composition: signatures
from canvas.signature import Signature, maybe_signature, signature, subtask

# tasks
from canvas.task import Task

__version__ = "0.1.0"

__all__ = [
    # the application
    "Canvas",
    "Celery",
    "current_app",
    "default_app",
    # tasks
    "Task",
    "current_task",
    "shared_task",
    # composition
    "Signature",
    "Workflow",
    "chain",
    "chord",
    "chunks",
    "compile_workflow",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
    # results
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultSet",
    "allow_join_result",
]
