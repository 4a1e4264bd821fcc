"""What the page's buttons do: checked input, then Celery's remote-control calls.

Every action names its target (a task id, a worker's hostname, a queue) and returns the replies
of the workers it reached, as ``app.control`` gives them (a list of ``{hostname: reply}``).
Input the page should never send (a negative pool size, a rate that is not a rate, an unknown
signal) is an ``ActionError`` naming the field and what it accepts; nothing is sent then.
"""

from __future__ import annotations

import re
import signal as signals
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from canvas.dashboard import queues

if TYPE_CHECKING:
    from canvas.app import Canvas

#: seconds the page waits for workers to acknowledge a control command
REPLY_TIMEOUT = 2.0
#: the signals ``terminate`` may send
SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGHUP")
#: Celery's rate-limit syntax: a number of tasks, optionally per second, minute or hour
_RATE = re.compile(r"\d+(\.\d+)?(/[smh])?")
_MAX_POOL_STEP = 64


class ActionError(ValueError):
    """Bad input for an action: names the field and what it accepts."""


def revoke(
    app: Canvas, task_id: str, *, terminate: bool = False, signal: str = "SIGTERM"
) -> dict[str, Any]:
    """Revoke a task (and, with ``terminate``, signal the process running it)."""
    if not task_id or len(task_id) > 255:
        raise ActionError("task id: give the id of one task")
    signal = signal.upper()
    if not signal.startswith("SIG"):
        signal = "SIG" + signal
    if signal not in SIGNALS or not hasattr(signals, signal):
        raise ActionError(f"signal: {signal!r} is not one of {', '.join(SIGNALS)}")
    replies = app.control.revoke(
        task_id, terminate=terminate, signal=signal, reply=True, timeout=REPLY_TIMEOUT
    )
    return {"task": task_id, "terminate": terminate, "signal": signal, "replies": replies or []}


def shutdown(app: Canvas, hostname: str) -> dict[str, Any]:
    """Ask one worker to shut down warmly (it finishes what it runs, as ``canvas control``)."""
    replies = app.control.shutdown(destination=[_host(hostname)], reply=True, timeout=REPLY_TIMEOUT)
    return {"worker": hostname, "replies": replies or []}


def resize_pool(app: Canvas, hostname: str, delta: Any) -> dict[str, Any]:
    """Grow (``delta`` > 0) or shrink (``delta`` < 0) one worker's pool by ``|delta|`` processes."""
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise ActionError("delta: a non-zero whole number of processes (1 grows, -1 shrinks)")
    if abs(delta) > _MAX_POOL_STEP:
        raise ActionError(f"delta: at most {_MAX_POOL_STEP} processes at a time, got {delta}")
    call = app.control.pool_grow if delta > 0 else app.control.pool_shrink
    replies = call(abs(delta), destination=[_host(hostname)], reply=True, timeout=REPLY_TIMEOUT)
    return {"worker": hostname, "delta": delta, "replies": replies or []}


def rate_limit(app: Canvas, hostname: str, task: Any, rate: Any) -> dict[str, Any]:
    """Set a task's rate limit on one worker: ``"10/m"``, ``"2/s"``, ``"100"``; ``"0"`` lifts it."""
    if not isinstance(task, str) or not task.strip():
        raise ActionError("task: the name of a task, e.g. proj.tasks.add")
    rate = str(rate).strip() if isinstance(rate, str | int | float) else ""
    if not _RATE.fullmatch(rate):
        raise ActionError(f"rate: {rate!r} is not a rate; use 10/s, 10/m, 10/h or 10 (per second)")
    replies = app.control.rate_limit(
        task.strip(), rate, destination=[_host(hostname)], reply=True, timeout=REPLY_TIMEOUT
    )
    return {"worker": hostname, "task": task.strip(), "rate": rate, "replies": replies or []}


def replay(app: Canvas, queue: str, ids: Any, every: Any) -> dict[str, Any]:
    """Replay dead letters of ``queue`` (the given ids, or all); refused ones stay, with why."""
    if (
        not isinstance(ids, Sequence)
        or isinstance(ids, str)
        or not all(isinstance(i, str) for i in ids)
    ):
        raise ActionError("ids: a list of task ids")
    if not ids and every is not True:
        raise ActionError("ids: name the dead letters to replay, or set all")
    outcome = queues.replay(app, queue, list(ids), every=every is True)
    return {
        "queue": outcome.queue,
        "replayed": outcome.replayed,
        "refused": [{"id": i, "reason": r} for i, r in outcome.refused],
    }


def _host(hostname: str) -> str:
    if not hostname or len(hostname) > 255:
        raise ActionError("worker: give the hostname of one worker, e.g. celery@host")
    return hostname


def field(body: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """One field of a JSON body (the page sends objects; anything else is an empty one)."""
    return body.get(name, default) if isinstance(body, Mapping) else default


__all__ = [
    "REPLY_TIMEOUT",
    "SIGNALS",
    "ActionError",
    "field",
    "rate_limit",
    "replay",
    "resize_pool",
    "revoke",
    "shutdown",
]
