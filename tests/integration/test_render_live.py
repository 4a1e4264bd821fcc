"""``canvas render --id`` against a real worker: the picture shows what the result store holds.

A worker runs from the CLI on the embedded broker in the test's tmp dir (``render_app``); the
workflows it runs are drawn by ``canvas render`` in another process, and every node of the
picture is checked against the store: its state, a failed node and its skipped descendants, and
a run in progress that ``--watch`` follows to the end.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from canvas import chord, dag, states
from canvas.core.workflow_view import NodeState
from canvas.visualize import STATE_COLORS
from canvas.visualize.dot import SKIPPED_COLOR
from tests.support.workers import CANVAS, ROOT, WorkerProcess, wait_for

pytestmark = pytest.mark.integration

APP_DIR = Path(__file__).parent / "render_app"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "embedded"


@pytest.fixture
def tasks(store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The app module, imported afresh for this test's store."""
    monkeypatch.setenv("CANVAS_RENDER_DIR", str(store))
    monkeypatch.syspath_prepend(str(APP_DIR))
    sys.modules.pop("render_tasks", None)
    module = importlib.import_module("render_tasks")
    try:
        yield module
    finally:
        module.app.close()
        sys.modules.pop("render_tasks", None)


@pytest.fixture
def worker(
    tasks: ModuleType, store: Path, start_worker: Callable[..., WorkerProcess]
) -> WorkerProcess:
    env = {"CANVAS_RENDER_DIR": str(store)}
    return start_worker("render_tasks", "-P", "threads", "-c", "4", env=env, cwd=APP_DIR)


def canvas_env(store: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join([str(APP_DIR), str(ROOT)])
    return {**os.environ, "CANVAS_RENDER_DIR": str(store), "PYTHONPATH": pythonpath}


def render(store: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*CANVAS, "-A", "render_tasks", "render", *args]
    return subprocess.run(
        argv, cwd=cwd, env=canvas_env(store), capture_output=True, text=True, timeout=60
    )


def svg_nodes(path: Path) -> dict[str, dict[str, Any]]:
    """Per element id: its texts and the fill of its shape."""
    found: dict[str, dict[str, Any]] = {}
    for g in ET.parse(path).getroot().iter(f"{SVG}g"):
        node_id = g.get("id")
        if g.get("class") != "node" or node_id is None:
            continue
        shape = next(e for e in g.iter() if e.get("fill") not in (None, "none"))
        texts = [t.text or "" for t in g.iter(f"{SVG}text")]
        found[node_id] = {"texts": texts, "fill": shape.get("fill")}
    return found


def settled(nodes: list[NodeState]) -> bool:
    """Every node that runs is ready: the work, and the errbacks of tasks that failed after
    running (an errback of a task that succeeded, or never ran, never runs)."""
    failed = {
        n.node.id for n in nodes if n.state == states.FAILURE and (n.meta or {}).get("worker")
    }
    return all(
        n.state in states.READY_STATES
        for n in nodes
        if n.node.kind != dag.ERRBACK or n.node.trigger in failed
    )


def test_a_failed_run_shows_the_stored_states_and_skipped_descendants(
    tasks: ModuleType, worker: WorkerProcess, store: Path, tmp_path: Path
) -> None:
    # Given a workflow whose fourth step raises, run to the end on a real worker
    workflow = (
        tasks.add.s(1, 2)
        | chord([tasks.add.s(i) for i in range(3)], tasks.tsum.s())
        | tasks.boom.s()
        | tasks.add.s(5)
        | tasks.tsum.s()
    )
    workflow.link_error(tasks.log_error.s())
    result = workflow.apply_async()
    view = tasks.app.workflow(result.id)
    nodes = wait_for(lambda: (n := view.nodes()) and settled(n) and n, 30, "every node to settle")
    stored = {n.node.id: n for n in nodes}
    by_task = Counter(n.node.task for n in nodes)
    assert by_task["render_tasks.boom"] == 1

    # When it is drawn from another process, by its workflow id
    drawn = render(store, tmp_path, "--id", result.id, "-o", "run.svg")
    assert drawn.returncode == 0, drawn.stderr
    picture = svg_nodes(tmp_path / "run.svg")

    # Then every stored node is in the picture with the state the store holds for it
    failed = next(n for n in nodes if n.node.task == "render_tasks.boom")
    skipped = {
        i
        for i, n in stored.items()
        if n.state == states.FAILURE and not (n.meta or {}).get("worker")
    }
    skipped_tasks = {i for i in skipped if stored[i].node.kind == dag.TASK}
    assert len(skipped_tasks) == 2  # add(5) and the last tsum never ran
    assert failed.meta and failed.meta["worker"]
    for node_id, node in stored.items():
        shown = picture[node_id]
        if node.node.kind == dag.GATHER:
            assert shown["texts"] == ["join"]
        elif node_id in skipped_tasks:
            assert shown["texts"][-1] == "FAILURE (skipped)"
            assert shown["fill"] == SKIPPED_COLOR
            continue
        else:
            assert shown["texts"][-1].split(" · ")[0] == node.state
        assert shown["fill"] == STATE_COLORS[node.state]
    assert picture[failed.node.id]["texts"][-1].endswith("· ValueError")
    assert picture[failed.node.id]["fill"] == STATE_COLORS[states.FAILURE]
    # The chain's errback is linked to each of its tasks; the one of the task that failed ran
    errback = next(
        n for n in nodes if n.node.kind == dag.ERRBACK and n.node.trigger == failed.node.id
    )
    assert picture[errback.node.id]["texts"][-1].startswith(states.SUCCESS)

    # And the text tree, asked for by a task's id, names the same states
    text = render(store, tmp_path, "--id", failed.node.id, "--format", "text")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    counts = Counter(n.state for n in nodes if n.node.kind == dag.TASK)
    head, status, *found = lines[0].split(" · ")
    assert (head, status) == (f"workflow {result.id}", "finished")
    skipped_count = f"{counts[states.FAILURE]} ({len(skipped_tasks)} skipped)"
    assert set(found) == {f"SUCCESS {counts[states.SUCCESS]}", f"FAILURE {skipped_count}"}
    assert sum("FAILURE (skipped)" in line for line in lines) == 2
    assert any("render_tasks.boom()  FAILURE · " in line for line in lines)
    assert sum(line.endswith(states.SUCCESS) or " SUCCESS · " in line for line in lines) == (
        sum(1 for n in nodes if n.state == states.SUCCESS)
    )

    # And the same run renders to PNG through the real dot
    png = render(store, tmp_path, "--id", result.id, "-o", "run.png")
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_watch_follows_a_running_workflow_to_its_end(
    tasks: ModuleType, worker: WorkerProcess, store: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate-open"
    result = (tasks.gate.si(str(gate)) | tasks.add.si(1, 2)).apply_async()
    view = tasks.app.workflow(result.id)
    ids = {n.node.task: n.node.id for n in view.nodes()}
    first, last = ids["render_tasks.gate"], ids["render_tasks.add"]
    output = tmp_path / "live.svg"
    argv = [*CANVAS, "-A", "render_tasks", "render", "--id", result.id, "-o", str(output)]
    watcher = subprocess.Popen(
        [*argv, "--watch", "0.1"],
        cwd=tmp_path,
        env=canvas_env(store),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def drawn_running() -> bool:
            if watcher.poll() is not None:
                raise AssertionError(f"watch exited early: {watcher.communicate()}")
            if not output.exists():
                return False
            picture = svg_nodes(output)  # replaced in one step: never half a file
            return bool(
                picture[first]["texts"][-1] == states.STARTED
                and picture[last]["texts"][-1] == states.PENDING
            )

        wait_for(drawn_running, 30, "the picture of the gate task running")
        assert view.states() == {first: states.STARTED, last: states.PENDING}
        gate.touch()
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, err
        assert f"workflow {result.id} finished." in err
        picture = svg_nodes(output)
        for node_id in (first, last):
            assert picture[node_id]["texts"][-1].startswith(f"{states.SUCCESS} · ")
            assert picture[node_id]["fill"] == STATE_COLORS[states.SUCCESS]
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate(timeout=10)


def test_an_unknown_id_is_one_line_and_a_failure(
    tasks: ModuleType, store: Path, tmp_path: Path
) -> None:
    done = render(store, tmp_path, "--id", "no-such-id", "-o", "x.svg")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "No workflow or task with id 'no-such-id'" in done.stderr
    assert not (tmp_path / "x.svg").exists()
