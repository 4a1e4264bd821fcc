"""Remote-control commands, as a worker runs them (Celery's ``celery.worker.control``).

A command is a function ``command(state, **arguments)`` registered by name with
``@control_command`` (it changes something) or ``@inspect_command`` (it only reads); its return
value is the reply, by Celery's convention ``{"ok": ...}`` or ``{"error": ...}`` for control
commands. ``state`` has ``app``, ``hostname`` and ``worker`` (also as ``consumer``, the name
Celery's custom commands use): the supervisor's side of the worker, described by ``Remote``.

Custom commands work as in Celery::

    from canvas.worker.control import control_command   # or canvas.core.panel

    @control_command(args=[("n", int)], signature="[N=1]")
    def bump(state, n=1):
        return {"ok": f"bumped by {n}"}

and are called with ``app.control.broadcast("bump", arguments={"n": 2}, reply=True)`` or
``canvas control bump 2``. The registry is global, as Celery's is: a command is registered when
its module is imported (import it from the worker's task modules).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from canvas.config import DEFAULTS
from canvas.core.ratelimit import rate
from canvas.core.revoked import Revoked
from canvas.core.worker_state import WorkerState
from canvas.events.event import short_repr

if TYPE_CHECKING:
    from canvas.app import Canvas

logger = logging.getLogger("canvas.worker")

Command = Callable[..., Any]


@dataclass(frozen=True)
class CommandInfo:
    """How a command is shown and called from the command line."""

    name: str
    type: str  # "control" or "inspect"
    help: str
    signature: str | None = None
    #: ``(name, type)`` of the positional arguments ``canvas control/inspect`` accepts
    args: tuple[tuple[str, Callable[[str], Any]], ...] = ()
    #: the argument that takes all remaining positional values, as a list
    variadic: str | None = None
    default_timeout: float = 1.0


class Panel:
    """The registry: ``Panel.data`` name -> function, ``Panel.meta`` name -> ``CommandInfo``."""

    data: dict[str, Command] = {}
    meta: dict[str, CommandInfo] = {}

    @classmethod
    def register(
        cls,
        fun: Command | None = None,
        *,
        name: str | None = None,
        alias: str | None = None,
        type: str = "control",
        help: str | None = None,
        signature: str | None = None,
        args: Sequence[tuple[str, Callable[[str], Any]]] | None = None,
        variadic: str | None = None,
        default_timeout: float = 1.0,
        visible: bool = True,
    ) -> Any:
        if type not in ("control", "inspect"):
            raise ValueError(f"A command's type is 'control' or 'inspect', not {type!r}.")

        def register(function: Command) -> Command:
            command = name or function.__name__
            text = help or (function.__doc__ or "").strip().split("\n")[0]
            info = CommandInfo(
                command, type, text, signature, tuple(args or ()), variadic, default_timeout
            )
            for key in (command, alias):
                if key:
                    cls.data[key] = function
                    cls.meta[key] = info
            return function

        return register(fun) if fun is not None else register


def control_command(**kwargs: Any) -> Callable[[Command], Command]:
    """Register a command that changes something on the worker."""
    decorator: Callable[[Command], Command] = Panel.register(type="control", **kwargs)
    return decorator


def inspect_command(**kwargs: Any) -> Callable[[Command], Command]:
    """Register a command that only reads."""
    decorator: Callable[[Command], Command] = Panel.register(type="inspect", **kwargs)
    return decorator


def ok(value: Any) -> dict[str, Any]:
    return {"ok": value}


def nok(value: Any) -> dict[str, Any]:
    return {"error": value}


class Remote(Protocol):
    """What a running worker offers to its commands (``canvas.core.worker`` implements it)."""

    app: Canvas
    hostname: str
    state: WorkerState
    revoked: Revoked
    queues: list[str]
    pool: str
    concurrency: int
    events_enabled: bool

    def pool_pids(self) -> list[int]: ...

    def drain_reports(self) -> None:
        """Take in what the pool reported so far (before answering)."""

    def order(self, command: dict[str, Any]) -> None:
        """Send an order to every consuming process (``TaskMonitor.apply``)."""

    def revoke(self, task_ids: list[str], terminate: bool, signum: str) -> list[str]:
        """Remember the revokes (and keep them); with ``terminate``, signal the processes
        running them. Returns the ids that were running and got the signal."""

    def resize(self, delta: int) -> str | None:
        """Add (or with a negative delta, stop) pool processes; an error text, or ``None``."""

    def autoscale(self, max: int | None, min: int | None) -> tuple[int, int] | str:
        """New autoscale bounds (``None`` keeps one): ``(max, min)``, or an error text."""

    def autoscale_info(self) -> dict[str, int] | None:
        """``--autoscale``'s bounds, pool size and demand; ``None`` without it."""

    def set_events(self, enabled: bool) -> bool:
        """Turn task events on or off; whether that changed anything."""

    def send_heartbeat(self) -> None: ...

    def shutdown(self) -> None:
        """Warm shutdown, as the first SIGTERM."""


class ControlState:
    """The ``state`` argument of every command."""

    def __init__(self, worker: Remote) -> None:
        self.worker = worker
        self.consumer = worker
        self.app = worker.app
        self.hostname = worker.hostname


def dispatch(state: ControlState, method: str, arguments: Mapping[str, Any]) -> Any:
    """Run one command; errors become ``{"error": ...}`` replies, never a dead control thread."""
    command = Panel.data.get(method)
    if command is None:
        return nok(f"No such command: {method!r}.")
    try:
        return command(state, **dict(arguments))
    except TypeError as exc:
        return nok(f"Bad arguments for {method!r}: {exc}")
    except Exception as exc:
        logger.exception("Remote control command %r failed", method)
        return nok(f"{type(exc).__name__}: {exc}")


# -- the worker -----------------------------------------------------------------------------
@inspect_command()
def ping(state: ControlState, **kwargs: Any) -> Any:
    """Ping the worker."""
    return ok("pong")


@control_command()
def heartbeat(state: ControlState, **kwargs: Any) -> Any:
    """Send a worker-heartbeat event now."""
    state.worker.send_heartbeat()
    return ok("heartbeat sent")


@inspect_command()
def stats(state: ControlState, **kwargs: Any) -> Any:
    """Statistics of the worker: pool, totals, broker, resource usage."""
    worker, app = state.worker, state.app
    snapshot = worker.state.snapshot()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    scaling = worker.autoscale_info()
    # An autoscaled pool process holds one message (canvas.core.worker's _prefetch)
    multiplier = 1 if scaling else int(app.conf.worker_prefetch_multiplier or 1)
    return {
        "pid": os.getpid(),
        "uptime": int(time.time() - worker.state.started_at),
        "clock": str(snapshot["processed"]),
        "total": snapshot["total"],
        "processed": snapshot["processed"],
        "failed": snapshot["failed"],
        "prefetch_count": multiplier * worker.concurrency,
        "pool": {
            "implementation": worker.pool,
            "max-concurrency": worker.concurrency,
            "processes": worker.pool_pids(),
        },
        "broker": _broker_info(app),
        **({"autoscaler": scaling} if scaling else {}),
        "events": worker.events_enabled,
        "queues": list(worker.queues),
        "rusage": {
            "utime": usage.ru_utime,
            "stime": usage.ru_stime,
            "maxrss": usage.ru_maxrss,
            "minflt": usage.ru_minflt,
            "majflt": usage.ru_majflt,
            "nvcsw": usage.ru_nvcsw,
            "nivcsw": usage.ru_nivcsw,
        },
    }


@inspect_command()
def clock(state: ControlState, **kwargs: Any) -> Any:
    """The worker's logical clock (tasks processed)."""
    return {"clock": state.worker.state.snapshot()["processed"]}


@inspect_command(args=[("with_defaults", lambda v: v.lower() in ("1", "true", "yes"))])
def conf(state: ControlState, with_defaults: bool = False, **kwargs: Any) -> Any:
    """The worker's configuration, secrets masked."""
    values = dict(state.app.conf)
    if not with_defaults:
        values = {k: v for k, v in values.items() if k not in DEFAULTS or DEFAULTS[k] != v}
    return {k: _masked(k, v) for k, v in sorted(values.items()) if not k.startswith("_")}


@inspect_command()
def report(state: ControlState, **kwargs: Any) -> Any:
    """Versions and settings, for bug reports."""
    return ok(bugreport(state.app))


@control_command()
def shutdown(state: ControlState, msg: str = "Got shutdown from remote", **kwargs: Any) -> Any:
    """Warm shutdown: finish the tasks in hand, then exit."""
    logger.warning(msg)
    state.worker.shutdown()
    return ok("shutting down")


@control_command()
def enable_events(state: ControlState, **kwargs: Any) -> Any:
    """Start sending task events."""
    if state.worker.set_events(True):
        return ok("task events enabled")
    return ok("task events already enabled")


@control_command()
def disable_events(state: ControlState, **kwargs: Any) -> Any:
    """Stop sending task events."""
    if state.worker.set_events(False):
        return ok("task events disabled")
    return ok("task events already disabled")


# -- tasks ----------------------------------------------------------------------------------
@control_command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]")
def revoke(
    state: ControlState,
    task_id: str | Sequence[str],
    terminate: bool = False,
    signal: str | None = None,
    **kwargs: Any,
) -> Any:
    """Revoke tasks by id; with terminate, signal the processes running them."""
    ids = [task_id] if isinstance(task_id, str) else [str(t) for t in task_id]
    signum = str(signal or "SIGTERM")
    terminated = state.worker.revoke(ids, bool(terminate), signum)
    if terminate:
        if not terminated:
            return ok("terminate: tasks unknown")
        return ok("terminate: {}".format(", ".join(terminated)))
    return ok(f"tasks {ids} flagged as revoked")


@control_command(args=[("signal", str), ("task_id", str)], signature="<signal> <task_id>")
def terminate(state: ControlState, signal: str, task_id: str, **kwargs: Any) -> Any:
    """Terminate a task by id."""
    return revoke(state, task_id, terminate=True, signal=signal)


@inspect_command()
def active(state: ControlState, safe: bool | None = None, **kwargs: Any) -> Any:
    """The tasks being run."""
    return state.worker.state.snapshot()["active"]


@inspect_command()
def reserved(state: ControlState, safe: bool | None = None, **kwargs: Any) -> Any:
    """Tasks received and not started yet."""
    return state.worker.state.snapshot()["reserved"]


@inspect_command()
def scheduled(state: ControlState, safe: bool | None = None, **kwargs: Any) -> Any:
    """Countdown/ETA tasks this worker parked until they are due."""
    return state.worker.state.snapshot()["scheduled"]


@inspect_command()
def revoked(state: ControlState, **kwargs: Any) -> Any:
    """The ids of revoked tasks."""
    return list(state.worker.revoked)


@inspect_command(variadic="ids", signature="[id1 [id2 [... [idN]]]]")
def query_task(state: ControlState, ids: str | Sequence[str] = (), **kwargs: Any) -> Any:
    """Where these tasks are on this worker: [state, info] by id."""
    wanted = [ids] if isinstance(ids, str) else list(ids)
    found = {}
    for task_id in wanted:
        hit = state.worker.state.find(str(task_id))
        if hit is not None:
            found[str(task_id)] = [hit[0], hit[1]]
    return found


@inspect_command(variadic="taskinfoitems", signature="[attr1 [attr2 [... [attrN]]]]")
def registered(
    state: ControlState,
    taskinfoitems: Sequence[str] | None = None,
    builtins: bool = False,
    **kwargs: Any,
) -> Any:
    """The registered tasks, with some of their attributes."""
    items = list(taskinfoitems or ("rate_limit", "time_limit", "soft_time_limit"))
    shown = []
    for name in sorted(state.app.tasks):
        if name.startswith("canvas.") and not builtins:
            continue
        task = state.app.tasks[name]
        fields = [f"{f}={getattr(task, f)}" for f in items if getattr(task, f, None) is not None]
        shown.append(f"{name} [{' '.join(fields)}]" if fields else name)
    return shown


@control_command(
    args=[("task_name", str), ("rate_limit", str)], signature="<task_name> <rate_limit (e.g. 5/s)>"
)
def rate_limit(
    state: ControlState, task_name: str, rate_limit: str | int | float | None, **kwargs: Any
) -> Any:
    """Set a task's rate limit ("10/s", "100/m", "1000/h"; 0 or none turns it off)."""
    try:
        per_second = rate(rate_limit)
    except ValueError as exc:
        return nok(f"Invalid rate limit string: {exc}")
    if task_name not in state.app.tasks:
        return nok("unknown task")
    value = rate_limit if per_second else None
    state.app.tasks[task_name].rate_limit = value
    state.worker.order({"op": "task_option", "task": task_name, "options": {"rate_limit": value}})
    if not per_second:
        return ok("rate limit disabled successfully")
    return ok("new rate limit set successfully")


@control_command(
    args=[("task_name", str), ("soft", float), ("hard", float)],
    signature="<task_name> <soft_secs> [hard_secs]",
)
def time_limit(
    state: ControlState,
    task_name: str | None = None,
    hard: float | None = None,
    soft: float | None = None,
    **kwargs: Any,
) -> Any:
    """Set a task's soft and hard time limits (seconds)."""
    if task_name is None or task_name not in state.app.tasks:
        return nok("unknown task")
    options = {"soft_time_limit": soft, "time_limit": hard}
    task = state.app.tasks[task_name]
    for key, value in options.items():
        setattr(task, key, value)
    state.worker.order({"op": "task_option", "task": task_name, "options": options})
    return ok("time limits set successfully")


# -- the pool and its queues ----------------------------------------------------------------
@control_command(args=[("n", int)], signature="[N=1]")
def pool_grow(state: ControlState, n: int = 1, **kwargs: Any) -> Any:
    """Start n more pool processes."""
    error = state.worker.resize(int(n))
    return nok(error) if error else ok("pool will grow")


@control_command(args=[("n", int)], signature="[N=1]")
def pool_shrink(state: ControlState, n: int = 1, **kwargs: Any) -> Any:
    """Stop n pool processes (each finishes its task first)."""
    error = state.worker.resize(-int(n))
    return nok(error) if error else ok("pool will shrink")


@control_command(args=[("max", int), ("min", int)], signature="[max [min]]")
def autoscale(state: ControlState, max: int | None = None, min: int | None = None) -> Any:
    """Keep the pool between min and max processes (a worker started with --autoscale)."""
    try:
        high = None if max is None else int(max)
        low = None if min is None else int(min)
    except (TypeError, ValueError):
        return nok(f"autoscale needs whole numbers, got max={max!r} min={min!r}")
    bounds = state.worker.autoscale(high, low)
    if isinstance(bounds, str):
        return nok(bounds)
    return ok(f"autoscale now max={bounds[0]} min={bounds[1]}")


@control_command()
def pool_restart(state: ControlState, **kwargs: Any) -> Any:
    """Not supported: restart the worker instead."""
    return nok("pool_restart is not supported by canvas workers: restart the worker.")


@control_command(args=[("queue", str)], signature="<queue>")
def add_consumer(state: ControlState, queue: str, **options: Any) -> Any:
    """Start consuming from a queue."""
    if queue not in state.worker.queues:
        state.worker.queues.append(queue)
        state.worker.order({"op": "queues", "queues": list(state.worker.queues)})
        return ok(f"add consumer {queue}")
    return ok(f"already consuming from {queue}")


@control_command(args=[("queue", str)], signature="<queue>")
def cancel_consumer(state: ControlState, queue: str, **kwargs: Any) -> Any:
    """Stop consuming from a queue."""
    if queue not in state.worker.queues:
        return nok(f"not consuming from {queue}")
    if len(state.worker.queues) == 1:
        return nok(f"{queue} is the last queue: a worker must consume from one at least")
    state.worker.queues.remove(queue)
    state.worker.order({"op": "queues", "queues": list(state.worker.queues)})
    return ok(f"no longer consuming from {queue}")


@inspect_command()
def active_queues(state: ControlState, **kwargs: Any) -> Any:
    """The queues the worker consumes from."""
    return [
        {
            "name": queue,
            "exchange": {"name": "", "type": "direct"},
            "routing_key": queue,
            "durable": True,
            "exclusive": False,
            "auto_delete": False,
            "no_ack": False,
            "dead_letter_queue": state.app.transport.dead_letters(queue),
        }
        for queue in state.worker.queues
    ]


# -- helpers --------------------------------------------------------------------------------
_SECRET = re.compile(r"key|password|secret|token|passwd|credential", re.IGNORECASE)


def _masked(key: str, value: Any) -> Any:
    if value is not None and _SECRET.search(key):
        return "********"
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, rest = value.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:********@{host}"
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return [_masked(key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _masked(str(k), v) for k, v in value.items()}
    return short_repr(value)


def _broker_info(app: Canvas) -> dict[str, Any]:
    url = app.broker_url
    scheme, _, rest = url.partition("://")
    host = rest.rsplit("@", 1)[-1]
    hostname, _, port = host.split("/", 1)[0].partition(":")
    return {
        "transport": scheme,
        "hostname": hostname,
        "port": int(port) if port.isdigit() else None,
        "url": _masked("broker_url", url),
    }


def bugreport(app: Canvas) -> str:
    """``canvas report``: what a bug report needs, secrets masked."""
    lines = [
        f"software -> canvas:{_version()} python:{platform.python_version()}",
        f"platform -> system:{platform.system()} arch:{platform.machine()} "
        f"imp:{platform.python_implementation()}",
        f"broker -> {_masked('broker_url', app.broker_url)}",
        f"results -> {_masked('result_backend', app.backend_url)}",
        f"executable -> {sys.executable}",
        f"time -> {dt.datetime.now(dt.UTC).isoformat()}",
        "",
    ]
    for key, value in sorted(dict(app.conf).items()):
        if key in DEFAULTS and DEFAULTS[key] == value:
            continue
        lines.append(f"{key}: {_masked(key, value)!r}")
    return "\n".join(lines)


def _version() -> str:
    """canvas's version, from the package this module belongs to (not importlib.metadata,
    which costs every worker process ~4 MB for this one answer)."""
    return str(getattr(sys.modules.get("canvas"), "__version__", "unknown"))
