"""Remote control and events end to end in one process: a real bus (the embedded one of a
``memory://`` broker), the worker side served by ``ControlServer`` over a stand-in worker.

The stand-in records what commands asked of it; real workers are tested in
tests/integration/test_operate.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from canvas import Canvas
from canvas.core import mailbox
from canvas.core.panel import control_command, rate
from canvas.core.remote import ControlServer
from canvas.core.revoked import Revoked, StateDB
from canvas.core.worker_state import WorkerState
from tests.support.workers import wait_for


class StandIn:
    """The supervisor side of a worker, as commands see it (``canvas.core.panel.Remote``)."""

    def __init__(self, app: Canvas, hostname: str) -> None:
        self.app = app
        self.hostname = hostname
        self.state = WorkerState()
        self.revoked = Revoked()
        self.queues = ["canvas"]
        self.pool = "solo"
        self.concurrency = 1
        self.events_enabled = False
        self.orders: list[dict[str, Any]] = []
        self.terminated: list[tuple[str, str]] = []
        self.stopping = False

    def pool_pids(self) -> list[int]:
        return [4242]

    def drain_reports(self) -> None:
        pass

    def order(self, command: dict[str, Any]) -> None:
        self.orders.append(command)

    def revoke(self, task_ids: list[str], terminate: bool, signum: str) -> list[str]:
        self.revoked.add(task_ids)
        running = [t for t in task_ids if t in self.state.active] if terminate else []
        self.terminated += [(t, signum) for t in running]
        return running

    def resize(self, delta: int) -> str | None:
        if self.concurrency + delta < 1:
            return "a pool needs one process at least"
        self.concurrency += delta
        return None

    def autoscale(self, max: int | None, min: int | None) -> tuple[int, int] | str:
        return (max or 1, min or 0)

    def autoscale_info(self) -> dict[str, int] | None:
        return None

    def set_events(self, enabled: bool) -> bool:
        changed, self.events_enabled = self.events_enabled != enabled, enabled
        return changed

    def send_heartbeat(self) -> None:
        pass

    def shutdown(self) -> None:
        self.stopping = True


@pytest.fixture
def app() -> Iterator[Canvas]:
    app = Canvas("control-test", broker="memory://", backend="memory://", set_as_current=False)

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    yield app
    app.close()


@pytest.fixture
def serve(app: Canvas) -> Iterator[Any]:
    servers: list[ControlServer] = []

    def start(hostname: str, **options: Any) -> StandIn:
        worker = StandIn(app, hostname)
        server = ControlServer(worker, heartbeat_interval=0.2, **options)
        server.load_revokes()
        server.start()
        servers.append(server)
        return worker

    yield start
    for server in servers:
        server.stop()


def test_ping_answers_as_celery_does(app: Canvas, serve: Any) -> None:
    serve("w1@test")
    serve("w2@test")
    replies = app.control.ping(timeout=2)
    assert sorted(replies, key=lambda r: next(iter(r))) == [
        {"w1@test": {"ok": "pong"}},
        {"w2@test": {"ok": "pong"}},
    ]
    assert app.control.inspect(timeout=2).ping() == {
        "w1@test": {"ok": "pong"},
        "w2@test": {"ok": "pong"},
    }


def test_destination_and_pattern_pick_the_workers(app: Canvas, serve: Any) -> None:
    serve("w1@test")
    serve("w2@test")
    assert app.control.inspect(destination=["w2@test"], timeout=2).ping() == {
        "w2@test": {"ok": "pong"}
    }
    # A single name (not a list) gets that worker's reply itself, as in Celery
    assert app.control.inspect(destination="w1@test", timeout=2).ping() == {"ok": "pong"}
    assert app.control.inspect(pattern="w1@*", timeout=2).ping() == {"w1@test": {"ok": "pong"}}
    assert app.control.inspect(destination=["nobody@test"], timeout=0.3).ping() is None


def test_destination_replies_end_the_wait_early(app: Canvas, serve: Any) -> None:
    serve("w1@test")
    started = time.monotonic()
    assert app.control.inspect(destination=["w1@test"], timeout=20).ping()
    assert time.monotonic() - started < 10


def test_inspect_reads_what_the_pool_reported(app: Canvas, serve: Any) -> None:
    worker = serve("w1@test")
    info = {"id": "t1", "name": "proj.add", "args": "(1, 2)", "kwargs": "{}"}
    worker.state.on_report(
        {"op": "started", "id": "t1", "pid": 4242, "time_start": 1.0, "info": info}
    )
    inspect = app.control.inspect(destination=["w1@test"], timeout=5)
    active = inspect.active()["w1@test"]
    assert [(a["id"], a["args"], a["worker_pid"]) for a in active] == [("t1", "(1, 2)", 4242)]
    assert inspect.query_task("t1") == {"w1@test": {"t1": ["active", active[0]]}}
    assert inspect.reserved() == {"w1@test": []}
    worker.state.on_report({"op": "finished", "id": "t1", "name": "proj.add", "state": "SUCCESS"})
    stats = inspect.stats()["w1@test"]
    assert stats["total"] == {"proj.add": 1} and stats["pool"]["processes"] == [4242]
    assert inspect.registered() == {"w1@test": ["proj.add"]}


def test_stats_prefetch_count_is_what_the_pool_holds(app: Canvas, serve: Any) -> None:
    # Given a pool of 3 with the multiplier at 4: 12 messages; autoscaled, one per process
    app.conf.worker_prefetch_multiplier = 4
    worker = serve("w1@test")
    worker.concurrency = 3
    inspect = app.control.inspect(destination=["w1@test"], timeout=5)
    assert inspect.stats()["w1@test"]["prefetch_count"] == 12
    info = {"max": 5, "min": 3, "current": 3, "qty": 0}
    worker.autoscale_info = lambda: info  # type: ignore[method-assign]
    stats = inspect.stats()["w1@test"]
    assert (stats["prefetch_count"], stats["autoscaler"]) == (3, info)


def test_revoke_reaches_running_workers_and_is_kept_for_later_ones(app: Canvas, serve: Any) -> None:
    first = serve("w1@test")
    replies = app.control.revoke(["a", "b"], reply=True, timeout=5, destination=["w1@test"])
    assert replies == [{"w1@test": {"ok": "tasks ['a', 'b'] flagged as revoked"}}]
    assert {"a", "b"} <= set(first.revoked)
    # Given a worker started after the revoke, then it refuses the tasks too
    later = serve("w2@test")
    assert {"a", "b"} <= set(later.revoked)
    assert app.control.inspect(destination=["w2@test"], timeout=2).revoked() == {
        "w2@test": ["a", "b"]
    }


def test_result_handles_revoke_their_tasks(app: Canvas, serve: Any) -> None:
    from canvas import group

    worker = serve("w1@test")
    add = app.tasks["proj.add"]
    single = add.delay(1, 2)
    members = group(add.s(1, 1), add.s(2, 2)).apply_async()
    assert single.revoke(wait=True, timeout=5) == [
        {"w1@test": {"ok": f"tasks {[single.id]} flagged as revoked"}}
    ]
    members.revoke()
    chained = (add.s(1, 1) | add.s(2)).apply_async()
    chained.workflow.revoke()
    wanted = {single.id, *(m.id for m in members), chained.id, chained.parent.id}
    wait_for(lambda: wanted <= set(worker.revoked), 10, "every revoke to arrive")


def test_revoke_with_terminate_signals_only_running_tasks(app: Canvas, serve: Any) -> None:
    worker = serve("w1@test")
    worker.state.on_report({"op": "started", "id": "running", "pid": 4242})
    replies = app.control.revoke(
        ["running", "idle"], terminate=True, signal="KILL", reply=True, timeout=2
    )
    assert replies == [{"w1@test": {"ok": "terminate: running"}}]
    assert worker.terminated == [("running", "SIGKILL")]


def test_revoke_of_a_workflow_id_revokes_its_unfinished_nodes(app: Canvas, serve: Any) -> None:
    from canvas import chain

    add = app.tasks["proj.add"]
    result = chain(add.s(1, 1), add.s(2)).apply_async()
    workflow_id = result.parent.id if result.parent else result.id
    view = app.workflow(result.workflow.id)
    assert view.exists()
    worker = serve("w1@test")
    app.control.revoke(view.id, reply=True, timeout=5, destination=["w1@test"])
    assert {n.node.id for n in view.nodes() if n.node.task} <= set(worker.revoked)
    assert workflow_id in set(worker.revoked) or view.id in set(worker.revoked)


def test_commands_that_change_the_worker(app: Canvas, serve: Any) -> None:
    worker = serve("w1@test")
    control = app.control
    assert control.rate_limit(
        "proj.add", "10/m", reply=True, timeout=5, destination=["w1@test"]
    ) == [{"w1@test": {"ok": "new rate limit set successfully"}}]
    assert worker.orders[-1] == {
        "op": "task_option",
        "task": "proj.add",
        "options": {"rate_limit": "10/m"},
    }
    assert control.rate_limit("proj.add", "fast", reply=True, timeout=5, destination=["w1@test"])[
        0
    ]["w1@test"]["error"]
    assert control.rate_limit("nope", "1/s", reply=True, timeout=5, destination=["w1@test"]) == [
        {"w1@test": {"error": "unknown task"}}
    ]
    assert control.time_limit(
        "proj.add", soft=1, hard=2, reply=True, timeout=5, destination=["w1@test"]
    ) == [{"w1@test": {"ok": "time limits set successfully"}}]
    assert control.pool_grow(2, reply=True, timeout=5, destination=["w1@test"]) == [
        {"w1@test": {"ok": "pool will grow"}}
    ]
    assert worker.concurrency == 3
    assert (
        "error"
        in control.pool_shrink(5, reply=True, timeout=5, destination=["w1@test"])[0]["w1@test"]
    )
    assert control.add_consumer("extra", reply=True, timeout=5, destination=["w1@test"]) == [
        {"w1@test": {"ok": "add consumer extra"}}
    ]
    assert worker.queues == ["canvas", "extra"]
    assert (
        app.control.inspect(destination=["w1@test"], timeout=5).active_queues()["w1@test"][1][
            "name"
        ]
        == "extra"
    )
    control.cancel_consumer("canvas", reply=True, timeout=5, destination=["w1@test"])
    assert worker.queues == ["extra"]
    assert control.enable_events(reply=True, timeout=5, destination=["w1@test"]) == [
        {"w1@test": {"ok": "task events enabled"}}
    ]
    assert control.shutdown(reply=True, timeout=5, destination=["w1@test"]) == [
        {"w1@test": {"ok": "shutting down"}}
    ]
    assert worker.stopping


def test_custom_command_and_bad_requests(app: Canvas, serve: Any) -> None:
    @control_command(args=[("n", int)], signature="[N=1]")
    def canvas_test_double(state: Any, n: int = 1) -> Any:
        return {"ok": n * 2, "from": state.hostname}

    serve("w1@test")
    # Garbage on the control topic is ignored and the worker keeps answering
    app.bus.publish(mailbox.control_topic("canvas"), b"\xc1 not msgpack")
    replies = app.control.broadcast(
        "canvas_test_double", arguments={"n": 21}, reply=True, timeout=2
    )
    assert replies == [{"w1@test": {"ok": 42, "from": "w1@test"}}]
    assert app.control.broadcast(
        "no_such_command", reply=True, timeout=5, destination=["w1@test"]
    ) == [{"w1@test": {"error": "No such command: 'no_such_command'."}}]
    bad = app.control.broadcast("rate_limit", reply=True, timeout=5, destination=["w1@test"])
    assert "Bad arguments for 'rate_limit'" in bad[0]["w1@test"]["error"]


def test_conf_masks_secrets(app: Canvas, serve: Any) -> None:
    app.conf.security_key = "s" * 40
    app.conf.broker_transport_options = {"password": "hunter2"}
    serve("w1@test")
    conf = app.control.inspect(destination="w1@test", timeout=5).conf()
    assert conf["security_key"] == "********"
    assert "hunter2" not in repr(conf)


def test_worker_events_feed_a_state(app: Canvas, serve: Any) -> None:
    state = app.events.State()
    receiver = app.events.Receiver(None, handlers={"*": state.event})
    receiver.subscribe()
    serve("w1@test")
    receiver.capture(limit=3, timeout=5, wakeup=False)
    worker = state.workers["w1@test"]
    assert worker.alive and worker.pool == "solo" and worker.freq == 0.2
    assert [w.hostname for w in state.alive_workers()] == ["w1@test"]


def test_task_events_make_tasks_and_workflows(app: Canvas) -> None:
    state = app.events.State()
    receiver = app.events.Receiver(None, handlers={"*": state.event})
    receiver.subscribe()
    with app.events.default_dispatcher(hostname="w1@test") as dispatcher:
        dispatcher.send("workflow-started", workflow="wf", nodes=2, name="proj.add")
        dispatcher.send("task-received", uuid="t1", name="proj.add", args="(1,)", workflow="wf")
        dispatcher.send("task-succeeded", uuid="t1", result="2", runtime=0.5, workflow="wf")
        # Given a late task-started after the task succeeded, then SUCCESS stays
        dispatcher.send("task-started", uuid="t1", pid=7)
    receiver.capture(limit=4, timeout=5, wakeup=False)
    task = state.tasks["t1"]
    assert (task.state, task.name, task.args, task.runtime) == ("SUCCESS", "proj.add", "(1,)", 0.5)
    assert task.started is not None and task.worker is not None
    assert task.worker.hostname == "w1@test"
    workflow = state.workflows["wf"]
    assert (workflow.total, workflow.done, workflow.progress) == (2, 1, 0.5)


def test_capture_times_out_when_nothing_comes(app: Canvas) -> None:
    receiver = app.events.Receiver(None, handlers={})
    with pytest.raises(TimeoutError):
        receiver.capture(timeout=0.3, wakeup=False)


def test_statedb_keeps_revokes_across_restarts(app: Canvas, serve: Any, tmp_path: Any) -> None:
    path = tmp_path / "worker.state"
    worker = serve("w1@test", statedb=StateDB(path), sync_interval=0.1)
    worker.revoked.add(["kept"])
    wait_for(lambda: path.exists() and "kept" in dict(StateDB(path).load()), 10, "the state file")
    path.write_bytes(b"garbage")  # a broken file is replaced, never fatal
    assert StateDB(path).load() == []


def test_rate_forms() -> None:
    assert rate("10/s") == 10 and rate("120/m") == 2 and rate("3600/h") == 1 and rate(5) == 5
    assert rate(None) == 0 and rate("0") == 0
    with pytest.raises(ValueError, match="10/x"):
        rate("10/x")


def test_with_a_security_key_forged_commands_do_nothing(app: Canvas, serve: Any) -> None:
    app.conf.security_key = "k" * 40
    worker = serve("w1@test")
    # Signed both ways: the app's own requests and replies go through
    assert app.control.inspect(destination="w1@test", timeout=5).ping() == {"ok": "pong"}
    # Given a shutdown published on the raw bus, unsigned, then the worker ignores it
    raw = app.bus.inner  # type: ignore[attr-defined]
    raw.publish(mailbox.control_topic("canvas"), mailbox.Request("shutdown").encode())
    assert app.control.inspect(destination="w1@test", timeout=5).ping() == {"ok": "pong"}
    assert not worker.stopping
