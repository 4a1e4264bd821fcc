"""Operating a running system from the page, on Redis and on RabbitMQ, in headless Chromium.

A real prefork worker sends events; a real ``canvas dashboard`` serves the page. The workflow
appears by itself (its ``workflow-started`` event), its long first task is terminated from the
Tasks tab, and the graph turns the task REVOKED and settles what follows it; the result store
agrees. The Workers tab grows the pool, sets a rate limit and shuts the worker down.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from playwright.sync_api import Page

from canvas import chord, states
from canvas.exceptions import ChordError
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
from tests.support.servers import AMQP_URL, REDIS_URL, amqp_connection, require_service
from tests.support.workers import WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]

NODE_FILL = """(id) => {
    const node = document.querySelector('#graph svg')?.getElementById(id);
    const filled = node ? [...node.querySelectorAll('[fill]')] : [];
    const shape = filled.find(e => e.getAttribute('fill') !== 'none');
    return shape ? shape.getAttribute('fill') : null;
}"""


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path) -> DashEnv:
    """The broker named by the test's parameter (Redis unless it names one); Redis results."""
    require_service("Redis", REDIS_URL)
    queue = f"dash-{uuid.uuid4().hex[:8]}"
    if getattr(request, "param", "redis") == "redis":
        return DashEnv(tmp_path, broker=REDIS_URL, backend=REDIS_URL, queue=queue)
    require_service("RabbitMQ", AMQP_URL)
    return DashEnv(tmp_path, broker=AMQP_URL, backend=REDIS_URL, queue=queue)


@pytest.fixture
def tasks(env: DashEnv) -> Iterator[ModuleType]:
    with imported_app(env) as module:
        yield module
        module.app.control.purge()
    if env.broker.startswith("amqp"):
        delete_amqp_queues([env.queue, env.queue + ".dlq"])


def delete_amqp_queues(names: list[str]) -> None:
    conn = amqp_connection()
    try:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)
    finally:
        conn.close()


@pytest.fixture
def worker(env: DashEnv, start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    # prefork: terminate signals the pool process that runs the task
    return start_worker(
        APP_MODULE,
        "-P",
        "prefork",
        "-c",
        "2",
        "-n",
        f"dash-{env.queue}@%h",
        env=env.variables(),
        cwd=APP_DIR,
    )


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
        page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before terminate
        page.goto(dashboard.url + "/#workflows")
        page.wait_for_selector("#live[data-state=live]", timeout=15_000)
        yield page
        assert errors == [], f"the page raised: {errors}"


def wait_fill(page: Page, node_id: str, state: str) -> None:
    page.wait_for_function(
        f"(args) => ({NODE_FILL})(args[0]) === args[1]",
        arg=[node_id, STATE_COLORS[state]],
        timeout=30_000,
    )


@pytest.mark.parametrize("env", ["redis", "amqp"], indirect=True)
def test_a_long_task_is_terminated_from_the_page_and_its_graph_turns_revoked(
    tasks: ModuleType, worker: WorkerProcess, page: Page, env: DashEnv
) -> None:
    # Given a workflow whose first task runs for two minutes on a real prefork worker
    result = (tasks.sleepy.s(120) | tasks.add.s("never")).apply_async()
    sleepy_id = result.parent.id
    # Then it appears on the page by itself, and its graph shows the long task running
    card = page.locator(f'#workflow-list li[data-workflow="{result.id}"]')
    card.wait_for(timeout=30_000)
    card.click()
    wait_fill(page, sleepy_id, states.STARTED)
    # When the user finds the task in the Tasks tab and terminates it
    page.click('#tabs a[data-tab="tasks"]')
    page.fill("#task-search", "sleepy")
    row = page.locator(f'#tasks-table tr[data-task="{sleepy_id}"]')
    row.locator('.state[data-state="STARTED"]').wait_for(timeout=30_000)
    assert row.locator("td").nth(3).inner_text() == "(120,)"  # argsrepr, as events carry it
    row.locator('button[data-action="terminate"]').click()
    # Then the task ends REVOKED in the result store, long before it would have returned
    wait_for(lambda: result.parent.state == states.REVOKED, 30, "the task to be revoked")
    # And the page's graph turns it REVOKED and settles the step after it
    page.goto(page.url.split("#")[0] + f"#workflows/{result.id}")
    wait_fill(page, sleepy_id, states.REVOKED)
    card.locator(".state").filter(has_text=states.REVOKED).wait_for(timeout=30_000)
    assert page.locator("#graph-actions").is_hidden()  # nothing left to revoke
    assert result.state == states.REVOKED  # the step after it settles, skipped
    page.screenshot(path=artifact(f"terminated-{env.broker.split(':')[0]}.png"))
    page.click('#tabs a[data-tab="tasks"]')
    row.locator('.state[data-state="REVOKED"]').wait_for(timeout=30_000)


def test_a_whole_workflow_is_terminated_from_its_graph(
    tasks: ModuleType, worker: WorkerProcess, page: Page
) -> None:
    # Given a group of two long tasks and a step after them, running
    workflow = chord([tasks.sleepy.s(120), tasks.sleepy.s(120)], tasks.tsum.s())
    result = workflow.apply_async()
    members = [r.id for r in result.parent.results]
    page.goto(page.url.split("#")[0] + f"#workflows/{result.id}")
    for member in members:
        wait_fill(page, member, states.STARTED)
    # When the user terminates the workflow from its graph
    page.click("#terminate-workflow")
    # Then both running tasks end REVOKED, the body settles, and the picture says so
    wait_for(lambda: all(r.state == states.REVOKED for r in result.parent.results), 30, "revokes")
    for member in members:
        wait_fill(page, member, states.REVOKED)
    wait_for(lambda: result.ready(), 30, "the body to settle")
    # Skipped: its header was revoked, so it fails with Celery's ChordError naming a member
    assert result.state == states.FAILURE and isinstance(result.result, ChordError)


def test_workers_are_listed_and_controlled_from_the_page(
    tasks: ModuleType, worker: WorkerProcess, page: Page, env: DashEnv
) -> None:
    # (on Redis: the controls travel the bus as the revoke above does on both brokers)
    page.click('#tabs a[data-tab="workers"]')
    # This test's worker: other workers on the same server (another test) may be listed too.
    mine = f'#workers-table tr[data-worker^="dash-{env.queue}@"]'
    row = page.locator(mine)
    row.wait_for(timeout=30_000)
    cells = row.locator("td")
    page.wait_for_function(
        "(sel) => document.querySelector(sel + ' td:nth-child(4)')?.textContent === 'prefork × 2'",
        arg=mine,
        timeout=15_000,
    )
    assert cells.nth(1).inner_text() == "online"
    # When the pool is grown by one from the page, Then the next heartbeat says 3
    row.locator('button[data-action="grow"]').click()
    page.wait_for_function(
        "(sel) => document.querySelector(sel + ' td:nth-child(4)')?.textContent === 'prefork × 3'",
        arg=mine,
        timeout=15_000,
    )
    # When a rate limit is set, Then the worker answers
    row.locator('input[data-field="task"]').fill("dashboard_tasks.add")
    row.locator('input[data-field="rate"]').fill("10/m")
    row.locator('button[data-action="rate-limit"]').click()
    page.wait_for_function(
        "() => document.querySelector('#toast')?.textContent.includes('1 worker(s) answered')",
        timeout=15_000,
    )
    # When it is shut down from the page, Then the process exits and the row goes offline
    row.locator('button[data-action="shutdown"]').click()
    wait_for(lambda: worker.proc.poll() is not None, 30, "the worker to exit")
    page.wait_for_function(
        "(sel) => document.querySelector(sel)?.dataset.online === 'false'",
        arg=mine,
        timeout=30_000,
    )
