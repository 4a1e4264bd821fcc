"""Remote control of running workers: ``app.control`` and ``app.control.inspect()`` (Celery's).

    app.control.revoke(task_id, terminate=True)
    app.control.inspect(timeout=2).active()       # {"w1@host": [task info, ...], ...}
    app.control.rate_limit("proj.add", "10/m", reply=True)

Requests are broadcast on the bus of the app's broker (``canvas.core.mailbox``); each worker's
supervisor answers, so a worker busy in a long task still does. Methods that change something
return ``None`` unless called with ``reply=True``, then a list of ``{hostname: reply}`` as Celery
does; ``inspect()`` methods return one dict ``{hostname: reply}`` (or ``None`` when no worker
answered within ``timeout``).

Revokes are also written to the result store (kept ``worker_revoke_expires`` seconds, default
three hours), so a worker started later, or restarted, still refuses the revoked tasks. Revoking
a workflow's id revokes every node of it that has not finished; ``revoke_by_stamped_headers``
revokes the tasks that carry a stamp (``canvas.stamping``).
"""

from __future__ import annotations

import logging
import signal as signal_module
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from canvas import states
from canvas.bus import of_app
from canvas.core import mailbox
from canvas.core.revoked import keep_revokes
from canvas.stamping import revoke_keys

if TYPE_CHECKING:
    from canvas.app import Canvas

logger = logging.getLogger("canvas.control")

TERM_SIGNAME = "SIGTERM"


def flatten_reply(reply: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``[{"a": 1}, {"b": 2}]`` -> ``{"a": 1, "b": 2}``; a name that answers twice is logged."""
    nodes: dict[str, Any] = {}
    for item in reply:
        for name, value in item.items():
            if name in nodes:
                logger.warning(
                    "Two workers answered as %r: give each a unique name with 'worker -n'.", name
                )
            nodes[name] = value
    return nodes


def signal_name(signal: str | int | None) -> str:
    """``"KILL"``, ``"SIGKILL"`` or ``9`` -> ``"SIGKILL"``; an unknown name is a ``ValueError``."""
    if signal is None:
        return TERM_SIGNAME
    if isinstance(signal, int):
        return signal_module.Signals(signal).name
    name = str(signal).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if not hasattr(signal_module.Signals, name):
        raise ValueError(f"Unknown signal {signal!r}; use a name such as 'SIGTERM' or 'KILL'.")
    return name


class Inspect:
    """Read-only questions to workers; ``destination``/``pattern`` pick which ones."""

    def __init__(
        self,
        destination: str | Sequence[str] | None = None,
        timeout: float = 1.0,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        connection: Any = None,
        app: Canvas | None = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> None:
        if app is None:
            raise TypeError("Inspect needs app=; use app.control.inspect().")
        self.app = app
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.limit = limit
        self.pattern = pattern
        self.matcher = matcher

    def _request(self, command: str, **arguments: Any) -> Any:
        replies = Control(self.app).broadcast(
            command,
            arguments=arguments,
            destination=self.destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
            callback=self.callback,
            pattern=self.pattern,
            matcher=self.matcher,
        )
        if not replies:
            return None
        by_node = flatten_reply(replies)
        if isinstance(self.destination, str):
            return by_node.get(self.destination)
        return by_node

    def ping(self, destination: str | Sequence[str] | None = None) -> Any:
        if destination is not None:
            self.destination = destination
        return self._request("ping")

    def active(self, safe: bool | None = None) -> Any:
        """The tasks each worker is running: ``{hostname: [task info, ...]}``."""
        return self._request("active", safe=safe)

    def reserved(self, safe: bool | None = None) -> Any:
        """Tasks each worker received and has not started yet."""
        return self._request("reserved", safe=safe)

    def scheduled(self, safe: bool | None = None) -> Any:
        """Countdown/ETA tasks each worker parked: ``[{"eta", "priority", "request"}, ...]``."""
        return self._request("scheduled", safe=safe)

    def stats(self) -> Any:
        return self._request("stats")

    def revoked(self) -> Any:
        return self._request("revoked")

    def registered(self, *taskinfoitems: str) -> Any:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def active_queues(self) -> Any:
        return self._request("active_queues")

    def query_task(self, *ids: str | Sequence[str]) -> Any:
        """``{hostname: {task_id: [state, info]}}`` for the ids a worker holds."""
        flat: list[str] = []
        for item in ids:
            flat.extend([item] if isinstance(item, str) else list(item))
        return self._request("query_task", ids=flat)

    def conf(self, with_defaults: bool = False) -> Any:
        return self._request("conf", with_defaults=with_defaults)

    def report(self) -> Any:
        return self._request("report")

    def clock(self) -> Any:
        return self._request("clock")


class Control:
    """``app.control``: commands that change what workers do, and ``inspect()``."""

    def __init__(self, app: Canvas) -> None:
        self.app = app

    def inspect(
        self,
        destination: str | Sequence[str] | None = None,
        timeout: float = 1.0,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        connection: Any = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Inspect:
        return Inspect(
            destination, timeout, callback, connection, self.app, limit, pattern, matcher
        )

    # -- the one primitive -------------------------------------------------------------------
    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: str | Sequence[str] | None = None,
        connection: Any = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        channel: Any = None,
        pattern: str | None = None,
        matcher: str | None = None,
        **extra_kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Send ``command`` to the workers (all, or ``destination``/``pattern``); with
        ``reply``, wait up to ``timeout`` seconds and return ``[{hostname: reply}, ...]``."""
        if pattern is not None:
            mailbox.matches("", pattern, matcher)  # an unknown matcher fails here, not remotely
        request = mailbox.Request(
            command,
            dict(arguments or {}, **extra_kwargs),
            mailbox.as_destination(destination),
            pattern,
            matcher,
        )
        return mailbox.broadcast(
            of_app(self.app),
            str(self.app.conf.control_exchange),
            request,
            reply=reply,
            timeout=timeout,
            limit=limit,
            callback=callback,
        )

    # -- revoking ----------------------------------------------------------------------------
    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: str | Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = TERM_SIGNAME,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Revoke tasks by id (or a workflow by its id): those not started never run; with
        ``terminate`` the process running one is sent ``signal``.

        The ids are kept in the result store too, so workers started later refuse them.
        """
        ids = self._expand([task_id] if isinstance(task_id, str) else list(task_id))
        name = signal_name(signal)
        keep_revokes(self.app, ids)
        return self.broadcast(
            "revoke",
            destination=destination,
            arguments={"task_id": ids, "terminate": bool(terminate), "signal": name},
            **kwargs,
        )

    def revoke_by_stamped_headers(
        self,
        headers: dict[str, Any],
        destination: str | Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = TERM_SIGNAME,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Revoke the tasks stamped with any of ``headers`` (``{name: value or [values]}``):
        those not started never run, whenever they are sent, as long as revokes are kept.

        Kept and sent as revoke entries (``stamp:<name>=<value>``) beside task ids; the worker
        refuses a message whose stamps match one. ``terminate`` signals only tasks revoked by id.
        """
        return self.revoke(
            revoke_keys(headers),
            destination=destination,
            terminate=terminate,
            signal=signal,
            **kwargs,
        )

    def terminate(
        self,
        task_id: str | Sequence[str],
        destination: str | Sequence[str] | None = None,
        signal: str | int = TERM_SIGNAME,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        return self.revoke(
            task_id, destination=destination, terminate=True, signal=signal, **kwargs
        )

    def _expand(self, ids: list[str]) -> list[str]:
        """Each workflow id becomes the ids of its task nodes that have not finished."""
        expanded: list[str] = []
        for task_id in ids:
            expanded.append(task_id)
            view = self.app.workflow(task_id)
            if not view.exists():
                continue
            for node in view.nodes():
                if node.node.task and node.state not in states.READY_STATES:
                    expanded.append(node.node.id)
        return list(dict.fromkeys(expanded))

    # -- the rest of Celery's commands --------------------------------------------------------
    def ping(
        self, destination: str | Sequence[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        return self.broadcast(
            "ping", reply=True, destination=destination, timeout=timeout, **kwargs
        )

    def rate_limit(
        self,
        task_name: str,
        rate_limit: str | int | float | None,
        destination: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Set a task's rate limit on the workers (``"10/m"``; ``None`` or 0 turns it off)."""
        return self.broadcast(
            "rate_limit",
            destination=destination,
            arguments={"task_name": task_name, "rate_limit": rate_limit},
            **kwargs,
        )

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        return self.broadcast(
            "time_limit",
            destination=destination,
            arguments={"task_name": task_name, "soft": soft, "hard": hard},
            **kwargs,
        )

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        options: dict[str, Any] | None = None,
        destination: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Make workers consume from ``queue`` as well (canvas queues need no exchange)."""
        return self.broadcast(
            "add_consumer", destination=destination, arguments={"queue": queue}, **kwargs
        )

    def cancel_consumer(
        self, queue: str, destination: str | Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        return self.broadcast(
            "cancel_consumer", destination=destination, arguments={"queue": queue}, **kwargs
        )

    def enable_events(
        self, destination: str | Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        return self.broadcast("enable_events", destination=destination, **kwargs)

    def disable_events(
        self, destination: str | Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        return self.broadcast("disable_events", destination=destination, **kwargs)

    def pool_grow(
        self, n: int = 1, destination: str | Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        return self.broadcast("pool_grow", destination=destination, arguments={"n": n}, **kwargs)

    def pool_shrink(
        self, n: int = 1, destination: str | Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        return self.broadcast("pool_shrink", destination=destination, arguments={"n": n}, **kwargs)

    def autoscale(
        self, max: int, min: int, destination: str | Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        return self.broadcast(
            "autoscale", destination=destination, arguments={"max": max, "min": min}, **kwargs
        )

    def shutdown(
        self, destination: str | Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Warm shutdown: workers finish the tasks in hand, then exit."""
        return self.broadcast("shutdown", destination=destination, **kwargs)

    def heartbeat(
        self, destination: str | Sequence[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Ask workers to send a ``worker-heartbeat`` event now."""
        return self.broadcast("heartbeat", destination=destination, **kwargs)

    def purge(self, connection: Any = None, queues: Sequence[str] | None = None) -> int:
        """Drop every waiting message of the app's queues (not their dead-letter queues);
        returns how many."""
        return sum(self.app.transport.purge(q) for q in queues or self.task_queues())

    discard_all = purge

    def task_queues(self) -> list[str]:
        """The queues tasks are sent to: the default, ``task_queues`` and routed ones."""
        conf = self.app.conf
        names = [str(conf.task_default_queue)]
        for queue in conf.get("task_queues") or ():
            names.append(str(getattr(queue, "name", queue)))
        routes = conf.task_routes
        for table in routes if isinstance(routes, list | tuple) else [routes]:
            if isinstance(table, dict):
                for target in table.values():
                    queue = target.get("queue") if isinstance(target, dict) else target
                    if isinstance(queue, str):
                        names.append(queue)
        names.extend(t.queue for t in self.app.tasks.values() if t.queue)
        return list(dict.fromkeys(names))
