"""The worker: consumers in a pool of processes (or threads), a supervisor, a timer.

Each pool process owns its broker connection and consumes on its own, so no message crosses a
pipe and a crashing task can only take its own process down; the supervisor (the main process)
replaces a child that dies and shuts the pool down:

* first SIGTERM/SIGINT: warm shutdown — children stop fetching, finish the task in hand, exit;
* second signal: cold shutdown — children are killed; unacked (``acks_late``) messages return.

The supervisor also runs the timer that publishes parked countdown/ETA messages when due; a child
that parks one writes its due time to a pipe so the timer wakes for it rather than polling. It
answers remote control (``canvas.core.remote``, ``canvas.core.operate``): each child reports its
tasks' steps on a socket pair (``canvas.core.link``) and takes orders (revokes, queues) on it.
A keeper thread in each consumer renews the lease of the delivery in hand (so a long task is not
redelivered while it runs) and enforces the hard ``time_limit``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import math
import multiprocessing
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from canvas import signals, states
from canvas.backends.rpc import replying_for
from canvas.core import metas, signal_relay
from canvas.core.consumer import Handler, raise_soft_limit, release_due
from canvas.core.envelope import escape_controls, printable
from canvas.core.execute import Outcome
from canvas.core.link import DRAIN_INTERVAL, Link, listen
from canvas.core.monitor import TaskMonitor
from canvas.core.operate import Operated
from canvas.exceptions import TimeLimitExceeded
from canvas.request import Request
from canvas.transports.base import Delivery
from canvas.transports.checks import warn_insecure_broker
from canvas.transports.outage import is_outage
from canvas.utils.log import TASK_LOGGER, TaskContext

if TYPE_CHECKING:
    from canvas.app import Canvas

logger = logging.getLogger("canvas.worker")
#: start-up, ready and shutdown lines: shown at every log level, so a quiet worker still says
#: where it listens and when it is ready
banner = logging.getLogger("canvas.worker.banner")

POOLS = ("prefork", "threads", "solo")
#: longest the supervisor sleeps without looking for parked messages another worker parked
TIMER_MAX_SLEEP = 5.0
_DUE = struct.Struct("!d")
#: held across a fork until the pool process has its handlers (see ``_spawn``)
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
#: a beat process that dies sooner than this after starting is not started again
BEAT_MIN_LIFE = 1.0
#: a pool process's exit code when it retires (max tasks or memory per child), not crashes
RETIRED = 64


def expand_hostname(template: str | None) -> str:
    """Celery's node name templates: ``%h`` host, ``%n`` short host, ``%d`` domain."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    name = template or "canvas@%h"
    return name.replace("%h", host).replace("%n", short).replace("%d", domain)


@dataclass
class WorkerOptions:
    """How a worker runs; the CLI maps its flags onto this."""

    queues: Sequence[str] = ()
    concurrency: int | None = None
    pool: str = "prefork"
    hostname: str | None = None
    burst: bool = False
    beat: bool = False
    beat_options: dict[str, Any] = field(default_factory=dict)
    #: send task events (``-E``); worker events (heartbeats) are sent either way
    send_events: bool = False
    #: a file that keeps revoked ids across restarts (``--statedb``)
    statedb: str | None = None
    #: a pool process is replaced after this many tasks (``--max-tasks-per-child``)
    max_tasks_per_child: int | None = None
    #: ... or once its resident memory passes this many KiB (``--max-memory-per-child``)
    max_memory_per_child: int | None = None
    #: ``(max, min)`` pool processes, sized to the work waiting (``--autoscale``)
    autoscale: tuple[int, int] | None = None


class _Keeper(threading.Thread):
    """Renews the lease of the delivery in hand and enforces the hard time limit."""

    def __init__(
        self,
        consumer: Any,
        app: Canvas,
        hostname: str,
        hard_kill: bool,
        monitor: TaskMonitor | None = None,
    ) -> None:
        super().__init__(name="canvas-keeper", daemon=True)
        self.monitor = monitor
        self.consumer = consumer
        self.app = app
        self.hostname = hostname
        self.hard_kill = hard_kill
        self.current: tuple[Delivery, float] | None = None
        self.stopped = threading.Event()
        lease = float(app.conf.worker_lease_seconds or 60.0)
        self.interval = max(0.2, min(lease / 3.0, 10.0))

    def run(self) -> None:
        last_extend = time.monotonic()
        while not self.stopped.wait(min(self.interval, 0.5)):
            current = self.current
            if current is None:
                continue
            delivery, started = current
            try:
                limit = self._limit(delivery)
                if limit and self.hard_kill and time.monotonic() - started > limit:
                    self._kill(delivery, limit)
            except Exception:  # whatever a message holds, this thread must live on
                logger.exception("Keeper: cannot apply the time limit of a message")
            if time.monotonic() - last_extend >= self.interval:
                last_extend = time.monotonic()
                try:
                    self.consumer.extend([delivery])
                except Exception:
                    logger.warning(
                        "Could not renew the lease of %s", printable(delivery.headers.get("id"))
                    )

    def _limit(self, delivery: Delivery) -> float | None:
        """The hard limit of the message's task: its header when well formed (a bad one sends
        the message to the dead-letter queue, its task never runs), else the task's."""
        limit = delivery.headers.get("time_limit") if delivery.error is None else None
        if isinstance(limit, int | float) and not isinstance(limit, bool) and limit > 0:
            return float(limit) if math.isfinite(limit) else None
        return self._task_limit(delivery)

    def _task_limit(self, delivery: Delivery) -> float | None:
        task = self.app.tasks.get(str(delivery.headers.get("task")))
        limit = (task.time_limit if task else None) or self.app.conf.task_time_limit
        return float(limit) if limit else None

    def _kill(self, delivery: Delivery, limit: float) -> None:
        """Record TimeLimitExceeded, then end this process (the supervisor starts another)."""
        task_id = str(delivery.headers.get("id"))
        exc = TimeLimitExceeded(f"{delivery.headers.get('task')}[{task_id}] ran over {limit}s")
        logger.error("Hard time limit (%ss) exceeded for %s: killing its process", limit, task_id)
        meta = metas.make_meta(
            task_id,
            states.FAILURE,
            exc=exc,
            task=str(delivery.headers.get("task")),
            worker=self.hostname,
            workflow=delivery.headers.get("workflow"),
        )
        try:
            workflow = delivery.headers.get("workflow")
            with replying_for(delivery.headers):  # an rpc:// client hears of it too
                if workflow:
                    handler = Handler(self.app, self.hostname)
                    handler.settle_node(_request_for(delivery.headers, workflow), meta)
                else:
                    self.app.backend.store(task_id, states.FAILURE, metas.encode(meta))
        finally:
            if self.monitor is not None:
                with contextlib.suppress(Exception):
                    request = _request_for(delivery.headers, workflow)
                    self.monitor.finished(request, Outcome(states.FAILURE, exc=exc))
                    self.monitor.close()
            os._exit(3)


def _request_for(headers: dict[str, Any], workflow: str | None) -> Request:
    return Request(
        id=headers.get("id"),
        task=headers.get("task"),
        workflow=workflow,
        root_id=headers.get("root_id"),
        delivery_info={"priority": headers.get("priority")},
    )


class _Backoff:
    """Waits longer after each failure in a row (0.5 s doubling to 5 s), logs the first
    failure of a streak with its traceback and the rest in one line, and says when it recovered.
    A broker or store outage must neither kill a consumer nor spin it in a hot loop."""

    def __init__(self) -> None:
        self.failures = 0

    def failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            logger.error("Could not %s; retrying with backoff", what, exc_info=exc)
        else:
            logger.warning("Still failing to %s (%s: %s)", what, type(exc).__name__, exc)

    def wait(self, stop: threading.Event) -> None:
        stop.wait(min(5.0, 0.5 * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        if self.failures:
            logger.info("Recovered after %d failed attempts", self.failures)
        self.failures = 0


def consume(
    app: Canvas,
    queues: Sequence[str],
    hostname: str,
    stop: threading.Event,
    on_park: Callable[[float], None] | None = None,
    burst: bool = False,
    main_thread: bool = True,
    monitor: TaskMonitor | None = None,
    retire: Callable[[int], bool] | None = None,
    prefetch: int | None = None,
) -> int:
    """Fetch and run deliveries until ``stop`` (or ``monitor.stop``) is set, or the queues are
    empty in burst mode. ``monitor`` hears each task's steps and holds the revoked ids and the
    queues: when the supervisor changes those, the consumer is opened again on the new ones.

    Broker errors close the consumer and open a new one after a backoff; an error handling a
    delivery (a store outage, say) requeues it and backs off before fetching again.
    ``prefetch`` overrides ``worker_prefetch_multiplier``.
    """
    prefetch = max(1, int(prefetch or app.conf.worker_prefetch_multiplier or 1))
    monitor = monitor if monitor is not None else TaskMonitor(app, hostname, queues=list(queues))
    handler = Handler(app, hostname, on_park, soft_limits=main_thread, monitor=monitor)
    backoff = _Backoff()
    consumer: Any = None
    keeper: _Keeper | None = None
    version = monitor.queues_version
    done = 0
    try:
        while not stop.is_set() and not monitor.stop.is_set():
            if consumer is not None and version != monitor.queues_version:
                _drop(consumer, keeper)  # the supervisor changed the queues
                consumer = keeper = None
            if consumer is None:
                try:
                    app.backend  # noqa: B018 - connect now, not inside a task's time limits
                    version = monitor.queues_version
                    consumer = app.transport.consumer(monitor.queues or list(queues), prefetch)
                except Exception as exc:  # the broker may be down: retry
                    backoff.failed("connect to the broker", exc)
                    backoff.wait(stop)
                    continue
                keeper = _Keeper(consumer, app, hostname, hard_kill=main_thread, monitor=monitor)
                keeper.start()
            try:
                delivery = consumer.get(timeout=0.5)
            except Exception as exc:  # a broker outage: reconnect
                backoff.failed("fetch from the broker", exc)
                _drop(consumer, keeper)
                consumer = keeper = None
                backoff.wait(stop)
                continue
            if delivery is None:
                _settle_confirms(app)  # idle: what acked calls published is confirmed now
                if burst:
                    break
                continue
            assert keeper is not None
            keeper.current = (delivery, time.monotonic())
            try:
                handler.handle(delivery)
                backoff.reset()
            except SystemExit:
                if main_thread:
                    raise  # a pool process (or solo worker) ends; its supervisor replaces it
                # A task in a thread called sys.exit(): that ends the call (recorded as lost if
                # its message was acked), not the pool's thread, which would leave the worker
                # one thread short for good.
                logger.error("A task called sys.exit() in a pool thread: the thread goes on")
                monitor.ended(str(delivery.headers.get("id")))
                if not delivery.settled:  # acks_late: it comes back, as after a process death
                    with contextlib.suppress(Exception):
                        delivery.reject(requeue=True, reason="its task called sys.exit()")
            except Exception as exc:  # requeue, back off, carry on
                backoff.failed(f"handle message {printable(delivery.headers.get('id'))}", exc)
                held = not _hand_back(delivery, exc)
                if (
                    held
                    or isinstance(exc, OSError | ConnectionError)
                    or _broker_error(consumer, exc)
                ):
                    # The broker went away mid-message (a cluster node killed): this connection
                    # is dead, and a read on it may never return. A new one, on any node. (A
                    # message that could not be handed back is returned by closing it too.)
                    _drop(consumer, keeper)
                    consumer = keeper = None
                backoff.wait(stop)
            finally:
                if keeper is not None:
                    keeper.current = None
            done += 1
            if retire is not None and retire(done):
                break  # this pool process has done its share: the supervisor starts another
    finally:
        if consumer is not None:
            _drop(consumer, keeper)
        _settle_confirms(app)
        monitor.close()
    return done


def _settle_confirms(app: Canvas) -> None:
    """Read the broker's confirms of what acked calls published (``defer_confirms``)."""
    try:
        app.transport.settle_confirms()
    except Exception as exc:  # a broker outage: the consumer backs off and says so
        logger.warning(
            "Reading the broker's confirms failed (%r): what it did not confirm is published "
            "again with the next messages",
            exc,
        )


def _hand_back(delivery: Delivery, exc: BaseException) -> bool:
    """Give back a message whose handling failed (a settled one would run again, or be lost):
    released after an outage (not the message's fault, not a delivery), else requeued. False
    when it is still held: the broker refused both (a quorum queue's confirmed copy nacked, say),
    and only closing the consumer returns it."""
    if is_outage(exc) and not delivery.settled:
        try:
            delivery.release()
        except Exception as refused:  # requeued instead, below
            logger.warning("Could not release message %s: %s", delivery.headers.get("id"), refused)
    try:
        if not delivery.settled:
            delivery.reject(requeue=True, reason="internal error in the worker")
        return True
    except Exception:
        return False


def _broker_error(consumer: Any, exc: BaseException) -> bool:
    """Whether ``exc`` is one of the consumer's broker connection errors (kombu lists them)."""
    connection = getattr(consumer, "_connection", None)
    errors = getattr(connection, "connection_errors", ()) if connection is not None else ()
    return bool(errors) and isinstance(exc, tuple(errors))


def _drop(consumer: Any, keeper: _Keeper | None) -> None:
    if keeper is not None:
        keeper.stopped.set()
    with contextlib.suppress(Exception):
        consumer.close()


class Worker(Operated):
    """``canvas worker``: a supervisor with a pool of consumers."""

    def __init__(self, app: Canvas, options: WorkerOptions | None = None) -> None:
        self.app = app
        self.options = options or WorkerOptions()
        if self.options.pool not in POOLS:
            raise ValueError(
                f"Unknown pool {self.options.pool!r}; choose one of {', '.join(POOLS)}."
            )
        self.hostname = expand_hostname(self.options.hostname)
        self.queues = list(self.options.queues) or configured_queues(app)
        self.concurrency = (
            self.options.concurrency or app.conf.worker_concurrency or os.cpu_count() or 1
        )
        if self.options.autoscale and self.options.pool != "solo":
            self.concurrency = self.options.autoscale[1]  # as Celery: start with min
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (slot, started)
        self.crashes: dict[int, int] = {}  # slot -> quick deaths in a row
        self.respawn_at: dict[int, float] = {}  # slot -> when to start it again
        self.stopping = 0
        self.next_timer = 0.0
        self.threads: list[tuple[threading.Thread, threading.Event]] = []
        self.beat_pid: int | None = None
        self.beat_started = 0.0
        #: failed timer ticks in a row (the result store is down): the timer backs off
        self._timer_failures = 0
        options = self.options
        self._init_operations(options.pool, options.send_events, options.statedb, options.autoscale)

    # -- start -------------------------------------------------------------------------------
    def start(self) -> int:
        signals.celeryd_init.send(
            sender=self.hostname, instance=self, conf=self.app.conf, options=self.options
        )
        self.app.finalize()
        signals.worker_init.send(sender=self)
        signals.celeryd_after_setup.send(sender=self.hostname, instance=self, conf=self.app.conf)
        banner.info(
            "canvas worker %s: pool=%s concurrency=%s queues=%s broker=%s",
            self.hostname,
            self.options.pool,
            self.concurrency if self.options.pool != "solo" else 1,
            ",".join(self.queues),
            _redact(self.app.broker_url),
        )
        warning = warn_insecure_broker(
            self.app.broker_url, use_ssl=bool(self.app.conf.get("broker_use_ssl"))
        )
        if warning:
            logger.warning(warning)
        if self.options.autoscale and self.autoscaler is None:
            logger.warning("--autoscale: the solo pool runs one task at a time; it does not scale")
        if not self._wait_for_servers():
            return 1
        beat = None
        if self.options.beat and self.options.pool == "prefork":
            self.app.close()  # the beat process makes its own connections
            self._fork_beat()
        elif self.options.beat:
            beat = self._start_beat()
        self.control.load_revokes()
        try:
            if self.options.pool == "solo":
                return self._run_solo()
            if self.options.pool == "threads":
                return self._run_threads()
            return self._run_prefork()
        finally:
            self.control.stop()
            if beat is not None:
                # Release the leader lease now, so a standby beat takes over at once.
                beat[1].set()
                beat[0].join(10)
            if self.beat_pid is not None:
                _stop_process(self.beat_pid, 10.0)

    def _start_beat(self) -> tuple[threading.Thread, threading.Event]:
        from canvas.beat.scheduler import run_beat  # only with -B: a worker without it is smaller

        stop = threading.Event()
        signals.beat_embedded_init.send(sender=self)
        thread = threading.Thread(
            target=run_beat,
            args=(self.app,),
            kwargs={**self.options.beat_options, "stop": stop},
            name="canvas-beat",
            daemon=True,
        )
        thread.start()
        return thread, stop

    def _fork_beat(self) -> None:
        """Beat in a process of its own, first forked before any thread starts: pool processes
        are forked later (and again when one dies), and a fork while a beat thread holds a lock
        or a connection left children that never consumed and a worker that ignored SIGTERM."""
        from canvas.beat.scheduler import run_beat  # only with -B: a worker without it is smaller

        self.beat_started = time.monotonic()
        pid, held = _fork_holding_stop_signals()
        if pid:
            self.beat_pid = pid
            return
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGQUIT):
                signal.signal(signum, signal.SIG_DFL)
            for link in self.links.values():
                link.close()  # only the supervisor may hold its lines to the pool
            stop = threading.Event()
            relay = signal_relay.setting(stop)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, relay.handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            _stop_when_orphaned(stop)
            multiprocessing.current_process().name = "Beat"
            logger.info("Beat process %s started", os.getpid())
            run_beat(self.app, **{**self.options.beat_options, "stop": stop})
        except BaseException:
            logger.exception("Beat crashed")
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)

    # -- solo and threads ----------------------------------------------------------------------
    def _run_solo(self) -> int:
        stop = threading.Event()
        wake = threading.Event()
        self._install_simple_signals(stop)
        timer = threading.Thread(target=self._timer_thread, args=(stop, wake), daemon=True)
        timer.start()
        signal.signal(signal.SIGALRM, raise_soft_limit)
        monitor = self._local_monitor(stop)
        self._ready()
        consume(
            self.app,
            self.queues,
            self.hostname,
            stop,
            lambda due: wake.set(),
            burst=self.options.burst,
            monitor=monitor,
        )
        stop.set()
        signals.worker_shutdown.send(sender=self)
        return 0

    def _run_threads(self) -> int:
        stop = threading.Event()
        wake = threading.Event()
        self._install_simple_signals(stop)
        self.wake = wake
        monitor = self._local_monitor(stop)
        for _ in range(self.concurrency):
            self._start_thread(monitor)
        self._ready()
        while not stop.is_set() and (self._scaling() or any(t.is_alive() for t, _ in self.threads)):
            self.run_calls()
            self._tick_thread_timer(wake)
        for thread, _ in self.threads:
            thread.join()
        signals.worker_shutdown.send(sender=self)
        return 0

    def _start_thread(self, monitor: TaskMonitor) -> None:
        own = threading.Event()  # set by pool_shrink; monitor.stop stops them all
        thread = threading.Thread(
            target=consume,
            args=(self.app, self.queues, self.hostname, own, lambda due: self.wake.set()),
            kwargs={
                "burst": self.options.burst,
                "main_thread": False,
                "monitor": monitor,
                "prefetch": self._prefetch(),
            },
            name=f"canvas-thread-{len(self.threads)}",
            daemon=True,
        )
        thread.start()
        self.threads.append((thread, own))

    def _tick_thread_timer(self, wake: threading.Event) -> None:
        """Tick the timer when due (or woken: a message was parked) and the autoscaler."""
        now = time.monotonic()
        if now >= self.next_timer:
            self.next_timer = now + self._tick_timer()
        if wake.wait(min(self.next_timer - now, self.scale_pool())):
            self.next_timer = 0.0
        wake.clear()

    def _scaling(self) -> bool:
        """Autoscaling without burst: the pool may be empty now and grow later."""
        return self.autoscaler is not None and not self.options.burst

    def _prefetch(self) -> int | None:
        """With ``--autoscale`` each process holds one message: what waits stays in the queue,
        where the autoscaler counts it and a new process can take it."""
        return 1 if self.autoscaler is not None else None

    def _ready(self) -> None:
        self.control.start()
        signals.worker_ready.send(sender=self)
        banner.info("%s ready.", self.hostname)

    def _install_simple_signals(self, stop: threading.Event) -> None:
        def react(signum: int) -> None:  # in the relay's thread, not in the handler
            if stop.is_set():
                logger.warning("Cold shutdown: exiting now.")
                os._exit(1)
            banner.info("Warm shutdown: finishing the tasks in hand (signal again to quit now).")
            _shutting_down(self.hostname, signum)
            stop.set()

        relay = signal_relay.SignalRelay(react)
        signal.signal(signal.SIGTERM, relay.handler)
        signal.signal(signal.SIGINT, relay.handler)

    def _timer_thread(
        self, stop: threading.Event, wake: threading.Event, until: Callable[[], bool] | None = None
    ) -> None:
        while not stop.is_set() and not (until and until()):
            delay = self._tick_timer()
            wake.wait(delay)
            wake.clear()

    def _wait_for_servers(self) -> bool:
        """Reach the broker and the result store before saying "ready", as Celery does: one
        line per failed attempt with the wait before the next (no traceback), until both answer.
        ``broker_connection_retry_on_startup=False``: give up at the first failure."""
        attempt = 0
        while True:
            what, url = "the broker", self.app.broker_url
            try:
                self.app.transport.consumer(self.queues, 1).close()
                what, url = "the result store", self.app.backend_url
                self.app.backend.get(["canvas-startup-check"])
            except Exception as exc:
                attempt += 1
                reason = str(exc).rstrip(".") or type(exc).__name__
                if not self.app.conf.get("broker_connection_retry_on_startup", True):
                    logger.error("Cannot connect to %s at %s: %s.", what, _redact(url), reason)
                    return False
                delay = min(10.0, 0.5 * 2.0 ** (attempt - 1))
                logger.error(
                    "Cannot connect to %s at %s: %s. Trying again in %.1f s (attempt %d).",
                    what,
                    _redact(url),
                    reason,
                    delay,
                    attempt,
                )
                time.sleep(delay)
                continue
            if attempt:
                logger.info("Connected to the broker and the result store")
            return True

    def _tick_timer(self) -> float:
        """Publish due parked messages; returns how long to sleep before looking again."""
        now = time.time()
        try:
            release_due(self.app, now)
            due = self.app.backend.next_due(space=self.app.transport.space)
        except Exception as exc:
            # One line per attempt, backing off: an outage is not a traceback a second.
            self._timer_failures += 1
            delay = min(TIMER_MAX_SLEEP, 0.5 * 2.0 ** (self._timer_failures - 1))
            logger.error("Timer cannot reach the result store (%s); retrying in %.1f s", exc, delay)
            return delay
        if self._timer_failures:
            logger.info("Timer reaches the result store again")
            self._timer_failures = 0
        if due is None:
            return TIMER_MAX_SLEEP
        return max(0.0, min(TIMER_MAX_SLEEP, due - time.time()))

    # -- prefork -------------------------------------------------------------------------------
    def _run_prefork(self) -> int:
        self.app.close()  # children must not share the supervisor's sockets
        # Each child keeps 1/N of a rate limit; an autoscaled pool may reach its max.
        self.share_rate_limits()
        sig_r, sig_w = os.pipe()
        park_r, park_w = os.pipe()
        for fd in (sig_r, sig_w, park_r, park_w):
            os.set_blocking(fd, False)
        self.park_w = park_w
        old_wakeup = signal.set_wakeup_fd(sig_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGQUIT):
            signal.signal(signum, lambda *_: None)
        _compact_heap()
        for slot in range(self.concurrency):
            self.spawn_or_retry(slot)
        self._ready()
        delay = 0.0
        try:
            while self.children or not self.stopping:
                ready, _, _ = select.select([sig_r, park_r], [], [], min(delay, DRAIN_INTERVAL))
                if sig_r in ready:
                    for number in os.read(sig_r, 512):
                        self._on_signal(number)
                if park_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(park_r, 4096)
                self.drain_reports()
                if not self.stopping:
                    self.scale_pool()
                self.run_calls()
                self.kill_stuck()
                self._reap()
                # Pool reports wake this loop often: look at parked messages only when one was
                # parked (the pipe) or the timer is due, not on every report.
                now = time.monotonic()
                if park_r in ready or now >= self.next_timer or self.stopping:
                    wait = self._tick_timer() if not self.stopping else 0.5
                    self.next_timer = now + wait
                delay = min(max(0.0, self.next_timer - time.monotonic()), self._respawn_due())
        finally:
            signal.set_wakeup_fd(old_wakeup)
        signals.worker_shutdown.send(sender=self)
        return 0

    def _spawn(self, slot: int) -> None:
        self.terminate_flags[slot] = 0
        ours, theirs = Link.pair()
        pid, _ = _fork_holding_stop_signals()
        if pid:
            theirs.close()
            self.children[pid] = (slot, time.monotonic())
            self.links[pid] = ours
            return
        code = 0
        try:
            ours.close()
            for sibling in self.links.values():
                sibling.close()  # only the supervisor may hold its lines to the others
            self.links = {}
            code = self._child(slot, theirs)
        except BaseException:
            logger.exception("Pool process %s crashed", slot)
            code = 1
        finally:
            signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=code)
            logging.shutdown()
            os._exit(code)

    def _child(self, slot: int, link: Link) -> int:
        stop = threading.Event()
        signal.set_wakeup_fd(-1)
        self.child_signals(slot, stop)  # SIGINT ignored, SIGTERM warm stop, unless terminated
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, raise_soft_limit)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # held since the fork
        multiprocessing.current_process().name = f"ForkPoolWorker-{slot + 1}"
        signals.worker_process_init.send(sender=self)

        def on_park(due: float) -> None:
            with contextlib.suppress(OSError):
                os.write(self.park_w, _DUE.pack(due))

        monitor = TaskMonitor(
            self.app,
            self.hostname,
            link.send,
            revoked=self.revoked,
            queues=list(self.queues),
            send_events=self.events_enabled,
            stop=stop,
        )
        listen(link, monitor.apply, on_close=stop.set)  # an orphan stops taking work
        retire = self._retire_rule()
        consume(
            self.app,
            self.queues,
            self.hostname,
            stop,
            on_park,
            monitor=monitor,
            retire=retire,
            prefetch=self._prefetch(),
        )
        return RETIRED if retire is not None and not stop.is_set() else 0

    def _retire_rule(self) -> Callable[[int], bool] | None:
        """Celery's max-tasks-per-child and max-memory-per-child, for a pool process."""
        max_tasks = self.options.max_tasks_per_child or self.app.conf.worker_max_tasks_per_child
        max_kib = self.options.max_memory_per_child or self.app.conf.worker_max_memory_per_child
        if not max_tasks and not max_kib:
            return None

        def retire(done: int) -> bool:
            if max_tasks and done >= int(max_tasks):
                return True
            return bool(max_kib) and _resident_kib() > int(max_kib)

        return retire

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return
        if signum in (signal.SIGTERM, signal.SIGINT) and not self.stopping:
            self.stopping = 1
            banner.info("Warm shutdown: finishing the tasks in hand (signal again to quit now).")
            _shutting_down(self.hostname, signum)
            self._signal_children(signal.SIGTERM)
        elif signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.stopping = 2
            logger.warning("Cold shutdown: killing pool processes.")
            self._signal_children(signal.SIGKILL)

    def _signal_children(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                if pid == self.beat_pid and not self.stopping:
                    self._beat_gone(pid, status)
                continue
            slot, started = child
            terminated = pid in self.terminating
            if not self.process_gone(pid, slot, _describe_status(status)) or self.stopping:
                continue  # retired by pool_shrink, or shutting down
            if terminated:
                logger.info("Pool process %s (pid %s) terminated; starting a new one", slot, pid)
                self.respawn_at[slot] = time.monotonic()
                continue
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == RETIRED:
                logger.info("Pool process %s (pid %s) retired; starting a new one", slot, pid)
                self.respawn_at[slot] = time.monotonic()
                continue
            # A child that dies at once (broker down, bad import) is restarted with backoff.
            quick = time.monotonic() - started < 1.0
            self.crashes[slot] = self.crashes.get(slot, 0) + 1 if quick else 0
            delay = min(5.0, 0.25 * 2 ** self.crashes[slot]) if quick else 0.0
            logger.error(
                "Pool process %s (pid %s) exited with %s; starting a new one%s",
                slot,
                pid,
                _describe_status(status),
                f" in {delay:.1f}s" if delay else "",
            )
            self.respawn_at[slot] = time.monotonic() + delay

    def _beat_gone(self, pid: int, status: int) -> None:
        """Start beat again, unless it died at once (a bad schedule would only die again)."""
        lived = time.monotonic() - self.beat_started
        self.beat_pid = None
        if lived < BEAT_MIN_LIFE:
            logger.error(
                "Beat (pid %s) exited with %s %.1fs after it started: not restarted",
                pid,
                _describe_status(status),
                lived,
            )
            return
        logger.error(
            "Beat (pid %s) exited with %s; starting it again", pid, _describe_status(status)
        )
        self._fork_beat()

    def _respawn_due(self) -> float:
        """Start the children whose restart is due; seconds until the next one (or 5)."""
        now = time.monotonic()
        for slot, when in list(self.respawn_at.items()):
            if when <= now and not self.stopping:
                del self.respawn_at[slot]
                self.spawn_or_retry(slot)
        pending = [when - now for when in self.respawn_at.values()]
        return max(0.0, min(pending)) if pending else TIMER_MAX_SLEEP


def _stop_when_orphaned(stop: threading.Event, interval: float = 0.5) -> None:
    """Set ``stop`` once this process's parent is gone (the supervisor was SIGKILLed): an
    orphaned beat would go on sending tasks for ever, with nothing to stop it."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(interval):
            if os.getppid() != parent:
                logger.warning("The worker's supervisor is gone: stopping beat")
                stop.set()

    threading.Thread(target=watch, name="canvas-orphan-watch", daemon=True).start()


def _stop_process(pid: int, timeout: float) -> None:
    """SIGTERM ``pid`` (a child), wait up to ``timeout`` seconds, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # reaped already
        if done:
            return
        if time.monotonic() > deadline:
            logger.warning("Process %s did not stop in %ss: killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            return
        time.sleep(0.05)


def configured_queues(app: Canvas) -> list[str]:
    """The queues a worker without ``-Q`` consumes: every one in ``task_queues`` (kombu
    ``Queue`` objects, dicts with a ``name``, names, or a name -> options mapping), else
    ``task_default_queue``."""
    listed = app.conf.get("task_queues")
    if not listed:
        return [str(app.conf.task_default_queue)]
    if isinstance(listed, Mapping):
        return [str(name) for name in listed]
    return [
        str(item.get("name") if isinstance(item, Mapping) else getattr(item, "name", item))
        for item in listed
    ]


def _resident_kib() -> int:
    """This process's peak resident size in KiB (what Celery's max-memory-per-child reads)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _shutting_down(hostname: str, signum: int) -> None:
    signals.worker_shutting_down.send(
        sender=hostname, sig=signal.Signals(signum).name, how="Warm", exitcode=0
    )


def _compact_heap() -> None:
    """Return the start-up's freed memory to the system before the pool is forked.

    Every pool process starts as a copy of the supervisor and counts its resident pages, so
    what the imports and the first connections left free in glibc's heap (about 0.7 MiB) would
    be counted once per process. ``malloc_trim`` is glibc's; elsewhere this does nothing.
    """
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


def _fork_holding_stop_signals() -> tuple[int, set[int | signal.Signals]]:
    """``os.fork()`` with the stop signals held across it: ``(pid, the mask before)``.

    The parent gets its mask back at once; the child keeps the signals pending until it has
    installed its own handlers and restores the mask itself. A signal sent at once (pool_shrink
    right after pool_grow) would otherwise meet the handler inherited from the supervisor, which
    ignores it, and the process would never stop.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return pid, held


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"signal {number} ({signal.Signals(number).name})"
        except ValueError:
            return f"signal {number}"
    return f"code {os.WEXITSTATUS(status)}"


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:**@{host}"
    return url


class EscapingFormatter(logging.Formatter):
    """One record, one line: control characters in a message (a task id or an error text that
    came from a message) are escaped; tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
)


def setup_logging(
    loglevel: str = "INFO", logfile: str | None = None, conf: Mapping[str, Any] | None = None
) -> None:
    """The worker's logging, as Celery sets it up: ``worker_log_format`` on the root logger
    (left alone with ``worker_hijack_root_logger=False``), ``worker_task_log_format`` on the
    task loggers; a ``setup_logging`` receiver takes over the whole job."""
    conf = conf or {}
    level = getattr(logging, str(loglevel).upper(), None)
    if not isinstance(level, int):
        raise ValueError(f"Unknown log level {loglevel!r}; use DEBUG, INFO, WARNING or ERROR.")
    fmt = str(conf.get("worker_log_format") or LOG_FORMAT)
    task_fmt = str(conf.get("worker_task_log_format") or TASK_LOG_FORMAT)
    banner.setLevel(min(level, logging.INFO))
    details = {"loglevel": level, "logfile": logfile, "format": fmt, "colorize": False}
    if signals.setup_logging.send(sender=None, **details):
        return  # a receiver configured logging itself, as Celery allows
    root = logging.getLogger()
    if conf.get("worker_hijack_root_logger", True) or not root.handlers:
        root.handlers[:] = [_handler(logfile, fmt)]
    root.setLevel(level)
    signals.after_setup_logger.send(sender=None, logger=root, **details)
    tasks = logging.getLogger(TASK_LOGGER)
    task_handler = _handler(logfile, task_fmt)
    task_handler.addFilter(TaskContext())
    tasks.handlers[:] = [task_handler]
    tasks.propagate = False
    tasks.setLevel(level)
    signals.after_setup_task_logger.send(
        sender=None, logger=tasks, **{**details, "format": task_fmt}
    )


def _handler(logfile: str | None, fmt: str) -> logging.Handler:
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(EscapingFormatter(fmt))
    return handler
