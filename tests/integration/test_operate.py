"""Operating a running system against real workers: revoke, terminate, inspect, control, events.

Each test starts real ``canvas worker`` processes (``tests/integration/apps/ops_app.py``) on a
queue and control/event topics of its own, so no other worker answers. Brokers: Redis, and
RabbitMQ with Redis results, for what the issue requires on both (terminate); the embedded
default for the rest, plus Redis where the bus matters.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from canvas import chord, states
from canvas.exceptions import TaskRevokedError, WorkerLostError
from tests.support.servers import AMQP_URL, REDIS_URL, require_service
from tests.support.workers import CANVAS, WorkerProcess, wait_for

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.ops_app"
HOST = socket.gethostname()
BROKERS = {
    "embedded": ("", ""),
    "redis": (REDIS_URL, REDIS_URL),
    "amqp": (AMQP_URL, REDIS_URL),
}


class Ops:
    """One test's app, its private queue and topics, and the workers it starts."""

    def __init__(self, broker: str, tmp: Path, start: Callable[..., WorkerProcess]) -> None:
        broker_url, backend_url = BROKERS[broker]
        if broker != "embedded":
            require_service("Redis", REDIS_URL)
        if broker == "amqp":
            require_service("RabbitMQ", AMQP_URL)
        tag = uuid.uuid4().hex[:8]
        self.dir = tmp / "ops"
        self.env = {
            "CANVAS_OPS_BROKER": broker_url,
            "CANVAS_OPS_BACKEND": backend_url,
            "CANVAS_OPS_QUEUE": f"ops-{tag}",
            "CANVAS_OPS_DIR": str(self.dir),
            "CANVAS_OPS_EXCHANGE": f"ops-{tag}",
        }
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        sys.modules.pop(APP, None)
        self.module: ModuleType = importlib.import_module(APP)
        self.app = self.module.app
        self._start = start

    def worker(
        self, *args: str, name: str = "w1", env: dict[str, str] | None = None
    ) -> WorkerProcess:
        return self._start(APP, "-n", f"{name}@%h", *args, env={**self.env, **(env or {})})

    def host(self, name: str = "w1") -> str:
        return f"{name}@{HOST}"

    def started(self, key: str) -> bool:
        return (self.dir / f"{key}.started").exists()

    def finished(self, key: str) -> bool:
        return (self.dir / f"{key}.finished").exists()

    def cli(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CANVAS, "-A", APP, *args],
            env={**os.environ, **self.env, "PYTHONPATH": str(Path(__file__).parents[2])},
            capture_output=True,
            text=True,
            timeout=60,
            input=stdin,
        )
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def close(self) -> None:
        self.app.close()
        sys.modules.pop(APP, None)
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(params=["redis"])
def ops(
    request: pytest.FixtureRequest, tmp_path: Path, start_worker: Callable[..., WorkerProcess]
) -> Iterator[Ops]:
    env = Ops(request.param, tmp_path, start_worker)
    yield env
    env.close()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


# -- terminate and inspect active, on both brokers --------------------------------------------
@pytest.mark.parametrize("ops", ["redis", "amqp"], indirect=True)
def test_a_long_task_terminated_from_python_ends_revoked(ops: Ops) -> None:
    worker = ops.worker("-P", "prefork", "-c", "1")
    result = ops.module.work.delay("long", 60)
    wait_for(lambda: ops.started("long"), 20, "the long task to start")
    # Given the worker is busy in the task, when inspect asks, then it lists that task
    active = ops.app.control.inspect(destination=[ops.host()], timeout=10).active()
    assert [(t["id"], t["name"]) for t in active[ops.host()]] == [(result.id, "ops.work")]
    pid = active[ops.host()][0]["worker_pid"]
    assert pid in _children(worker.proc.pid)
    # When it is revoked with terminate=True, then the task ends REVOKED and never finishes
    replies = ops.app.control.revoke(
        result.id, terminate=True, reply=True, timeout=10, destination=[ops.host()]
    )
    assert replies == [{ops.host(): {"ok": f"terminate: {result.id}"}}]
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert result.state == states.REVOKED and not ops.finished("long")
    # And the worker replaced the process and goes on working
    assert ops.module.add.delay(2, 3).get(timeout=20) == 5
    wait_for(lambda: pid not in _children(worker.proc.pid), 10, "the process to be gone")


def test_an_acked_task_whose_process_is_killed_fails_with_worker_lost(ops: Ops) -> None:
    # As in Celery: the OOM killer (say) ends a pool process in the middle of a task whose
    # message was acked when it started; nothing will run it again, so it must not stay PENDING.
    worker = ops.worker("-P", "prefork", "-c", "1")
    result = (ops.module.acked_work.s("killed", 60) | ops.module.add.s(1)).delay()
    wait_for(lambda: ops.started("killed"), 20, "the task to start")
    active = ops.app.control.inspect(destination=[ops.host()], timeout=10).active()
    pid = active[ops.host()][0]["worker_pid"]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerLostError, match=r"signal 9 \(SIGKILL\)"):
        result.get(timeout=20)  # the chain's last step: the loss reached the end of the chain
    assert result.parent is not None and result.parent.state == states.FAILURE
    wait_for(
        lambda: "lost: its pool process exited with signal 9" in worker.output(),
        10,
        "the worker's log line about the loss",
    )
    assert ops.module.add.delay(2, 3).get(timeout=20) == 5  # and a new process works


@pytest.mark.parametrize("ops", ["redis", "amqp"], indirect=True)
def test_a_long_task_terminated_from_the_cli_ends_revoked(ops: Ops) -> None:
    ops.worker("-P", "prefork", "-c", "2")
    result = ops.module.work.delay("cli-long", 60)
    wait_for(lambda: ops.started("cli-long"), 20, "the long task to start")
    shown = ops.cli("inspect", "active", "-d", ops.host(), "-t", "10")
    assert f"->  {ops.host()}: OK" in shown.stdout and result.id in shown.stdout
    done = ops.cli("revoke", result.id, "--terminate", "--signal", "KILL", "-t", "10")
    assert f"terminate: {result.id}" in done.stdout
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert not ops.finished("cli-long")


# -- revokes that reach tasks before they start -----------------------------------------------
def test_a_revoked_eta_task_never_runs(ops: Ops) -> None:
    ops.worker("-P", "prefork", "-c", "1")
    result = ops.module.work.apply_async(("eta", 0), countdown=2)
    wait_for(
        lambda: ops.app.control.inspect(destination=[ops.host()], timeout=5).scheduled(),
        20,
        "the worker to park the ETA task",
    )
    ops.app.control.revoke(result.id)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert not ops.started("eta")


def test_a_revoked_chord_member_settles_the_chord(ops: Ops) -> None:
    ops.worker("-P", "prefork", "-c", "2")
    member = ops.module.work.s("member", 0).set(countdown=2)
    result = chord([ops.module.add.s(1, 1), member, ops.module.add.s(2, 2)], ops.module.tsum.s())()
    member_id = result.parent.results[1].id
    ops.app.control.revoke(member_id)
    # Then the body does not run: it ends with the member's revoke, and nothing hangs
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert ops.app.AsyncResult(member_id).state == states.REVOKED
    assert not ops.started("member")


def test_a_revoke_reaches_a_worker_started_later(ops: Ops) -> None:
    result = ops.module.work.delay("later", 0)
    ops.app.control.revoke(result.id)  # no worker runs yet: only the result store keeps it
    ops.worker("-P", "threads", "-c", "2")
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert not ops.started("later")
    assert ops.module.add.delay(1, 2).get(timeout=20) == 3


def test_revoking_a_workflow_by_its_id_stops_what_has_not_run(ops: Ops) -> None:
    ops.worker("-P", "prefork", "-c", "1")
    blocker = ops.module.work.delay("blocker", 1.5)  # holds the only process
    wait_for(lambda: ops.started("blocker"), 20, "the blocker to start")
    steps = ops.module.work.si("step1", 0) | ops.module.work.si("step2", 0)
    result = steps.apply_async()
    ops.app.control.revoke(result.workflow.id)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert blocker.get(timeout=20) == "blocker"
    assert not ops.started("step1") and not ops.started("step2")


# -- the rest of inspect and control -----------------------------------------------------------
@pytest.mark.parametrize("ops", ["embedded", "redis"], indirect=True)
def test_inspect_and_control_a_worker(ops: Ops) -> None:
    worker = ops.worker("-P", "prefork", "-c", "1")
    host = ops.host()
    inspect = ops.app.control.inspect(destination=[host], timeout=10)
    assert inspect.ping() == {host: {"ok": "pong"}}
    assert ops.module.add.delay(1, 1).get(timeout=20) == 2
    # The pool process reports a finished task to its supervisor just after storing the result,
    # so the count may lag the result by a moment (as in Celery).
    stats = wait_for(
        lambda: (s := inspect.stats()[host])["total"] == {"ops.add": 1} and s, 10, "the count"
    )
    assert stats["pool"]["implementation"] == "prefork"
    assert "ops.work" in " ".join(inspect.registered()[host])
    assert [q["name"] for q in inspect.active_queues()[host]] == [ops.env["CANVAS_OPS_QUEUE"]]
    control = ops.app.control
    assert control.pool_grow(1, destination=[host], reply=True, timeout=10) == [
        {host: {"ok": "pool will grow"}}
    ]
    wait_for(lambda: len(_children(worker.proc.pid)) == 2, 20, "a second pool process")
    control.pool_shrink(1, destination=[host], reply=True, timeout=10)
    wait_for(lambda: len(_children(worker.proc.pid)) == 1, 20, "one pool process again")
    # Processes retired while they are still starting stop too (their stop signal is held
    # until they can take it, never met by the supervisor's handler they were forked with)
    # (and a shrink sent right after a grow is checked against the size the grow asked for)
    for _ in range(3):
        grown = control.pool_grow(2, destination=[host], reply=True, timeout=10)
        shrunk = control.pool_shrink(2, destination=[host], reply=True, timeout=10)
        assert (grown, shrunk) == (
            [{host: {"ok": "pool will grow"}}],
            [{host: {"ok": "pool will shrink"}}],
        )
    try:
        wait_for(lambda: len(_children(worker.proc.pid)) == 1, 30, "the starting ones to stop")
    except AssertionError:
        ps = subprocess.run(
            ["ps", "-o", "pid,stat,args", "--ppid", str(worker.proc.pid)],
            capture_output=True,
            text=True,
        ).stdout
        raise AssertionError(f"pool processes:\n{ps}\nworker log:\n{worker.output()}") from None
    # A queue added at run time is consumed
    extra = ops.env["CANVAS_OPS_QUEUE"] + "-extra"
    assert control.add_consumer(extra, destination=[host], reply=True, timeout=10) == [
        {host: {"ok": f"add consumer {extra}"}}
    ]
    assert ops.module.add.apply_async((5, 5), queue=extra).get(timeout=20) == 10
    # And time limits are set through the command line, and a custom command answers there
    done = ops.cli("control", "time_limit", "ops.work", "30", "60", "-d", host)
    assert "time limits set successfully" in done.stdout
    custom = ops.cli("control", "ops_double", "21", "-d", host, "-j").stdout
    assert json.loads(custom) == {host: {"ok": 42, "from": host}}
    assert control.shutdown(destination=[host], reply=True, timeout=10) == [
        {host: {"ok": "shutting down"}}
    ]
    assert worker.proc.wait(30) == 0


# -- autoscale --------------------------------------------------------------------------------
def _started(ops: Ops, key: str) -> list[str]:
    path = ops.dir / f"{key}.started"
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("ops", ["redis", "amqp"], indirect=True)
def test_autoscale_grows_with_waiting_work_and_shrinks_when_idle(ops: Ops) -> None:
    # Given a worker that may run 1 to 3 processes and lets one idle for a second
    worker = ops.worker("-P", "prefork", "--autoscale=3,1", env={"AUTOSCALE_KEEPALIVE": "1"})
    host, pid = ops.host(), worker.proc.pid
    assert "{min=1, max=3} (prefork)" in worker.output()
    wait_for(lambda: len(_children(pid)) == 1, 20, "the pool to start with min processes")
    # When four calls wait and each holds its process
    calls = [ops.module.hold.delay("load") for _ in range(4)]
    # Then the pool grows to max (not past it): three run, one waits for a free process
    wait_for(lambda: len(_started(ops, "load")) == 3, 30, "three calls running at once")
    assert len(set(_started(ops, "load"))) == 3 and len(_children(pid)) == 3
    stats = ops.app.control.inspect(destination=[host], timeout=10).stats()[host]
    assert stats["autoscaler"]["max"] == 3 and stats["autoscaler"]["min"] == 1
    assert stats["autoscaler"]["current"] == 3 and stats["autoscaler"]["qty"] >= 3
    # When the work is done, the idle processes stop after the keepalive, down to min
    (ops.dir / "load.release").touch()
    assert len({call.get(timeout=30) for call in calls}) == 3
    wait_for(lambda: len(_children(pid)) == 1, 30, "the pool to shrink back to min")
    assert "Pool shrinks to 1" in worker.output()


def test_autoscale_bounds_change_by_remote_control(ops: Ops) -> None:
    worker = ops.worker("-P", "prefork", "--autoscale=2,1")
    host, pid, control = ops.host(), worker.proc.pid, ops.app.control
    # Raising min grows the pool at once; lowering max shrinks it at once
    assert control.autoscale(4, 3, destination=[host], reply=True, timeout=10) == [
        {host: {"ok": "autoscale now max=4 min=3"}}
    ]
    wait_for(lambda: len(_children(pid)) == 3, 20, "the pool to grow to the new min")
    done = ops.cli("control", "autoscale", "2", "1", "-d", host)
    assert "autoscale now max=2 min=1" in done.stdout
    wait_for(lambda: len(_children(pid)) == 2, 20, "the pool to shrink to the new max")
    # Bad bounds are refused with what was wrong, and the pool keeps its size
    assert control.autoscale(1, 3, destination=[host], reply=True, timeout=10) == [
        {host: {"error": "autoscale needs min <= max, got max=1 min=3"}}
    ]
    assert control.autoscale("ten", 3, destination=[host], reply=True, timeout=10) == [
        {host: {"error": "autoscale needs whole numbers, got max='ten' min=3"}}
    ]
    bad = ops.cli("control", "autoscale", "ten", "3", "-d", host, check=False)
    assert bad.returncode != 0 and "max" in bad.stderr and "ten" in bad.stderr
    # As in Celery, an autoscaled pool is not resized by hand
    assert control.pool_grow(1, destination=[host], reply=True, timeout=10) == [
        {
            host: {
                "error": "pool_grow is not supported with autoscale; "
                "change the autoscale range instead."
            }
        }
    ]
    stats = ops.app.control.inspect(destination=[host], timeout=10).stats()[host]
    assert stats["autoscaler"] == {"max": 2, "min": 1, "current": 2, "qty": 0}
    assert len(_children(pid)) == 2


def test_autoscale_on_a_worker_without_it_is_refused(ops: Ops) -> None:
    ops.worker("-P", "threads", "-c", "1")
    host = ops.host()
    assert ops.app.control.autoscale(2, 1, destination=[host], reply=True, timeout=10) == [
        {
            host: {
                "error": "autoscale is not enabled on this worker "
                "(start it with --autoscale=max,min)"
            }
        }
    ]


def test_a_threads_pool_autoscales_too(ops: Ops) -> None:
    ops.worker("-P", "threads", "--autoscale=2,0", env={"AUTOSCALE_KEEPALIVE": "1"})
    host = ops.host()
    inspect = ops.app.control.inspect(destination=[host], timeout=10)
    # min 0: no thread until work waits; then two; then none again
    assert inspect.stats()[host]["autoscaler"]["current"] == 0
    calls = [ops.module.hold.delay("threads") for _ in range(2)]
    wait_for(lambda: len(_started(ops, "threads")) == 2, 30, "two calls running at once")
    assert inspect.stats()[host]["autoscaler"]["current"] == 2
    (ops.dir / "threads.release").touch()
    assert [call.get(timeout=30) for call in calls]
    wait_for(lambda: inspect.stats()[host]["autoscaler"]["current"] == 0, 30, "the pool to empty")


def test_a_busy_solo_worker_still_answers(ops: Ops) -> None:
    ops.worker("-P", "solo")
    ops.module.work.delay("solo-busy", 3)
    wait_for(lambda: ops.started("solo-busy"), 20, "the task to start")
    active = ops.app.control.inspect(destination=[ops.host()], timeout=10).active()
    assert [t["name"] for t in active[ops.host()]] == ["ops.work"]


def test_statedb_keeps_revokes_across_a_restart(ops: Ops, tmp_path: Path) -> None:
    statedb = tmp_path / "w.state"
    worker = ops.worker("-P", "threads", "--statedb", str(statedb))
    ops.app.control.revoke("revoked-id", destination=[ops.host()], reply=True, timeout=10)
    assert worker.stop() == 0
    ops.worker("-P", "threads", "--statedb", str(statedb), name="w2")
    revoked = ops.app.control.inspect(destination=[ops.host("w2")], timeout=10).revoked()
    assert "revoked-id" in revoked[ops.host("w2")]


def test_cli_purge_result_and_report(ops: Ops) -> None:
    failing = ops.module.fail.delay("boom")
    ops.module.add.delay(1, 1)
    purged = ops.cli("purge", "-f")
    assert "Purged 2 messages" in purged.stdout
    ops.worker("-P", "threads")
    failing = ops.module.fail.delay("boom")
    with pytest.raises(ValueError):
        failing.get(timeout=20)
    traceback = ops.cli("result", failing.id, "--traceback")
    assert "ValueError: boom" in traceback.stdout
    assert "ValueError" in ops.cli("result", failing.id).stdout
    assert "software -> canvas:" in ops.cli("report").stdout
    shell = ops.cli("shell", "--python", stdin="print(add.name, app.main, chain.__name__)\n")
    assert "ops.add ops chain" in shell.stdout


# -- events from real workers ------------------------------------------------------------------
@pytest.mark.parametrize("ops", ["embedded", "redis"], indirect=True)
def test_events_from_a_real_worker(ops: Ops) -> None:
    state = ops.app.events.State()
    seen: list[dict[str, Any]] = []

    def keep(event: dict[str, Any]) -> None:
        seen.append(event)
        state.event(event)

    receiver = ops.app.events.Receiver(None, handlers={"*": keep})
    receiver.subscribe()
    worker = ops.worker("-P", "prefork", "-c", "1", "-E")
    good = ops.module.add.apply_async((2, 3), argsrepr="(secret, hidden)")
    bad = ops.module.fail.delay("boom")
    assert good.get(timeout=20) == 5
    with pytest.raises(ValueError):
        bad.get(timeout=20)

    def have_all() -> bool:
        task = state.tasks.get(bad.id)
        return bool(task and task.state == states.FAILURE and state.tasks.get(good.id))

    for _ in receiver.itercapture(timeout=20, wakeup=False):
        if have_all():
            break
    types = [e["type"] for e in seen]
    assert "worker-online" in types
    good_events = [e["type"] for e in seen if e.get("uuid") == good.id]
    assert good_events == ["task-received", "task-started", "task-succeeded"]
    received = next(e for e in seen if e["type"] == "task-received" and e["uuid"] == good.id)
    assert received["args"] == "(secret, hidden)" and received["hostname"] == ops.host()
    succeeded = state.tasks[good.id]
    assert succeeded.result == "5" and succeeded.runtime is not None and succeeded.runtime >= 0
    failed = state.tasks[bad.id]
    assert "boom" in failed.exception and "ValueError" in failed.traceback
    assert state.workers[ops.host()].alive
    # Heartbeats come every 2 s with the worker's load; offline when it stops
    receiver = ops.app.events.Receiver(None, handlers={"*": state.event})
    for event in receiver.itercapture(timeout=10, wakeup=False):
        if event["type"] == "worker-heartbeat":
            assert event["active"] == 0 and len(event["loadavg"]) == 3
            break
    receiver = ops.app.events.Receiver(None, handlers={"*": state.event})
    receiver.subscribe()
    worker.stop()
    for event in receiver.itercapture(timeout=10, wakeup=False):
        if event["type"] == "worker-offline":
            break
    assert not state.workers[ops.host()].alive


def test_events_dump_prints_events(ops: Ops) -> None:
    ops.worker("-P", "threads", "-E")
    proc = subprocess.Popen(
        [*CANVAS, "-A", APP, "events", "--dump", "-j", "-n", "3", "-t", "20"],
        env={**os.environ, **ops.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(lines) == 3, err
    assert {e["type"] for e in lines} <= {"worker-heartbeat", "worker-online"}
    assert all(e["hostname"] == ops.host() for e in lines)
    assert time.time() - lines[-1]["timestamp"] < 60


def test_workflow_events_from_start_to_finish(ops: Ops) -> None:
    ops.app.conf.task_send_sent_event = True  # this process is the client
    state = ops.app.events.State()
    receiver = ops.app.events.Receiver(None, handlers={"*": state.event})
    receiver.subscribe()
    ops.worker("-P", "threads", "-c", "2", "-E")
    add = ops.module.add
    good = (add.s(1, 1) | add.s(2) | add.s(3)).apply_async()
    bad = (add.s(1, 1) | ops.module.fail.si("boom") | add.s(3)).apply_async()
    assert good.get(timeout=20) == 7
    with pytest.raises(ValueError):
        bad.get(timeout=20)
    good_id, bad_id = good.workflow.id, bad.workflow.id

    def both_finished() -> bool:
        flows = state.workflows
        return all(w in flows and flows[w].finished is not None for w in (good_id, bad_id))

    for _ in receiver.itercapture(timeout=20, wakeup=False):
        if both_finished():
            break
    done, failed = state.workflows[good_id], state.workflows[bad_id]
    assert (done.total, done.state, done.progress, done.name) == (3, "SUCCESS", 1.0, "ops.add")
    assert {t.state for t in done.tasks.values()} == {"SUCCESS"} and len(done.tasks) == 3
    assert failed.state == "FAILURE"
    # The client sent the first node (the worker publishes the others, and sends task-sent for
    # them only when its own app sets task_send_sent_event)
    sent = [t for t in state.tasks.values() if t.workflow == good_id and t.sent]
    assert len(sent) == 1 and sent[0].client and sent[0].args == "(1, 1)"
