"""The canvas against a real worker: ``canvas worker -c 2 -P prefork`` in a subprocess.

Each broker/store pair gets one worker for the module: the embedded default (a SQLite queue and
store in a temporary directory), Redis, RabbitMQ with Redis results, and RabbitMQ with
PostgreSQL results. Servers are the real ones on 127.0.0.1 (``CANVAS_TEST_REDIS``,
``CANVAS_TEST_AMQP``, ``CANVAS_TEST_POSTGRES`` override); a server that does not answer fails
the tests, it never skips them. Redis results go to database 13 of that server, and every
session uses its own queue; what a test wrote is forgotten at the end, the rest expires after 15
minutes.

The worker and the tests share record files (see ``tests/integration/apps/canvas_app.py``):
task runs, errback calls, the size of every message canvas publishes, and each completion
step. Waits are on conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest

from canvas import Canvas, GroupResult, chain, chord, dag, group, signals
from canvas.core import complete, dispatch, messages
from canvas.dag import TASK
from tests.support.servers import (
    AMQP_URL,
    POSTGRES_URL,
    REDIS_URL,
    check_amqp,
    check_postgres,
    check_redis,
    redis_db,
)
from tests.support.worker_harness import clean_up_after

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
apps = importlib.import_module("tests.integration.apps.canvas_app")

REDIS, AMQP, POSTGRES = REDIS_URL, AMQP_URL, POSTGRES_URL
REDIS_RESULTS = redis_db(13)
CANVAS = str(Path(sys.executable).with_name("canvas"))

#: seconds a whole workflow may take before a test fails (nothing here takes a tenth of it)
DEADLINE = 30.0

PAIRS = {
    "embedded": (None, None),
    "redis": (REDIS, REDIS_RESULTS),
    "amqp+redis": (AMQP, REDIS_RESULTS),
    "amqp+postgres": (AMQP, POSTGRES),
}


# -- servers -----------------------------------------------------------------------------------
def _check_servers(broker: str | None, backend: str | None) -> None:
    for url in {u for u in (broker, backend) if u}:
        if url.startswith("redis"):
            check_redis(url)
        elif url.startswith("amqp"):
            check_amqp()
        else:
            check_postgres()


# -- the worker --------------------------------------------------------------------------------
@dataclass
class Harness:
    """One running worker and an app that talks to it."""

    name: str
    app: Canvas
    directory: Path
    process: subprocess.Popen[bytes]
    log: Path
    sent: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def tasks(self) -> Any:
        return _Tasks(self.app)

    def records(self, name: str) -> list[dict[str, Any]]:
        return list(apps.read_records(self.directory, name))

    def send(self, canvas: Any, *args: Any, **options: Any) -> Any:
        result = canvas.apply_async(args, **options)
        self.sent.append(result)
        return result

    def wait_for(self, what: str, condition: Callable[[], Any], timeout: float = DEADLINE) -> Any:
        """Return ``condition()`` once truthy; fail with the worker's log tail at the deadline."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            value = condition()
            if value:
                return value
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: timed out waiting for {what}\n{self.tail()}")
            # Only a back-off between looks at a file the worker appends to.
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class _Tasks:
    """``h.tasks.add`` is the app's ``it.add``."""

    def __init__(self, app: Canvas) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return self._app.tasks[f"it.{name}"]


def _start_worker(name: str, broker: str | None, backend: str | None, tmp: Path) -> Harness:
    queue = f"canvas-it-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CANVAS_IT_BROKER": broker or "",
        "CANVAS_IT_BACKEND": backend or "",
        "CANVAS_IT_QUEUE": queue,
        "CANVAS_IT_DIR": str(tmp),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = tmp / "worker.log"
    command = [CANVAS, "-A", "tests.integration.apps.canvas_app", "worker", "-l", "INFO"]
    command += ["-c", "2", "-P", "prefork", "-f", str(log)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    app = apps.make_app(broker, backend, queue, str(tmp))
    harness = Harness(name, app, tmp, process, log)
    return harness


def _stop_worker(harness: Harness) -> None:
    process = harness.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module", params=list(PAIRS))
def h(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    broker, backend = PAIRS[request.param]
    _check_servers(broker, backend)
    tmp = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    harness = _start_worker(request.param, broker, backend, tmp)
    try:
        started = time.monotonic()
        ping = harness.tasks.ping.delay()
        harness.sent.append(ping)
        harness.wait_for("the worker to answer a ping", lambda: ping.ready(), timeout=60)
        assert ping.get(timeout=1) == "pong"
        harness.timings["start"] = time.monotonic() - started
        yield harness
    finally:
        _stop_worker(harness)
        clean_up_after(harness.app, harness.sent, broker)
        shown = [f"{k} {v:.2f}s" for k, v in harness.timings.items()]
        shown += [f"{k} {v}" for k, v in harness.figures.items()]
        sys.stderr.write(f"\n[{request.param}] {', '.join(shown)}\n")


# -- chains, groups, chords ----------------------------------------------------------------------
def test_chain(h: Harness) -> None:
    t = h.tasks
    result = h.send(t.add.s(4, 4) | t.add.s(2) | t.mul.s(10))
    assert result.get(timeout=DEADLINE) == 100
    assert result.parent.get(timeout=1) == 10 and result.parent.parent.get(timeout=1) == 8


def test_group(h: Harness) -> None:
    t = h.tasks
    result = h.send(group(t.add.s(i, i) for i in range(10)))
    assert isinstance(result, GroupResult)
    assert result.get(timeout=DEADLINE) == [i + i for i in range(10)]


def test_issue_example_chord_after_chain(h: Harness) -> None:
    t = h.tasks
    canvas = t.add.s(2, 2) | t.add.s(4) | chord([t.add.s(i) for i in range(10)], t.tsum.s())
    result = h.send(canvas)
    assert result.get(timeout=DEADLINE) == 125
    assert isinstance(result.parent, GroupResult)
    assert result.parent.get(timeout=1) == [8 + i for i in range(10)]
    assert result.parent.parent.get(timeout=1) == 8


def test_chain_ending_in_a_group(h: Harness) -> None:
    t = h.tasks
    result = h.send(t.add.s(1, 1) | group(t.add.s(1), t.mul.s(3)))
    assert isinstance(result, GroupResult)
    assert result.get(timeout=DEADLINE) == [3, 6] and result.parent.get(timeout=1) == 2


def test_empty_chord_header_calls_the_body_with_an_empty_list(h: Harness) -> None:
    t = h.tasks
    assert h.send(chord([], t.ident.s())).get(timeout=DEADLINE) == []
    assert h.send(t.add.s(1, 1) | chord([], t.tsum.s())).get(timeout=DEADLINE) == 0


def test_chord_in_a_chain_in_a_group(h: Harness) -> None:
    t = h.tasks
    inner = t.add.s(1, 1) | chord([t.add.s(1), t.add.s(2)], t.tsum.s())
    result = h.send(group(inner, t.add.s(5, 5)))
    assert result.get(timeout=DEADLINE) == [7, 10]


def test_chain_of_nine_chords(h: Harness) -> None:
    t = h.tasks
    steps = [chord([t.add.s(i) for i in range(3)], t.tsum.s()) for _ in range(9)]
    expected = 1
    for _ in range(9):
        expected = sum(expected + i for i in range(3))
    result = h.send(chain(t.add.s(0, 1), *steps))
    assert result.get(timeout=DEADLINE) == expected


def test_group_of_chords_with_chain_bodies(h: Harness) -> None:
    # celery#6734: this never becomes ready there
    t = h.tasks
    canvas = group(
        chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s() | t.add.s(1)),
        chord([t.add.s(3, 3)], t.tsum.s() | t.mul.s(2)),
        chord([t.add.s(i, i) for i in range(5)], t.tsum.s() | t.ident.s() | t.mul.s(1)),
    )
    result = h.send(canvas)
    assert result.get(timeout=DEADLINE) == [7, 12, 20]
    assert result.ready()


def test_chord_header_with_chains_and_nested_group(h: Harness) -> None:
    t = h.tasks
    header = [t.add.s(1, 1) | t.mul.s(10), t.add.s(1, 1) | group(t.add.s(1), t.add.s(2))]
    assert h.send(chord(header, t.ident.s())).get(timeout=DEADLINE) == [20, [3, 4]]


def test_every_node_state_is_visible_through_the_workflow_handle(h: Harness) -> None:
    t = h.tasks
    result = h.send(t.add.s(1, 1) | chord([t.add.s(1), t.add.s(2)], t.tsum.s()))
    result.get(timeout=DEADLINE)
    view = result.workflow
    assert view.done() and set(view.states().values()) == {"SUCCESS"}
    assert len(view.nodes()) == 5  # add, two members, the join, the body
    assert h.app.workflow(view.id).states() == view.states()


# -- errors and errbacks ------------------------------------------------------------------------
def _errbacks(h: Harness, tag: str) -> list[dict[str, Any]]:
    return [r for r in h.records("errbacks.log") if r["tag"] == tag]


def test_failure_in_a_chain_before_a_group_does_not_hang(h: Harness) -> None:
    # celery#6437: add.s(1, 1) | fail.s() | group(...) hangs for ever there
    t = h.tasks
    result = h.send(t.add.s(1, 1) | t.fail.s() | group(t.add.s(1), t.add.s(2)))
    with pytest.raises(ValueError, match="fail"):
        result.get(timeout=DEADLINE)
    outcomes = result.get(timeout=DEADLINE, propagate=False)
    assert [type(o) for o in outcomes] == [ValueError, ValueError]
    assert all(m.state == "FAILURE" for m in result)
    assert result[0].result.args == ("fail", 2)


def test_failed_chord_header_raises_the_first_failing_member_in_order(h: Harness) -> None:
    t = h.tasks
    header = [t.add.s(1, 1), t.fail_with.s("second"), t.add.s(2, 2), t.fail_with.s("fourth")]
    for _ in range(2):
        result = h.send(chord(header, t.tsum.s()))
        with pytest.raises(apps.IntegrationError, match="second"):
            result.get(timeout=DEADLINE)


def test_chord_body_errback_fires_once(h: Harness) -> None:
    t = h.tasks
    tag = f"chord-{uuid.uuid4().hex[:6]}"
    c = chord([t.fail.s(1), t.add.s(1, 1), t.fail.s(2)], t.tsum.s())
    c.link_error(t.on_error.s(tag=tag))
    result = h.send(c)
    with pytest.raises(ValueError):
        result.get(timeout=DEADLINE)
    calls = h.wait_for("the chord errback", lambda: _errbacks(h, tag))
    # The body failed inside the completion step of the last header member to finish; once
    # every member's step has returned, every errback message that could exist was published
    # before the one seen above ran.
    members = [m.id for m in result.parent]
    h.wait_for("the header's completions", lambda: all(_settled(h).get(i) for i in members))
    assert [c["id"] for c in _errbacks(h, tag)] == [result.id] and calls[0]["style"] == "old"


def test_group_errback_fires_once_per_failing_member(h: Harness) -> None:
    t = h.tasks
    tag = f"group-{uuid.uuid4().hex[:6]}"
    g = group(t.fail.s(1), t.add.s(1, 1), t.fail_with.s("x"))
    g.link_error(t.on_error_new.s(tag=tag))
    result = h.send(g)
    with pytest.raises(ValueError):
        result.get(timeout=DEADLINE)
    result.get(timeout=DEADLINE, propagate=False)
    failed = sorted(r.id for r in result if r.failed())
    assert len(failed) == 2
    h.wait_for("two errbacks", lambda: len(_errbacks(h, tag)) >= 2)
    h.wait_for("the completions", lambda: all(_settled(h).get(i) for i in failed))
    calls = _errbacks(h, tag)
    assert sorted(c["id"] for c in calls) == failed
    assert sorted(c["exc"] for c in calls) == [
        "IntegrationError: x",
        "ValueError: ('fail', 1)",
    ]
    assert {c["style"] for c in calls} == {"new"}


def test_errback_on_a_plain_task(h: Harness) -> None:
    t = h.tasks
    tag = f"plain-{uuid.uuid4().hex[:6]}"
    result = h.send(t.fail_with.s("plain"), link_error=t.on_error_new.s(tag=tag))
    with pytest.raises(apps.IntegrationError, match="plain"):
        result.get(timeout=DEADLINE)
    calls = h.wait_for("the errback", lambda: _errbacks(h, tag))
    assert calls[0]["id"] == result.id and calls[0]["exc"] == "IntegrationError: plain"


def test_link_callback_and_group_link(h: Harness) -> None:
    t = h.tasks
    tag = f"link-{uuid.uuid4().hex[:6]}"
    sig = t.add.s(2, 3)
    sig.link(t.record.s(tag=tag))
    # As in Celery, a group's callback is an immutable copy on its first member
    g = group(t.add.s(1, 1), t.add.s(2, 2))
    g.link(t.record.s("group done", tag=tag))
    assert h.send(sig).get(timeout=DEADLINE) == 5
    assert h.send(g).get(timeout=DEADLINE) == [2, 4]

    def runs() -> list[Any]:
        found = sorted(repr(r["value"]) for r in h.records("runs.log") if r["tag"] == tag)
        return found if len(found) >= 2 else []

    assert h.wait_for("both callbacks", runs) == ["'group done'", "5"]


# -- replace, map, starmap, chunks, retries -------------------------------------------------------
def test_replace_keeps_the_id_and_the_place(h: Harness) -> None:
    t = h.tasks
    sig = t.replace_with_chain.s()
    first = sig.freeze()
    result = h.send(t.add.s(1, 1) | sig | t.add.s(1))
    assert result.get(timeout=DEADLINE) == (2 + 100) * 2 + 1
    assert result.parent.id == first.id and result.parent.get(timeout=1) == 204
    assert h.send(t.add.s(1, 1) | t.replace_with_group.s() | t.tsum.s()).get(timeout=DEADLINE) == (
        3 + 4
    )


def test_replace_a_plain_task(h: Harness) -> None:
    result = h.send(h.tasks.replace_with_chain.s(1))
    assert result.get(timeout=DEADLINE) == 202


def test_map_starmap_chunks(h: Harness) -> None:
    t = h.tasks
    assert h.send(t.ident.map([1, 2, 3])).get(timeout=DEADLINE) == [1, 2, 3]
    assert h.send(t.add.starmap([(1, 2), (3, 4)])).get(timeout=DEADLINE) == [3, 7]
    chunked = t.add.chunks([(i, i) for i in range(10)], 4)
    assert h.send(chunked).get(timeout=DEADLINE) == [[0, 2, 4, 6], [8, 10, 12, 14], [16, 18]]
    assert h.send(chunked.group()).get(timeout=DEADLINE) == [
        [0, 2, 4, 6],
        [8, 10, 12, 14],
        [16, 18],
    ]


def test_retry_inside_a_chain(h: Harness) -> None:
    t = h.tasks
    result = h.send(t.add.s(1, 1) | t.flaky.s(2) | t.mul.s(10))
    assert result.get(timeout=DEADLINE) == 20
    assert result.parent.get(timeout=1) == 2


# -- exactly-once wiring under duplicate delivery -------------------------------------------------
def _settled(h: Harness) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in h.records("settled.log"):
        counts[record["id"]] = counts.get(record["id"], 0) + 1
    return counts


def _duplicates_seen(h: Harness, node_id: str) -> bool:
    """The worker met a second first-delivery of ``node_id`` and acked it unrun."""
    return any(
        node_id in line and "duplicate message" in line
        for line in h.log.read_text(errors="replace").splitlines()
    )


def test_duplicate_delivery_wires_the_chord_body_once(h: Harness) -> None:
    t = h.tasks
    tag = f"body-{uuid.uuid4().hex[:6]}"
    canvas = chord([t.add.s(1, 1), t.add.s(2, 2), t.add.s(3, 3)], t.record.s(tag=tag))
    # Given a stored chord whose header messages are all published twice, at once
    workflow = dag.compile(canvas)
    dispatch.start(h.app, workflow)
    header = [n for n in workflow.nodes if n.kind == TASK and n.task == "it.add"]
    messages.publish(h.app, [messages.for_node(h.app, workflow.id, n, n.args) for n in header])
    result = h.app.AsyncResult(workflow.id)
    h.sent.append(result)
    # When every header node has been handled twice (one copy claims the run, its twin is
    # acked unrun)
    assert result.get(timeout=DEADLINE) == [2, 4, 6]
    h.wait_for(
        "both copies of every header node",
        lambda: all(_duplicates_seen(h, n.id) for n in header),
    )
    assert all(_settled(h).get(n.id, 0) == 1 for n in header)
    # Then the body ran once
    body_runs = [r for r in h.records("runs.log") if r["tag"] == tag]
    assert [r["value"] for r in body_runs] == [[2, 4, 6]]


def test_a_node_redelivered_after_the_fact_publishes_nothing(h: Harness) -> None:
    t = h.tasks
    tag = f"after-{uuid.uuid4().hex[:6]}"
    result = h.send(t.add.s(1, 1) | t.record.s(tag=tag))
    assert result.get(timeout=DEADLINE) == 2
    first = result.parent
    # Given the first node's message delivered again once the chain has finished
    spec = h.app.backend.node_specs(result.workflow.id, [first.id])[0]
    assert spec is not None
    node = complete.load_node(spec)
    messages.publish(h.app, [messages.for_node(h.app, result.workflow.id, node, node.args)])
    h.wait_for("the second copy to be handled", lambda: _duplicates_seen(h, first.id))
    # Then its successor did not run again, and the first outcome stands
    assert [r["value"] for r in h.records("runs.log") if r["tag"] == tag] == [2]
    assert first.get(timeout=1) == 2


# -- size and scale ------------------------------------------------------------------------------
def _largest_message(h: Harness, workflow_id: str, client: list[int]) -> int:
    sizes = [int(r["bytes"]) for r in h.records("wire.log") if r["workflow"] == workflow_id]
    return max(sizes + client)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_thousand_step_chain_messages_stay_small(h: Harness) -> None:
    t = h.tasks
    canvas = chain(t.add.s(0, 1), *(t.add.s(1) for _ in range(999)))
    client: list[int] = []

    def measure(sender: Any = None, body: bytes = b"", headers: Any = None, **_: Any) -> None:
        packed = msgpack.packb(dict(headers or {}), use_bin_type=True, default=repr)
        client.append(len(body) + len(packed))

    signals.before_task_publish.connect(measure)
    try:
        started = time.monotonic()
        result = h.send(canvas)
    finally:
        signals.before_task_publish.disconnect(measure)
    assert result.get(timeout=100) == 1000
    h.timings["chain-1000"] = time.monotonic() - started
    workflow_id = result.workflow.id
    h.wait_for(
        "999 messages published by the worker",
        lambda: len([r for r in h.records("wire.log") if r["workflow"] == workflow_id]) >= 999,
    )
    largest = _largest_message(h, workflow_id, client)
    h.figures["chain-1000 largest message (bytes)"] = largest
    assert largest < 2048
    assert result.parent.parent.get(timeout=1) == 998


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_thousand_member_group(h: Harness) -> None:
    t = h.tasks
    started = time.monotonic()
    result = h.send(group(t.add.s(i, 1) for i in range(1000)))
    assert result.get(timeout=100) == [i + 1 for i in range(1000)]
    h.timings["group-1000"] = time.monotonic() - started


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_thousand_member_chord(h: Harness) -> None:
    t = h.tasks
    started = time.monotonic()
    result = h.send(chord((t.add.s(i, 1) for i in range(1000)), t.tsum.s()))
    assert result.get(timeout=100) == sum(i + 1 for i in range(1000))
    h.timings["chord-1000"] = time.monotonic() - started
