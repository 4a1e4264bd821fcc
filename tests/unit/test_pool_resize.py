"""Shrinking a prefork pool counts every slot, live or waiting to be restarted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from canvas import Canvas
from canvas.core.worker import Worker, WorkerOptions

Procs = list[subprocess.Popen[bytes]]


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
