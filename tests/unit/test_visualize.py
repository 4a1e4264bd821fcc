"""``canvas.visualize`` and ``canvas render``: pictures parsed back, never compared by eye.

DOT is read back by Graphviz itself (``dot -Tdot_json``, no layout), so a test sees what ``dot``
sees: nodes by their ``id`` attribute (the task id), clusters with every node inside them, and
edges with their style. Runs are built in a ``memory://`` result store, node by node, with the
metas a worker writes; ``tests/integration/test_render_live.py`` runs a real worker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from canvas import Canvas, chain, chord, dag, group, states
from canvas.cli.main import cli
from canvas.core import dispatch, metas
from canvas.exceptions import ImproperlyConfigured
from canvas.signature import Signature
from canvas.visualize import (
    STATE_COLORS,
    format_for,
    layout,
    live,
    render,
    to_dot,
    to_text,
)
from canvas.visualize import __all__ as visualize_all
from canvas.visualize.dot import SKIPPED_COLOR
from canvas.visualize.text import LABEL_WIDTH

SVG = "{http://www.w3.org/2000/svg}"


# -- reading DOT back ------------------------------------------------------------------------------
@dataclass
class Drawn:
    """A DOT graph as Graphviz parsed it, keyed by the ``id`` attributes we set."""

    graph: dict[str, Any]
    nodes: dict[str, dict[str, Any]]
    clusters: dict[str, set[str]]
    cluster_attrs: dict[str, dict[str, Any]]
    edges: list[tuple[str, str, dict[str, Any]]]

    def labelled(self, text: str) -> str:
        """The id of the one node whose label contains ``text``."""
        found = [k for k, v in self.nodes.items() if text in v.get("label", "")]
        assert len(found) == 1, (text, found)
        return found[0]

    def pairs(self, style: str | None = None) -> set[tuple[str, str]]:
        return {(s, t) for s, t, a in self.edges if style is None or a.get("style") == style}


def dot_binary() -> str:
    found = shutil.which("dot")
    if found is None:
        pytest.fail(
            "Graphviz's 'dot' is not on PATH; install it (apt-get install graphviz).",
            pytrace=False,
        )
    return found


def parse(source: str) -> Drawn:
    done = subprocess.run(
        [dot_binary(), "-Tdot_json"], input=source.encode(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr, done.stderr.decode()  # no warnings either
    data = json.loads(done.stdout)
    objects = {o["_gvid"]: o for o in data.get("objects", [])}
    key = {gvid: o.get("id", o["name"]) for gvid, o in objects.items()}
    nodes = {key[g]: o for g, o in objects.items() if "nodes" not in o and "subgraphs" not in o}
    clusters, attrs = {}, {}
    for gvid, obj in objects.items():
        if obj["name"].startswith("cluster"):
            clusters[key[gvid]] = {key[n] for n in obj.get("nodes", [])}
            attrs[key[gvid]] = obj
    for node_id in list(nodes):
        if node_id in clusters:  # an empty cluster has neither list
            del nodes[node_id]
    edges = [(key[e["tail"]], key[e["head"]], e) for e in data.get("edges", [])]
    return Drawn(data, nodes, clusters, attrs, edges)


def t(name: str, *args: Any, **options: Any) -> Signature:
    """A call of ``tasks.<name>`` whose task id is ``name``."""
    return Signature(f"tasks.{name}", args, task_id=name, **options)


# -- shapes ---------------------------------------------------------------------------------------
def _linked() -> Signature:
    a = t("a")
    a.link(t("l"))
    a.link_error(Signature("tasks.log_error"))
    return chain(a, t("b"))


def _chord_with_errbacks() -> Signature:
    header = group(t("a"), t("b"))
    header.link_error(Signature("tasks.log_error"))
    return chord(header, t("c"), group_id="G")


SHAPES = [
    pytest.param(
        lambda: t("a") | t("b") | t("c"),
        {},
        {("a", "b"), ("b", "c")},
        id="chain: a straight run, no boxes",
    ),
    pytest.param(
        lambda: group(t("a"), t("b"), group_id="G"),
        {"group-G": {"a", "b"}},
        set(),
        id="group: one box, no join",
    ),
    pytest.param(
        lambda: chord([t("a"), t("b")], t("c"), group_id="G"),
        {"chord-G": {"a", "b", "G"}},
        {("a", "G"), ("b", "G"), ("G", "c")},
        id="chord: header and join boxed, body outside",
    ),
    pytest.param(
        lambda: chord([t("a") | t("b"), t("c")], t("d"), group_id="G"),
        {"chord-G": {"a", "b", "c", "G"}},
        {("a", "b"), ("b", "G"), ("c", "G"), ("G", "d")},
        id="chord of chains: the whole chain is in the box",
    ),
    pytest.param(
        lambda: t("x") | chord([t("a"), t("b")], t("y"), group_id="G"),
        {"chord-G": {"a", "b", "G"}},
        {("x", "a"), ("x", "b"), ("a", "G"), ("b", "G"), ("G", "y")},
        id="fan-out and in: what comes before stays outside",
    ),
    pytest.param(
        lambda: chord(
            [chord([t("a"), t("b")], t("c"), group_id="I"), t("d")], t("e"), group_id="O"
        ),
        {"chord-O": {"a", "b", "I", "c", "d", "O"}, "chord-I": {"a", "b", "I"}},
        {("a", "I"), ("b", "I"), ("I", "c"), ("c", "O"), ("d", "O"), ("O", "e")},
        id="nested chords: boxes nest, the inner body is in the outer box only",
    ),
]


@pytest.mark.parametrize(("make", "boxes", "data_edges"), SHAPES)
def test_shapes_draw_their_boxes_and_edges(
    make: Any, boxes: dict[str, set[str]], data_edges: set[tuple[str, str]]
) -> None:
    # Given a canvas with fixed task ids, When it is drawn, Then Graphviz reads back its boxes
    # (with every node inside them) and its data edges, and one node per task call.
    workflow = dag.compile(make())
    drawn = parse(to_dot(workflow))
    assert drawn.clusters == boxes
    assert {(s, t) for s, t, a in drawn.edges if "style" not in a} == data_edges
    assert set(drawn.nodes) == set(workflow.graph.nodes)


def test_link_and_link_error_are_distinct_dashed_edges() -> None:
    drawn = parse(to_dot(_linked()))
    errback = drawn.labelled("on error:")
    assert drawn.pairs("dashed") == {("a", "l"), ("a", errback)}
    colors = {(s, t): a["color"] for s, t, a in drawn.edges if a.get("style") == "dashed"}
    assert colors[("a", "l")] != colors[("a", errback)]
    assert {(s, t) for s, t, a in drawn.edges if "style" not in a} == {("a", "b")}
    assert drawn.nodes[errback]["shape"] == "note"
    assert "tasks.log_error()" in drawn.nodes[errback]["label"]


def test_errbacks_of_members_stay_in_their_box() -> None:
    drawn = parse(to_dot(_chord_with_errbacks()))
    errbacks = {n for n, a in drawn.nodes.items() if a["label"].startswith("on error:")}
    assert len(errbacks) == 2
    assert drawn.clusters["chord-G"] == {"a", "b", "G"} | errbacks


def test_direction_and_text_tree_of_a_plan() -> None:
    canvas = t("a", 1) | chord([t("b"), t("c")], t("d"), group_id="G")
    assert parse(to_dot(canvas, direction="TB")).graph["rankdir"] == "TB"
    assert parse(to_dot(canvas)).graph["rankdir"] == "LR"
    with pytest.raises(ValueError, match="LR, TB"):
        to_dot(canvas, direction="RL")
    lines = to_text(canvas).splitlines()
    assert lines[0].endswith("4 task calls")
    assert lines[1:] == [
        "├── tasks.a(1)",
        "├── chord G · 2 members",
        "│   ├── tasks.b()",
        "│   ├── tasks.c()",
        "│   └── join (2 inputs)",
        "└── tasks.d()",
    ]


# -- labels ---------------------------------------------------------------------------------------
def test_argsrepr_and_kwargsrepr_replace_the_real_arguments_everywhere() -> None:
    secret = "hunter2-" + uuid.uuid4().hex
    sig = Signature(
        "tasks.login",
        ("alice", secret),
        {"password": secret},
        task_id="a",
        argsrepr="('alice', '<hidden>')",
        kwargsrepr="{'password': '***'}",
    )
    source = to_dot(sig | t("b"))
    assert secret not in source
    assert secret not in to_text(sig)
    label = parse(source).nodes["a"]["label"]
    assert label == "tasks.login\\n('alice', '<hidden>', **{'password': '***'})"


def test_long_arguments_are_cut_and_odd_characters_survive() -> None:
    # Given arguments holding DOT and HTML specials and a backslash, and long values,
    # When drawn and laid out by Graphviz, Then the SVG shows their Python repr, values cut
    # by reprlib and lines cut to LABEL_WIDTH with an ellipsis.
    odd = 'x"<b>\\n{}|' + "y" * 200
    kwargs = {"k": odd, "other": odd, "more": odd}
    canvas = t("a", odd, list(range(1000))) | Signature("tasks.b", (), kwargs, task_id="b")
    svg = ET.fromstring(_pipe(to_dot(canvas), "svg"))
    texts = {g.get("id"): [x.text or "" for x in g.iter(f"{SVG}text")] for g in svg.iter(f"{SVG}g")}
    assert texts["a"] == ["tasks.a", "('x\"<b>\\\\n{...yyyyyyyyyy', [0, 1, 2, 3, ...])"]
    assert texts["b"][0] == "tasks.b"
    assert texts["b"][1].startswith("(k='x\"<b>\\\\n{...yyyyyyyyyy', other=")
    assert texts["b"][1].endswith("…") and len(texts["b"][1]) == LABEL_WIDTH


def test_maps_show_their_task_and_item_count() -> None:
    sig = Signature("canvas.starmap", ("tasks.add", [[1, 2]] * 7), task_id="m")
    assert parse(to_dot(sig)).nodes["m"]["label"] == "starmap tasks.add\\n× 7 items"


# -- large workflows ------------------------------------------------------------------------------
def test_a_group_of_a_thousand_collapses_to_a_summary_unless_expanded() -> None:
    canvas = dag.compile(t("x") | chord([t(f"m{i}", i) for i in range(1000)], t("y"), group_id="G"))
    drawn = parse(to_dot(canvas))
    summary = "summary-G"
    assert drawn.clusters == {"chord-G": {summary, "G"}}
    assert drawn.nodes[summary]["label"].startswith("1,000 members, collapsed\\n1 × tasks.m0")
    assert drawn.nodes[summary]["label"].endswith("+ 997 more task names")
    labels = {(s, t): a.get("label") for s, t, a in drawn.edges}
    assert labels == {("x", summary): "×1000", (summary, "G"): "×1000", ("G", "y"): ""}
    assert "├── 1 × tasks.m0" in to_text(canvas)
    expanded = parse(to_dot(canvas, expand=True))
    assert len(expanded.clusters["chord-G"]) == 1001
    assert len(expanded.edges) == 2001


def test_collapse_threshold_is_a_parameter() -> None:
    canvas = group([t(f"m{i}") for i in range(5)], group_id="G")
    assert parse(to_dot(canvas)).clusters["group-G"] == {f"m{i}" for i in range(5)}
    assert parse(to_dot(canvas, collapse_over=4)).clusters["group-G"] == {"summary-G"}


@pytest.mark.slow
def test_ten_thousand_nodes_draw_in_seconds() -> None:
    canvas = chain(*[group(Signature("tasks.add", (i,)) for i in range(1000)) for _ in range(10)])
    workflow = dag.compile(canvas)
    assert len(workflow) >= 10_000
    started = time.perf_counter()
    collapsed = to_dot(workflow)
    middle = time.perf_counter()
    expanded = to_dot(workflow, expand=True)
    done = time.perf_counter()
    assert middle - started < 5, f"collapsed: {middle - started:.2f}s"
    assert done - middle < 10, f"expanded: {done - middle:.2f}s"
    drawn = parse(collapsed)
    joins = sum(1 for node in workflow.nodes if node.kind == dag.GATHER)
    assert len(drawn.clusters) == 10 and len(drawn.nodes) == 10 + joins
    assert expanded.count("tasks.add(") == 10_000


# -- runs -----------------------------------------------------------------------------------------
@pytest.fixture
def app() -> Iterator[Canvas]:
    app = Canvas("viz", broker="memory://", backend="memory://", set_as_current=False)
    yield app
    app.close()


def store_run(app: Canvas, canvas: Signature, runs: Mapping[str, dict[str, Any]]) -> dag.Workflow:
    """Save ``canvas`` as a started workflow and write ``runs`` (metas) as a worker would."""
    workflow = dag.compile(canvas)
    records = [dispatch.node_record(workflow, node) for node in workflow.nodes]
    app.backend.save_workflow(workflow.id, records, b"{}")
    for node_id, meta in runs.items():
        write(app, workflow, node_id, **meta)
    return workflow


def write(app: Canvas, workflow: dag.Workflow, node_id: str, status: str, **meta: Any) -> None:
    exc = meta.pop("exc", None)
    full = metas.make_meta(node_id, status, exc=exc, workflow=workflow.id, **meta)
    app.backend.store(node_id, status, metas.encode(full))


def failed_run(app: Canvas) -> dag.Workflow:
    canvas = t("a") | chord([t("b"), t("c")], t("d"), group_id="G") | t("e") | t("f")
    boom = ValueError("boom")
    ran = {"worker": "w1@host", "runtime": 0.5}
    return store_run(
        app,
        canvas,
        {
            "a": {"status": states.SUCCESS, "retries": 2, **ran},
            "b": {"status": states.SUCCESS, **ran},
            "c": {"status": states.FAILURE, "exc": boom, **ran},
            "G": {"status": states.FAILURE, "exc": boom},
            "d": {"status": states.FAILURE, "exc": boom},
            "e": {"status": states.FAILURE, "exc": boom},
            "f": {"status": states.FAILURE, "exc": boom},
        },
    )


def test_a_run_is_coloured_by_state_with_skipped_nodes_apart(app: Canvas) -> None:
    workflow = failed_run(app)
    drawn = parse(to_dot(app.workflow(workflow.id)))
    nodes = drawn.nodes
    assert nodes["a"]["fillcolor"] == STATE_COLORS[states.SUCCESS]
    assert nodes["a"]["label"] == "tasks.a()\\nSUCCESS · 500ms · 2 retries"
    assert nodes["c"]["fillcolor"] == STATE_COLORS[states.FAILURE]
    assert nodes["c"]["label"] == "tasks.c()\\nFAILURE · 500ms · ValueError"
    for skipped in "def":
        assert nodes[skipped]["fillcolor"] == SKIPPED_COLOR
        assert "dashed" in nodes[skipped]["style"]
        assert nodes[skipped]["label"].endswith("FAILURE (skipped)")
    assert nodes["G"]["fillcolor"] == STATE_COLORS[states.FAILURE]
    assert "legend" in drawn.nodes  # a table of every state's colour
    for state in states.ALL_STATES:
        assert f">{state}<" in nodes["legend"]["label"]
    assert drawn.graph["label"] == (
        f"workflow {workflow.id} · finished · FAILURE 4 (3 skipped) · SUCCESS 2"
    )


def test_a_run_as_text_names_each_state(app: Canvas) -> None:
    workflow = failed_run(app)
    write(app, workflow, "a", states.STARTED, worker="w1")  # still running, say
    lines = to_text(app.workflow(workflow.id)).splitlines()
    assert lines == [
        f"workflow {workflow.id} · running · FAILURE 4 (3 skipped) · STARTED 1 · SUCCESS 1",
        "├── tasks.a()  STARTED",
        "├── chord G · 2 members",
        "│   ├── tasks.b()  SUCCESS · 500ms",
        "│   ├── tasks.c()  FAILURE · 500ms · ValueError",
        "│   └── join (2 inputs)  FAILURE · ValueError",
        "├── tasks.d()  FAILURE (skipped)",
        "├── tasks.e()  FAILURE (skipped)",
        "└── tasks.f()  FAILURE (skipped)",
    ]


def test_nodes_not_run_yet_are_pending(app: Canvas) -> None:
    workflow = store_run(app, t("a") | t("b"), {"a": {"status": states.RECEIVED}})
    nodes = parse(to_dot(app.workflow(workflow.id))).nodes
    assert nodes["a"]["fillcolor"] == STATE_COLORS[states.RECEIVED]
    assert nodes["b"]["fillcolor"] == STATE_COLORS[states.PENDING]
    assert nodes["b"]["label"].endswith("PENDING")


def test_a_collapsed_group_counts_states(app: Canvas) -> None:
    members = [t(f"m{i}") for i in range(40)]
    outcomes: dict[str, dict[str, Any]] = {f"m{i}": {"status": states.SUCCESS} for i in range(37)}
    outcomes["m37"] = {"status": states.FAILURE, "worker": "w", "exc": KeyError("k")}
    outcomes["m38"] = {"status": states.STARTED, "worker": "w"}
    workflow = store_run(app, chord(members, t("sum"), group_id="G"), outcomes)
    drawn = parse(to_dot(app.workflow(workflow.id)))
    summary = drawn.nodes["summary-G"]
    assert summary["label"].endswith("SUCCESS 37 · FAILURE 1 · STARTED 1 · PENDING 1")
    assert summary["fillcolor"] == STATE_COLORS[states.FAILURE]
    assert "40 × tasks." not in summary["label"]  # forty names, one each: the top three shown
    assert "+ 37 more task names" in summary["label"]


def test_find_takes_a_workflow_id_or_a_task_id(app: Canvas) -> None:
    workflow = failed_run(app)
    assert live.find(app, workflow.id).id == workflow.id
    assert live.find(app, "b").id == workflow.id
    with pytest.raises(LookupError, match="No workflow or task with id 'nope'"):
        live.find(app, "nope")
    metas.store(app, "alone", states.SUCCESS, 3)
    with pytest.raises(LookupError, match="sent on its own"):
        live.find(app, "alone")


def test_follow_yields_snapshots_until_the_run_finishes(app: Canvas) -> None:
    workflow = store_run(app, t("a") | t("b"), {"a": {"status": states.STARTED}})
    steps = iter(["a", "b"])  # each sleep, one more node succeeds
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        write(app, workflow, next(steps), states.SUCCESS, worker="w")

    view = app.workflow(workflow.id)
    seen = [w.graph.nodes["b"]["state"] for w in live.follow(view, 0.5, sleep=sleep)]
    assert seen == [states.PENDING, states.PENDING, states.SUCCESS]
    assert slept == [0.5, 0.5]


# -- files ----------------------------------------------------------------------------------------
def _pipe(source: str, fmt: str) -> bytes:
    done = subprocess.run([dot_binary(), f"-T{fmt}"], input=source.encode(), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_render_writes_svg_png_pdf_dot_and_text(tmp_path: Path) -> None:
    canvas = chord([t("a"), t("b")], t("c"), group_id="G")
    svg = ET.parse(render(canvas, tmp_path / "w.svg")).getroot()
    ids = {g.get("id") for g in svg.iter(f"{SVG}g")}
    assert {"a", "b", "c", "G", "chord-G"} <= ids
    assert render(canvas, tmp_path / "w.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert render(canvas, tmp_path / "w.pdf").read_bytes().startswith(b"%PDF")
    assert set(parse(render(canvas, tmp_path / "w.dot").read_text()).nodes) == {"a", "b", "c", "G"}
    assert render(canvas, tmp_path / "w.txt").read_text() == to_text(canvas)
    assert render(canvas, tmp_path / "w.out", format="dot").read_text().startswith("digraph")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "w.dot", "w.out", "w.pdf", "w.png", "w.svg", "w.txt"
    ]  # fmt: skip


def test_a_missing_dot_binary_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImproperlyConfigured, match=r"apt-get install graphviz.*-o run\.dot"):
        render(t("a"), tmp_path / "run.svg")
    assert render(t("a"), tmp_path / "run.dot").exists()  # DOT needs no binary
    assert not (tmp_path / "run.svg").exists()


def test_format_for_knows_the_suffixes() -> None:
    assert format_for(Path("a.SVG")) == "svg" and format_for(Path("a.gv")) == "dot"
    with pytest.raises(ValueError, match="'a.jpeg'.*--format"):
        format_for(Path("a.jpeg"))


def test_layout_refuses_what_is_not_a_workflow() -> None:
    with pytest.raises(TypeError, match="Cannot draw a int"):
        layout(3)  # type: ignore[arg-type]


def test_public_api_is_what_all_says() -> None:
    import canvas.visualize as module

    exported = {n for n in dir(module) if not n.startswith("_") and n != "annotations"}
    submodules = {"dot", "picture", "text"}
    assert set(visualize_all) == exported - submodules


# -- the command line -----------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module ``wf_<hex>`` with an app whose broker does not answer, tasks and canvases."""
    name = f"wf_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from canvas import Canvas, chain, chord, group
            app = Canvas("proj", broker="redis://127.0.0.1:1/0", backend="memory://",
                         set_as_current=False)

            @app.task
            def add(x, y):
                return x + y

            @app.task
            def tsum(xs):
                return sum(xs)

            nightly = add.s(1, 2) | chord([add.s(i) for i in range(3)], tsum.s())

            def make():
                return group(add.s(i, i) for i in range(100))

            def needs(x):
                return x

            def broken():
                raise RuntimeError("no canvas today")

            number = 42
            empty = chain()
            """
        )
    )
    (tmp_path / f"{name}_bad.py").write_text('raise RuntimeError("line one\\nline two")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return name


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def test_cli_prints_dot_without_a_broker(project: str) -> None:
    result = run("render", f"{project}:nightly")
    assert result.exit_code == 0, result.output
    drawn = parse(result.stdout)
    assert len(drawn.nodes) == 6 and len(drawn.clusters) == 1


def test_cli_writes_files_by_suffix_and_format(project: str, tmp_path: Path) -> None:
    assert run("render", f"{project}:make", "-o", "make.svg").exit_code == 0
    assert ET.parse(tmp_path / "make.svg").getroot().tag == f"{SVG}svg"
    assert run("render", f"{project}:nightly", "-o", "n.png").exit_code == 0
    assert (tmp_path / "n.png").read_bytes()[:4] == b"\x89PNG"
    lines = run("render", f"{project}:make", "--format", "text").stdout.splitlines()
    assert lines[1].endswith(" · 100 members (collapsed; --expand lists them)")
    assert lines[2].endswith(f"── 100 × {project}.add")
    expanded = run("render", f"{project}:make", "--format", "text", "--expand")
    assert len(expanded.stdout.splitlines()) == 102
    tb = run("render", f"{project}:nightly", "--direction", "TB", "-o", "n.dot", "--format", "dot")
    assert tb.exit_code == 0 and parse((tmp_path / "n.dot").read_text()).graph["rankdir"] == "TB"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{p}"], "is not MODULE:ATTR"),
        (["nosuchmodule_xyz:x"], "no module named 'nosuchmodule_xyz'"),
        (["{p}:nightlyy"], "has no attribute 'nightlyy'; did you mean 'nightly'?"),
        (["{p}:number"], "is of type int, not a canvas"),
        (["{p}:add"], "is a task, not a canvas"),
        (["{p}:needs"], "needs arguments"),
        (["{p}:broken"], "raised RuntimeError: no canvas today"),
        (["{p}_bad:x"], "importing wf_"),
        (["{p}_bad:x"], "failed: RuntimeError: line one line two"),
        (["{p}:empty"], "An empty chain() has nothing to run"),
        (["{p}:nightly", "-o", "x.jpeg"], "Cannot tell the output format"),
        (["-A", "{p}", "render", "--id", "nope"], "No workflow or task with id 'nope'"),
    ],
)
def test_cli_errors_are_one_clear_line(project: str, argv: list[str], message: str) -> None:
    args = [a.replace("{p}", project) for a in argv]
    result = run(*args) if args[0] == "-A" else run("render", *args)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr


def test_cli_missing_dot_binary_is_one_line(project: str, tmp_path: Path) -> None:
    result = run("render", f"{project}:nightly", "-o", "n.svg", env={"PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "apt-get install graphviz" in result.stderr and "-o n.dot" in result.stderr


def test_cli_usage_needs_a_target_or_an_id(project: str) -> None:
    assert run("render").exit_code == 2
    assert run("render", f"{project}:nightly", "--id", "x").exit_code == 2
    assert "use it with --id" in run("render", f"{project}:nightly", "--watch", "1").stderr


def test_cli_draws_a_stored_run_by_workflow_or_task_id(project: str) -> None:
    import importlib

    module = importlib.import_module(project)
    app = module.app
    workflow = failed_run(app)
    for an_id in (workflow.id, "c"):
        result = run("-A", project, "render", "--id", an_id, "--format", "text")
        assert result.exit_code == 0, result.output
        assert "├── tasks.e()  FAILURE (skipped)" in result.stdout
    result = run("-A", project, "render", "--id", workflow.id, "--watch", "0.01", "-o", "r.dot")
    assert result.exit_code == 0, result.output
    assert f"workflow {workflow.id} finished." in result.stderr
