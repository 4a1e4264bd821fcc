"""Property tests: random nested canvases compile to valid DAGs, and run the same eagerly and
through the real engine.

The "distributed" side runs in this process on the real pieces: an embedded queue in a temporary
file (``memory://`` broker), the in-memory result store, and the worker's own delivery handler
(``canvas.core.consumer.Handler``) draining the queue until it is empty, so every message is
encoded, published, consumed, run, recorded and wired exactly as a worker does it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canvas import Canvas, GroupResult, chain, chord, group
from canvas.core import dispatch, messages, worker
from canvas.dag import ERRBACK, GATHER, TASK, ResultSpec, compile
from canvas.signature import Signature
from tests.support.engine import drain

APP = Canvas("property-tests", broker="memory://", backend="memory://", set_as_current=False)
#: (tag, exception text) for each errback call, appended by ``record_error``
ERRBACKS: list[tuple[str, str]] = []
#: body runs of the exactly-once test
RUNS: list[Any] = []
_LOCK = threading.Lock()


def _flat_sum(value: Any) -> int:
    if isinstance(value, list | tuple):
        return sum(_flat_sum(v) for v in value)
    return int(value)


@APP.task(name="p.add")
def add(*args: Any) -> int:
    return sum(_flat_sum(a) for a in args)


@APP.task(name="p.neg")
def neg(*args: Any) -> int:
    return -sum(_flat_sum(a) for a in args)


@APP.task(name="p.pair")
def pair(*args: Any) -> list[Any]:
    return list(args)


@APP.task(name="p.fail")
def fail(tag: Any, *args: Any) -> None:
    raise ValueError(f"failed at {tag}")


@APP.task(name="p.record_error")
def record_error(request: Any, exc: BaseException, traceback: Any, tag: str) -> None:
    with _LOCK:
        ERRBACKS.append((tag, request.id, str(exc)))


@APP.task(name="p.who", bind=True)
def who(self: Any, *args: Any) -> list[Any]:
    """The ids Celery records for this call: its root and its parent."""
    return [self.request.root_id, self.request.parent_id]


@APP.task(name="p.record")
def record(value: Any) -> Any:
    with _LOCK:
        RUNS.append(value)
    return value


@pytest.fixture(scope="module", autouse=True)
def _app() -> Iterator[None]:
    yield
    APP.close()  # removes the temporary queue file


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    ERRBACKS.clear()
    RUNS.clear()
    yield
    APP.transport.purge(str(APP.conf.task_default_queue))


# -- random canvases -----------------------------------------------------------------------------
_tags = iter(range(10**9))


def _leaf(kind: str, k: int, failing: bool, errback: bool) -> Signature:
    if failing:
        sig = fail.si(f"leaf{k}") if kind == "si" else fail.s(f"leaf{k}")
    elif kind == "si":
        sig = add.si(k)
    else:
        sig = {"add": add, "neg": neg, "pair": pair}[kind].s(k)
    if errback:
        sig.link_error(record_error.s(tag=f"e{next(_tags)}"))
    return sig


leaves = st.builds(
    _leaf,
    st.sampled_from(["add", "neg", "pair", "si"]),
    st.integers(0, 9),
    st.integers(0, 9).map(lambda n: n == 0),  # one leaf in ten fails
    st.integers(0, 4).map(lambda n: n == 0),  # one in five has an errback
)


def _canvases(children: st.SearchStrategy[Signature]) -> st.SearchStrategy[Signature]:
    small = st.lists(children, min_size=0, max_size=3)
    return st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda ts: chain(*ts, app=APP)),
        small.map(lambda ts: group(*ts, app=APP)),
        st.tuples(small, children).map(lambda hb: chord(hb[0], hb[1], app=APP)),
    )


canvases = st.recursive(leaves, _canvases, max_leaves=8)


# -- comparing results ---------------------------------------------------------------------------
def outcome(result: Any, depth: int = 0) -> Any:
    """A result's values, exceptions as (type, text), and its parents' (three levels)."""
    if isinstance(result, GroupResult):
        value: Any = [outcome(m, depth + 1) for m in result]
    elif result.state == "SUCCESS":
        value = result.result
    else:
        exc = result.result
        value = (result.state, type(exc).__name__, str(exc))
    parent = result.parent
    if parent is not None and depth < 3:
        return (value, outcome(parent, depth + 1))
    return value


def settled(result: Any) -> bool:
    if isinstance(result, GroupResult):
        return all(settled(m) for m in result)
    return bool(result.ready())


# -- properties ----------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None, database=None)
@given(canvases)
def test_random_canvases_compile_to_valid_dags(canvas: Signature) -> None:
    # Given any nesting of chains, groups and chords
    workflow = compile(canvas)
    graph = workflow.graph
    # Then the graph is acyclic, every edge is an input, and every task can start or be reached
    assert nx.is_directed_acyclic_graph(graph)
    for node in workflow.nodes:
        assert set(graph.predecessors(node.id)) == set(node.inputs)
        if node.kind == ERRBACK:
            assert node.inputs == (node.trigger,)
        if node.kind == TASK:
            assert len(node.inputs) <= 1  # a task has one input; joins gather
    roots = {n.id for n in workflow.roots()}
    assert all(nx.ancestors(graph, n.id) & roots or n.id in roots for n in workflow.nodes)
    # And the result handle names nodes of the graph
    spec: ResultSpec | None = workflow.result
    while spec is not None:
        if spec.kind == "task":
            assert spec.id in graph
        spec = spec.parent
    # And compiling the same canvas twice gives the same shape
    again = compile(canvas)
    assert sorted(n.kind for n in again.nodes) == sorted(n.kind for n in workflow.nodes)


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(canvases, st.lists(st.integers(0, 5), max_size=2))
def test_eager_result_equals_distributed_result(canvas: Signature, args: list[int]) -> None:
    # Given a random canvas, perhaps with failing leaves and errbacks, and call args, its ids
    # fixed so that both runs name the same tasks (in ChordError texts, in errbacks)
    canvas.freeze()
    ERRBACKS.clear()
    # When it runs eagerly
    eager = APP.apply_canvas(canvas, args)
    eager_errbacks = sorted(ERRBACKS)
    ERRBACKS.clear()
    # ... and through the real engine (store once, publish, consume, complete, wire)
    distributed = APP.send_canvas(canvas, args)
    drain(APP)
    # Then every result is settled (nothing hangs) and equals the eager one, parents included
    assert settled(distributed)
    assert outcome(distributed) == outcome(eager)
    # And the same errbacks fired the same number of times, for the same tasks
    assert sorted(ERRBACKS) == eager_errbacks


def _who(kind: str, k: int) -> Signature:
    return who.si(k) if kind == "si" else who.s(k)


whos = st.builds(_who, st.sampled_from(["s", "si"]), st.integers(0, 9))


def _without_joins(children: st.SearchStrategy[Signature]) -> st.SearchStrategy[Signature]:
    """Chains (perhaps ending in a group) and groups: no task waits on a join, whose sender is
    the member that happens to finish last (Celery's rule, not the same on every run)."""
    steps = st.lists(whos, min_size=1, max_size=3)
    tail = st.lists(children, max_size=3)
    return st.one_of(
        st.tuples(steps, tail).map(
            lambda p: (
                chain(*p[0], group(*p[1], app=APP), app=APP) if p[1] else chain(*p[0], app=APP)
            )
        ),
        st.lists(children, min_size=1, max_size=3).map(lambda ts: group(*ts, app=APP)),
    )


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.recursive(whos, _without_joins, max_leaves=8))
def test_eager_and_distributed_give_the_same_root_and_parent_ids(canvas: Signature) -> None:
    # Given a random canvas of tasks that return their own root_id and parent_id, frozen (a
    # chord body's parent is whichever header task finished last: the unit tests check it)
    canvas.freeze()
    # When it runs eagerly and through the real engine
    eager = APP.apply_canvas(canvas)
    distributed = APP.send_canvas(canvas)
    drain(APP)
    # Then every task saw the same root and parent both ways (Celery's rules, see complete.py)
    assert settled(distributed)
    assert outcome(distributed) == outcome(eager)


# -- the engine in this process: wiring under redelivery -----------------------------------------
def test_a_node_delivered_twice_wires_its_successor_once() -> None:
    # Given a chord whose header members feed a recording body, stored and started
    canvas = chord([add.s(1, 1), add.s(2, 2)], record.s())
    workflow = compile(canvas)
    dispatch.start(APP, workflow)
    # When every header message is published a second time (an at-least-once redelivery)
    again = [
        messages.for_node(APP, workflow.id, node, node.args)
        for node in workflow.nodes
        if node.kind == TASK and node.task == "p.add"
    ]
    messages.publish(APP, again)
    drain(APP)
    # Then the header ran twice but the body ran once, with the header's list
    assert RUNS == [[2, 4]]
    assert APP.AsyncResult(workflow.id).get(timeout=1) == [2, 4]


def test_a_failed_node_delivered_twice_fires_its_errback_once() -> None:
    # Given a failing task with an errback, stored and started
    sig = fail.s("twice")
    sig.link_error(record_error.s(tag="once"))
    workflow = compile(sig)
    dispatch.start(APP, workflow)
    node = workflow.node(workflow.id)
    # When its message is delivered a second time
    messages.publish(APP, [messages.for_node(APP, workflow.id, node, node.args)])
    assert drain(APP) == 3  # two runs of the task, one errback
    # Then the errback ran once
    assert ERRBACKS == [("once", node.id, "failed at twice")]


def test_a_join_is_resolved_in_the_completion_step_without_a_message() -> None:
    # Given a group feeding a task: its join node runs no code
    canvas = group(add.s(1), add.s(2)) | record.s()
    workflow = compile(canvas)
    joins = [n for n in workflow.nodes if n.kind == GATHER]
    # When it runs
    canvas.apply_async((10,))
    handled = drain(APP)
    # Then only the three tasks were messages; the join resolved inside a completion
    assert len(joins) == 1 and handled == 3 and RUNS == [[11, 12]]


def test_the_worker_loop_in_burst_mode_drains_a_workflow() -> None:
    # Given a chain of a chord, sent
    result = (add.s(1, 1) | chord([add.s(i) for i in range(3)], add.s())).apply_async()
    # When the worker's own consume loop runs in burst mode
    done = worker.consume(
        APP,
        [str(APP.conf.task_default_queue)],
        "burst",
        threading.Event(),
        burst=True,
        main_thread=False,
    )
    # Then it handled the five calls and the result is there
    assert done == 5 and result.get(timeout=1) == 9
