"""The dashboard's HTTP API against a real worker on the embedded broker (Starlette's TestClient).

The page only calls these endpoints: a workflow followed by a task's id and drawn as ``canvas
render`` draws it (recoloured when a node's state changes), queue depths and dead letters with
replay, ``/metrics``, the auth guard, and the CLI's refusal to serve beyond loopback unprotected.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from canvas import dashboard, states
from canvas.cli.main import cli
from canvas.core.worker import consume
from canvas.dashboard.auth import ACTION_HEADER, Credentials, Guard
from canvas.dashboard.monitor import Monitor
from canvas.dashboard.server import create_app
from canvas.exceptions import ImproperlyConfigured
from canvas.visualize import STATE_COLORS
from tests.support.dashboard import APP_DIR, APP_MODULE, DashEnv, imported_app
from tests.support.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

SVG = "{http://www.w3.org/2000/svg}"
ACT = {ACTION_HEADER: "1"}
TOKEN = "dashboard-test-token-0123456789"


@pytest.fixture
def env(tmp_path: Path) -> DashEnv:
    return DashEnv(tmp_path)


@pytest.fixture
def tasks(env: DashEnv) -> Iterator[ModuleType]:
    with imported_app(env) as module:
        yield module


@pytest.fixture
def client(tasks: ModuleType) -> Iterator[TestClient]:
    """The dashboard app in this process, refreshing every 0.1 s, as served on loopback."""
    monitor = Monitor(tasks.app, interval=0.1, events=False)
    web = create_app(monitor, Guard(Credentials(), loopback_only=True))
    with TestClient(web, base_url="http://127.0.0.1:5555") as test_client:
        yield test_client


@pytest.fixture
def worker(env: DashEnv, start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker(APP_MODULE, "-P", "threads", "-c", "4", env=env.variables(), cwd=APP_DIR)


def fills(svg: str) -> dict[str, str]:
    """Per node element id (a task id): the fill of its shape."""
    found = {}
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        if g.get("class") == "node" and g.get("id"):
            shape = next(e for e in g.iter() if e.get("fill") not in (None, "none"))
            found[str(g.get("id"))] = str(shape.get("fill"))
    return found


def test_a_workflow_opened_by_a_task_id_is_drawn_and_recoloured_as_it_runs(
    tasks: ModuleType, worker: WorkerProcess, client: TestClient, tmp_path: Path
) -> None:
    # Given a workflow whose first step waits on a gate, running on a real worker
    gate = tmp_path / "gate"
    result = (tasks.gate.s(str(gate)) | tasks.add.s(" and through")).apply_async()
    gate_id = result.parent.id
    # When the page opens it by the gate task's id (known to the store once the task started)
    reply = wait_for(
        lambda: (
            (r := client.post("/api/workflows", json={"id": gate_id}, headers=ACT)).is_success and r
        ),
        30,
        "the gate task to be found",
    )
    workflow_id = reply.json()["id"]
    assert workflow_id == result.id  # the workflow is named by its last node

    def drawn_with(state: str) -> tuple[str, dict[str, str]] | None:
        graph = client.get(f"/api/workflows/{workflow_id}/graph.svg")
        assert graph.status_code == 200, graph.text
        colours = fills(graph.text)
        if colours.get(gate_id) == STATE_COLORS[state]:
            return graph.headers["X-Canvas-Version"], colours
        return None

    # Then the gate is drawn STARTED and the step after it PENDING, as canvas render draws them
    version, colours = wait_for(lambda: drawn_with(states.STARTED), 30, "the gate to start")
    assert colours[result.id] == STATE_COLORS[states.PENDING]
    listed = client.get("/api/snapshot").json()["workflows"]
    assert [(w["id"], w["state"], w["done"], w["total"]) for w in listed] == [
        (workflow_id, states.STARTED, 0, 2)
    ]
    # When the gate opens, Then both nodes turn SUCCESS under a new version
    gate.touch()
    new_version, colours = wait_for(lambda: drawn_with(states.SUCCESS), 30, "the gate to pass")
    wait_for(
        lambda: (
            fills(client.get(f"/api/workflows/{workflow_id}/graph.svg").text)[result.id]
            == STATE_COLORS[states.SUCCESS]
        ),
        30,
        "the last node to succeed",
    )
    assert new_version != version
    # And the list, read by the refresher, says so within a refresh
    detail = wait_for(
        lambda: (d := client.get(f"/api/workflows/{workflow_id}").json())["finished"] and d,
        10,
        "the refresher to see the end",
    )
    assert detail["state"] == states.SUCCESS and detail["done"] == 2
    assert {n["id"]: n["state"] for n in detail["nodes"]} == {
        gate_id: states.SUCCESS,
        result.id: states.SUCCESS,
    }
    assert result.get(timeout=10) == "open and through"


def test_unknown_ids_and_bad_input_get_answers_that_say_what_was_wrong(
    client: TestClient,
) -> None:
    reply = client.post("/api/workflows", json={"id": "no-such-id"}, headers=ACT)
    assert reply.status_code == 404 and "no-such-id" in reply.json()["error"]
    reply = client.post("/api/workflows", json={"id": 7}, headers=ACT)
    assert reply.status_code == 400 and "id" in reply.json()["error"]
    assert client.get("/api/workflows/nope/graph.svg").status_code == 404
    assert client.get("/api/tasks?limit=many").status_code == 400
    reply = client.post("/api/workers/w1@h/pool", json={"delta": 0}, headers=ACT)
    assert reply.status_code == 400 and "delta" in reply.json()["error"]
    reply = client.post(
        "/api/workers/w1@h/rate-limit", json={"task": "t", "rate": "fast"}, headers=ACT
    )
    assert reply.status_code == 400 and "'fast' is not a rate" in reply.json()["error"]
    reply = client.post("/api/tasks/abc/revoke", json={"signal": "SIGNOPE"}, headers=ACT)
    assert reply.status_code == 400 and "SIGNOPE" in reply.json()["error"]
    reply = client.post("/api/queues/dashboard/replay", json={"ids": "x"}, headers=ACT)
    assert reply.status_code == 400 and "ids" in reply.json()["error"]


def test_queue_depth_dead_letters_and_replay(tasks: ModuleType, client: TestClient) -> None:
    app = tasks.app
    # Given one dead-lettered call of a task no worker knows, and two waiting calls
    secret = "never-shown-" + "x" * 8
    dead = app.send_task("proj.not_registered", args=[secret])
    consume(app, ["dashboard"], "test@dashboard", threading.Event(), burst=True)
    for i in range(2):
        tasks.add.delay(i, i)

    def depths() -> tuple[int, int]:
        found = client.get("/api/snapshot").json()["queues"]
        queue = next(q for q in found if q["name"] == "dashboard")
        return queue["depth"], queue["dead_letters"]

    # Then the page shows two waiting and one dead letter, with its reason and no arguments
    wait_for(lambda: depths() == (2, 1), 10, "two waiting and one dead letter")
    letters = client.get("/api/queues/dashboard/dead-letters").json()
    assert letters["queue"] == "dashboard.dlq" and letters["total"] == 1
    [letter] = letters["letters"]
    assert letter["id"] == dead.id and letter["task"] == "proj.not_registered"
    assert "unknown task" in letter["reason"]
    assert secret not in client.get("/api/queues/dashboard/dead-letters").text
    # And /metrics says the same
    metrics = client.get("/metrics").text
    assert 'canvas_queue_depth{queue="dashboard"} 2.0' in metrics
    assert 'canvas_dead_letters{queue="dashboard"} 1.0' in metrics
    # When it is replayed from the page, Then it is back in its queue and the dead letters empty
    reply = client.post("/api/queues/dashboard/replay", json={"ids": [dead.id]}, headers=ACT)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"queue": "dashboard", "replayed": 1, "refused": []}
    wait_for(lambda: depths() == (3, 0), 10, "three waiting and no dead letter")
    found = client.get("/api/snapshot").json()["queues"]
    assert [(q["name"], q["depth"], q["dead_letters"]) for q in found] == [("dashboard", 3, 0)]


def test_the_page_the_stream_and_its_static_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    # The page colours states with the pictures' palette
    assert STATE_COLORS[states.SUCCESS] in page.text and "__STATE_COLORS__" not in page.text
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/static/dashboard.css").status_code == 200
    with client.stream("GET", "/api/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        assert next(line for line in lines if line.startswith("event:")) == "event: snapshot"
        data = next(lines)
        assert data.startswith("data: {") and '"queues"' in data


def test_with_a_token_every_path_needs_it_and_the_page_keeps_it_in_a_cookie(
    tasks: ModuleType,
) -> None:
    monitor = Monitor(tasks.app, interval=0.1, events=False)
    guard = Guard(Credentials.parse(None, TOKEN), loopback_only=False)
    with TestClient(create_app(monitor, guard), base_url="http://dash.example") as client:
        for path in ("/", "/api/snapshot", "/metrics", "/static/dashboard.js"):
            reply = client.get(path)
            assert reply.status_code == 401, path
            assert reply.headers["www-authenticate"].startswith("Bearer")
        assert (
            client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        )
        # Opening the page with ?token= hands back the cookie the page's own requests carry
        assert client.get(f"/?token={TOKEN}").status_code == 200
        assert client.cookies.get("canvas_dashboard_token") == TOKEN
        assert client.get("/api/snapshot").status_code == 200
        # Actions need the page's header even with credentials
        assert client.post("/api/workflows", json={"id": "x"}).status_code == 403


def test_websockets_are_refused_not_passed_unguarded(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/api/stream"):
        pass
    assert closed.value.code == 1008


def test_the_cli_refuses_a_public_address_without_credentials(env: DashEnv) -> None:
    runner = CliRunner(env=env.variables())
    argv = ["-A", "tests.integration.dashboard_app.dashboard_tasks", "dashboard"]
    refused = runner.invoke(cli, [*argv, "--address", "0.0.0.0"])
    assert refused.exit_code == 1
    assert "Refusing to serve the dashboard on '0.0.0.0'" in refused.output
    assert "--basic-auth" in refused.output and "--auth-token" in refused.output
    short = runner.invoke(cli, [*argv, "--address", "0.0.0.0", "--auth-token", "abc"])
    assert short.exit_code == 1 and "shorter than 16" in short.output


def test_a_missing_extra_is_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = dashboard.importlib.util.find_spec

    def without_starlette(name: str, *args: object) -> object:
        return None if name == "starlette" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(dashboard.importlib.util, "find_spec", without_starlette)
    with pytest.raises(ImproperlyConfigured) as caught:
        dashboard.require()
    assert re.search(
        r"needs starlette, which is not installed: pip install 'canvas-workflows\[dashboard\]'",
        str(caught.value),
    )
