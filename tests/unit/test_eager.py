"""Eager execution: ``.apply()`` and ``task_always_eager`` run a canvas here, as workers would.

Results and errors follow the same compiled workflow as the distributed engine (the property
tests compare the two); these tests pin down the values Celery documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from canvas import Canvas, EagerResult, GroupResult, chain, chord, group
from canvas.exceptions import ChordError
from canvas.task import Task


class Oops(Exception):
    """An exception type of the test module (rebuilt by type, not as RemoteError)."""


@dataclass
class Calls:
    """What the recording tasks saw, in order."""

    errbacks: list[tuple[Any, ...]] = field(default_factory=list)
    runs: list[tuple[str, Any]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)


@dataclass
class Tasks:
    app: Canvas
    calls: Calls
    add: Task
    mul: Task
    tsum: Task
    ident: Task
    fail: Task
    fail_with: Task
    record: Task
    on_error: Task
    on_error_new: Task
    flaky: Task
    always_retry: Task
    replace_with_chain: Task
    replace_with_group: Task
    replace_with_failure: Task


def _make(**settings: Any) -> Tasks:
    app = Canvas("eager-tests", set_as_current=False, **settings)
    calls = Calls()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    @app.task
    def ident(x: Any) -> Any:
        return x

    @app.task
    def fail(*args: Any) -> None:
        raise ValueError("fail", *args)

    @app.task
    def fail_with(message: str, *args: Any) -> None:
        raise Oops(message)

    @app.task
    def record(value: Any, tag: str = "") -> Any:
        calls.runs.append((tag, value))
        return value

    @app.task
    def on_error(task_id: str, *, tag: str = "") -> None:  # one positional: old style
        calls.errbacks.append(("old", tag, task_id))

    @app.task
    def on_error_new(
        request: Any, exc: BaseException, traceback: str | None, tag: str = ""
    ) -> None:
        calls.errbacks.append(("new", tag, request.id, type(exc).__name__, str(exc)))

    @app.task(bind=True, max_retries=5)
    def flaky(self: Task, key: str, fails: int) -> str:
        calls.attempts[key] = calls.attempts.get(key, 0) + 1
        if self.request.retries < fails:
            raise self.retry(countdown=60, exc=Oops(f"attempt {self.request.retries}"))
        return f"ok after {self.request.retries}"

    @app.task(bind=True, max_retries=2)
    def always_retry(self: Task) -> None:
        raise self.retry(exc=Oops("still failing"))

    @app.task(bind=True)
    def replace_with_chain(self: Task, x: int) -> Any:
        return self.replace(add.s(x, 100) | mul.s(2))

    @app.task(bind=True)
    def replace_with_group(self: Task, x: int) -> Any:
        return self.replace(group(add.s(x, 1), add.s(x, 2)))

    @app.task(bind=True)
    def replace_with_failure(self: Task, x: int) -> Any:
        return self.replace(add.s(x, 1) | fail.s())

    return Tasks(
        app,
        calls,
        add,
        mul,
        tsum,
        ident,
        fail,
        fail_with,
        record,
        on_error,
        on_error_new,
        flaky,
        always_retry,
        replace_with_chain,
        replace_with_group,
        replace_with_failure,
    )


@pytest.fixture
def t() -> Iterator[Tasks]:
    tasks = _make()
    yield tasks
    tasks.app.close()


# -- values --------------------------------------------------------------------------------------
def test_chain_prepends_the_parent_result(t: Tasks) -> None:
    # Given add(8) after a task that returns 8 ...
    result = (t.add.s(4, 4) | t.add.s(2) | t.mul.s(10)).apply()
    # Then add(8, 2) ran, then mul(10, 10)
    assert result.get() == 100
    assert [result.parent.get(), result.parent.parent.get()] == [10, 8]


def test_immutable_step_ignores_the_parent_result(t: Tasks) -> None:
    assert (t.add.s(1, 1) | t.add.si(5, 5)).apply().get() == 10


def test_group_results_in_member_order(t: Tasks) -> None:
    result = group(t.add.s(i, i) for i in range(5)).apply()
    assert isinstance(result, GroupResult)
    assert result.get() == [0, 2, 4, 6, 8] and result.successful()


def test_chord_gets_header_results_in_order(t: Tasks) -> None:
    result = chord([t.add.s(i, 1) for i in range(4)], t.tsum.s()).apply()
    assert result.get() == 10
    assert result.parent.get() == [1, 2, 3, 4]


def test_chord_header_called_then_body() -> None:
    eager = _make(task_always_eager=True)
    result = chord([eager.add.s(1, 1), eager.add.s(2, 2)])(eager.tsum.s())
    assert result.get() == 6
    eager.app.close()


def test_group_then_task_is_a_chord_even_for_one_member(t: Tasks) -> None:
    assert (group(t.add.s(2, 2)) | t.ident.s()).apply().get() == [4]


def test_empty_chord_header_calls_the_body_with_an_empty_list(t: Tasks) -> None:
    assert chord([], t.ident.s()).apply().get() == []
    assert (t.add.s(1, 1) | chord([], t.tsum.s())).apply().get() == 0


def test_chord_header_chains_contribute_their_last_value(t: Tasks) -> None:
    result = chord([t.add.s(1, 1) | t.mul.s(10), t.add.s(3, 3)], t.ident.s()).apply()
    assert result.get() == [20, 6]


def test_chain_ending_in_group_contributes_a_nested_list(t: Tasks) -> None:
    header = [t.add.s(1, 1) | group(t.add.s(1), t.add.s(2)), t.add.s(5, 5)]
    assert chord(header, t.ident.s()).apply().get() == [[3, 4], 10]


def test_chain_ending_in_a_group_returns_a_group_result(t: Tasks) -> None:
    result = (t.add.s(1, 1) | group(t.add.s(1), t.mul.s(3))).apply()
    assert isinstance(result, GroupResult) and result.get() == [3, 6]
    assert result.parent.get() == 2


def test_issue_example(t: Tasks) -> None:
    canvas = t.add.s(2, 2) | t.add.s(4) | chord([t.add.s(i) for i in range(10)], t.tsum.s())
    assert canvas.apply().get() == 125


def test_chord_in_a_chain_in_a_group(t: Tasks) -> None:
    inner = t.add.s(1, 1) | chord([t.add.s(1), t.add.s(2)], t.tsum.s())
    assert group(inner, t.add.s(0, 0)).apply().get() == [7, 0]


def test_chain_of_nine_chords(t: Tasks) -> None:
    steps = [chord([t.add.s(i) for i in range(3)], t.tsum.s()) for _ in range(9)]
    value = 1
    for _ in range(9):
        value = sum(value + i for i in range(3))
    assert chain(t.add.s(0, 1), *steps).apply().get() == value


def test_group_of_chords_with_chain_bodies(t: Tasks) -> None:
    canvas = group(
        chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s() | t.add.s(1)),
        chord([t.add.s(3, 3)], t.tsum.s() | t.mul.s(2)),
    )
    assert canvas.apply().get() == [7, 12]


def test_args_reach_the_first_task_of_a_chain_and_every_header_member(t: Tasks) -> None:
    assert (t.add.s(1) | t.mul.s(2)).apply((5,)).get() == 12
    assert chord([t.add.s(1), t.add.s(2)], t.tsum.s()).apply((10,)).get() == 23
    assert group(t.add.s(1), t.add.s(2)).apply((10,)).get() == [11, 12]


def test_link_callback_gets_the_result(t: Tasks) -> None:
    sig = t.add.s(2, 3)
    sig.link(t.record.s(tag="linked"))
    assert sig.apply().get() == 5
    assert t.calls.runs == [("linked", 5)]


def test_group_link_runs_once_after_the_first_member(t: Tasks) -> None:
    # Celery links an immutable copy to the first member: it runs once, with its own args
    g = group(t.add.s(1, 1), t.add.s(2, 2))
    g.link(t.record.s("done", tag="after-group"))
    assert g.apply().get() == [2, 4]
    assert t.calls.runs == [("after-group", "done")]


# -- map, starmap, chunks ------------------------------------------------------------------------
def test_map_starmap_chunks(t: Tasks) -> None:
    assert t.ident.map([1, 2, 3]).apply().get() == [1, 2, 3]
    assert t.add.starmap([(1, 2), (3, 4)]).apply().get() == [3, 7]
    chunked = t.add.chunks([(i, i) for i in range(5)], 2)
    assert chunked.apply().get() == [[0, 2], [4, 6], [8]]
    assert chunked.group().apply().get() == [[0, 2], [4, 6], [8]]


def test_map_in_a_chain_ignores_the_previous_result(t: Tasks) -> None:
    assert (t.add.s(1, 1) | t.ident.map([7, 8])).apply().get() == [7, 8]


# -- errors and errbacks -------------------------------------------------------------------------
def test_failure_fails_descendants_with_the_same_exception(t: Tasks) -> None:
    # Given add | fail | group(...)   (celery#6437 hangs on this)
    result = (t.add.s(1, 1) | t.fail.s() | group(t.add.s(1), t.add.s(2))).apply()
    # Then every member failed with fail's own exception
    assert isinstance(result, GroupResult) and result.failed()
    for member in result:
        assert member.state == "FAILURE"
        assert isinstance(member.result, ValueError) and member.result.args == ("fail", 2)
    with pytest.raises(ValueError, match="fail"):
        result.get()


def test_failed_chord_header_raises_the_first_failing_member_in_order(t: Tasks) -> None:
    # Given a header whose second and fourth members fail with different messages
    header = [t.add.s(1, 1), t.fail_with.s("second"), t.add.s(2, 2), t.fail_with.s("fourth")]
    for _ in range(3):
        result = chord(header, t.tsum.s()).apply()
        # Then get() raises the original exception of the first failure by position, every time
        with pytest.raises(Oops, match="second"):
            result.get()
        # ... the body's own result being Celery's ChordError naming that member
        failed = result.parent.results[1]
        assert isinstance(result.result, ChordError)
        assert str(result.result) == f"Dependency {failed.id} raised Oops('second')"


def test_old_style_errback_gets_the_failed_task_id(t: Tasks) -> None:
    sig = t.fail.s(1).set(task_id="failing-id")
    sig.link_error(t.on_error.s(tag="old"))
    result = sig.apply()
    assert result.failed()
    assert t.calls.errbacks == [("old", "old", "failing-id")]


def test_new_style_errback_gets_request_exc_traceback(t: Tasks) -> None:
    sig = t.fail_with.s("bad").set(task_id="failing-id")
    sig.link_error(t.on_error_new.s(tag="new"))
    sig.apply()
    assert t.calls.errbacks == [("new", "new", "failing-id", "Oops", "bad")]


def test_immutable_errback_gets_its_own_args_only(t: Tasks) -> None:
    sig = t.fail.s()
    sig.link_error(t.record.si("errback ran", tag="si"))
    sig.apply()
    assert t.calls.runs == [("si", "errback ran")]


def test_chord_body_link_error_fires_once_when_the_header_fails(t: Tasks) -> None:
    # Given a chord whose header has two failing members and an errback on the chord
    c = chord([t.fail.s(1), t.add.s(1, 1), t.fail.s(2)], t.tsum.s())
    c.link_error(t.on_error.s(tag="chord"))
    result = c.apply()
    # Then the errback fired once, for the body
    assert result.failed()
    assert t.calls.errbacks == [("old", "chord", result.id)]


def test_group_link_error_fires_once_per_failing_member(t: Tasks) -> None:
    g = group(t.fail.s(1), t.add.s(1, 1), t.fail.s(2))
    g.link_error(t.on_error.s(tag="group"))
    result: Any = g.apply()
    failed_ids = [r.id for r in result if r.failed()]
    assert sorted(e[2] for e in t.calls.errbacks) == sorted(failed_ids) and len(failed_ids) == 2


def test_chain_link_error_fires_once(t: Tasks) -> None:
    c = t.add.s(1, 1) | t.fail.s() | t.add.s(1) | group(t.add.s(1), t.add.s(2))
    c.link_error(t.on_error_new.s(tag="chain"))
    c.apply()
    assert [e[:2] for e in t.calls.errbacks] == [("new", "chain")]
    assert t.calls.errbacks[0][3:] == ("ValueError", "('fail', 2)")


def test_apply_async_link_error_option(t: Tasks) -> None:
    eager = _make(task_always_eager=True)
    eager.add.apply_async((1, 1), link_error=eager.on_error.s(tag="opt"), task_id="x")
    assert eager.calls.errbacks == []
    eager.fail.apply_async((1,), link_error=eager.on_error.s(tag="opt"), task_id="y")
    assert eager.calls.errbacks == [("old", "opt", "y")]
    eager.app.close()


def test_errback_failure_does_not_change_the_result(t: Tasks) -> None:
    sig = t.fail.s()
    sig.link_error(t.fail.s())
    result = sig.apply()
    assert result.failed() and result.result.args == ("fail",)


# -- replace ----------------------------------------------------------------------------------
def test_replace_with_a_chain_keeps_the_place_in_the_workflow(t: Tasks) -> None:
    result = (t.add.s(1, 1) | t.replace_with_chain.s() | t.add.s(1)).apply()
    assert result.get() == (2 + 100) * 2 + 1


def test_replace_with_a_group_forwards_the_list(t: Tasks) -> None:
    result = (t.add.s(1, 1) | t.replace_with_group.s() | t.tsum.s()).apply()
    assert result.get() == 3 + 4


def test_replace_keeps_the_task_id(t: Tasks) -> None:
    result = t.replace_with_chain.s(1).set(task_id="kept").apply()
    assert result.id == "kept" and result.get() == 202


def test_replacement_failure_fails_the_replaced_node_and_fires_its_errback(t: Tasks) -> None:
    sig = t.replace_with_failure.s(1).set(task_id="r")
    sig.link_error(t.on_error.s(tag="replaced"))
    result = (sig | t.add.s(1)).apply()
    assert result.failed() and result.result.args == ("fail", 2)
    assert t.calls.errbacks == [("old", "replaced", "r")]


# -- retries ----------------------------------------------------------------------------------
def test_retry_runs_again_at_once_in_eager_mode(t: Tasks) -> None:
    result = (t.flaky.s("k", 2) | t.ident.s()).apply()
    assert result.get() == "ok after 2" and t.calls.attempts["k"] == 3


def test_retry_past_max_retries_raises_the_original_exception(t: Tasks) -> None:
    result = t.always_retry.s().apply()
    assert result.failed() and isinstance(result.result, Oops)
    assert str(result.result) == "still failing"


# -- task_always_eager ------------------------------------------------------------------------
def test_always_eager_apply_async_runs_locally() -> None:
    eager = _make(task_always_eager=True)
    result = (eager.add.s(1, 2) | eager.mul.s(3)).apply_async()
    assert isinstance(result, EagerResult) and result.get() == 9
    assert eager.add.delay(2, 2).get() == 4
    assert group(eager.add.s(1, 1)).delay().get() == [2]
    eager.app.close()


def test_always_eager_propagates_when_asked() -> None:
    eager = _make(task_always_eager=True, task_eager_propagates=True)
    with pytest.raises(ValueError, match="fail"):
        (eager.add.s(1, 1) | eager.fail.s()).apply_async()
    eager.app.close()


def test_eager_failure_without_propagation_is_a_failed_result(t: Tasks) -> None:
    result = t.fail.s(3).apply()
    assert result.state == "FAILURE" and result.traceback and "ValueError" in result.traceback
    assert isinstance(result.get(propagate=False), ValueError)
