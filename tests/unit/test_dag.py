"""The canvas compiler, table-tested: canvas in, nodes, edges and input rules out.

Every row of the composition table in ``canvas.dag`` has a case here. Task signatures get
readable task ids (``"a"``, ``"b"`` ...) and groups readable group ids, so a compiled graph reads
as a set of edges; a join node made for an unnamed group is labelled ``join(<its inputs>)`` and
an errback ``<task>!<trigger>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import networkx as nx
import pytest

from canvas import Canvas, chain, chord, chunks, group, signature, xmap, xstarmap
from canvas.core import protocol
from canvas.dag import (
    DATA,
    ERRBACK,
    FORWARD,
    GATHER,
    LINK,
    LINK_ERROR,
    RULES,
    TASK,
    Node,
    ResultSpec,
    Workflow,
    compile,
    compile_replacement,
    from_graph,
    validate,
)
from canvas.exceptions import WorkflowError
from canvas.result import AsyncResult, GroupResult, from_spec
from canvas.signature import Signature


@pytest.fixture(scope="module")
def app() -> Iterator[Canvas]:
    app = Canvas("dag-tests", broker="memory://", backend="memory://", set_as_current=False)

    @app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tasks.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="tasks.tsum")
    def tsum(xs: list[int]) -> int:
        return sum(xs)

    yield app
    app.close()


def s(name: str, *args: Any, **kwargs: Any) -> Signature:
    """A signature of task ``t.<name>`` whose task id is ``name``."""
    return Signature(f"t.{name}", args, kwargs, task_id=name)


def si(name: str, *args: Any) -> Signature:
    return Signature(f"t.{name}", args, immutable=True, task_id=name)


def labels(workflow: Workflow) -> dict[str, str]:
    """Readable names: given ids stay, joins and errbacks are named by what they hang off."""
    names: dict[str, str] = {}
    for node_id in nx.topological_sort(workflow.graph):
        node = workflow.node(node_id)
        if node.kind == GATHER and len(node_id) == 36:
            names[node_id] = f"join({','.join(names[i] for i in node.inputs)})"
        elif node.kind == ERRBACK:
            assert node.trigger is not None
            names[node_id] = f"{node.task}!{names[node.trigger]}"
        elif node.kind == TASK and len(node_id) == 36:
            names[node_id] = f"{node.task}{list(node.args)}"
        else:
            names[node_id] = node_id
    return names


def edges(workflow: Workflow) -> set[str]:
    """``a->b`` for data edges, ``a-link->b`` and ``a-err->e`` for callbacks."""
    names = labels(workflow)
    marks = {DATA: "->", LINK: "-link->", LINK_ERROR: "-err->"}
    return {
        f"{names[a]}{marks[kind]}{names[b]}"
        for a, b, kind in workflow.graph.edges(data="kind", default=DATA)
    }


def by_label(workflow: Workflow) -> dict[str, Node]:
    names = labels(workflow)
    return {names[n.id]: n for n in workflow.nodes}


def inputs(workflow: Workflow) -> dict[str, tuple[str, ...]]:
    """Each node's inputs, in order (the order of a chord body's list)."""
    names = labels(workflow)
    return {names[n.id]: tuple(names[i] for i in n.inputs) for n in workflow.nodes if n.inputs}


# -- the composition table ---------------------------------------------------------------------
TABLE: list[tuple[str, Any, set[str], dict[str, tuple[str, ...]]]] = [
    # (row, canvas, edges, inputs of multi-input nodes)
    ("a | b", lambda: s("a") | s("b"), {"a->b"}, {}),
    ("a | b.si()", lambda: s("a") | si("b"), {"a->b"}, {}),
    ("chain(chain(a, b), c)", lambda: chain(chain(s("a"), s("b")), s("c")), {"a->b", "b->c"}, {}),
    ("group(a, b)", lambda: group(s("a"), s("b")), set(), {}),
    ("group(group(a, b), c)", lambda: group(group(s("a"), s("b")), s("c")), set(), {}),
    (
        "x | group(a, b)",
        lambda: s("x") | group(s("a"), s("b")),
        {"x->a", "x->b"},
        {},
    ),
    (
        "group(a, b) | c",
        lambda: (group(s("a"), s("b")) | s("c")).set(group_id="g"),
        {"a->g", "b->g", "g->c"},
        {"g": ("a", "b")},
    ),
    ("group(a) | c", lambda: (group(s("a")) | s("c")).set(group_id="g"), {"a->g", "g->c"}, {}),
    (
        "group(a, b) | group(c, d)",
        lambda: (group(s("a"), s("b")) | group(s("c"), s("d"))).set(group_id="g"),
        {"a->g", "b->g", "g->c", "g->d"},
        {"g": ("a", "b")},
    ),
    ("chord([], c)", lambda: chord([], s("c"), group_id="g"), {"g->c"}, {}),
    (
        "x | chord([], c)",
        lambda: s("x") | chord([], s("c"), group_id="g"),
        {"x->g", "g->c"},
        {},
    ),
    (
        "chord([chain(a, b), c], d)",
        lambda: chord([chain(s("a"), s("b")), s("c")], s("d"), group_id="g"),
        {"a->b", "b->g", "c->g", "g->d"},
        {"g": ("b", "c")},
    ),
    (
        "chord([group(a, b), c], d)",
        lambda: chord([group(s("a"), s("b")), s("c")], s("d"), group_id="g"),
        {"a->g", "b->g", "c->g", "g->d"},
        {"g": ("a", "b", "c")},
    ),
    (
        "chord([a | group(b, c)], d)",
        lambda: chord([s("a") | group(s("b"), s("c"), group_id="h")], s("d"), group_id="g"),
        {"a->b", "a->c", "b->h", "c->h", "h->g", "g->d"},
        {"h": ("b", "c"), "g": ("h",)},
    ),
    (
        "chord(h, b) | c",
        lambda: chord([s("a"), s("x")], s("b"), group_id="g") | s("c"),
        {"a->g", "x->g", "g->b", "b->c"},
        {"g": ("a", "x")},
    ),
    ("a.link(b)", lambda: _linked(s("a"), s("b")), {"a-link->b"}, {}),
    (
        "a.link_error(e)",
        lambda: s("a").on_error(Signature("t.e")),
        {"a-err->t.e!a"},
        {},
    ),
    (
        "chain.link(b)",
        lambda: _linked(chain(s("a"), s("c")), s("b")),
        {"a->c", "c-link->b"},
        {},
    ),
    (
        "chain(a, group(b, c)).link_error(e)",
        lambda: chain(s("a"), group(s("b"), s("c"), group_id="g")).on_error(Signature("t.e")),
        {"a->b", "a->c", "a-err->t.e!a", "b-err->t.e!b", "c-err->t.e!c"},
        {},
    ),
    (
        "group.link(b)",
        lambda: _linked(group(s("a"), s("c"), group_id="g"), s("b")),
        {"a-link->b"},
        {},
    ),
    (
        "group.link_error(e)",
        lambda: group(s("a"), s("c")).on_error(Signature("t.e")),
        {"a-err->t.e!a", "c-err->t.e!c"},
        {},
    ),
    (
        "chord.link(b) / link_error(e)",
        lambda: _linked(chord([s("a")], s("c"), group_id="g"), s("b")).on_error(Signature("t.e")),
        {"a->g", "g->c", "c-link->b", "c-err->t.e!c", "g-err->t.e!g"},
        {},
    ),
    (
        "x | T.map(items)",
        lambda: s("x") | xmap("t.m", [1, 2], task_id="m"),
        {"x->m"},
        {},
    ),
]


def _linked(sig: Signature, callback: Signature) -> Signature:
    sig.link(callback)
    return sig


@pytest.mark.parametrize(("row", "make", "expected_edges", "expected_inputs"), TABLE)
def test_composition_table(
    row: str, make: Any, expected_edges: set[str], expected_inputs: dict[str, tuple[str, ...]]
) -> None:
    # Given a canvas shaped like one row of the composition table
    canvas = make()
    # When it is compiled
    workflow = compile(canvas)
    # Then the graph has exactly that row's edges, and joins take their inputs in order
    assert edges(workflow) == expected_edges, row
    got = inputs(workflow)
    for node, wanted in expected_inputs.items():
        assert got[node] == wanted, row
    assert nx.is_directed_acyclic_graph(workflow.graph)


def test_every_table_row_is_documented() -> None:
    # Given the docstring's table (RULES) and the rows tested above
    documented = RULES
    # Then each tested row names a shape the table documents
    for row in ("group(a, b) | c", "chord([], c)", "x | chord([], c)", "group.link(b)"):
        assert f"``{row}``" in documented
    assert "``a | 10``" in documented and "group.apply_async(link=...)" in documented


def test_immutable_signature_waits_but_ignores_the_result() -> None:
    # Given a | b.si()
    workflow = compile(s("a") | si("b", 7))
    # Then b has a as its input but is marked immutable, with its own args only
    b = workflow.node("b")
    assert b.inputs == ("a",) and b.immutable and b.args == (7,)


def test_nested_chains_flatten_at_construction() -> None:
    # Given a chain of chains without options of their own
    flat = chain(chain(s("a"), s("b")), chain(s("c"), s("d")))
    # Then construction flattened it, and | keeps it flat too
    assert [t.task for t in flat.tasks] == ["t.a", "t.b", "t.c", "t.d"]
    assert len((s("a") | s("b") | s("c")).tasks) == 3  # type: ignore[attr-defined]


def test_an_inner_chain_is_flattened_and_its_own_options_apply_as_celery_applies_them() -> None:
    # Given an inner chain carrying its own queue
    inner = chain(s("b"), s("c")).set(queue="inner")
    # When chained into another with chain(...) (Celery folds it with |: its options drop)
    folded = compile(chain(s("a"), inner))
    # Then it runs a -> b -> c and no node takes the inner queue
    assert edges(folded) == {"a->b", "b->c"}
    assert all("queue" not in n.options for n in folded.nodes)
    # And kept nested (a chain built with options), its queue goes to its first task only
    nested = compile(chain(s("a"), inner, queue="outer"))
    assert edges(nested) == {"a->b", "b->c"}
    queues = {n.id: n.options.get("queue") for n in nested.nodes}
    assert queues == {"a": "outer", "b": "inner", "c": None}


def test_nested_groups_flatten_in_group_and_in_chord_header() -> None:
    # Given nested groups in a group and in a chord header
    flat_group = compile(group(group(s("a"), group(s("b"))), s("c")))
    flat_header = compile(chord([group(s("a"), s("b")), s("c")], s("d"), group_id="g"))
    # Then the group has three flat members, and the header's join three inputs
    assert [m.id for m in flat_group.result.members] == ["a", "b", "c"]
    assert flat_header.node("g").inputs == ("a", "b", "c")


def test_empty_chord_header_is_a_root_join_with_no_inputs() -> None:
    # Given chord([], body)
    workflow = compile(chord([], s("c"), group_id="g"))
    # Then the join is a root that the dispatcher resolves to [] at once
    join = workflow.node("g")
    assert join.kind == GATHER and join.inputs == () and [n.id for n in workflow.roots()] == ["g"]


def test_empty_group_after_a_task_waits_for_it_and_ignores_its_value() -> None:
    # Given x | chord([], c)
    workflow = compile(s("x") | chord([], s("c"), group_id="g"))
    # Then the join waits for x but is marked to resolve to [] (immutable)
    join = workflow.node("g")
    assert join.inputs == ("x",) and join.immutable


@pytest.mark.parametrize(
    ("canvas", "args", "expected"),
    [
        # args given to a chain reach its first task
        (lambda: chain(s("a", 1), s("b", 2)), (9,), {"a": (9, 1), "b": (2,)}),
        # ... and every member when the chain starts with a group
        (
            lambda: chain(group(s("a"), s("b")), s("c")),
            (9,),
            {"a": (9,), "b": (9,), "c": ()},
        ),
        # args given to a group reach every member
        (lambda: group(s("a", 1), s("b")), (9,), {"a": (9, 1), "b": (9,)}),
        # args given to a chord reach every header member, not the body
        (lambda: chord([s("a"), s("b")], s("c")), (9,), {"a": (9,), "b": (9,), "c": ()}),
        # immutable members ignore them
        (lambda: group(si("a", 1), s("b")), (9,), {"a": (1,), "b": (9,)}),
    ],
    ids=["chain", "chain-from-group", "group", "chord", "immutable-member"],
)
def test_call_args_reach_the_right_nodes(canvas: Any, args: Any, expected: Any) -> None:
    # Given a canvas called with extra args
    workflow = compile(canvas(), args)
    # Then the args are prepended where Celery puts them, and nowhere else
    assert {k: workflow.node(k).args for k in expected} == expected


def test_call_kwargs_merge_into_first_task() -> None:
    # Given a chain called with kwargs
    workflow = compile(chain(s("a", z=1), s("b")), (), {"y": 2})
    # Then they merge into the first task's kwargs only
    assert workflow.node("a").kwargs == {"z": 1, "y": 2} and workflow.node("b").kwargs == {}


def test_compile_never_modifies_the_callers_canvas() -> None:
    # Given a chain compiled with args, options and a link
    canvas = chain(s("a"), s("b"))
    before = canvas.to_dict()
    compile(canvas, (1,), None, {"queue": "q", "link": [s("z")], "task_id": "last"})
    # Then the canvas is as it was
    assert canvas.to_dict() == before


# -- options ---------------------------------------------------------------------------------
def test_options_reach_a_chains_first_task_a_groups_members_and_a_chords_header_and_body() -> None:
    # Given options set on a chain, on a group and on a chord, as Celery applies them
    chained = chain(s("a"), s("b").set(queue="own"), group(s("c"), s("d"))).set(queue="q")
    grouped = group(s("a"), s("b").set(queue="own")).set(queue="q")
    chorded = chord([s("a"), s("b").set(queue="own")], s("c")).set(queue="q")

    def queues(canvas: Signature) -> dict[str, Any]:
        return {n.id: n.options.get("queue") for n in compile(canvas).nodes if n.kind == TASK}

    # Then a chain's go to its first task only; a group's and a chord's win over every part's
    assert queues(chained) == {"a": "q", "b": "own", "c": None, "d": None}
    assert queues(grouped) == {"a": "q", "b": "q"}
    assert queues(chorded) == {"a": "q", "b": "q", "c": "q"}


def test_call_options_win_over_the_composites_own() -> None:
    # Given a group with priority 1 sent with priority 5
    workflow = compile(group(s("a"), s("b")).set(priority=1), options={"priority": 5})
    # Then the call's option wins, as in Celery's apply_async
    assert {workflow.node(i).options["priority"] for i in "ab"} == {5}


def test_countdown_follows_the_option_rules() -> None:
    # Given a chain sent with a countdown, and a chord sent with one
    chained = compile(chain(s("x"), group(s("a"), s("b")), s("c")), options={"countdown": 10})
    chorded = compile(chord([s("a"), s("b")], s("c")), options={"countdown": 10})
    # Then the chain's first task carries it, the later ones do not
    assert chained.node("x").options["countdown"] == 10
    assert all("countdown" not in chained.node(n).options for n in "abc")
    # And a chord delays its header's members and its body (Celery's rule)
    assert all(chorded.node(n).options["countdown"] == 10 for n in "abc")


def test_options_given_to_a_single_task_with_a_link_stay_on_that_task() -> None:
    # Given a task sent with a link and call options
    workflow = compile(s("a"), options={"link": [s("b")], "argsrepr": "(...)", "queue": "q"})
    # Then the options are the task's own; the callback is routed by its own options
    assert workflow.node("a").options["argsrepr"] == "(...)"
    assert workflow.node("a").options["queue"] == "q"
    assert "queue" not in workflow.node("b").options


@pytest.mark.parametrize(
    ("canvas", "expected_id"),
    [
        (lambda: chain(s("a"), Signature("t.b")), ("task", "given")),
        (lambda: chain(s("a"), group(s("b"), s("c"))), ("group", "given")),
        (lambda: chord([s("a")], Signature("t.b")), ("task", "given")),
        (lambda: chord([s("a")], chain(s("b"), Signature("t.c"))), ("task", "given")),
        (lambda: group(s("a"), s("b")), ("group", "given")),
        (lambda: Signature("t.a"), ("task", "given")),
    ],
    ids=["chain", "chain-ending-in-group", "chord", "chord-with-chain-body", "group", "task"],
)
def test_task_id_option_names_the_result_the_caller_gets(canvas: Any, expected_id: Any) -> None:
    # Given a canvas sent with task_id="given"
    workflow = compile(canvas(), options={"task_id": "given"})
    # Then the returned handle (the last node, or the group) has that id
    assert (workflow.result.kind, workflow.result.id) == expected_id
    assert workflow.id == "given"


# -- map, starmap, chunks ----------------------------------------------------------------------
def test_map_and_starmap_are_one_immutable_call_of_the_builtin() -> None:
    # Given T.map and T.starmap
    workflow = compile(group(xmap("t.f", [1, 2], task_id="m"), xstarmap("t.f", [(1, 2)])))
    # Then each is one immutable node calling the builtin with (task, items)
    m = workflow.node("m")
    assert (m.task, m.args, m.immutable) == ("canvas.map", ("t.f", [1, 2]), True)
    starmaps = [n for n in workflow.nodes if n.task == "canvas.starmap"]
    assert [n.args for n in starmaps] == [("t.f", [(1, 2)])]


def test_chunks_compile_to_a_group_of_starmaps_of_n_items(app: Canvas) -> None:
    # Given 7 items in chunks of 3
    canvas = app.tasks["tasks.add"].chunks([(i, i) for i in range(7)], 3)
    # When compiled
    workflow = compile(canvas)
    # Then there are three starmap calls of 3, 3 and 1 items, gathered as a group
    assert workflow.result.kind == "group"
    calls = [workflow.node(m.id) for m in workflow.result.members]
    assert [n.task for n in calls] == ["canvas.starmap"] * 3
    assert [len(n.args[1]) for n in calls] == [3, 3, 1]
    assert len(canvas.group()) == 3


def test_chunks_reject_a_non_positive_size() -> None:
    with pytest.raises(ValueError, match="positive int"):
        chunks("t.f", [1], 0)


# -- errors ------------------------------------------------------------------------------------
def _node(node_id: str, *inputs: str) -> Node:
    return Node(node_id, TASK, "t.x", inputs=inputs)


def test_hand_built_graph_with_a_cycle_is_refused() -> None:
    # Given a hand-built graph a -> b -> c -> a
    graph = nx.DiGraph()
    for node in (_node("a", "c"), _node("b", "a"), _node("c", "b")):
        graph.add_node(node.id, node=node)
        for source in node.inputs:
            graph.add_edge(source, node.id)
    # Then both validate and from_graph name the cycle
    with pytest.raises(WorkflowError, match=r"cycle: .*a.*->"):
        validate(graph)
    with pytest.raises(WorkflowError, match="cycle"):
        from_graph(graph)


def test_hand_built_graph_with_an_unknown_input_is_refused() -> None:
    graph = nx.DiGraph()
    graph.add_node("b", node=_node("b", "ghost"))
    with pytest.raises(WorkflowError, match="unknown node 'ghost'"):
        validate(graph)


def test_hand_built_graph_vertex_without_a_node_is_refused() -> None:
    graph = nx.DiGraph()
    graph.add_node("a")
    with pytest.raises(WorkflowError, match="carries no Node"):
        validate(graph)


def test_hand_built_acyclic_graph_becomes_a_workflow() -> None:
    # Given a valid hand-built diamond
    graph = nx.DiGraph()
    for node in (_node("a"), _node("b", "a"), _node("c", "a"), _node("d", "b", "c")):
        graph.add_node(node.id, node=node)
        for source in node.inputs:
            graph.add_edge(source, node.id)
    # When wrapped
    workflow = from_graph(graph)
    # Then its one sink is its result and a is its only root
    assert workflow.result == ResultSpec("task", "d")
    assert [n.id for n in workflow.roots()] == ["a"]


def test_node_cap() -> None:
    # Given a group of 10 and a cap of 5 nodes
    canvas = group(Signature("t.a") for _ in range(10))
    # Then compiling fails with a message naming the cap and the setting
    with pytest.raises(WorkflowError, match=r"more than 5 nodes \(canvas_max_nodes\)"):
        compile(canvas, max_nodes=5)
    assert len(compile(canvas, max_nodes=10)) == 10


def test_depth_cap() -> None:
    # Given chords nested 6 deep and a depth cap of 4
    canvas: Signature = Signature("t.a")
    for _ in range(6):
        canvas = chord([canvas], Signature("t.b"))
    # Then compiling fails naming the cap; a higher cap compiles it
    with pytest.raises(WorkflowError, match=r"deeper than 4 levels \(canvas_max_depth\)"):
        compile(canvas, max_depth=4)
    compile(canvas, max_depth=50)


def test_long_chain_is_not_deep() -> None:
    # Given a 1,000-step chain
    canvas = chain(Signature("t.a") for _ in range(1000))
    # Then it compiles under the default depth cap, as 1,000 nodes in a line
    workflow = compile(canvas)
    assert len(workflow) == 1000 and nx.dag_longest_path_length(workflow.graph) == 999


def test_or_with_a_non_signature_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        s("a") | 10
    with pytest.raises(TypeError):
        10 | s("a")
    with pytest.raises(TypeError):
        group(s("a")) | 10


@pytest.mark.parametrize("option", ["link", "link_error"])
def test_group_apply_async_with_link_is_a_type_error(app: Canvas, option: str) -> None:
    add = app.tasks["tasks.add"]
    with pytest.raises(TypeError, match=r"group\.link"):
        options: dict[str, Any] = {option: add.s(1)}
        group(add.s(1, 1)).apply_async(**options)


def test_empty_chain_is_refused() -> None:
    with pytest.raises(WorkflowError, match="empty chain"):
        compile(chain())


def test_compiling_a_non_signature_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="signature or canvas"):
        compile([s("a")])  # type: ignore[arg-type]


def test_a_frozen_id_used_twice_runs_twice() -> None:
    # Given one frozen signature used twice in one canvas
    a = s("a")
    workflow = compile(group(a, a))
    # Then both run (as in Celery): the first keeps its id, the second gets its own
    tasks = [n for n in workflow.nodes if n.kind == TASK]
    assert len(tasks) == 2 and tasks[0].id == "a" and tasks[1].id != "a"


def test_link_error_takes_a_task_signature() -> None:
    with pytest.raises(WorkflowError, match="link_error takes a task signature"):
        compile(s("a").on_error(group(s("e"))))


def test_chain_accepts_only_signatures() -> None:
    with pytest.raises(TypeError, match="expected a signature"):
        chain(s("a"), "t.b")


# -- replacement -------------------------------------------------------------------------------
def test_replacement_ends_in_a_forward_that_completes_the_replaced_node() -> None:
    # Given a node replaced by a group
    replaced = Node("r", TASK, "t.r", group="g0")
    workflow = compile_replacement(group(Signature("t.a"), Signature("t.b")), replaced)
    # Then the group is joined and forwarded to r, and the ids are the same on a second compile
    forward = next(n for n in workflow.nodes if n.kind == FORWARD)
    assert forward.replaces == "r" and workflow.node(forward.inputs[0]).kind == GATHER
    again = compile_replacement(group(Signature("t.a"), Signature("t.b")), replaced)
    assert set(again.graph.nodes) == set(workflow.graph.nodes)


# -- result handles ----------------------------------------------------------------------------
def _handle(app: Canvas, canvas: Signature) -> Any:
    return from_spec(compile(canvas).result, app)


def test_chain_result_has_celery_parents(app: Canvas) -> None:
    # Given a | b | c
    result = _handle(app, s("a") | s("b") | s("c"))
    # Then the handle is c's, with .parent b, then a, then nothing
    assert isinstance(result, AsyncResult)
    assert [result.id, result.parent.id, result.parent.parent.id] == ["c", "b", "a"]
    assert result.parent.parent.parent is None


def test_group_result_is_in_member_order(app: Canvas) -> None:
    result = _handle(app, group(s("a"), s("b"), s("c"), group_id="g"))
    assert isinstance(result, GroupResult) and result.id == "g"
    assert [r.id for r in result] == ["a", "b", "c"] and result.parent is None


def test_chain_ending_in_a_group_returns_a_group_result(app: Canvas) -> None:
    result = _handle(app, s("x") | group(s("a"), s("b"), group_id="g"))
    assert isinstance(result, GroupResult) and result.id == "g"
    assert result.parent.id == "x"


def test_chord_returns_the_body_with_the_header_as_parent(app: Canvas) -> None:
    result = _handle(app, s("x") | chord([s("a"), s("b")], s("c"), group_id="g"))
    assert isinstance(result, AsyncResult) and result.id == "c"
    header = result.parent
    assert isinstance(header, GroupResult) and header.id == "g"
    assert [r.id for r in header] == ["a", "b"] and header.parent.id == "x"


def test_group_member_chain_keeps_its_parents(app: Canvas) -> None:
    result = _handle(app, group(s("a") | s("b"), s("c")))
    assert [r.id for r in result] == ["b", "c"] and result[0].parent.id == "a"


def test_freeze_fixes_the_ids_apply_async_will_use(app: Canvas) -> None:
    # Given a chord in a chain, frozen before it is sent
    add = app.tasks["tasks.add"]
    tsum = app.tasks["tasks.tsum"]
    canvas = add.s(1, 1) | chord([add.s(1), add.s(2)], tsum.s())
    frozen = canvas.freeze()
    # When it is compiled (as apply_async does)
    result = from_spec(compile(canvas).result, app)
    # Then the frozen handle has the same ids and parents
    assert frozen.id == result.id
    assert [r.id for r in frozen.parent] == [r.id for r in result.parent]
    assert frozen.parent.id == result.parent.id
    assert frozen.parent.parent.id == result.parent.parent.id


def test_freeze_of_a_group_and_of_chunks(app: Canvas) -> None:
    add = app.tasks["tasks.add"]
    g = group(add.s(1, 1), add.s(2, 2))
    frozen = g.freeze()
    assert isinstance(frozen, GroupResult)
    assert [r.id for r in from_spec(compile(g).result, app)] == [r.id for r in frozen]
    c = add.chunks([(1, 1), (2, 2), (3, 3)], 2)
    frozen = c.freeze()
    assert [r.id for r in from_spec(compile(c).result, app)] == [r.id for r in frozen]


def test_freeze_of_a_task_with_an_id(app: Canvas) -> None:
    sig = app.tasks["tasks.add"].s(1, 1)
    assert sig.freeze("fixed").id == "fixed" == sig.id


# -- serialization -----------------------------------------------------------------------------
def _canvases(app: Canvas) -> list[Signature]:
    add, mul, tsum = (app.tasks[f"tasks.{n}"] for n in ("add", "mul", "tsum"))
    return [
        add.s(1, 2),
        add.si(1, 2).set(queue="q", countdown=3),
        add.s(1).on_error(mul.s(0)),
        _linked(add.s(1, 1), mul.s(2)),
        add.s(1, 1) | mul.s(2) | group(add.s(1), add.s(2)),
        group(add.s(i, i) for i in range(3)),
        chord([add.s(1, 1), add.s(2, 2) | mul.s(3)], tsum.s()),
        chord([chord([add.s(1, 1)], tsum.s())], tsum.s() | mul.s(2)),
        add.map([1, 2]),
        add.starmap([(1, 2)]),
        add.chunks([(1, 1), (2, 2)], 1),
    ]


def test_to_dict_from_dict_round_trip(app: Canvas) -> None:
    for canvas in _canvases(app):
        # Given a canvas's dict
        data = canvas.to_dict()
        # When rebuilt from it
        back = Signature.from_dict(data, app=app)
        # Then it is equal, of the same type, and compiles to the same shape
        assert back == canvas and type(back) is type(canvas), canvas
        assert len(compile(back)) == len(compile(canvas.clone()))


def test_msgpack_round_trip_so_a_task_can_return_a_canvas(app: Canvas) -> None:
    for canvas in _canvases(app):
        # Given a canvas encoded as a task result would be
        data = protocol.internal.loads(protocol.internal.dumps(canvas))
        # When rebuilt with signature()
        back = signature(data, app=app)
        # Then nothing was lost
        assert back == canvas and type(back) is type(canvas), canvas


def test_celery_shaped_dicts_are_read(app: Canvas) -> None:
    # Given dicts as Celery writes them: map task/it in kwargs, a chord header as a list
    mapped = {
        "task": "celery.map",
        "args": [],
        "kwargs": {"task": {"task": "tasks.add", "args": [], "kwargs": {}}, "it": [1, 2]},
        "options": {},
        "subtask_type": "xmap",
        "immutable": True,
    }
    header = [add.to_dict() for add in (app.tasks["tasks.add"].s(1, 1),)]
    chorded = {
        "task": "celery.chord",
        "args": [],
        "kwargs": {"header": header, "body": app.tasks["tasks.tsum"].s().to_dict()},
        "options": {},
        "subtask_type": "chord",
        "immutable": False,
    }
    # Then they become our map and chord
    m = signature(mapped, app=app)
    assert isinstance(m, xmap) and m.args == ("tasks.add", [1, 2]) and m.immutable
    c = signature(chorded, app=app)
    assert isinstance(c, chord) and len(c.header) == 1 and c.body == app.tasks["tasks.tsum"].s()


def test_unknown_subtask_type_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown subtask_type 'weird'"):
        Signature.from_dict({"task": "x", "subtask_type": "weird"})


# -- signatures, as Celery prints and builds them ----------------------------------------------
def test_repr_matches_celery(app: Canvas) -> None:
    add, mul, tsum = (app.tasks[f"tasks.{n}"] for n in ("add", "mul", "tsum"))
    assert repr(add.s(2, 2, debug=True)) == "tasks.add(2, 2, debug=True)"
    assert repr(add.s(2, 2) | mul.s(4)) == "tasks.add(2, 2) | mul(4)"
    assert repr(group(add.s(2, 2), add.s(4, 4))) == "group([tasks.add(2, 2), add(4, 4)])"
    assert repr(group()) == "group(<untitled>)"
    assert repr(chord([add.s(1, 1), add.s(2, 2)], tsum.s())) == (
        "%tasks.tsum(group([add(1, 1), add(2, 2)]))"
    )
    assert repr(add.map([1, 2])) == "[tasks.add(x) for x in [1, 2]]"
    assert repr(add.starmap([(1, 2)])) == "[tasks.add(*x) for x in [(1, 2)]]"


def test_signature_keywords_are_options_and_s_keywords_are_kwargs(app: Canvas) -> None:
    add = app.tasks["tasks.add"]
    # Given Celery's two ways of building a signature
    by_signature = add.signature((2, 2), debug=True)
    by_s = add.s(2, 2, debug=True)
    # Then signature() keywords are options, s() keywords are task kwargs
    assert by_signature.options == {"debug": True} and by_signature.kwargs == {}
    assert repr(by_signature) == "tasks.add(2, 2)"
    assert by_s.kwargs == {"debug": True} and by_s.options == {}
    by_name = signature("tasks.add", (2, 2), countdown=10)
    assert by_name.options == {"countdown": 10} and by_name.args == (2, 2)


def test_partial_args_are_prepended_and_immutable_ignores_them(app: Canvas) -> None:
    add = app.tasks["tasks.add"]
    assert add.s(2).clone((8,)).args == (8, 2)
    assert add.si(2, 2).clone((8,)).args == (2, 2)
    assert add.s(2)(8) == 10


def test_set_link_and_link_error_mutate_and_return_as_celery(app: Canvas) -> None:
    add, mul = app.tasks["tasks.add"], app.tasks["tasks.mul"]
    sig = add.s(1, 1)
    assert sig.set(queue="q") is sig and sig.options["queue"] == "q"
    callback = mul.s(2)
    assert sig.link(callback) is callback and sig.options["link"] == [callback]
    errback = mul.s(0)
    assert sig.link_error(errback) is errback
    assert sig.on_error(mul.s(3)) is sig and len(sig.options["link_error"]) == 2
    clone = sig.clone()
    clone.link(mul.s(4))
    assert len(sig.options["link"]) == 1  # clone copies the option lists


def test_chord_called_with_a_body(app: Canvas) -> None:
    add, tsum = app.tasks["tasks.add"], app.tasks["tasks.tsum"]
    c = chord([add.s(1, 1)])
    with pytest.raises(TypeError, match="no body"):
        c.link(tsum.s())
    assert repr(c).startswith("<chord without body")


def test_group_then_task_builds_a_chord_even_for_one_member(app: Canvas) -> None:
    add, tsum = app.tasks["tasks.add"], app.tasks["tasks.tsum"]
    assert isinstance(group(add.s(1, 1)) | tsum.s(), chord)
    assert isinstance(group(add.s(1, 1), add.s(2, 2)) | (tsum.s() | add.s(1)), chord)
    assert isinstance(add.s(1, 1) | group(add.s(1)), chain)


def test_signature_from_a_task_a_name_a_dict_or_a_signature(app: Canvas) -> None:
    add = app.tasks["tasks.add"]
    by_task = signature(add, (1, 2), countdown=1)
    assert (by_task.task, by_task.args, by_task.options) == ("tasks.add", (1, 2), {"countdown": 1})
    assert signature(by_task.to_dict(), app=app) == by_task
    copy = signature(by_task)
    assert copy == by_task and copy is not by_task
    assert xmap(add.s(), [1]).args == ("tasks.add", [1])  # Celery passes T.s() to a map


def test_errbacks_are_successors_in_the_store() -> None:
    # Given a task with an errback
    from canvas.core import dispatch

    workflow = compile(s("a").on_error(Signature("t.e")))
    errback = next(n for n in workflow.nodes if n.kind == ERRBACK)
    # Then the stored record hands the errback out with a's completion, once, like a successor
    record = dispatch.node_record(workflow, workflow.node("a"))
    assert record.successors == (errback.id,)
    assert dispatch.node_record(workflow, errback).n_inputs == 1
    # ... while the graph's data successors do not include it
    assert workflow.successors("a") == []


def test_the_docs_page_is_the_compilers_docstring() -> None:
    # Given docs/canvas.md, then it shows the compiler's table and rules word for word.
    from pathlib import Path

    import canvas.dag

    page = (Path(__file__).parents[2] / "docs" / "canvas.md").read_text()
    assert canvas.dag.__doc__ is not None
    assert canvas.dag.__doc__.strip() in page
