"""The dashboard's web application (Starlette) and how ``canvas dashboard`` serves it (uvicorn).

===========================================  ====================================================
``GET  /``                                   the page (``static/``: plain HTML, CSS and JS)
``GET  /api/stream``                         server-sent events: a ``snapshot`` at each change
``GET  /api/snapshot``                       the same snapshot, once
``GET  /api/tasks?q=&state=&limit=``         tasks by part of an id or name, and state
``POST /api/tasks/{id}/revoke``              ``{"terminate": bool, "signal": "SIGTERM"}``
``POST /api/workers/{host}/shutdown``
``POST /api/workers/{host}/pool``            ``{"delta": 1}`` grows, ``{"delta": -1}`` shrinks
``POST /api/workers/{host}/rate-limit``      ``{"task": "proj.add", "rate": "10/m"}``
``GET  /api/queues/{name}/dead-letters``     id, task, size and reason of each (no arguments)
``POST /api/queues/{name}/replay``           ``{"ids": [...]}`` or ``{"all": true}``
``POST /api/workflows``                      ``{"id": ...}``: follow a workflow (or a task's)
``GET  /api/workflows/{id}``                 its summary and every node's state
``GET  /api/workflows/{id}/graph.svg``       the picture ``canvas render --id`` draws
``GET  /metrics``                            Prometheus (``canvas.dashboard.metrics``)
===========================================  ====================================================

Every request passes ``canvas.dashboard.auth.Guard`` first. Blocking work (brokers, stores,
``dot``) runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canvas.dashboard import actions, queues
from canvas.dashboard.auth import Credentials, Guard, check_bind, is_loopback
from canvas.dashboard.metrics import CONTENT_TYPE
from canvas.dashboard.monitor import Monitor
from canvas.visualize import STATE_COLORS

logger = logging.getLogger("canvas.dashboard")

#: seconds between two looks for a change, per open page
STREAM_EVERY = 0.5
#: seconds after which an idle stream sends a comment, so proxies keep it open
KEEPALIVE = 15.0


class GuardMiddleware:
    """Runs ``Guard.check`` on every HTTP request; answers 401/403 itself."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the page uses none: refuse, never pass unguarded
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        verdict = self.guard.check(
            scope["method"],
            scope["path"],
            scope.get("query_string", b""),
            headers,
            secure=scope.get("scheme") == "https",
        )
        if verdict.status:
            extra = {"WWW-Authenticate": self.guard.challenge} if verdict.status == 401 else {}
            response = PlainTextResponse(verdict.reason, verdict.status, headers=extra)
            await response(scope, receive, send)
            return
        if verdict.set_cookie is None:
            await self.app(scope, receive, send)
            return
        cookie = verdict.set_cookie.encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def create_app(monitor: Monitor, guard: Guard) -> Starlette:
    """The ASGI app serving ``monitor``; it starts and stops the monitor's threads with itself."""
    static = resources.files("canvas.dashboard") / "static"
    # The page colours states as the pictures do: one palette, handed to it in the HTML.
    palette = html.escape(json.dumps(STATE_COLORS), quote=True)
    index_html = (static / "index.html").read_text(encoding="utf-8")
    index_html = index_html.replace("__STATE_COLORS__", palette)

    async def index(request: Request) -> Response:
        return HTMLResponse(index_html, headers={"Cache-Control": "no-store"})

    async def snapshot(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(monitor.snapshot))

    async def stream(request: Request) -> Response:
        async def events() -> Any:
            yield "retry: 2000\n\n"
            shown = None
            quiet = 0.0
            while True:
                body = await run_in_threadpool(monitor.snapshot)
                if body["version"] != shown:
                    shown = body["version"]
                    quiet = 0.0
                    yield f"event: snapshot\ndata: {json.dumps(body, default=str)}\n\n"
                elif quiet >= KEEPALIVE:
                    quiet = 0.0
                    yield ": still here\n\n"
                await asyncio.sleep(STREAM_EVERY)
                quiet += STREAM_EVERY

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def tasks(request: Request) -> Response:
        params = request.query_params
        try:
            limit = max(1, min(int(params.get("limit", "100")), 1000))
        except ValueError:
            return _error(400, "limit: a whole number from 1 to 1000")
        found = await run_in_threadpool(
            monitor.tasks, params.get("q", ""), params.get("state", ""), limit
        )
        return JSONResponse({"tasks": found})

    async def revoke(request: Request) -> Response:
        body = await _json(request)
        return await _act(
            actions.revoke,
            monitor.app,
            request.path_params["task_id"],
            terminate=actions.field(body, "terminate") is True,
            signal=str(actions.field(body, "signal", "SIGTERM")),
        )

    async def shutdown(request: Request) -> Response:
        return await _act(actions.shutdown, monitor.app, request.path_params["host"])

    async def pool(request: Request) -> Response:
        body = await _json(request)
        return await _act(
            actions.resize_pool,
            monitor.app,
            request.path_params["host"],
            actions.field(body, "delta"),
        )

    async def rate_limit(request: Request) -> Response:
        body = await _json(request)
        return await _act(
            actions.rate_limit,
            monitor.app,
            request.path_params["host"],
            actions.field(body, "task"),
            actions.field(body, "rate"),
        )

    async def dead_letters(request: Request) -> Response:
        return await _act(queues.dead_letters, monitor.app, request.path_params["name"])

    async def replay(request: Request) -> Response:
        body = await _json(request)
        return await _act(
            actions.replay,
            monitor.app,
            request.path_params["name"],
            actions.field(body, "ids", []),
            actions.field(body, "all"),
        )

    async def follow(request: Request) -> Response:
        body = await _json(request)
        an_id = actions.field(body, "id")
        if not isinstance(an_id, str) or not an_id.strip():
            return _error(400, "id: the id of a workflow, or of one of its tasks")
        try:
            workflow_id = await run_in_threadpool(monitor.board.follow, an_id.strip())
        except LookupError as exc:
            return _error(404, str(exc).strip("'\""))
        await run_in_threadpool(monitor.board.refresh)
        return JSONResponse({"id": workflow_id})

    async def workflow(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        item = monitor.board.get(workflow_id)
        if item is None:
            return _error(404, f"workflow {workflow_id!r} is not followed; POST its id first")
        nodes = await run_in_threadpool(monitor.board.nodes, workflow_id)
        return JSONResponse({**item.summary(), "nodes": nodes})

    async def graph(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        try:
            version, svg = await run_in_threadpool(monitor.board.svg, workflow_id)
        except LookupError as exc:
            return _error(404, str(exc).strip("'\""))
        except Exception as exc:  # no dot binary, an unreadable store: say which
            return _error(503, f"cannot draw the workflow: {exc}")
        return Response(
            svg,
            media_type="image/svg+xml",
            headers={"X-Canvas-Version": version, "Cache-Control": "no-store"},
        )

    async def metrics(request: Request) -> Response:
        data = await run_in_threadpool(monitor.metrics.render)
        return Response(data, headers={"Content-Type": CONTENT_TYPE})

    routes = [
        Route("/", index),
        Route("/api/snapshot", snapshot),
        Route("/api/stream", stream),
        Route("/api/tasks", tasks),
        Route("/api/tasks/{task_id}/revoke", revoke, methods=["POST"]),
        Route("/api/workers/{host}/shutdown", shutdown, methods=["POST"]),
        Route("/api/workers/{host}/pool", pool, methods=["POST"]),
        Route("/api/workers/{host}/rate-limit", rate_limit, methods=["POST"]),
        Route("/api/queues/{name}/dead-letters", dead_letters),
        Route("/api/queues/{name}/replay", replay, methods=["POST"]),
        Route("/api/workflows", follow, methods=["POST"]),
        Route("/api/workflows/{workflow_id}", workflow),
        Route("/api/workflows/{workflow_id}/graph.svg", graph),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        monitor.start()
        try:
            yield
        finally:
            monitor.stop()

    web = Starlette(routes=routes, lifespan=lifespan)
    web.add_middleware(GuardMiddleware, guard=guard)
    return web


def serve(
    monitor: Monitor,
    credentials: Credentials,
    *,
    address: str = "127.0.0.1",
    port: int = 5555,
    certfile: str | None = None,
    keyfile: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve the dashboard until interrupted; refuses a non-loopback address without credentials."""
    check_bind(address, credentials)
    guard = Guard(credentials, loopback_only=is_loopback(address))
    config = uvicorn.Config(
        create_app(monitor, guard),
        host=address,
        port=port,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        # Open event streams end when the server stops; do not wait on the browsers.
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run()


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        return {}


async def _act(action: Callable[..., Any], *args: Any, **kwargs: Any) -> Response:
    """Run a blocking action in a thread; bad input is a 400 naming the field."""
    try:
        result = await run_in_threadpool(action, *args, **kwargs)
    except actions.ActionError as exc:
        return _error(400, str(exc))
    except Exception as exc:  # a broker error: the page shows it, the server goes on
        logger.warning("dashboard: %s failed: %s", getattr(action, "__name__", action), exc)
        return _error(502, f"{type(exc).__name__}: {exc}")
    return JSONResponse(result, headers={"Cache-Control": "no-store"})


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


__all__ = ["GuardMiddleware", "create_app", "serve"]
