"""Celery 5.7 parity, without servers: what composition builds, freezing, serialization, options,
errbacks, ids and results, checked on the compiler, in eager mode and on the real engine in this
process (memory broker and store, drained by the worker's own handler).

Each test states a behaviour of Celery 5.7 (see docs/canvas-parity.md) in canvas's words.
"""

from __future__ import annotations

import json
import operator
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from canvas import (
    AsyncResult,
    GroupResult,
    ResultSet,
    Signature,
    Task,
    chain,
    chord,
    compile_workflow,
    group,
    signals,
    signature,
    xmap,
    xstarmap,
)
from canvas.canvas import StampingVisitor
from canvas.exceptions import ChordError, ImproperlyConfigured
from tests.support.engine import drain, memory_app

APP = memory_app("parity-unit")
#: (tag, style, failed task id, exception text) for each errback call
ERRBACKS: list[tuple[str, str, str, str]] = []
#: (tag, value) for each run of ``record``
RUNS: list[tuple[str, Any]] = []
_LOCK = threading.Lock()


class ParityError(Exception):
    """Raised by ``fail``; defined beside the tasks so results rebuild it by type."""


@APP.task(name="pu.add")
def add(x: Any, y: Any = 0) -> Any:
    return x + y


@APP.task(name="pu.tsum")
def tsum(values: list[Any]) -> int:
    return sum(v if isinstance(v, int) else tsum(v) for v in values)


@APP.task(name="pu.identity")
def identity(value: Any) -> Any:
    return value


@APP.task(name="pu.fail")
def fail(*args: Any) -> None:
    raise ParityError("boom", *args)


@APP.task(name="pu.ids", bind=True)
def ids(self: Task, i: int) -> tuple[str | None, str | None, int]:
    return self.request.root_id, self.request.parent_id, i


@APP.task(name="pu.collect_ids", bind=True)
def collect_ids(self: Task, previous: Any, i: int) -> Any:
    return previous, (self.request.root_id, self.request.parent_id, i)


@APP.task(name="pu.priority", bind=True)
def priority(self: Task, *_: Any) -> Any:
    return self.request.delivery_info.get("priority")


@APP.task(name="pu.stamps", bind=True)
def stamps(self: Task, *_: Any) -> Any:
    return dict(self.request.stamps or {})


@APP.task(name="pu.on_error")
def on_error(task_id: str, *, tag: str = "") -> None:
    with _LOCK:
        ERRBACKS.append((tag, "old", task_id, ""))


@APP.task(name="pu.on_error_new")
def on_error_new(request: Any, exc: BaseException, traceback: Any, tag: str = "") -> None:
    with _LOCK:
        ERRBACKS.append((tag, "new", request.id, f"{type(exc).__name__}: {exc}"))


@APP.task(name="pu.record")
def record(*args: Any, tag: str = "") -> Any:
    with _LOCK:
        RUNS.append((tag, list(args)))
    return list(args)


@APP.task(name="pu.replace_with_nothing", bind=True)
def replace_with_nothing(self: Task, *_: Any) -> Any:
    return self.replace(chain())


@APP.task(name="pu.fail_replaced", bind=True)
def fail_replaced(self: Task, *args: Any) -> Any:
    return self.replace(fail.si(*args))


@APP.task(name="pu.add_to_chord", bind=True)
def add_members(self: Task, numbers: list[int], value: int) -> int:
    for number in numbers:
        self.add_to_chord(add.s(number, value))
    return 0


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    ERRBACKS.clear()
    RUNS.clear()
    APP.conf.task_allow_error_cb_on_chord_header = False
    APP.conf.task_inherit_parent_priority = False
    yield
    APP.transport.purge(str(APP.conf.task_default_queue))


def run(canvas: Signature, *args: Any, **options: Any) -> Any:
    """Send ``canvas`` through the real engine in this process and run it to the end."""
    result = canvas.apply_async(args, **options)
    drain(APP)
    return result


def names(sigs: Any) -> list[str | None]:
    return [s.task for s in sigs]


# -- what composition builds ---------------------------------------------------------------------
def test_group_or_group_is_a_chord_whose_body_is_the_second_group() -> None:
    # Given two groups joined with |
    canvas = group(add.s(1), add.s(2)) | group(add.s(3), add.s(4))
    # Then it is a chord: header the first group's members, body the second group
    assert isinstance(canvas, chord)
    assert isinstance(canvas.body, group)
    assert [t.args for t in canvas.tasks] == [(1,), (2,)]
    assert [t.args for t in canvas.body.tasks] == [(3,), (4,)]


def test_group_or_task_is_a_chord_and_a_further_task_extends_its_body() -> None:
    # Given group | task, then | another task
    one = group(add.s(1), add.s(2)) | tsum.s()
    two = one | add.s(10)
    # Then both are chords; the second one's body is the chain tsum | add
    assert isinstance(one, chord) and type(one.body) is Signature
    assert isinstance(two, chord) and isinstance(two.body, chain)
    assert names(two.body.tasks) == ["pu.tsum", "pu.add"]


def test_chord_or_task_extends_the_body() -> None:
    canvas = chord([add.s(1), add.s(2)], tsum.s()) | add.s(5)
    assert isinstance(canvas, chord)
    assert isinstance(canvas.body, chain) and names(canvas.body.tasks) == ["pu.tsum", "pu.add"]


def test_chord_or_group_of_one_unrolls_it_into_the_body() -> None:
    canvas = chord([add.s(1)], tsum.s()) | group(add.s(2))
    assert isinstance(canvas, chord)
    assert names(canvas.body.tasks) == ["pu.tsum", "pu.add"]


def test_chord_or_chord_nests_the_second_in_the_first_ones_body() -> None:
    canvas = chord([add.s(1)], tsum.s()) | chord([add.s(2)], tsum.s())
    assert isinstance(canvas, chord)
    assert isinstance(canvas.body, chain)
    assert isinstance(canvas.body.tasks[1], chord)


def test_chord_or_group_of_two_and_chord_or_chain_are_chains() -> None:
    then_group = chord([add.s(1)], tsum.s()) | group(add.s(2), add.s(3))
    then_chain = chord([add.s(1)], tsum.s()) | (add.s(2) | add.s(3))
    assert isinstance(then_group, chain) and not isinstance(then_group, chord)
    assert [type(t) for t in then_group.tasks] == [chord, group]
    assert isinstance(then_chain, chain)
    assert [type(t).__name__ for t in then_chain.tasks] == ["chord", "Signature", "Signature"]


def test_task_or_group_of_one_is_a_plain_chain() -> None:
    canvas = add.s(1) | group(add.s(2))
    assert isinstance(canvas, chain)
    assert [type(t) for t in canvas.tasks] == [Signature, Signature]


def test_task_or_task_is_a_chain_and_a_chain_of_chains_is_flat() -> None:
    assert isinstance(add.s(1) | add.s(2), chain)
    flat = chain(add.s(1), group(add.s(2)), add.s(3))
    assert [type(t) for t in flat.tasks] == [Signature] * 3


def test_chain_constructor_folds_like_the_or_operator() -> None:
    # Given chain() over a group and a task (no options)
    canvas = chain(group(add.s(1), add.s(2)), tsum.s())
    # Then it is the chord that group | task builds
    assert isinstance(canvas, chord)
    # ... while one group alone stays a chain of one step
    lone = chain(group(add.s(1), add.s(2)))
    assert type(lone) is chain and isinstance(lone.tasks[0], group)


def test_group_or_empty_group_is_the_group_itself() -> None:
    first = group(add.s(1), add.s(2))
    assert (first | group()) is first


def test_chain_ending_in_a_group_or_task_makes_that_group_a_chord() -> None:
    canvas = chain(add.s(1), group(add.s(2), add.s(3))) | tsum.s()
    assert isinstance(canvas, chain)
    assert [type(t) for t in canvas.tasks] == [Signature, chord]


def test_chain_ending_in_a_chord_or_task_extends_the_chords_body() -> None:
    canvas = chain(add.s(1), chord([add.s(2)], tsum.s())) | add.s(3)
    assert [type(t) for t in canvas.tasks] == [Signature, chord]
    assert names(canvas.tasks[1].body.tasks) == ["pu.tsum", "pu.add"]


def test_a_chord_then_a_group_then_a_task_folds_into_one_chord() -> None:
    canvas = (chord([add.s(1)], tsum.s()) | group(add.s(2), add.s(3))) | tsum.s()
    assert isinstance(canvas, chain) and len(canvas.tasks) == 1
    only = canvas.tasks[0]
    assert isinstance(only, chord) and isinstance(only.body.tasks[1], chord)


def test_an_inner_chain_gives_its_links_to_its_tasks_and_drops_other_options() -> None:
    # Given an inner chain with a callback, an errback and a queue
    callback, errback = record.s(tag="cb"), on_error.s(tag="eb")
    inner = chain(add.s(1), add.s(2))
    inner.link(callback)
    inner.link_error(errback)
    queued = (add.s(1) | add.s(2)).set(queue="q") | add.s(3)
    # When it is chained into an outer chain
    outer = chain(inner, add.s(3))
    # Then the callback moved to its last task, the errback to each of its tasks
    first, second, third = outer.tasks
    assert first.options.get("link_error") == [errback] and "link" not in first.options
    assert second.options.get("link") == [callback]
    assert second.options.get("link_error") == [errback]
    assert not third.options
    # ... and an inner chain's queue is dropped, as Celery drops it
    assert all("queue" not in t.options for t in queued.tasks) and "queue" not in queued.options


def test_chord_length_counts_the_leaf_tasks_of_its_header() -> None:
    # Given a header of two tasks, a group of two, a chain and a chord
    header = [
        add.s(1),
        add.s(2),
        group(add.s(3), add.s(4)),
        add.s(5) | add.s(6),
        chord([add.s(7), add.s(8)], tsum.s()),
        add.s(9),
    ]
    canvas = chord(header, tsum.s())
    # Then 1 + 1 + 2 + 1 (the chain's last step) + 1 (the chord's body) + 1 = 7
    assert len(canvas) == 7 and operator.length_hint(canvas) == 7
    assert canvas.__length_hint__() == 7
    # ... and a chord is truthy whatever its size, an empty group is not
    assert bool(chord([], tsum.s())) and not bool(group())


def test_chord_tasks_are_the_header_members_themselves() -> None:
    canvas = chord([fail.si(), add.si(1, 1)], tsum.s())
    for member in canvas.tasks:
        member.link_error(on_error.si(tag="header"))
    assert all(m.options["link_error"] == [on_error.si(tag="header")] for m in canvas.tasks)
    assert canvas.to_dict()["kwargs"]["header"][0]["options"]["link_error"]


def test_task_objects_in_a_chord_header_or_group_are_taken_as_signatures() -> None:
    canvas = chord([tsum, tsum], tsum.s())
    assert [type(t) for t in canvas.tasks] == [Signature, Signature]
    assert names(canvas.tasks) == ["pu.tsum", "pu.tsum"]
    assert names(group([identity, tsum]).tasks) == ["pu.identity", "pu.tsum"]
    # And they run: chord([add.s(0, 1)], chord([tsum, tsum], tsum.s())) sums [[1]] twice
    result = run(chord([add.s(0, 1)], chord([tsum, tsum], tsum.s())))
    assert result.get(timeout=1) == 2


def test_linking_an_equal_signature_twice_links_it_once() -> None:
    sig = fail.si()
    sig.link_error(on_error.si(tag="twice"))
    sig.link_error(on_error.si(tag="twice"))
    sig.link(record.si(tag="x"))
    sig.link(record.si(tag="x"))
    assert len(sig.options["link_error"]) == 1 and len(sig.options["link"]) == 1


def test_group_link_goes_to_the_first_member_as_an_immutable_copy() -> None:
    g = group(add.s(1, 1), add.s(2, 2))
    linked = g.link(record.s(tag="glink"))
    assert linked.immutable and g.tasks[0].options["link"] == [linked]
    assert "link" not in g.tasks[1].options and "link" not in g.options
    copies = g.link_error(on_error.s(tag="gerr"))
    assert isinstance(copies, tuple) and len(copies) == 2
    assert [m.options["link_error"] for m in g.tasks] == [[c] for c in copies]


def test_chord_link_error_reaches_the_header_only_when_allowed() -> None:
    # Given the default (task_allow_error_cb_on_chord_header off)
    inner = chord([fail.si()], identity.si("inner body"))
    canvas = chord([add.si(1, 1), inner], record.si(tag="body"))
    canvas.link_error(on_error.si(tag="c"))
    # Then the body and the nested chord's body carry it, the header tasks do not
    assert canvas.body.options["link_error"] == [on_error.si(tag="c")]
    assert canvas.tasks[1].body.options["link_error"] == [on_error.si(tag="c")]
    assert "link_error" not in canvas.tasks[0].options
    # When the setting is on, each header task gets an immutable copy too
    APP.conf.task_allow_error_cb_on_chord_header = True
    other = chord([add.s(1, 1), fail.s()], record.s(tag="body"))
    other.link_error(on_error.s(tag="c"))
    assert all(m.options["link_error"][0].immutable for m in other.tasks)


# -- freezing ------------------------------------------------------------------------------------
def test_freezing_a_chain_returns_and_fixes_its_last_tasks_id() -> None:
    last = add.s(2).set(task_id="42")
    canvas = add.s(4) | last
    assert canvas.id is None
    result = canvas.freeze(last.id)
    assert canvas.id == "42" and result.id == "42"
    # A chain without ids takes the given id for its last task
    other = add.s(1) | add.s(2)
    handle = other.freeze("given")
    assert handle.id == "given" == other.id == other.tasks[-1].id
    assert handle.parent.id == other.tasks[0].id


def test_freezing_a_group_and_a_chord() -> None:
    g = group(add.s(1), add.s(2))
    frozen = g.freeze()
    assert isinstance(frozen, GroupResult) and g.id == frozen.id
    assert [r.id for r in frozen.results] == [t.id for t in g.tasks]
    c = chord([add.s(1), add.s(2)], tsum.s())
    body = c.freeze()
    assert body.id == c.body.id and isinstance(body.parent, GroupResult)
    assert c.id == body.parent.id


def test_a_frozen_signature_runs_in_two_canvases_sent_one_after_the_other() -> None:
    # Given one frozen signature used in two chords, sent separately
    shared = add.si(5, 5)
    shared.freeze()
    first = chord([shared, add.si(1, 1)], tsum.s()).apply_async()
    second = chord([shared.clone(), add.si(2, 2)], tsum.s()).apply_async()
    drain(APP)
    # Then both chords finish with the shared member's value
    assert first.get(timeout=1) == 12 and second.get(timeout=1) == 14


def test_one_frozen_signature_twice_in_one_canvas_runs_twice() -> None:
    shared = add.si(1, 1)
    shared.freeze()
    result = run(group(shared, shared.clone(), add.si(2, 2)))
    assert result.get(timeout=1) == [2, 2, 4]
    assert result.results[0].id == shared.id


# -- invert ----------------------------------------------------------------------------------------
def test_invert_sends_and_waits() -> None:
    eager = memory_app("parity-invert", task_always_eager=True)

    @eager.task(name="pi.add")
    def plus(x: int, y: int = 1) -> int:
        return x + y

    assert ~plus.s(1, 2) == 3
    assert ~(plus.s(1, 2) | plus.s(3)) == 6
    assert ~plus.map([1, 2]) == [2, 3]
    assert ~xstarmap("pi.add", [(1, 1), (2, 2)], app=eager) == [2, 4]
    assert ~xmap("pi.add", [5], app=eager) == [6]
    eager.close()


# -- serialization ---------------------------------------------------------------------------------
NESTINGS = {
    "chain in chord": lambda: chord([add.s(1, 1) | add.s(2)], tsum.s()),
    "chord in chain": lambda: add.s(1, 1) | chord([add.s(1), add.s(2)], tsum.s()) | add.s(3),
    "chord in group": lambda: group(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(3, 3)),
    "group in chord": lambda: chord([group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)], tsum.s()),
    "chord in chord": lambda: chord([chord([add.s(1, 1), add.s(2, 2)], tsum.s())], tsum.s()),
    "chord in chord in chord": lambda: chord(
        [chord([chord([add.s(1, 1)], tsum.s()), add.s(2, 2)], tsum.s()), add.s(3, 3)],
        tsum.s(),
    ),
}


@pytest.mark.parametrize("nesting", list(NESTINGS))
def test_to_dict_round_trips_every_nesting_and_runs_the_same(nesting: str) -> None:
    # Given a nested canvas
    original = NESTINGS[nesting]()
    # When it goes through JSON and back, by from_dict and by signature()
    data = json.loads(json.dumps(original.to_dict()))
    rebuilt = Signature.from_dict(data, app=APP)
    again = signature(json.loads(json.dumps(original.to_dict())), app=APP)
    # Then it is equal, keeps its types all the way down, and runs to the same result
    assert rebuilt == original and again == original
    assert _shape(rebuilt) == _shape(original)
    assert run(rebuilt).get(timeout=1) == run(original).get(timeout=1)


def _shape(sig: Signature) -> Any:
    if isinstance(sig, chord):
        return ("chord", [_shape(t) for t in sig.tasks], _shape(sig.body))
    if isinstance(sig, chain | group):
        return (type(sig).__name__, [_shape(t) for t in sig.tasks])
    return sig.task


def test_a_chord_dict_has_celerys_shape() -> None:
    data = chord([add.s(1), add.s(2)], tsum.s()).to_dict()
    assert data["subtask_type"] == "chord"
    assert isinstance(data["kwargs"]["header"], list) and len(data["kwargs"]["header"]) == 2
    assert data["kwargs"]["body"]["task"] == "pu.tsum" and data["kwargs"]["kwargs"] == {}


def test_a_celery_dict_of_a_chord_in_a_chord_rebuilds_every_member() -> None:
    # Given the dict Celery 5.7 writes for chord(chord([add(1), add(2)], tsum), tsum)
    def task(name: str, *args: Any) -> dict[str, Any]:
        return {
            "task": name,
            "args": list(args),
            "kwargs": {},
            "options": {},
            "subtask_type": None,
            "immutable": False,
        }

    def chord_dict(header: list[Any], body: dict[str, Any]) -> dict[str, Any]:
        return {
            "task": "celery.chord",
            "args": [],
            "kwargs": {"kwargs": {}, "header": header, "body": body},
            "options": {},
            "subtask_type": "chord",
            "immutable": False,
        }

    inner = chord_dict([task("pu.add", 1, 1), task("pu.add", 2, 2)], task("pu.tsum"))
    data = chord_dict([inner, task("pu.add", 3, 3)], task("pu.tsum"))
    # When it is rebuilt
    rebuilt = Signature.from_dict(data, app=APP)
    # Then nothing is lost, and it runs: (2 + 4) + 6
    assert _shape(rebuilt) == (
        "chord",
        [("chord", ["pu.add", "pu.add"], "pu.tsum"), "pu.add"],
        "pu.tsum",
    )
    assert run(rebuilt).get(timeout=1) == 12


# -- lazy generator headers ----------------------------------------------------------------------
def test_a_generator_header_is_sent_while_it_is_consumed() -> None:
    queue = str(APP.conf.task_default_queue)
    seen: list[int] = []

    def members() -> Iterator[Signature]:
        for i in range(4):
            # What is on the queue when the generator is asked for each member
            seen.append(APP.transport.size(queue))
            yield add.si(i, 0)

    result = chord(members(), tsum.s()).apply_async()
    # The first member was published before the generator was asked for the second
    assert seen[0] == 0 and seen[1] >= 1
    drain(APP)
    assert result.get(timeout=1) == 6


def test_a_generator_header_that_raises_fails_the_chord() -> None:
    def members() -> Iterator[Signature]:
        yield add.si(1, 1)
        raise RuntimeError("the generator broke")

    with pytest.raises(RuntimeError, match="broke"):
        chord(members(), tsum.s(), app=APP).apply_async(task_id="broken-chord")
    drain(APP)
    body = APP.AsyncResult("broken-chord")
    assert body.state == "FAILURE" and isinstance(body.result, RuntimeError)


# -- options ---------------------------------------------------------------------------------
def _options(canvas: Signature, **call: Any) -> dict[str, dict[str, Any]]:
    workflow = compile_workflow(canvas, options=call)
    return {n.id: dict(n.options) for n in workflow.nodes if n.task}


def test_chain_options_go_to_its_first_task_only() -> None:
    a, b = add.s(1).set(task_id="a"), add.s(2).set(task_id="b", queue="own")
    options = _options(chain(a, b), queue="q", priority=4)
    assert options["a"]["queue"] == "q" and options["a"]["priority"] == 4
    assert options["b"]["queue"] == "own" and "priority" not in options["b"]
    # ... and those set on the chain itself, winning over the first task's own
    set_on = chain(add.s(1).set(task_id="a", queue="own"), add.s(2).set(task_id="b"))
    set_on.set(queue="q")
    assert _options(set_on) == {"a": {"queue": "q"}, "b": {}}


def test_group_and_chord_options_reach_every_member_and_win() -> None:
    g = group(add.s(1).set(task_id="a", priority=1), add.s(2).set(task_id="b"))
    assert _options(g, priority=7) == {"a": {"priority": 7}, "b": {"priority": 7}}
    c = chord([add.s(1).set(task_id="a"), add.s(2).set(task_id="b")], tsum.s().set(task_id="c"))
    assert _options(c, queue="q") == {n: {"queue": "q"} for n in "abc"}


def test_chain_countdown_delays_its_first_task_only() -> None:
    options = _options(chain(add.s(1).set(task_id="a"), add.s(2).set(task_id="b")), countdown=5)
    assert options == {"a": {"countdown": 5}, "b": {}}


def test_priority_reaches_the_request() -> None:
    assert run(priority.s().set(priority=3)).get(timeout=1) == 3
    result = run(chain(priority.s(), priority.s()), priority=4)
    assert result.parent.get(timeout=1) == 4 and result.get(timeout=1) is None
    assert run(group(priority.s(), priority.s()), priority=5).get(timeout=1) == [5, 5]


def test_priority_is_inherited_when_asked() -> None:
    APP.conf.task_inherit_parent_priority = True
    result = run(chain(priority.s(), priority.s(), priority.s()), priority=6)
    assert result.get(timeout=1) == 6 and result.parent.get(timeout=1) == 6


# -- errbacks and failures ------------------------------------------------------------------------
def test_a_failing_first_step_of_a_long_chain_runs_its_errback_once() -> None:
    # Given a chain of 42 steps with an errback, whose first step fails
    steps = chain(fail.si(), *(identity.si(1) for _ in range(41)))
    steps.link_error(on_error.s(tag="chain"))
    # When it runs
    result = run(steps)
    # Then the errback ran once, for the first step; nothing after it ran an errback
    first = result
    while first.parent is not None:
        first = first.parent
    assert ERRBACKS == [("chain", "old", first.id, "")]
    with pytest.raises(ParityError):
        result.get(timeout=1)


def test_a_chord_whose_header_fails_fails_its_body_with_a_chord_error() -> None:
    # Given a chord with a failing header member and an errback on the chord
    canvas = chord([add.s(1, 1), fail.s(7), add.s(2, 2)], tsum.s())
    canvas.link_error(on_error_new.s(tag="chord"))
    # When it runs
    result = run(canvas)
    failed = result.parent.results[1]
    # Then the body is FAILURE with ChordError naming the failing member
    assert result.state == "FAILURE"
    assert isinstance(result.result, ChordError)
    assert str(result.result) == f"Dependency {failed.id} raised ParityError('boom', 7)"
    # ... get() raises the member's own exception, without following parents the ChordError
    with pytest.raises(ParityError):
        result.get(timeout=1)
    with pytest.raises(ChordError):
        result.get(timeout=1, follow_parents=False)
    # ... and the body's errback ran once, new style, with the body's id
    assert ERRBACKS == [("chord", "new", result.id, f"ChordError: {result.result}")]


def test_a_chord_whose_header_fails_runs_old_style_errbacks_with_the_body_id() -> None:
    canvas = chord([fail.s()], identity.s())
    canvas.link_error(on_error.s(tag="old"))
    result = run(canvas)
    assert ERRBACKS == [("old", "old", result.id, "")]


def test_a_chain_body_reports_its_last_task_and_a_group_body_each_member() -> None:
    chained = chord([add.s(1, 1), fail.s()], add.s(1) | add.s(2))
    chained.link_error(on_error.s(tag="chain body"))
    result = run(chained)
    assert ERRBACKS == [("chain body", "old", result.id, "")]
    ERRBACKS.clear()
    grouped = chord([add.s(1, 1), fail.s()], group(add.s(1), add.s(2)))
    grouped.link_error(on_error.s(tag="group body"))
    result = run(grouped)
    assert sorted(e[2] for e in ERRBACKS) == sorted(r.id for r in result.results)
    assert all(r.state == "FAILURE" for r in result.results)


def test_a_chord_body_that_fails_tells_its_errback_its_own_id() -> None:
    canvas = chord([add.s(1, 1)], fail.s())
    canvas.link_error(on_error.s(tag="body"))
    result = run(canvas)
    assert ERRBACKS == [("body", "old", result.id, "")]


def test_the_header_errback_setting_runs_an_errback_per_failed_member_and_the_body() -> None:
    # Given the setting on, and an immutable errback linked to a chord with two failing members
    APP.conf.task_allow_error_cb_on_chord_header = True
    canvas = chord([fail.si(), identity.si(1), fail.si()], record.si(tag="never"))
    canvas.link_error(record.si(tag="flag"))
    # When it runs
    result = run(canvas)
    # Then the errback ran for each failed member and once for the body, which did not run
    assert RUNS == [("flag", [])] * 3 and result.state == "FAILURE"


def test_a_group_errback_runs_once_per_failing_member() -> None:
    g = group(identity.si(1), fail.s(), fail.s())
    g.link_error(on_error_new.s(tag="g"))
    result = run(g)
    failed = sorted(r.id for r in result.results if r.failed())
    assert sorted(e[2] for e in ERRBACKS) == failed and len(failed) == 2


def test_group_link_runs_the_callback_once_without_arguments() -> None:
    g = group(add.s(1, 1), add.s(2, 2))
    g.link(record.s(tag="glink"))
    assert run(g).get(timeout=1) == [2, 4]
    assert RUNS == [("glink", [])]


def test_chain_link_on_a_final_group_runs_per_member() -> None:
    canvas = chain(add.s(1, 1), group(add.s(1), add.s(2)))
    canvas.link(record.s(tag="per member"))
    assert run(canvas).get(timeout=1) == [3, 4]
    assert sorted(RUNS) == [("per member", [3]), ("per member", [4])]


def test_a_replaced_task_runs_its_errback_once_when_its_replacement_fails() -> None:
    # Given a chain whose first task replaces itself with a failing task, and has an errback
    first = fail_replaced.si()
    first.link_error(on_error.s(tag="replaced"))
    result = run(chain(first, identity.si(42)))
    # Then the chain fails with the replacement's error and the errback ran once, for it
    with pytest.raises(ParityError):
        result.get(timeout=1)
    assert ERRBACKS == [("replaced", "old", result.parent.id, "")]


def test_replacing_a_task_with_an_empty_chain_fails_it_clearly() -> None:
    result = run(identity.s(1) | replace_with_nothing.s())
    with pytest.raises(ImproperlyConfigured, match="Cannot replace with an empty chain"):
        result.get(timeout=1)
    eager = replace_with_nothing.apply()
    assert isinstance(eager.result, ImproperlyConfigured)


# -- ids -------------------------------------------------------------------------------------------
def test_chain_ids_root_is_the_first_task_parent_the_previous() -> None:
    result = run(chain(ids.si(1), ids.si(2), ids.si(3)))
    root = result.parent.parent
    assert tuple(root.get(timeout=1)) == (root.id, None, 1)
    assert tuple(result.parent.get(timeout=1)) == (root.id, root.id, 2)
    assert tuple(result.get(timeout=1)) == (root.id, result.parent.id, 3)


def test_group_members_after_a_task_have_it_as_parent() -> None:
    result = run(ids.si(1) | ids.si(2) | group(ids.si(i) for i in range(3, 6)))
    second, first = result.parent, result.parent.parent
    for value in result.get(timeout=1):
        assert tuple(value[:2]) == (first.id, second.id)


def test_a_group_sent_alone_makes_each_member_its_own_root() -> None:
    result = run(group(ids.si(1), ids.si(2)))
    for member, value in zip(result.results, result.get(timeout=1), strict=True):
        assert tuple(value[:2]) == (member.id, None)


def test_a_chord_body_has_the_last_header_task_as_parent() -> None:
    root = ids.si(1)
    root_id = root.freeze().id
    canvas = root | ids.si(2) | group(ids.si(i) for i in range(3, 6)) | collect_ids.s(i=6)
    result = run(canvas)
    header = result.parent
    previous, (body_root, body_parent, _) = result.get(timeout=1)
    assert body_root == root_id and body_parent in [m.id for m in header.results]
    assert all(tuple(p[:2]) == (root_id, header.parent.id) for p in previous)


def test_eager_and_distributed_ids_agree() -> None:
    canvas = chain(ids.si(1), ids.si(2))
    eager = canvas.apply()
    assert tuple(eager.get()) == (eager.parent.id, eager.parent.id, 2)


# -- results ---------------------------------------------------------------------------------
def test_a_chord_sent_alone_has_its_header_as_the_results_parent() -> None:
    result = run(chord([add.s(1, 1), add.s(2, 2)], tsum.s() | add.s(10)))
    assert result.get(timeout=1) == 16
    assert isinstance(result.parent, GroupResult) and result.parent.get(timeout=1) == [2, 4]


def test_a_group_of_one_chain_ending_in_a_group_gives_the_inner_groups_result() -> None:
    canvas = group(add.s(1, 2) | group(add.s(1), add.s(2)))
    assert run(canvas).get(timeout=1) == [4, 5]
    assert canvas.apply().get() == [4, 5]


def test_a_chain_whose_middle_is_a_group_passes_the_flat_list() -> None:
    canvas = chain(identity.s(42), group(identity.s(), identity.s()), identity.s())
    assert run(canvas).get(timeout=1) == [42, 42]


def test_result_set_add_remove_discard_update_clear() -> None:
    a, b, c = (AsyncResult(i, app=APP) for i in "abc")
    rs = ResultSet([], app=APP)
    rs.add(a)
    rs.add(a)
    rs.update([a, b, c])
    assert rs.results == [a, b, c]
    rs.remove("b")
    with pytest.raises(KeyError):
        rs.remove(b)
    rs.discard(b)
    rs.discard(c)
    assert rs.results == [a]
    rs.clear()
    assert rs.results == [] and len(rs) == 0


def test_group_result_save_restore_delete() -> None:
    members = [AsyncResult("x", app=APP), AsyncResult("y", app=APP)]
    saved = GroupResult("saved-group", members, app=APP)
    saved.save()
    restored = GroupResult.restore("saved-group", app=APP)
    assert restored is not None and [r.id for r in restored.results] == ["x", "y"]
    assert restored.id == "saved-group"
    saved.delete()
    assert GroupResult.restore("saved-group", app=APP) is None


def test_an_empty_group_result_is_truthy_and_saves() -> None:
    result = run(group([], app=APP))
    assert isinstance(result, GroupResult) and bool(result) and result.get(timeout=1) == []
    result.save()
    assert GroupResult.restore(result.id, app=APP).results == []


def test_add_to_chord_adds_a_member_whose_result_reaches_the_body() -> None:
    result = run(group([add_members.s([1, 2, 3], 4)]) | identity.s())
    assert sorted(result.get(timeout=1)) == [0, 5, 6, 7]


def test_add_to_chord_outside_a_chord_is_an_error() -> None:
    result = run(add_members.s([1], 1))
    with pytest.raises(ValueError, match="not member of any chord"):
        result.get(timeout=1)


# -- stamping ------------------------------------------------------------------------------------
class Stamp42(StampingVisitor):
    def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        return {"stamp": 42}


def test_stamp_reaches_every_task_link_and_errback_of_a_canvas() -> None:
    # Given a chord of chains with a callback and an errback, stamped
    canvas = chord([add.s(1, 1) | add.s(1), add.s(2, 2)], tsum.s())
    canvas.link(record.s(tag="cb"))
    canvas.link_error(on_error.s(tag="eb"))
    canvas.stamp(visitor=Stamp42())
    # Then every task signature inside carries the stamp and names it in stamped_headers
    every = [*canvas.tasks[0].tasks, canvas.tasks[1], canvas.body]
    every += [*canvas.body.options["link"], *canvas.body.options["link_error"]]
    for sig in every:
        assert sig.options["stamp"] == 42 and "stamp" in sig.options["stamped_headers"]


def test_stamps_travel_in_message_headers_and_reach_the_request() -> None:
    sig = stamps.si()
    sig.stamp(visitor=Stamp42(), tenant="acme")
    seen: list[dict[str, Any]] = []

    def capture(sender: Any = None, headers: Any = None, **_: Any) -> None:
        seen.append(dict(headers or {}))

    signals.before_task_publish.connect(capture)
    try:
        result = run(sig)
    finally:
        signals.before_task_publish.disconnect(capture)
    assert seen[0]["stamps"] == {"stamp": 42, "tenant": "acme"}
    assert sorted(seen[0]["stamped_headers"]) == ["stamp", "tenant"]
    assert result.get(timeout=1) == {"stamp": 42, "tenant": "acme"}
    assert sig.apply().get() == {"stamp": 42, "tenant": "acme"}


def test_append_stamps_makes_a_list_and_a_single_value_stays_single() -> None:
    sig = add.si(1, 1)
    sig.stamp(visitor=Stamp42())
    assert sig.options["stamp"] == 42
    sig.stamp(visitor=Stamp42(), append_stamps=True)
    assert sig.options["stamp"] == [42, 42]


def test_a_stamp_on_a_group_start_reaches_its_members() -> None:
    class Grouped(StampingVisitor):
        def on_group_start(self, group: Any, **headers: Any) -> dict[str, Any]:
            return {"batch": "b1"}

        def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
            return {"seen": True}

    g = group(add.s(1), add.s(2))
    g.stamp(visitor=Grouped())
    assert all(t.options["batch"] == "b1" and t.options["seen"] is True for t in g.tasks)
