"""The worker's side of remote control, for each pool (``panel.Remote``, mixed into ``Worker``).

What the supervisor does when a command asks: pass orders to the consuming processes (new revokes,
events on or off, a task's limits, the queues), terminate the process running a revoked task,
grow or shrink the pool (or, with ``--autoscale``, let ``canvas.core.autoscale`` size it), shut
down. The pool's processes report each task's steps back (``canvas.core.monitor``), so the
supervisor always knows which process runs what.

Terminate (prefork only): the supervisor sets the slot's flag in a shared page, then sends the
signal. A pool process that gets SIGTERM or SIGINT with its flag set dies by that signal at once
(without the flag, SIGTERM stays the warm stop of a shutdown and SIGINT is ignored); any other
signal acts as it would on any process. One that has not died ``TERMINATE_GRACE`` seconds later
(stuck in C code, where Python's handlers cannot run) is killed. When the supervisor reaps it,
it records the task REVOKED (unless its outcome was recorded first) and settles its workflow, so
everything after it settles too; the pool process is replaced as after any death.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import mmap
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from canvas import states
from canvas.backends.rpc import replying_for
from canvas.core import complete, metas, ratelimit, signal_relay
from canvas.core.autoscale import INTERVAL, MOST_PROCESSES, autoscaler_class, keepalive_from_env
from canvas.core.consumer import Handler
from canvas.core.link import Link
from canvas.core.monitor import TaskMonitor
from canvas.core.remote import ControlServer
from canvas.core.revoked import Revoked, StateDB, revoke_expires
from canvas.core.worker_state import WorkerState
from canvas.events.dispatcher import EventDispatcher
from canvas.exceptions import TaskRevokedError, WorkerLostError
from canvas.request import Request

if TYPE_CHECKING:
    from canvas.app import Canvas

logger = logging.getLogger("canvas.worker")
banner = logging.getLogger("canvas.worker.banner")

#: seconds a terminated pool process has to die before it is killed
TERMINATE_GRACE = 3.0
#: most pool slots (the size of the page of terminate flags)
MAX_SLOTS = MOST_PROCESSES
#: seconds before a refused fork of a pool process is tried again
FORK_RETRY = 5.0


class Operated:
    """Remote control of a worker; ``Worker`` calls ``_init_operations`` and the hooks."""

    app: Canvas
    hostname: str
    queues: list[str]
    concurrency: int
    children: dict[int, tuple[int, float]]
    park_w: int
    wake: threading.Event
    respawn_at: dict[int, float]
    threads: list[tuple[threading.Thread, threading.Event]]

    def _init_operations(
        self,
        pool: str,
        send_events: bool,
        statedb: str | None,
        autoscale: tuple[int, int] | None = None,
    ) -> None:
        conf = self.app.conf
        self.pool = pool
        self.state = WorkerState()
        self.revoked = Revoked(revoke_expires(self.app))
        self.events_enabled = bool(send_events or conf.worker_send_task_events)
        path = statedb or conf.worker_state_db
        self.control = ControlServer(
            self,
            statedb=StateDB(path) if path else None,
            remote_control=bool(conf.worker_enable_remote_control),
        )
        self.task_events = EventDispatcher(
            hostname=self.hostname, enabled=self.events_enabled, app=self.app, groups=["task"]
        )
        #: in-process pools: the monitors their consumers share (one per pool)
        self.monitors: list[TaskMonitor] = []
        #: prefork: pid -> the supervisor's end of the line to that process
        self.links: dict[int, Link] = {}
        #: prefork: slots that stop for good (pool_shrink) rather than being replaced
        self.retiring: set[int] = set()
        #: prefork: pid -> (task infos, signal name, when to kill it)
        self.terminating: dict[int, tuple[list[dict[str, Any]], str, float]] = {}
        self.terminate_flags = mmap.mmap(-1, MAX_SLOTS)
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        #: ``--autoscale=max,min`` (not for the solo pool, which has one process)
        self.autoscaler = (
            autoscaler_class(conf.worker_autoscaler)(*autoscale, keepalive=keepalive_from_env())
            if autoscale and pool != "solo"
            else None
        )
        self._next_scale = 0.0
        #: the demand the autoscaler saw last (running tasks plus waiting messages)
        self._demand = 0
        #: the pool size accepted resizes lead to (``None``: ``concurrency``, nothing pending)
        self._asked: int | None = None
        self._resize_lock = threading.Lock()

    # -- panel.Remote ------------------------------------------------------------------------
    def pool_pids(self) -> list[int]:
        return sorted(self.children) if self.pool == "prefork" else [os.getpid()]

    def order(self, command: dict[str, Any]) -> None:
        if self.pool != "prefork":
            for monitor in self.monitors:
                monitor.apply(command)
            return
        for pid, link in list(self.links.items()):
            try:
                link.send(command)
            except OSError as exc:  # the process is dying; its replacement forks our state
                logger.debug("Could not send %s to pool process %s: %s", command, pid, exc)

    def revoke(self, task_ids: list[str], terminate: bool, signum: str) -> list[str]:
        at = time.time()
        new = self.revoked.add(task_ids, at)
        if new:
            self.order({"op": "revoke", "items": [(t, at) for t in new]})
        if not terminate:
            return []
        running = [i for i in self.state.snapshot()["active"] if i.get("id") in task_ids]
        if not running:
            return []
        if self.pool != "prefork":
            logger.warning(
                "Cannot terminate %s: the %s pool runs tasks in the worker's own process "
                "(use the prefork pool to terminate tasks)",
                ", ".join(str(i["id"]) for i in running),
                self.pool,
            )
            return []
        self.call_soon(lambda: self._terminate(running, signum))
        return [str(i["id"]) for i in running]

    def _size_asked(self) -> int:
        """The pool size once every accepted resize is applied: commands are checked against it,
        not against ``concurrency``, which lags while a resize waits for the supervisor loop
        (a shrink right after a grow was refused as 'below one process')."""
        return self.concurrency if self._asked is None else self._asked

    def resize(self, delta: int) -> str | None:
        if self.pool == "solo":
            return "The solo pool has one process; use prefork or threads to resize."
        if self.autoscaler is not None:
            word = "pool_grow" if delta > 0 else "pool_shrink"
            return f"{word} is not supported with autoscale; change the autoscale range instead."
        with self._resize_lock:
            return self._resize(delta)

    def _resize(self, delta: int) -> str | None:
        size = self._size_asked() + delta
        if size < 1:
            return f"Cannot shrink the pool of {self._size_asked()} below one process."
        if size > MAX_SLOTS:
            return f"Cannot grow the pool over {MAX_SLOTS} processes."
        self._resize_to(size)
        return None

    def _resize_to(self, size: int) -> None:
        """Have the supervisor loop bring the pool to ``size`` (the caller holds the lock)."""
        if size == self._size_asked():
            return
        self._asked = size
        self.call_soon(lambda: self._resize_pool(size - self.concurrency))

    def autoscale(self, max: int | None, min: int | None) -> tuple[int, int] | str:
        if self.autoscaler is None:
            return "autoscale is not enabled on this worker (start it with --autoscale=max,min)"
        with self._resize_lock:
            try:
                bounds = self.autoscaler.update(max, min)
            except ValueError as exc:
                return str(exc)
            self._resize_to(sorted((bounds[1], self._size_asked(), bounds[0]))[1])
        self.call_soon(self.share_rate_limits)
        return bounds

    def autoscale_info(self) -> dict[str, int] | None:
        if self.autoscaler is None:
            return None
        return self.autoscaler.info(self._size_asked(), self._demand)

    def set_events(self, enabled: bool) -> bool:
        if self.events_enabled == enabled:
            return False
        self.events_enabled = self.task_events.enabled = enabled
        self.order({"op": "events", "enabled": enabled})
        return True

    def send_heartbeat(self) -> None:
        self.control.send_heartbeat()

    def shutdown(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    # -- the supervisor's own loop ---------------------------------------------------------------
    def call_soon(self, call: Callable[[], None]) -> None:
        """Run ``call`` in the supervisor's main loop (which owns the pool), and wake it."""
        self._calls.append(call)
        if self.pool == "prefork":
            with contextlib.suppress(OSError):
                os.write(self.park_w, b"\0" * 8)
        elif getattr(self, "wake", None) is not None:
            self.wake.set()

    def run_calls(self) -> None:
        while self._calls:
            call = self._calls.popleft()
            try:
                call()
            except Exception:
                logger.exception("A remote control action failed")

    def _local_monitor(self, stop: threading.Event) -> TaskMonitor:
        """The one monitor of an in-process pool: reports go straight to the state."""
        monitor = TaskMonitor(
            self.app,
            self.hostname,
            self.state.on_report,
            revoked=self.revoked,
            queues=list(self.queues),
            send_events=self.events_enabled,
            stop=stop,
        )
        self.monitors = [monitor]
        return monitor

    def scale_pool(self) -> float:
        """With ``--autoscale``: once a second, size the pool to the demand; returns seconds
        until the next look (the supervisor loop calls it each round)."""
        if self.autoscaler is None:
            return INTERVAL
        now = time.monotonic()
        if now < self._next_scale:
            return self._next_scale - now
        self._next_scale = now + INTERVAL
        self._demand = self.state.running() + self._waiting()
        with self._resize_lock:
            size = self.autoscaler.target(now, self._size_asked(), self._demand)
            self._resize_to(size)
        return INTERVAL

    def _waiting(self) -> int:
        """Messages ready in this worker's queues (0 while the broker cannot say)."""
        try:
            return sum(self.app.transport.size(queue) for queue in list(self.queues))
        except Exception as exc:  # a broker outage: the consumers back off and say so
            logger.debug("Autoscale cannot read the queues' sizes: %s", exc)
            return 0

    def _resize_pool(self, delta: int) -> None:
        if delta == 0:
            return
        if self.pool == "threads":
            alive = [(t, own) for t, own in self.threads if t.is_alive() and not own.is_set()]
            for _ in range(delta):
                self._start_thread(self.monitors[0])
            for _, own in alive[len(alive) + delta :] if delta < 0 else ():
                own.set()
        elif delta > 0:
            used = {slot for slot, _ in self.children.values()} | set(self.respawn_at)
            free = (slot for slot in range(len(used) + delta + 1) if slot not in used)
            for slot in [next(free) for _ in range(delta)]:
                self.spawn_or_retry(slot)
        else:
            # A slot waiting to be restarted (its process died or retired) is part of the pool
            # too: it goes first, for free; a shrink that skipped it stopped a live process and
            # then restarted the slot, leaving one process too many.
            pending = sorted(self.respawn_at, reverse=True)[:-delta]
            for slot in pending:
                del self.respawn_at[slot]
            # Processes already retiring (a shrink sent just before) are not counted twice;
            # idle ones stop next, so a task in hand does not delay the shrink.
            serving = [kv for kv in self.children.items() if kv[1][0] not in self.retiring]
            busy = {info.get("worker_pid") for info in self.state.snapshot()["active"]}
            ranked = sorted(serving, key=lambda kv: (kv[0] in busy, -kv[1][0]))
            for pid, (slot, _) in ranked[: -delta - len(pending)]:
                self.retiring.add(slot)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)  # the warm stop: its task in hand finishes
        self.concurrency += delta
        banner.info("Pool %s to %s", "grows" if delta > 0 else "shrinks", self.concurrency)
        self.share_rate_limits()

    def share_rate_limits(self) -> None:
        """Prefork: each process keeps 1/N of a worker's rate limit, N the pool's size (or
        autoscale's max, which the pool may reach): when N changes, every process hears it,
        and the processes forked later inherit it (a grown pool ran over the limit)."""
        if self.pool != "prefork":
            return  # threads share one process's slots: the whole limit
        share = self.autoscaler.max if self.autoscaler is not None else self.concurrency
        if ratelimit.slots.processes != share:
            ratelimit.slots.processes = share
            self.order({"op": "rate_share", "processes": share})

    def spawn_or_retry(self, slot: int) -> None:
        """Fork the process of ``slot``; if the system refuses the fork (EAGAIN, ENOMEM: likely
        when the machine is loaded), the slot waits to be started again, as after a crash,
        rather than the error ending the supervisor's loop or the pool losing count of it."""
        try:
            self._spawn(slot)
        except OSError as exc:
            logger.error(
                "Could not start pool process %s: %s; trying again in %.0f s", slot, exc, FORK_RETRY
            )
            self.respawn_at[slot] = time.monotonic() + FORK_RETRY

    def _start_thread(self, monitor: TaskMonitor) -> None:
        raise NotImplementedError  # the Worker's: it runs its consume loop

    def _spawn(self, slot: int) -> None:
        raise NotImplementedError  # the Worker's: it forks a pool process

    # -- prefork: reports, terminate -----------------------------------------------------------
    def drain_reports(self) -> None:
        """Apply every report the pool processes sent so far (any thread may call it)."""
        for link in list(self.links.values()):
            self.read_reports(link)

    def read_reports(self, link: Link) -> bool:
        """Apply what ``link`` brings; false when the process closed its end."""
        try:
            frames = link.receive()
        except (OSError, ValueError) as exc:
            logger.debug("A line to a pool process broke: %s", exc)
            return False
        for frame in frames or ():
            self.state.on_report(frame, one_task_per_process=True)
        return frames is not None

    def _terminate(self, infos: list[dict[str, Any]], signum: str) -> None:
        number = getattr(signal, signum)
        for info in infos:
            pid = info.get("worker_pid")
            if not isinstance(pid, int) or pid not in self.children:
                continue
            slot = self.children[pid][0]
            self.terminate_flags[slot] = 1
            held = self.terminating.get(pid, ([], signum, 0.0))[0]
            self.terminating[pid] = ([*held, info], signum, time.monotonic() + TERMINATE_GRACE)
            logger.warning(
                "Terminating task %s[%s] (pid %s, %s)",
                info.get("name"),
                info.get("id"),
                pid,
                signum,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    def kill_stuck(self) -> None:
        """Kill the terminated processes that outlived their grace."""
        now = time.monotonic()
        for pid, (_, _, deadline) in list(self.terminating.items()):
            if now >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def process_gone(self, pid: int, slot: int, how: str = "") -> bool:
        """A pool process died (``how``: "signal 9 (SIGKILL)", say): settle what it was
        terminated for, or the acked call it was running; whether to replace it."""
        link = self.links.pop(pid, None)
        if link is not None:
            self.read_reports(link)  # its last reports, written before it died
            link.close()
        running = self.state.process_died(pid)
        terminated = self.terminating.pop(pid, None)
        self.terminate_flags[slot] = 0
        if terminated is not None:
            infos, signum, _ = terminated
            for info in infos:
                self._record_terminated(info, signum)
        else:
            # Its message was acked when it started (acks_late off): nothing will run it again,
            # so its caller must hear that it was lost (a late-acked one comes back instead).
            for info in running:
                if info.get("acknowledged"):
                    self._record_lost(info, how or "unknown cause", slot)
        if slot in self.retiring:
            self.retiring.discard(slot)
            return False
        return True

    def _record_terminated(self, info: dict[str, Any], signum: str) -> None:
        task_id, name = str(info.get("id")), str(info.get("name"))
        exc = TaskRevokedError(f"{name}[{task_id}] terminated by {signum}")
        if not self._settle_ended(info, states.REVOKED, exc):
            return
        logger.info("Task %s[%s] terminated (%s): REVOKED", name, task_id, signum)
        self.task_events.send(
            "task-revoked",
            uuid=task_id,
            name=name,
            terminated=True,
            signum=signum,
            expired=False,
            workflow=info.get("workflow"),
        )

    def _record_lost(self, info: dict[str, Any], how: str, slot: int) -> None:
        """Celery's record of an acked call whose process died: FAILURE, ``WorkerLostError``."""
        task_id, name = str(info.get("id")), str(info.get("name"))
        exc = WorkerLostError(f"Worker exited prematurely: {how} Job: {slot}.")
        if not self._settle_ended(info, states.FAILURE, exc):
            return
        logger.error("Task %s[%s] lost: its pool process exited with %s", name, task_id, how)
        self.task_events.send(
            "task-failed",
            uuid=task_id,
            name=name,
            exception=repr(exc),
            traceback="",
            workflow=info.get("workflow"),
        )

    def _settle_ended(self, info: dict[str, Any], state: str, exc: Exception) -> bool:
        """Record ``state`` for a call its process will never finish, and wire its workflow,
        unless it finished first; whether it was recorded."""
        task_id, name = str(info.get("id")), str(info.get("name"))
        workflow = info.get("workflow")
        try:
            stored = metas.decode(self.app.backend.get([task_id])[0])
            if stored and stored.get("status") in states.READY_STATES:
                return False  # it finished before its process ended
            meta = metas.make_meta(
                task_id, state, exc=exc, task=name, worker=self.hostname, workflow=workflow
            )
            with replying_for(info):  # an rpc:// caller hears of it too
                if isinstance(workflow, str):
                    request = Request(id=task_id, task=name, workflow=workflow)
                    node = Handler(self.app, self.hostname).node(request)
                    complete.settle(self.app, workflow, node, meta)
                else:
                    self.app.backend.store(task_id, state, metas.encode(meta))
        except Exception:
            logger.exception("Could not record task %s as %s", task_id, state)
            return False
        return True

    def child_signals(self, slot: int, stop: threading.Event) -> None:
        """In a pool process: SIGTERM is the warm stop, SIGINT is ignored, unless the
        supervisor flagged this slot for terminate: then the signal kills at once."""

        warm = signal_relay.setting(stop)  # not stop.set() in the handler: it can deadlock

        def handler(signum: int, frame: Any) -> None:
            if self.terminate_flags[slot]:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            elif signum == signal.SIGTERM:
                warm.handler(signum, frame)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
