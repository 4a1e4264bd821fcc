"""The dashboard in a real browser: a real ``canvas dashboard``, a real worker, headless Chromium.

The page is opened once and never reloaded: what it shows comes over its event stream. A
workflow waits on a gate, so the test sees its graph drawn with the gate running, then sees the
same picture turn green when the gate opens. Screenshots are kept under ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from playwright.sync_api import Page

from canvas import chord, states
from canvas.visualize import STATE_COLORS
from tests.support.browser import artifact, browser_context
from tests.support.dashboard import (
    APP_DIR,
    APP_MODULE,
    Dashboard,
    DashEnv,
    imported_app,
    running_dashboard,
)
from tests.support.workers import WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]

#: the fill of the node whose element id is this task id, or null
NODE_FILL = """(id) => {
    const node = document.querySelector('#graph svg')?.getElementById(id);
    const filled = node ? [...node.querySelectorAll('[fill]')] : [];
    const shape = filled.find(e => e.getAttribute('fill') !== 'none');
    return shape ? shape.getAttribute('fill') : null;
}"""


@pytest.fixture
def env(tmp_path: Path) -> DashEnv:
    return DashEnv(tmp_path)


@pytest.fixture
def tasks(env: DashEnv) -> Iterator[ModuleType]:
    with imported_app(env) as module:
        yield module


@pytest.fixture
def worker(env: DashEnv, start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker(APP_MODULE, "-P", "threads", "-c", "2", env=env.variables(), cwd=APP_DIR)


@pytest.fixture
def dashboard(env: DashEnv, tmp_path: Path) -> Iterator[Dashboard]:
    with running_dashboard(env, tmp_path / "dashboard.log") as running:
        yield running


@pytest.fixture
def page(dashboard: Dashboard) -> Iterator[Page]:
    with browser_context() as context:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(dashboard.url + "/#workflows")
        page.wait_for_selector("#live[data-state=live]", timeout=15_000)
        yield page
        assert errors == [], f"the page raised: {errors}"


def screenshot(page: Page, name: str) -> None:
    """The page down to the end of the graph panel (docs/images/dashboard.png is one of these)."""
    box = page.locator("#graph-panel").bounding_box()
    assert box is not None, "the graph panel is not on screen"
    viewport = page.viewport_size or {"width": 1400, "height": 860}
    height = min(viewport["height"], int(box["y"] + box["height"] + 16))
    page.screenshot(
        path=artifact(name), clip={"x": 0, "y": 0, "width": viewport["width"], "height": height}
    )


def wait_fill(page: Page, node_id: str, state: str, what: str) -> None:
    """Wait until the page draws ``node_id`` in ``state``'s colour (the stream redraws it)."""
    page.wait_for_function(
        f"(args) => ({NODE_FILL})(args[0]) === args[1]",
        arg=[node_id, STATE_COLORS[state]],
        timeout=30_000,
    )
    assert page.evaluate(NODE_FILL, node_id) == STATE_COLORS[state], what


def test_a_workflow_graph_changes_colour_live_as_its_tasks_run(
    tasks: ModuleType, worker: WorkerProcess, page: Page, tmp_path: Path
) -> None:
    # Given a chord whose last member waits on a gate, running on a real worker
    gate = tmp_path / "gate"
    members = [tasks.add.s(i) for i in range(3)] + [tasks.hold.s(str(gate))]
    workflow = tasks.add.s(1, 2) | chord(members, tasks.tsum.s())
    result = workflow.apply_async()
    header = result.parent.results
    held = header[-1].id
    wait_for(lambda: header[-1].state == states.STARTED, 30, "the held member to start")
    wait_for(lambda: all(r.ready() for r in header[:-1]), 30, "the other members to finish")
    # When the user opens it in the page by its id
    page.fill("#follow-id", result.id)
    page.click("#follow-form button")
    # Then its graph is drawn as canvas render draws it: the held member running, the others
    # done, the body waiting
    wait_fill(page, held, states.STARTED, "the held member is drawn running")
    for member in header[:-1]:
        assert page.evaluate(NODE_FILL, member.id) == STATE_COLORS[states.SUCCESS]
    assert page.evaluate(NODE_FILL, result.id) == STATE_COLORS[states.PENDING]
    page.locator('#graph-title .state[data-state="STARTED"]').wait_for(timeout=10_000)
    screenshot(page, "workflow-running.png")
    marker = page.evaluate("window.performance.timeOrigin")
    # When the gate opens, Then the same page turns the member and the body green, no reload
    gate.touch()
    wait_fill(page, held, states.SUCCESS, "the held member is drawn done")
    wait_fill(page, result.id, states.SUCCESS, "the body is drawn done")
    assert page.evaluate("window.performance.timeOrigin") == marker, "the page reloaded"
    card = page.locator(f'#workflow-list li[data-workflow="{result.id}"]')
    card.locator('.state[data-state="SUCCESS"]').wait_for(timeout=10_000)
    assert card.locator(".meta").inner_text().split()[1] == "6/6"
    screenshot(page, "workflow-done.png")
    assert result.get(timeout=10) == 3 + 4 + 5 + 3


def test_queues_and_beat_entries_are_listed(tasks: ModuleType, page: Page) -> None:
    # Given three calls waiting in the queue (no worker runs them)
    for i in range(3):
        tasks.add.delay(i, i)
    # When the user opens the queues tab, Then the depth shows, live
    page.click('#tabs a[data-tab="queues"]')
    row = page.locator('#queues-table tr[data-queue="dashboard"]')
    page.wait_for_function(
        "() => document.querySelector('#queues-table tr[data-queue=dashboard] td:nth-child(2)')"
        "?.textContent === '3'",
        timeout=15_000,
    )
    assert row.locator("td").nth(2).inner_text() == "dashboard.dlq"
    # And the beat tab lists the app's entry with when it runs next
    page.click('#tabs a[data-tab="beat"]')
    entry = page.locator('#beat-table tr[data-entry="tick-every-minute"]')
    entry.wait_for(timeout=10_000)
    cells = entry.locator("td").all_inner_texts()
    assert cells[:3] == ["tick-every-minute", "dashboard_tasks.add", "<freq: 1.00 minutes>"]
    # (a slot reached between the page's refresh and this read shows as due, not as past)
    assert cells[3] == "never"
    assert cells[4].startswith("in ") or cells[4] == "due now", cells[4]


def test_with_a_token_the_page_and_its_stream_run_on_the_cookie(
    env: DashEnv, tmp_path: Path
) -> None:
    token = "browser-test-token-0123456789abcdef"
    with (
        running_dashboard(env, tmp_path / "dashboard.log", "--auth-token", token) as dashboard,
        browser_context() as context,
    ):
        page = context.new_page()
        # Without the token the page is refused
        assert page.goto(dashboard.url + "/").status == 401
        # Opened once with it, the page, its scripts and its event stream carry the cookie
        assert page.goto(dashboard.url + f"/?token={token}#queues").status == 200
        page.wait_for_selector("#live[data-state=live]", timeout=15_000)
        page.locator('#queues-table tr[data-queue="dashboard"]').wait_for(timeout=10_000)
        assert token not in page.evaluate("document.cookie")  # HttpOnly: scripts cannot read it
