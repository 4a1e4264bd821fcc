"""Every name a Celery project imports has its canvas twin at the same path.

The list is Celery 5's public names that projects use (its docs' examples and everyday habits);
a name missing here is an ``ImportError`` in a project that only swapped its imports.
"""

from __future__ import annotations

import importlib

import pytest

CELERY_NAMES: dict[str, list[str]] = {
    "canvas": [
        "Celery",
        "Task",
        "shared_task",
        "current_app",
        "current_task",
        "chain",
        "chord",
        "chunks",
        "group",
        "signature",
        "maybe_signature",
        "subtask",
        "xmap",
        "xstarmap",
    ],
    "canvas.canvas": ["Signature", "chain", "chord", "group", "signature", "chunks"],
    "canvas.app.task": ["Task"],
    "canvas.result": ["AsyncResult", "GroupResult", "ResultSet", "EagerResult"],
    "canvas.utils.log": ["get_task_logger", "get_logger"],
    "canvas.worker.control": ["control_command", "inspect_command"],
    "canvas.contrib.testing.worker": ["start_worker"],
    "canvas.contrib.testing.app": ["TestApp", "setup_default_app"],
    "canvas.contrib.pytest": [
        "celery_app",
        "celery_worker",
        "celery_session_app",
        "celery_session_worker",
        "celery_config",
        "celery_includes",
        "celery_parameters",
    ],
    "canvas.schedules": ["crontab", "schedule", "solar"],
    "canvas.states": [
        "PENDING",
        "RECEIVED",
        "STARTED",
        "SUCCESS",
        "FAILURE",
        "RETRY",
        "REVOKED",
        "REJECTED",
        "IGNORED",
        "READY_STATES",
        "UNREADY_STATES",
        "EXCEPTION_STATES",
        "PROPAGATE_STATES",
        "ALL_STATES",
        "precedence",
        "state",
    ],
    "canvas.exceptions": [
        "CeleryError",
        "TaskError",
        "AlreadyRegistered",
        "NotRegistered",
        "QueueNotFound",
        "InvalidTaskError",
        "ImproperlyConfigured",
        "WorkerShutdown",
        "WorkerTerminate",
        "WorkerLostError",
        "Terminated",
        "OperationalError",
        "BackendError",
        "BackendStoreError",
        "BackendGetMetaError",
        "SecurityError",
        "SecurityWarning",
        "TaskPredicate",
        "Retry",
        "Ignore",
        "Reject",
        "NotConfigured",
        "ChordError",
        "TimeoutError",
        "TaskRevokedError",
        "MaxRetriesExceededError",
        "SoftTimeLimitExceeded",
        "TimeLimitExceeded",
    ],
    "canvas.signals": [
        "before_task_publish",
        "after_task_publish",
        "task_received",
        "task_prerun",
        "task_postrun",
        "task_success",
        "task_failure",
        "task_retry",
        "task_revoked",
        "task_rejected",
        "task_unknown",
        "task_internal_error",
        "celeryd_init",
        "celeryd_after_setup",
        "worker_init",
        "worker_process_init",
        "worker_process_shutdown",
        "worker_ready",
        "worker_shutting_down",
        "worker_shutdown",
        "heartbeat_sent",
        "setup_logging",
        "after_setup_logger",
        "after_setup_task_logger",
        "import_modules",
        "beat_init",
        "beat_embedded_init",
    ],
}

#: what the app object offers that projects call
APP_ATTRIBUTES = [
    "Task",
    "task",
    "send_task",
    "signature",
    "AsyncResult",
    "GroupResult",
    "config_from_object",
    "config_from_envvar",
    "autodiscover_tasks",
    "add_periodic_task",
    "register_task",
    "set_current",
    "set_default",
    "on_after_fork",
    "on_after_configure",
    "on_after_finalize",
    "on_configure",
    "finalize",
    "start",
    "worker_main",
    "now",
    "timezone",
    "conf",
    "control",
    "events",
    "backend",
    "tasks",
    "close",
]

#: what a task offers (Celery's ``Task``)
TASK_ATTRIBUTES = [
    "delay",
    "apply_async",
    "apply",
    "s",
    "si",
    "signature",
    "map",
    "starmap",
    "chunks",
    "retry",
    "replace",
    "update_state",
    "request",
    "AsyncResult",
    "before_start",
    "on_success",
    "on_failure",
    "on_retry",
    "after_return",
    "on_replace",
    "shadow_name",
    "add_to_chord",
    "MaxRetriesExceededError",
    "name",
    "max_retries",
    "default_retry_delay",
    "rate_limit",
    "ignore_result",
    "acks_late",
    "expires",
    "reject_on_worker_lost",
    "store_errors_even_if_ignored",
    "track_started",
    "time_limit",
    "soft_time_limit",
    "serializer",
    "backend",
    "typing",
    "throws",
    "priority",
    "send_events",
    "send_event",
]

PAIRS = [(module, name) for module, names in CELERY_NAMES.items() for name in names]


@pytest.mark.parametrize(("module", "name"), PAIRS, ids=[f"{m}.{n}" for m, n in PAIRS])
def test_each_celery_name_has_its_canvas_twin(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"from {module} import {name}"


@pytest.mark.parametrize("name", APP_ATTRIBUTES)
def test_the_app_offers_what_celery_projects_call(name: str) -> None:
    from canvas import Celery

    app = Celery("names", broker="memory://", backend="memory://", set_as_current=False)
    assert hasattr(app, name), f"app.{name}"


@pytest.mark.parametrize("name", TASK_ATTRIBUTES)
def test_a_task_offers_what_celery_projects_call(name: str) -> None:
    from canvas import Celery

    app = Celery("names", broker="memory://", backend="memory://", set_as_current=False)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert hasattr(add, name), f"task.{name}"
