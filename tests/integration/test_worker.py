"""The worker as a process: pools, shutdown, crashed children, time limits, poison messages,
and ``canvas multi``. Runs on the embedded default (no server) with a short lease."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from canvas.exceptions import TimeLimitExceeded
from tests.support.seed import Seed
from tests.support.workers import CANVAS, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Seed]:
    seed = Seed("embedded", tmp_path)
    seed.env["CANVAS_TEST_LEASE"] = "1"
    try:
        yield seed
    finally:
        seed.close()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_each_pool_runs_tasks(env: Seed, pool: str) -> None:
    env.start_worker("-P", pool)
    results = [env.tasks.add.delay(i, i) for i in range(20)]
    assert [r.get(timeout=10) for r in results] == [2 * i for i in range(20)]


def test_killed_child_is_replaced(env: Seed) -> None:
    worker = env.start_worker("-P", "prefork", "-c", "2")
    children = wait_for(
        lambda: len(_children(worker.proc.pid)) == 2 and _children(worker.proc.pid),
        10,
        "2 children",
    )
    os.kill(children[0], signal.SIGKILL)
    wait_for(
        lambda: (
            len(_children(worker.proc.pid)) == 2 and children[0] not in _children(worker.proc.pid)
        ),
        10,
        "a replacement child",
    )
    assert env.tasks.add.delay(1, 2).get(timeout=10) == 3
    assert "starting a new one" in worker.output()


def test_warm_shutdown_finishes_the_task_in_hand(env: Seed, unique: str) -> None:
    worker = env.start_worker("-P", "prefork", "-c", "1")
    res = env.tasks.slow.delay(unique, 1.0)
    wait_for(lambda: (env.state / f"{unique}.started").exists(), 10, "the task to start")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(20) == 0
    assert (env.state / f"{unique}.finished").exists()
    assert res.get(timeout=5) == unique


def test_soft_time_limit_lets_the_task_clean_up(env: Seed) -> None:
    env.start_worker("-P", "prefork", "-c", "1")
    assert env.tasks.soft_limited.delay(5).get(timeout=10) == "cleaned up"


def test_hard_time_limit_fails_the_task_and_replaces_the_process(env: Seed) -> None:
    worker = env.start_worker("-P", "prefork", "-c", "1")
    res = env.tasks.hard_limited.delay(10)
    with pytest.raises(TimeLimitExceeded):
        res.get(timeout=15)
    assert env.tasks.add.delay(2, 2).get(timeout=15) == 4
    assert "Hard time limit" in worker.output()


def test_poison_message_is_dead_lettered_after_max_deliveries(env: Seed, unique: str) -> None:
    env.start_worker("-P", "prefork", "-c", "1")
    env.tasks.crash.delay(unique)
    dlq = env.app.transport.consumer([env.app.conf.task_default_queue + ".dlq"])
    try:
        dead = wait_for(lambda: dlq.get(timeout=0.2), 40, "the poison message in the dlq")
        assert "worker_max_deliveries" in str(dead.headers)
        dead.ack()
    finally:
        dlq.close()
    assert (env.state / unique).read_text().count("\n") == 3
    assert env.tasks.add.delay(3, 3).get(timeout=10) == 6


def test_multi_start_and_stop_with_pid_and_log_files(env: Seed, tmp_path: Path) -> None:
    run_dir, log_dir = tmp_path / "run", tmp_path / "log"
    common = [f"--pidfile={run_dir}/%n.pid", f"--logfile={log_dir}/%n%I.log"]
    cmd_env = {**os.environ, **env.env}
    seed_dir = Path(__file__).parent / "seed"
    start = subprocess.run(
        [*CANVAS, "multi", "start", "worker1", "--app=tasks", "--loglevel=INFO", *common],
        cwd=seed_dir,
        env=cmd_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert start.returncode == 0, start.stdout + start.stderr
    pid = int((run_dir / "worker1.pid").read_text())
    try:
        assert env.tasks.add.delay(5, 5).get(timeout=20) == 10
        wait_for(lambda: "succeeded" in (log_dir / "worker1.log").read_text(), 10, "the worker log")
        again = subprocess.run(
            [*CANVAS, "multi", "start", "worker1", "--app=tasks", *common],
            cwd=seed_dir,
            env=cmd_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        stop = subprocess.run(
            [*CANVAS, "multi", "stopwait", "worker1", *common],
            cwd=seed_dir,
            env=cmd_env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not (run_dir / "worker1.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
