"""Graphviz DOT for a workflow, and SVG/PNG/PDF files through the ``dot`` program.

``to_dot`` needs no binary; ``render`` runs Graphviz's ``dot`` (Debian/Ubuntu: ``apt-get install
graphviz``, macOS: ``brew install graphviz``) for every format but ``dot`` and ``text``.

What the picture shows:

* one node per task call, labelled ``task(args)``; a join (``join``) where a group's results are
  gathered; errbacks as notes; a collapsed group as a stacked box with counts;
* groups and chords as boxes (``cluster_*`` subgraphs), nested as the canvas nests them;
* data edges solid; ``link`` callbacks dashed blue; ``link_error`` errbacks dashed red;
* for a run, each node filled by its state, with runtime and retries, and a legend. A task
  skipped because an input failed is drawn pale and dashed, marked ``(skipped)``.

DOT node names are short (``n12``); each node's ``id`` attribute is its task id, so it is also the
id of its element in the SVG.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import graphviz

from canvas import dag, states
from canvas.exceptions import ImproperlyConfigured
from canvas.visualize.picture import COLLAPSE_OVER, Box, Drawable, Picture, Summary, layout
from canvas.visualize.text import call_text, counts_text, cut, state_text, to_text

#: output formats by file suffix; ``dot`` and ``text`` need no Graphviz binary
SUFFIXES = {
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
    ".dot": "dot",
    ".gv": "dot",
    ".txt": "text",
}
FORMATS = ("svg", "png", "pdf", "dot", "text")
DIRECTIONS = ("LR", "TB")

#: fill colour per state (Material palette, light tints so the text stays readable)
STATE_COLORS = {
    states.PENDING: "#eeeeee",
    states.RECEIVED: "#bbdefb",
    states.STARTED: "#fff59d",
    states.RETRY: "#ffcc80",
    states.SUCCESS: "#a5d6a7",
    states.FAILURE: "#ef9a9a",
    states.REVOKED: "#b0bec5",
    states.REJECTED: "#ce93d8",
}
SKIPPED_COLOR = "#fce4e4"
OTHER_STATE_COLOR = "#fff9c4"  # a custom state set by update_state (PROGRESS, ...)
_EDGE_STYLES = {
    dag.DATA: {},
    dag.LINK: {"style": "dashed", "color": "#1565c0", "fontcolor": "#1565c0", "label": "link"},
    dag.LINK_ERROR: {
        "style": "dashed",
        "color": "#c62828",
        "fontcolor": "#c62828",
        "label": "on error",
    },
}
_FONT = "Helvetica"
_CLUSTER = "cluster:"  # key prefix of a box's subgraph name in the name table


def to_dot(
    workflow: Drawable,
    *,
    direction: str = "LR",
    expand: bool = False,
    collapse_over: int = COLLAPSE_OVER,
) -> str:
    """The DOT source of ``workflow``: compiled (a plan) or stored (a run, coloured by state)."""
    picture = layout(workflow, expand=expand, collapse_over=collapse_over)
    source: str = draw(picture, direction=direction).source
    return source


def draw(picture: Picture, *, direction: str = "LR") -> graphviz.Digraph:
    """The ``graphviz.Digraph`` of a laid-out picture."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    graph = graphviz.Digraph(
        name="workflow",
        graph_attr={
            "rankdir": direction,
            "fontname": _FONT,
            "fontsize": "11",
            "nodesep": "0.2",
            "ranksep": "0.35",
            "id": _escape(f"workflow-{picture.workflow.id}"),
        },
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fillcolor": "white",
            "color": "#546e7a",
            "fontname": _FONT,
            "fontsize": "10",
            "margin": "0.12,0.05",
        },
        edge_attr={"color": "#546e7a", "arrowsize": "0.7", "fontname": _FONT, "fontsize": "8"},
    )
    names = {node_id: f"n{index}" for index, node_id in enumerate(picture.order)}
    for index, box in enumerate(picture.walk()):
        names[_CLUSTER + box.id] = f"cluster_{index}"
        if box.collapsed:
            names[box.summary_id] = f"s{index}"
    if picture.live:
        graph.attr(label=_escape(_title(picture)), labelloc="t", labeljust="l")
    _fill(graph, picture, None, names)
    for edge in picture.edges:
        attrs = dict(_EDGE_STYLES.get(edge.kind, {}))
        if edge.count > 1:
            attrs["label"] = f"{attrs.get('label', '')} ×{edge.count}".strip()
            attrs["penwidth"] = "2"
        graph.edge(names[edge.source], names[edge.target], **attrs)
    if picture.live:
        graph.node("legend", label=_legend(), shape="plaintext", style="", margin="0")
    return graph


def render(
    workflow: Drawable,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    direction: str = "LR",
    expand: bool = False,
    collapse_over: int = COLLAPSE_OVER,
) -> Path:
    """Write ``workflow`` to ``path`` as SVG, PNG, PDF, DOT or text (by suffix unless ``format``).

    The file is replaced in one step, so a browser or a ``--watch`` reader never sees half of it.
    """
    target = Path(path)
    fmt = format or format_for(target)
    if fmt == "text":
        data = to_text(workflow, expand=expand, collapse_over=collapse_over).encode()
    else:
        source = to_dot(workflow, direction=direction, expand=expand, collapse_over=collapse_over)
        data = source.encode() if fmt == "dot" else pipe(source, fmt, target)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def pipe(source: str, fmt: str, target: Path | None = None) -> bytes:
    """Run Graphviz's ``dot`` on ``source``; a missing binary is a one-line, actionable error."""
    if fmt not in FORMATS or fmt in ("dot", "text"):
        raise ValueError(f"format must be one of svg, png, pdf for dot, got {fmt!r}")
    try:
        data: bytes = graphviz.pipe("dot", fmt, source.encode())
    except graphviz.ExecutableNotFound:
        dot_name = f"{target.stem}.dot" if target is not None else "workflow.dot"
        raise ImproperlyConfigured(
            f"Writing {fmt.upper()} needs the Graphviz 'dot' program, which is not on PATH: "
            f"install it (apt-get install graphviz, brew install graphviz) or write DOT with "
            f"-o {dot_name}."
        ) from None
    return data


def format_for(path: Path) -> str:
    """The output format a file name asks for, or a ``ValueError`` listing the suffixes."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(SUFFIXES)
        raise ValueError(
            f"Cannot tell the output format of {str(path)!r} from its suffix; use one of {known} "
            "or give --format."
        )
    return fmt


# -- nodes and boxes ------------------------------------------------------------------------------
def _fill(
    graph: graphviz.Digraph, picture: Picture, box: Box | None, names: dict[str, str]
) -> None:
    for item in picture.items(box):
        if isinstance(item, Box):
            with graph.subgraph(name=names[_CLUSTER + item.id]) as sub:
                _box(sub, picture, item, names)
        else:
            _node(graph, picture, item, names[item])


def _box(graph: graphviz.Digraph, picture: Picture, box: Box, names: dict[str, str]) -> None:
    kind = box.kind
    label = f"{kind} · {box.size} member{'s' if box.size != 1 else ''} · {box.id[:8]}"
    graph.attr(
        label=_escape(label),
        id=_escape(f"{kind}-{box.id}"),
        style="rounded,dashed" if kind == "group" else "rounded",
        color="#78909c" if kind == "group" else "#3949ab",
        bgcolor="#fafafa" if kind == "group" else "#f5f7ff",
        fontsize="9",
        labeljust="l",
        margin="8",
    )
    if box.collapsed and box.summary is not None:
        summary = box.summary
        lines = [f"{summary.members:,} members, collapsed"]
        for task, count in summary.tasks.most_common(3):
            lines.append(f"{count:,} × {cut(task)}")
        if len(summary.tasks) > 3:
            lines.append(f"+ {len(summary.tasks) - 3} more task names")
        if summary.errbacks:
            lines.append(f"{summary.errbacks:,} errbacks")
        attrs: dict[str, str] = {}
        if summary.states:
            lines.append(counts_text(summary.states, summary.skipped))
            attrs["fillcolor"] = _color(_summary_state(summary))
        graph.node(
            names[box.summary_id],
            label=_escape_lines(lines),
            shape="box3d",
            style="filled",
            id=_escape(f"summary-{box.id}"),
            tooltip=_escape(f"{box.kind} {box.id}: use --expand to draw every member"),
            **attrs,
        )
        if box.join is not None:
            _node(graph, picture, box.join, names[box.join])
        return
    _fill(graph, picture, box, names)


def _node(graph: graphviz.Digraph, picture: Picture, node_id: str, name: str) -> None:
    node = picture.node(node_id)
    attrs: dict[str, str] = {"id": _escape(node_id)}
    if node.kind == dag.GATHER:
        lines = ["join"]
        attrs.update(shape="circle", fontsize="8", width="0.45", fixedsize="true")
    elif node.kind == dag.FORWARD:
        lines = ["replaced"]
        attrs.update(shape="cds", fontsize="8")
    else:
        lines = call_text(node)
        if node.kind == dag.ERRBACK:
            lines.insert(0, "on error:")
            attrs.update(shape="note", style="filled", color="#c62828")
    state = picture.state(node_id)
    tooltip = f"{node.task or node.kind} {node_id}"
    if state is not None:
        text = state_text(picture, node_id)
        if node.kind != dag.GATHER:
            lines.append(str(text))
        tooltip += f" · {text}"
        if picture.skipped(node_id):
            attrs.update(
                fillcolor=SKIPPED_COLOR, style="rounded,filled,dashed", fontcolor="#8d6e63"
            )
        else:
            attrs["fillcolor"] = _color(state)
    attrs["tooltip"] = _escape(tooltip)
    graph.node(name, label=_escape_lines(lines), **attrs)


def _title(picture: Picture) -> str:
    found: Counter[str] = Counter()
    skipped = 0
    for node in picture.workflow.nodes:
        if node.kind == dag.TASK:
            state = picture.state(node.id) or states.PENDING
            found[state] += 1
            skipped += picture.skipped(node.id)
    done = all(
        (picture.state(n.id) or states.PENDING) in states.READY_STATES
        for n in picture.workflow.nodes
        if n.kind != dag.ERRBACK
    )
    status = "finished" if done else "running"
    return f"workflow {picture.workflow.id} · {status} · {counts_text(found, skipped)}"


def _legend() -> str:
    rows = "".join(
        f'<tr><td bgcolor="{color}">{state}</td></tr>' for state, color in STATE_COLORS.items()
    )
    rows += f'<tr><td bgcolor="{SKIPPED_COLOR}"><font color="#8d6e63">skipped</font></td></tr>'
    return (
        '<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">'
        f'<tr><td border="0"><b>state</b></td></tr>{rows}</table>>'
    )


def _summary_state(summary: Summary) -> str | None:
    """One state to colour a summary by: a failure if any, else done, waiting or running."""
    if not summary.states:
        return None
    for state in (states.FAILURE, states.REJECTED, states.REVOKED):
        if summary.states[state]:
            return state
    if len(summary.states) == 1:
        return next(iter(summary.states))
    return states.STARTED


def _color(state: str | None) -> str:
    if state is None:
        return "white"
    return STATE_COLORS.get(state, OTHER_STATE_COLOR)


def _escape(text: str) -> str:
    """User text as a DOT string: backslashes literal, never read as an HTML label."""
    escaped: str = graphviz.escape(text)
    return escaped


def _escape_lines(lines: list[str]) -> str:
    joined: str = graphviz.nohtml("\\n".join(_escape(line) for line in lines))
    return joined


__all__ = [
    "DIRECTIONS",
    "FORMATS",
    "STATE_COLORS",
    "SUFFIXES",
    "draw",
    "format_for",
    "pipe",
    "render",
    "to_dot",
]
