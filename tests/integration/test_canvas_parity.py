"""Celery 5.7 parity against a real worker: ``canvas worker -c 2 -P prefork`` in a subprocess,
on Redis, and on RabbitMQ with Redis results.

Every test states one behaviour of Celery 5.7 (docs/canvas-parity.md) in canvas's words and runs
it the way a migrated project would, with Celery's import paths (``canvas.canvas``). The worker
and the tests share record files (see ``tests/integration/apps/parity_app.py``); waits are on
conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from canvas import GroupResult, ResultSet
from canvas.canvas import StampingVisitor, chain, chord, group, signature
from canvas.exceptions import ChordError, ImproperlyConfigured, TaskRevokedError
from tests.integration.apps import parity_app
from tests.support.servers import AMQP_URL, REDIS_URL, check_amqp, check_redis, redis_db
from tests.support.worker_harness import DEADLINE, WorkerHarness, start

pytestmark = pytest.mark.integration

RESULTS = redis_db(12)
PAIRS = {"redis": (REDIS_URL, RESULTS), "amqp+redis": (AMQP_URL, RESULTS)}


@pytest.fixture(scope="module", params=list(PAIRS))
def h(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    broker, backend = PAIRS[request.param]
    check_redis(backend)
    if broker.startswith("amqp"):
        check_amqp()
    else:
        check_redis(broker)
    directory = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    harness = start(
        request.param,
        "tests.integration.apps.parity_app",
        parity_app.make_app,
        broker,
        backend,
        directory,
    )
    try:
        ping = harness.send(t(harness).ping.s())
        harness.wait_for("the worker to answer a ping", ping.ready, timeout=60)
        yield harness
    finally:
        harness.stop()
        harness.clean_up()


class _Tasks:
    def __init__(self, harness: WorkerHarness) -> None:
        self._app = harness.app

    def __getattr__(self, name: str) -> Any:
        return self._app.tasks[f"pa.{name}"]


def t(harness: WorkerHarness) -> Any:
    """``t(h).add`` is the app's ``pa.add``."""
    return _Tasks(harness)


def tag() -> str:
    return uuid.uuid4().hex[:8]


def errbacks(h: WorkerHarness, label: str) -> list[dict[str, Any]]:
    return [r for r in h.records("errbacks.log") if r["tag"] == label]


def runs(h: WorkerHarness, label: str) -> list[dict[str, Any]]:
    return [r for r in h.records("runs.log") if r["tag"] == label]


def settled(h: WorkerHarness, result: Any) -> Any:
    """Wait until the handle and every ``.parent`` before it is ready; return the handle."""

    def ready(node: Any) -> bool:
        while node is not None:
            if not node.ready():
                return False
            node = node.parent
        return True

    h.wait_for("the workflow to settle", lambda: ready(result))
    return result


# -- shapes run as Celery runs them ----------------------------------------------------------------
def test_group_or_group_and_group_or_task_or_task(h: WorkerHarness) -> None:
    a = t(h)
    both = group(a.add.s(1, 1), a.add.s(2, 2)) | group(a.tsum.s(), a.tsum.s())
    assert isinstance(both, chord)
    assert h.send(both).get(timeout=DEADLINE) == [6, 6]
    body_chain = group(a.add.s(1, 1), a.add.s(2, 2)) | a.tsum.s() | a.add.s(10)
    result = h.send(body_chain)
    assert result.get(timeout=DEADLINE) == 16
    # A chord sent alone: the result's parent is the header, as in Celery
    assert isinstance(result.parent, GroupResult) and result.parent.get(timeout=1) == [2, 4]


def test_chord_or_chord_and_chain_ending_in_a_chord_or_task(h: WorkerHarness) -> None:
    a = t(h)
    two = chord([a.add.s(1, 1)], a.tsum.s()) | chord([a.add.s(1), a.add.s(2)], a.tsum.s())
    assert isinstance(two, chord)
    assert h.send(two).get(timeout=DEADLINE) == 7
    extended = chain(a.add.s(1, 1), chord([a.add.s(1), a.add.s(2)], a.tsum.s())) | a.add.s(100)
    assert h.send(extended).get(timeout=DEADLINE) == 107


def test_task_objects_in_chord_headers(h: WorkerHarness) -> None:
    a = t(h)
    inner = chain(a.tsum.s(), group(a.add.s(8), a.add.s(16)), a.tsum.s() | a.add.s(32))
    canvas = chord([a.add.s(0, 1)], chord([a.tsum, a.tsum], inner))
    assert h.send(canvas).get(timeout=DEADLINE) == 60


def test_group_results_reaching_the_next_step(h: WorkerHarness) -> None:
    a = t(h)
    middle = chain(a.identity.s(42), group(a.identity.s(), a.identity.s()), a.identity.s())
    assert h.send(middle).get(timeout=DEADLINE) == [42, 42]
    lone = group(a.add.s(1, 2) | group(a.add.s(1), a.add.s(2)))
    assert h.send(lone).get(timeout=DEADLINE) == [4, 5]


def test_freeze_then_send_keeps_the_ids(h: WorkerHarness) -> None:
    a = t(h)
    canvas = a.add.s(1, 1) | a.add.s(2)
    frozen = canvas.freeze()
    assert canvas.id == frozen.id
    result = h.send(canvas)
    assert result.id == frozen.id and result.parent.id == frozen.parent.id
    assert result.get(timeout=DEADLINE) == 4
    g = group(a.add.s(1, 1), a.add.s(2, 2))
    g_frozen = g.freeze()
    sent = h.send(g)
    assert sent.id == g_frozen.id == g.id
    assert [r.id for r in sent.results] == [r.id for r in g_frozen.results]


def test_invert_sends_and_waits(h: WorkerHarness) -> None:
    a = t(h)
    assert ~a.add.s(1, 2) == 3
    assert ~(a.add.s(1, 2) | a.add.s(3)) == 6
    assert ~a.identity.map([1, 2]) == [1, 2]
    assert ~a.tsum.starmap([([1, 2],), ([3],)]) == [3, 3]


NESTINGS = [
    "chain in chord",
    "chord in chain",
    "chord in group",
    "group in chord",
    "chord in chord",
]


@pytest.mark.parametrize("kind", NESTINGS)
def test_a_canvas_returned_by_a_task_round_trips_and_runs_the_same(
    h: WorkerHarness, kind: str
) -> None:
    a = t(h)
    # Given a task that returns a nested canvas, and one that rebuilds it from its dict
    described = h.send(a.nested.s(kind) | a.rebuild.s()).get(timeout=DEADLINE)
    shape, data = described
    # Then nothing was lost on the way
    assert json.dumps(shape).count("pa.") >= 3
    # ... and the rebuilt canvas runs to the same result as the original
    original = h.send(a.nested.s(kind)).get(timeout=DEADLINE)
    assert isinstance(original, dict)
    rebuilt = signature(data, app=h.app)
    assert h.send(rebuilt).get(timeout=DEADLINE) == h.send(signature(original, app=h.app)).get(
        timeout=DEADLINE
    )


def test_a_generator_header_starts_before_it_is_exhausted(h: WorkerHarness) -> None:
    a = t(h)
    label = tag()

    def members() -> Iterator[Any]:
        for i in range(4):
            if i == 3:
                # The last member is produced only once the first one has run
                h.wait_for(
                    "the first member to run",
                    lambda: any(r["tag"] == label for r in h.records("members.log")),
                )
            yield a.member.si(i, tag=label)

    result = h.send(chord(members(), a.tsum.s()))
    assert result.get(timeout=DEADLINE) == 6


def test_a_frozen_signature_runs_in_two_chords(h: WorkerHarness) -> None:
    a = t(h)
    shared = a.add.si(5, 5)
    shared.freeze()
    first = h.send(chord([shared, a.add.si(1, 1)], a.tsum.s()))
    second = h.send(chord([shared.clone(), a.add.si(2, 2)], a.tsum.s()))
    assert first.get(timeout=DEADLINE) == 12 and second.get(timeout=DEADLINE) == 14


# -- errbacks and failures -------------------------------------------------------------------------
def test_a_long_chain_failing_at_its_first_step_runs_the_errback_once(h: WorkerHarness) -> None:
    a = t(h)
    label = tag()
    steps = chain(a.fail.si(), *(a.identity.si(1) for _ in range(41)))
    steps.link_error(a.on_error.s(tag=label))
    result = h.send(steps)
    with pytest.raises(parity_app.ParityError):
        result.get(timeout=DEADLINE)
    first = result
    while first.parent is not None:
        first = first.parent
    calls = h.wait_for("the errback", lambda: errbacks(h, label))
    # Every step has settled, so any other errback message would exist by now
    settled(h, result)
    assert [c["id"] for c in errbacks(h, label)] == [first.id] and calls[0]["style"] == "old"


def test_the_same_errback_linked_twice_runs_once(h: WorkerHarness) -> None:
    a = t(h)
    label = tag()
    sig = a.fail.si()
    sig.link_error(a.on_error.s(tag=label))
    sig.link_error(a.on_error.s(tag=label))
    result = h.send(sig)
    with pytest.raises(parity_app.ParityError):
        result.get(timeout=DEADLINE)
    h.wait_for("the errback", lambda: errbacks(h, label))
    assert len(errbacks(h, label)) == 1


def test_a_failed_chord_header_fails_the_body_with_a_chord_error(h: WorkerHarness) -> None:
    a = t(h)
    label = tag()
    canvas = chord([a.add.s(1, 1), a.fail.s(7), a.add.s(2, 2)], a.tsum.s())
    canvas.link_error(a.on_error_new.s(tag=label))
    result = h.send(canvas)
    # get() raises the member's own exception (the failed parent first, as in Celery)
    with pytest.raises(parity_app.ParityError):
        result.get(timeout=DEADLINE)
    settled(h, result)
    failed = result.parent.results[1]
    expected = f"Dependency {failed.id} raised ParityError('boom', 7)"
    assert isinstance(result.result, ChordError) and str(result.result) == expected
    with pytest.raises(ChordError, match="Dependency"):
        result.get(timeout=1, follow_parents=False)
    calls = h.wait_for("the body's errback", lambda: errbacks(h, label))
    assert [(c["style"], c["id"], c["exc"]) for c in calls] == [
        ("new", result.id, f"ChordError: {expected}")
    ]


def test_a_failed_chord_header_with_a_chain_body_reports_the_chains_last_task(
    h: WorkerHarness,
) -> None:
    a = t(h)
    label = tag()
    canvas = chord([a.add.s(1, 1), a.fail.s()], a.add.s(1) | a.add.s(2))
    canvas.link_error(a.on_error.s(tag=label))
    result = h.send(canvas)
    with pytest.raises(parity_app.ParityError):
        result.get(timeout=DEADLINE)
    calls = h.wait_for("the errback", lambda: errbacks(h, label))
    assert [c["id"] for c in calls] == [result.id]


def test_a_failing_chord_body_tells_its_errback_its_own_id(h: WorkerHarness) -> None:
    a = t(h)
    label = tag()
    canvas = chord([a.identity.si(42)], a.fail.s())
    canvas.link_error(a.on_error.s(tag=label))
    result = h.send(canvas)
    with pytest.raises(parity_app.ParityError):
        result.get(timeout=DEADLINE)
    calls = h.wait_for("the errback", lambda: errbacks(h, label))
    assert [c["id"] for c in calls] == [result.id]


def test_header_errbacks_when_the_setting_allows_them(h: WorkerHarness) -> None:
    a = t(h)
    label = tag()
    h.app.conf.task_allow_error_cb_on_chord_header = True
    try:
        canvas = chord([a.fail.si(), a.identity.si(42), a.fail.si()], a.record.si(tag="never"))
        canvas.link_error(a.record.si(tag=label))
    finally:
        h.app.conf.task_allow_error_cb_on_chord_header = False
    result = h.send(canvas)
    with pytest.raises(parity_app.ParityError):
        result.get(timeout=DEADLINE)
    # one for each failed header member, one for the body
    h.wait_for("three errbacks", lambda: len(runs(h, label)) >= 3)
    settled(h, result)
    assert len(runs(h, label)) == 3 and not runs(h, "never")


def test_replacing_with_an_empty_chain_fails_the_task(h: WorkerHarness) -> None:
    a = t(h)
    result = h.send(a.identity.s(1) | a.replace_with_nothing.s())
    with pytest.raises(ImproperlyConfigured, match="Cannot replace with an empty chain"):
        result.get(timeout=DEADLINE)


# -- ids -------------------------------------------------------------------------------------------
def test_ids_in_a_chain_and_a_group(h: WorkerHarness) -> None:
    a = t(h)
    result = h.send(a.ids.si(1) | a.ids.si(2) | group(a.ids.si(i) for i in range(3, 8)))
    second, first = result.parent, result.parent.parent
    assert first.get(timeout=DEADLINE) == [first.id, None, 1]
    assert second.get(timeout=DEADLINE) == [first.id, first.id, 2]
    assert all(v[:2] == [first.id, second.id] for v in result.get(timeout=DEADLINE))
    alone = h.send(group(a.ids.si(1), a.ids.si(2)))
    values = alone.get(timeout=DEADLINE)
    assert [v[:2] for v in values] == [[m.id, None] for m in alone.results]


def test_ids_in_a_chord(h: WorkerHarness) -> None:
    a = t(h)
    root = a.ids.si(1)
    root_id = root.freeze().id
    canvas = root | a.ids.si(2) | group(a.ids.si(i) for i in range(3, 9)) | a.collect_ids.s(i=9)
    result = h.send(canvas | a.ids.si(10))
    last = result.get(timeout=DEADLINE)
    body = result.parent
    header = body.parent
    assert last == [root_id, body.id, 10]
    previous, (body_root, body_parent, _) = body.get(timeout=1)
    assert body_root == root_id and body_parent in [m.id for m in header.results]
    assert all(p[:2] == [root_id, header.parent.id] for p in previous)


def test_ids_after_a_replace_and_from_inside_a_task(h: WorkerHarness) -> None:
    a = t(h)
    replaced = a.replace_with_ids.si()
    replaced_id = replaced.freeze().id
    result = h.send(a.ids.si(1) | replaced | a.ids.si(12))
    first = result.parent.parent
    assert result.get(timeout=DEADLINE) == [first.id, replaced_id, 12]
    inner_ids = h.send(a.send_from_task.si())
    last_id, first_id = inner_ids.get(timeout=DEADLINE)
    inner_first = h.app.AsyncResult(first_id).get(timeout=DEADLINE)
    assert inner_first == [inner_ids.id, inner_ids.id, 1]
    assert h.app.AsyncResult(last_id).get(timeout=DEADLINE) == [inner_ids.id, first_id, 2]


# -- priority --------------------------------------------------------------------------------------
def test_priority_reaches_the_request(h: WorkerHarness) -> None:
    a = t(h)
    assert h.send(a.priority.s().set(priority=3)).get(timeout=DEADLINE) == 3
    first_only = h.send(chain(a.priority.s(), a.priority.s()), priority=4)
    assert first_only.parent.get(timeout=DEADLINE) == 4
    assert h.send(group(a.priority.s(), a.priority.s()), priority=5).get(timeout=DEADLINE) == [5, 5]
    assert h.send(chord([a.priority.s()], a.priority.s()), priority=6).get(timeout=DEADLINE) == 6


def test_priority_orders_messages_in_the_broker(h: WorkerHarness) -> None:
    a = t(h)
    # Given a queue no worker reads, a low-priority call sent before a high-priority one
    queue = f"prio-{tag()}"
    low = a.identity.s("low").set(queue=queue, priority=1).apply_async()
    high = a.identity.s("high").set(queue=queue, priority=8).apply_async()
    consumer = h.app.transport.consumer([queue], 1)
    try:
        # When the queue is read
        first = h.wait_for("a message", lambda: consumer.get(timeout=0.5))
        first.ack()
        second = h.wait_for("a message", lambda: consumer.get(timeout=0.5))
        second.ack()
    finally:
        consumer.close()
        h.app.transport.purge(queue)
    # Then the high-priority one comes first
    assert [first.headers["id"], second.headers["id"]] == [high.id, low.id]


# -- stamping --------------------------------------------------------------------------------------
class Stamp42(StampingVisitor):
    def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
        return {"stamp": 42}


def test_stamps_reach_every_task_of_a_canvas_and_survive_a_retry(h: WorkerHarness) -> None:
    a = t(h)
    canvas = chord([a.stamps.si(), a.stamps.si() | a.stamps.si()], a.stamps.si())
    canvas.stamp(visitor=Stamp42(), tenant="acme")
    expected = {"stamp": 42, "tenant": "acme"}
    result = h.send(canvas)
    assert result.get(timeout=DEADLINE) == expected
    assert result.parent.get(timeout=DEADLINE) == [expected, expected]
    retried = a.retry_stamps.si()
    retried.stamp(visitor=Stamp42())
    assert h.send(retried).get(timeout=DEADLINE) == {"stamp": 42}


def test_revoke_by_stamped_headers_refuses_the_stamped_tasks(h: WorkerHarness) -> None:
    a = t(h)
    tenant = tag()
    # Given the stamp tenant=<tenant> revoked on the workers
    replies = h.app.control.revoke_by_stamped_headers({"tenant": tenant}, reply=True)
    assert replies
    # When a task stamped with it is sent (parked a moment, then delivered), and one without
    stamped = a.stamps.si().set(countdown=1)
    stamped.stamp(tenant=tenant)
    other = a.stamps.si()
    other.stamp(tenant=f"not-{tenant}")
    revoked, kept = h.send(stamped), h.send(other)
    # Then the stamped one never runs, and the other does
    with pytest.raises(TaskRevokedError):
        revoked.get(timeout=DEADLINE)
    assert kept.get(timeout=DEADLINE) == {"tenant": f"not-{tenant}"}


# -- add_to_chord, result sets, saved groups ------------------------------------------------------
def test_add_to_chord_adds_members_the_body_waits_for(h: WorkerHarness) -> None:
    a = t(h)
    tasks = h.send(group([a.add_to_chord.s([1, 2, 3], 4)]) | a.identity.s())
    assert sorted(tasks.get(timeout=DEADLINE)) == [0, 5, 6, 7]
    canvases = h.send(group([a.add_chord_to_chord.s([1, 2, 3], 4)]) | a.identity.s())
    assert sorted(canvases.get(timeout=DEADLINE)) == [0, 5 + 6 + 7]


def test_result_sets_and_saved_group_results(h: WorkerHarness) -> None:
    a = t(h)
    built = ResultSet([], app=h.app)
    built.add(h.send(a.add.s(1, 1)))
    built.add(h.send(a.add.s(2, 2)))
    assert built.get(timeout=DEADLINE) == [2, 4]
    sent = h.send(group(a.add.s(1, 1), a.add.s(2, 2)))
    sent.save()
    restored = GroupResult.restore(sent.id, app=h.app)
    assert restored.get(timeout=DEADLINE) == [2, 4]
    restored.delete()
    assert GroupResult.restore(sent.id, app=h.app) is None
    empty = h.send(group([], app=h.app))
    empty.save()
    assert GroupResult.restore(empty.id, app=h.app).results == []
    assert bool(empty) and empty.get(timeout=DEADLINE) == []
