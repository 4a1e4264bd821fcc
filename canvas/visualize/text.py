"""The words of a picture: node labels and state lines, and the whole workflow as a text tree.

``call_text`` labels a task call ``task(args)``, from ``argsrepr``/``kwargsrepr`` when the caller
gave them: the real arguments are then never shown. Values are cut (``reprlib``) and lines are
cut to ``LABEL_WIDTH`` characters. The DOT writer uses these labels too.

``to_text`` is for terminals, SSH sessions and machines without Graphviz: one line per node, in
the order the workflow runs, with groups and chords as branches::

    workflow 1cbc5cff-... · finished · SUCCESS 6 · FAILURE 3 (2 skipped)
    ├── tasks.add(1, 2)  SUCCESS · <1ms
    ├── chord 22101c5d · 3 members
    │   ├── tasks.add(0)  SUCCESS · <1ms
    │   ├── ...
    │   └── join  SUCCESS
    ├── tasks.boom()  FAILURE · 1ms · ValueError
    └── tasks.tsum()  FAILURE (skipped)

A plan (not run yet) shows the same tree without states.
"""

from __future__ import annotations

import reprlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

from canvas import dag, states
from canvas.visualize.picture import COLLAPSE_OVER, Box, Drawable, Picture, layout

#: characters per label line in a picture
LABEL_WIDTH = 48
#: characters of a task call on one line of the text tree
WIDTH = 72
_MAPS = {"canvas.map": "map", "canvas.starmap": "starmap"}
#: the order of states counted equally often: what needs attention first
_TIES = (
    states.FAILURE,
    states.REJECTED,
    states.REVOKED,
    states.RETRY,
    states.STARTED,
    states.RECEIVED,
    states.PENDING,
    states.SUCCESS,
)
_BRANCH, _LAST, _PIPE, _SPACE = "├── ", "└── ", "│   ", "    "


def to_text(workflow: Drawable, *, expand: bool = False, collapse_over: int = COLLAPSE_OVER) -> str:
    """The tree of ``workflow``, one line per node (and per box), ending in a newline."""
    picture = layout(workflow, expand=expand, collapse_over=collapse_over)
    lines = [_header(picture)]
    _lines(picture, None, "", lines)
    return "\n".join(lines) + "\n"


def _lines(picture: Picture, box: Box | None, prefix: str, out: list[str]) -> None:
    items = picture.items(box)
    if box is not None and box.collapsed:
        items = [box.summary_id, *([box.join] if box.join else [])]
    for index, item in enumerate(items):
        last = index == len(items) - 1
        head = prefix + (_LAST if last else _BRANCH)
        if isinstance(item, Box):
            out.append(head + _box_line(item))
            _lines(picture, item, prefix + (_SPACE if last else _PIPE), out)
        elif box is not None and item == box.summary_id:
            out.append(head + _summary_line(box))
        else:
            out.append(head + _node_line(picture, item))


def _header(picture: Picture) -> str:
    workflow = picture.workflow
    found: Counter[str] = Counter()
    skipped = 0
    for node in workflow.nodes:
        if node.kind == dag.TASK:
            found[picture.state(node.id) or states.PENDING] += 1
            skipped += picture.skipped(node.id)
    if not picture.live:
        calls = sum(found.values())
        return f"workflow {workflow.id} · {calls} task call{'s' if calls != 1 else ''}"
    done = all(
        (picture.state(n.id) or states.PENDING) in states.READY_STATES
        for n in workflow.nodes
        if n.kind != dag.ERRBACK
    )
    status = "finished" if done else "running"
    return f"workflow {workflow.id} · {status} · {counts_text(found, skipped)}"


def _box_line(box: Box) -> str:
    line = f"{box.kind} {box.id[:8]} · {box.size} member{'s' if box.size != 1 else ''}"
    return line + (" (collapsed; --expand lists them)" if box.collapsed else "")


def _summary_line(box: Box) -> str:
    summary = box.summary
    assert summary is not None
    names = ", ".join(f"{count:,} × {cut(task)}" for task, count in summary.tasks.most_common(3))
    if len(summary.tasks) > 3:
        names += f", + {len(summary.tasks) - 3} more"
    if summary.errbacks:
        names += f", {summary.errbacks:,} errbacks"
    if summary.states:
        return f"{names}  {counts_text(summary.states, summary.skipped)}"
    return names


def _node_line(picture: Picture, node_id: str) -> str:
    node = picture.node(node_id)
    if node.kind == dag.GATHER:
        text = f"join ({len(node.inputs)} input{'s' if len(node.inputs) != 1 else ''})"
    elif node.kind == dag.FORWARD:
        text = "replaced (forwards the replacement's result)"
    else:
        name, *rest = call_text(node, WIDTH)
        text = name + "".join(part if part.startswith("(") else f" {part}" for part in rest)
        if node.kind == dag.ERRBACK:
            text = f"on error: {text}"
        elif any(
            kind == dag.LINK for _, _, kind in picture.workflow.graph.in_edges(node_id, data="kind")
        ):
            text = f"link: {text}"
    state = state_text(picture, node_id)
    return text if state is None else f"{text}  {state}"


# -- labels -------------------------------------------------------------------------------------
_repr = reprlib.Repr()
_repr.maxstring = 24
_repr.maxother = 24
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4
_repr.maxlevel = 2


def call_text(node: dag.Node, width: int = LABEL_WIDTH) -> list[str]:
    """The label lines of a task call: ``name(args)``, or name and arguments on two lines."""
    name = node.task or node.kind
    argsrepr = node.options.get("argsrepr")
    kwargsrepr = node.options.get("kwargsrepr")
    if node.task in _MAPS and argsrepr is None and len(node.args) >= 2:
        items = node.args[1]
        count = len(items) if isinstance(items, list | tuple) else "?"
        return [cut(f"{_MAPS[node.task]} {node.args[0]}", width), f"× {count} items"]
    if argsrepr is not None:
        arguments = [_strip_brackets(str(argsrepr))]
    else:
        arguments = [_safe_repr(value) for value in node.args]
    if kwargsrepr is not None:
        arguments.append(f"**{kwargsrepr}")
    else:
        arguments.extend(f"{key}={_safe_repr(value)}" for key, value in node.kwargs.items())
    inner = ", ".join(a for a in arguments if a)
    call = f"{name}({inner})"
    if len(call) <= width:
        return [_one_line(call)]
    return [cut(name, width), cut(f"({inner})", width)]


def cut(text: str, width: int = LABEL_WIDTH) -> str:
    """``text`` on one line, shortened with an ellipsis to ``width`` characters."""
    text = _one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def runtime_text(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.001 else "<1ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def state_text(picture: Picture, node_id: str) -> str | None:
    """``SUCCESS · 12ms``, ``FAILURE · 2 retries · ValueError``, ``FAILURE (skipped)``.

    ``None`` for a plan that has not run.
    """
    state = picture.state(node_id)
    if state is None:
        return None
    if picture.skipped(node_id):
        return f"{state} (skipped)"
    meta = picture.meta(node_id) or {}
    parts = [state]
    runtime = runtime_text(meta.get("runtime"))
    if runtime and picture.node(node_id).kind != dag.GATHER:
        parts.append(runtime)
    retries = int(meta.get("retries") or 0)
    if retries:
        parts.append(f"{retries} retr{'y' if retries == 1 else 'ies'}")
    result = meta.get("result")
    if state in states.EXCEPTION_STATES and isinstance(result, Mapping):
        exc_type = result.get("exc_type")
        if isinstance(exc_type, str):  # the type only: a message may hold what argsrepr hid
            parts.append(cut(exc_type, 30))
    return " · ".join(parts)


def counts_text(found: Counter[str], skipped: int = 0) -> str:
    """``SUCCESS 998 · FAILURE 2 (1 skipped)``: most frequent first, failures first among equals."""
    parts = []
    for state, count in sorted(found.items(), key=lambda item: (-item[1], _rank(item[0]))):
        part = f"{state} {count}"
        if state == states.FAILURE and skipped:
            part += f" ({skipped} skipped)"
        parts.append(part)
    return " · ".join(parts)


def _rank(state: str) -> int:
    return _TIES.index(state) if state in _TIES else len(_TIES)


def _safe_repr(value: Any) -> str:
    try:
        return _repr.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _strip_brackets(text: str) -> str:
    """Celery's ``argsrepr`` is the repr of a tuple or list: show its items inside our parens."""
    text = text.strip()
    if len(text) >= 2 and (text[0], text[-1]) in (("(", ")"), ("[", "]")):
        inner = text[1:-1].strip()
        return inner[:-1] if inner.endswith(",") else inner
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text or "\t" in text else text


__all__ = [
    "LABEL_WIDTH",
    "call_text",
    "counts_text",
    "cut",
    "runtime_text",
    "state_text",
    "to_text",
]
