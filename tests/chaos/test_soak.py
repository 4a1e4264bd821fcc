"""The soak (``pytest -m chaos tests/chaos``): 10,000 task messages of plain tasks, chains, groups
and chords, with pool processes SIGKILLed at random and one whole worker killed and replaced, on
the private Redis broker and store. Nothing may be lost or wired twice, and the memory of the
worker that is never killed whole must stay bounded.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from canvas import chain, group

from .harness import Cluster

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(540)]

PLAIN, CHAINS, GROUPS, CHORDS = 3000, (400, 5), (200, 5), (400, 9)
KILL_EVERY = 2.0  # seconds between random pool-process kills
SUPERVISOR_GROWTH_KIB = 20 * 1024
CHILD_RSS_KIB = 200 * 1024


def publish_everything(case: Cluster) -> int:
    ledger = case.ledger
    for start in range(0, PLAIN, 500):
        ledger.send_batch("chaos.work", [(i,) for i in range(start, min(PLAIN, start + 500))])
    n, length = CHAINS
    for i in range(n):
        steps = [ledger.sig("chaos.work", i)] + [
            ledger.sig("chaos.work") for _ in range(length - 1)
        ]
        ledger.send_canvas(chain(*steps), steps)
    n, width = GROUPS
    for _ in range(n):
        members = [ledger.sig("chaos.work", j) for j in range(width)]
        ledger.send_canvas(group(*members), members)
    n, width = CHORDS
    for _ in range(n):
        ledger.chord(width)
    return len(ledger.expected)


def test_soak_10000_messages_with_random_kills(cluster) -> None:
    rng = random.Random(20240601)
    case = cluster("soak-10k", CHAOS_LEASE="2")
    stable = case.start_worker(concurrency=2)
    doomed = case.start_worker(concurrency=2)
    total = publish_everything(case)
    assert total == 10_000
    warm = None
    kills = whole = 0
    started = time.monotonic()
    pause = threading.Event()
    deadline = started + 420
    while (pending := len(case.ledger.pending())) > 0 and time.monotonic() < deadline:
        done = total - pending
        if warm is None and done >= 1000:
            warm = stable.memory_kib()
        if whole == 0 and done >= total * 0.4:
            doomed.kill()
            doomed = case.start_worker(concurrency=2)
            whole += 1
        else:
            rng.choice([stable, doomed]).kill_child(rng)
            kills += 1
        pause.wait(KILL_EVERY)  # fault pacing, not synchronisation
    end = stable.memory_kib()
    assert warm is not None
    memory = f"supervisor RSS {warm[0] // 1024}->{end[0] // 1024} MiB"
    verdict = case.finish(
        f"{kills} pool processes + {whole} worker SIGKILLed; {memory}", settle_timeout=60
    )
    verdict.assert_ok()
    assert end[0] - warm[0] < SUPERVISOR_GROWTH_KIB, f"supervisor grew {warm} -> {end} KiB"
    assert end[1] < CHILD_RSS_KIB, f"a pool process holds {end[1]} KiB"
