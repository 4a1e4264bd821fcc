"""Resizing a prefork pool: a shrink counts every slot, live or waiting to be restarted, and
every process keeps its share of the worker's rate limits."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from canvas import Canvas
from canvas.core import ratelimit
from canvas.core.monitor import TaskMonitor
from canvas.core.worker import Worker, WorkerOptions

Procs = list[subprocess.Popen[bytes]]


@pytest.fixture(autouse=True)
def own_rate_share() -> Iterator[None]:
    """The share is this process's (a module global): each test starts from one."""
    ratelimit.slots.processes = 1
    yield
    ratelimit.slots.processes = 1


@pytest.fixture
def live() -> Iterator[Procs]:
    """Real processes standing in for pool processes (a shrink sends them SIGTERM)."""
    procs: Procs = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def _worker(live: Procs, slots: list[int], waiting: list[int]) -> Worker:
    app = Canvas("resize", broker="memory://", backend="memory://", set_as_current=False)
    worker = Worker(app, WorkerOptions(pool="prefork", concurrency=len(slots) + len(waiting)))
    for slot in slots:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        live.append(proc)
        worker.children[proc.pid] = (slot, 0.0)
    for slot in waiting:
        worker.respawn_at[slot] = 0.0
    return worker


def test_a_shrink_drops_a_slot_waiting_to_restart_before_a_live_process(live: Procs) -> None:
    # Given slot 0 runs and slot 1 died a moment ago and waits to be started again
    worker = _worker(live, slots=[0], waiting=[1])
    # When the pool shrinks by one
    worker._resize_pool(-1)
    # Then the waiting slot is not restarted and the live process keeps running
    assert (worker.respawn_at, worker.retiring, worker.concurrency) == ({}, set(), 1)
    assert live[0].poll() is None


def test_a_shrink_past_the_waiting_slots_stops_live_processes(live: Procs) -> None:
    worker = _worker(live, slots=[0, 1], waiting=[2])
    worker._resize_pool(-2)
    assert (worker.respawn_at, worker.retiring, worker.concurrency) == ({}, {1}, 1)
    assert live[1].wait(10) == -15  # SIGTERM, the warm stop
    assert live[0].poll() is None


def test_a_resized_pool_tells_its_processes_their_share_of_a_rate_limit(live: Procs) -> None:
    # Given a prefork pool of two (each process keeps half of a worker's rate limit)
    worker = _worker(live, slots=[0, 1], waiting=[])
    orders: list[dict[str, object]] = []
    worker.order = orders.append  # type: ignore[method-assign]
    worker.share_rate_limits()
    assert ratelimit.slots.processes == 2
    orders.clear()
    # When it shrinks to one, then the one process is told it has the whole limit
    worker._resize_pool(-1)
    assert (ratelimit.slots.processes, orders) == (1, [{"op": "rate_share", "processes": 1}])


def test_an_autoscaled_pool_shares_by_its_max_and_follows_a_new_max() -> None:
    app = Canvas("share", broker="memory://", backend="memory://", set_as_current=False)
    worker = Worker(app, WorkerOptions(pool="prefork", autoscale=(4, 1)))
    read, worker.park_w = os.pipe()  # the supervisor loop's wake-up pipe
    worker.share_rate_limits()
    assert ratelimit.slots.processes == 4
    assert worker.autoscale(8, 1) == (8, 1)
    worker.run_calls()  # the supervisor loop's turn
    assert ratelimit.slots.processes == 8
    os.close(read)
    os.close(worker.park_w)


def test_a_pool_process_takes_the_share_it_is_told() -> None:
    app = Canvas("share", broker="memory://", backend="memory://", set_as_current=False)
    TaskMonitor(app, "w@test").apply({"op": "rate_share", "processes": 3})
    assert ratelimit.slots.processes == 3


def test_a_refused_fork_leaves_the_slot_waiting_to_start_again(live: Procs) -> None:
    # Given a pool of one, on a machine that refuses the next forks (EAGAIN)
    worker = _worker(live, slots=[0], waiting=[])
    tried: list[int] = []

    def refused(slot: int) -> None:
        tried.append(slot)
        raise BlockingIOError(11, "Resource temporarily unavailable")

    worker._spawn = refused  # type: ignore[method-assign]
    # When the pool grows by one, then the new slot counts and waits to be started again
    worker._resize_pool(1)
    assert (worker.concurrency, sorted(worker.respawn_at)) == (2, [1])
    # and a restart that is refused too waits again instead of ending the supervisor's loop
    worker.respawn_at[1] = 0.0
    worker._respawn_due()
    assert (tried, sorted(worker.respawn_at)) == ([1, 1], [1])
