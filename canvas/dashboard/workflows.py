"""The workflows the dashboard follows, read from the result store and drawn as ``canvas render``.

A workflow is followed once something names it: a ``workflow-started`` event, a task event that
carries its id, or a user who opens it by its id (or by the id of one of its tasks). Each refresh
reads every followed workflow that is not finished (two store queries each, whatever its size,
as ``render --id``); a finished one is not read again. The most recent ``limit`` are kept.

The picture is the SVG that ``canvas render --id`` writes, made by the same code; its elements
carry the task ids, so the page can find a node. It is drawn again only when the workflow's
``version`` (a digest of its node states) changes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from canvas import dag, states
from canvas.core.workflow_view import NodeState, WorkflowView
from canvas.visualize import live, to_dot
from canvas.visualize.dot import pipe

if TYPE_CHECKING:
    from canvas.app import Canvas

#: workflows followed at most; the oldest finished ones go first
FOLLOWED = 100


@dataclass
class Followed:
    """One followed workflow and what its last read found."""

    view: WorkflowView
    since: float
    label: str = ""
    created: float | None = None
    counts: Counter[str] = field(default_factory=Counter)
    total: int = 0
    finished: bool = False
    version: str = ""
    nodes: list[NodeState] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        done = sum(n for state, n in self.counts.items() if state in states.READY_STATES)
        failed = sum(self.counts[s] for s in (states.FAILURE, states.REVOKED, states.REJECTED))
        return {
            "id": self.view.id,
            "label": self.label,
            "created": self.created,
            "counts": dict(self.counts),
            "total": self.total,
            "done": done,
            "failed": failed,
            "finished": self.finished,
            "state": _overall(self.counts, self.finished),
            "version": self.version,
            "error": self.error,
        }


def _overall(counts: Counter[str], finished: bool) -> str:
    """One word for a workflow: the worst end state when finished, else running or waiting."""
    if finished:
        for state in (states.FAILURE, states.REVOKED, states.REJECTED):
            if counts[state]:
                return state
        return states.SUCCESS
    started = sum(counts[s] for s in (states.STARTED, states.RETRY, *states.READY_STATES))
    return states.STARTED if started or counts[states.RECEIVED] else states.PENDING


class WorkflowBoard:
    """The followed workflows: ``follow``, ``refresh``, ``summaries``, ``svg``, ``nodes``."""

    def __init__(self, app: Canvas, *, limit: int = FOLLOWED) -> None:
        self.app = app
        self.limit = limit
        self._lock = threading.Lock()
        self._followed: dict[str, Followed] = {}
        self._svg: dict[str, tuple[str, str]] = {}  # workflow id -> (version, svg)

    def follow(self, an_id: str) -> str:
        """Follow the workflow with this id, or the one a task with this id belongs to.

        Returns the workflow id; a ``LookupError`` says why there is none (see ``live.find``).
        """
        with self._lock:
            if an_id in self._followed:
                return an_id
        view = live.find(self.app, an_id)
        self.follow_known(view.id)
        return view.id

    def follow_known(self, workflow_id: str) -> None:
        """Follow a workflow named by an event; read at the next refresh (no store query here)."""
        with self._lock:
            if workflow_id not in self._followed:
                view = WorkflowView(self.app, workflow_id)
                self._followed[workflow_id] = Followed(view, time.time())
                self._trim()

    def _trim(self) -> None:
        excess = len(self._followed) - self.limit
        if excess <= 0:
            return
        by_age = sorted(self._followed.values(), key=lambda f: (not f.finished, f.since))
        for gone in by_age[:excess]:
            self._followed.pop(gone.view.id, None)
            self._svg.pop(gone.view.id, None)

    def refresh(self) -> None:
        """Read every followed workflow that has not finished; errors are kept, not raised."""
        with self._lock:
            pending = [f for f in self._followed.values() if not f.finished]
        for item in pending:
            self._read(item)

    def _read(self, item: Followed) -> None:
        try:
            nodes = item.view.nodes()
            info = item.view.info() if item.created is None else {}
        except Exception as exc:  # the store is down or the workflow expired: say so, go on
            item.error = f"{type(exc).__name__}: {exc}"
            return
        if not nodes:
            item.error = "not in the result store (not saved yet, or expired)"
            return
        runnable = [n for n in nodes if n.node.kind != dag.ERRBACK]
        counts = Counter(n.state for n in runnable if n.node.kind == dag.TASK)
        item.nodes = nodes
        item.counts = counts
        item.total = sum(counts.values())
        item.finished = all(n.state in states.READY_STATES for n in runnable)
        item.version = _version((n.node.id, n.state) for n in nodes)
        item.error = None
        if item.created is None:
            created = info.get("created")
            item.created = float(created) if isinstance(created, int | float) else item.since
            item.label = _label(runnable)

    def summaries(self) -> list[dict[str, Any]]:
        """Every followed workflow, newest first."""
        with self._lock:
            followed = list(self._followed.values())
        followed.sort(key=lambda f: f.created or f.since, reverse=True)
        return [f.summary() for f in followed]

    def get(self, workflow_id: str) -> Followed | None:
        with self._lock:
            return self._followed.get(workflow_id)

    def nodes(self, workflow_id: str) -> list[dict[str, Any]]:
        """Every node of a followed workflow with its state, runtime and retries."""
        item = self.get(workflow_id)
        if item is None:
            raise LookupError(f"workflow {workflow_id!r} is not followed; open it by its id first")
        return [
            {
                "id": n.node.id,
                "kind": n.node.kind,
                "task": n.node.task,
                "state": n.state,
                "runtime": n.runtime,
                "retries": n.retries,
            }
            for n in item.nodes
        ]

    def svg(self, workflow_id: str) -> tuple[str, str]:
        """``(version, svg)`` of a followed workflow as ``canvas render --id`` draws it."""
        item = self.get(workflow_id)
        if item is None:
            raise LookupError(f"workflow {workflow_id!r} is not followed; open it by its id first")
        if not item.version:
            self._read(item)
        with self._lock:
            cached = self._svg.get(workflow_id)
        if cached is not None and cached[0] == item.version:
            return cached
        workflow = live.snapshot(item.view)
        graph = workflow.graph
        version = _version((n, graph.nodes[n].get("state", states.PENDING)) for n in graph)
        drawn = pipe(to_dot(workflow), "svg").decode()
        svg = drawn[drawn.find("<svg") :]  # inline in the page: no XML prolog or doctype
        with self._lock:
            self._svg[workflow_id] = (version, svg)
        return version, svg


def _version(node_states: Iterable[tuple[str, str]]) -> str:
    """A short digest of every node's state: equal versions draw equal pictures."""
    digest = hashlib.blake2b(digest_size=8)
    for node_id, state in sorted(node_states):
        digest.update(f"{node_id}={state};".encode())
    return digest.hexdigest()


def _label(nodes: list[NodeState]) -> str:
    """``first task → last task`` for the list; the full graph is one click away."""
    tasks = [n for n in nodes if n.node.kind == dag.TASK and n.node.task]
    if not tasks:
        return "(no tasks)"
    first = next((n for n in tasks if not n.node.inputs), tasks[0])
    last = tasks[-1]
    names = [str(first.node.task)]
    if last.node.id != first.node.id:
        names.append(str(last.node.task))
    return " → ".join(names) + f" ({len(tasks)} tasks)"


__all__ = ["FOLLOWED", "Followed", "WorkflowBoard"]
