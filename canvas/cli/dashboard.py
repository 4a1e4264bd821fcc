"""``canvas dashboard``: the live web page (and ``/metrics``) for a running system.

    canvas -A proj dashboard                                # http://127.0.0.1:5555
    canvas -A proj dashboard --address 0.0.0.0 --basic-auth admin:s3cret
    CANVAS_DASHBOARD_TOKEN=... canvas -A proj dashboard --address 0.0.0.0

Beyond loopback it refuses to start without ``--basic-auth`` or ``--auth-token`` (see
``canvas.dashboard.auth``). It needs the ``dashboard`` extra.
"""

from __future__ import annotations

import click

from canvas import dashboard
from canvas.cli.base import app_from_context
from canvas.dashboard.auth import Credentials, check_bind
from canvas.exceptions import ImproperlyConfigured


@click.command("dashboard")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=5555, show_default=True)
@click.option(
    "--basic-auth",
    envvar="CANVAS_DASHBOARD_BASIC_AUTH",
    metavar="USER:PASSWORD[,...]",
    help="Require HTTP basic auth (env CANVAS_DASHBOARD_BASIC_AUTH).",
)
@click.option(
    "--auth-token",
    envvar="CANVAS_DASHBOARD_TOKEN",
    metavar="TOKEN",
    help="Require this bearer token; a browser opens /?token=TOKEN (env CANVAS_DASHBOARD_TOKEN).",
)
@click.option("-Q", "--queues", help="Comma-separated queues to show besides the app's own.")
@click.option(
    "-s",
    "--beat-store",
    metavar="PATH|URL",
    help="Where beat keeps last runs (default: as canvas beat: beat_schedule_store/filename).",
)
@click.option("--no-events", is_flag=True, help="Do not subscribe to worker events.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between reads of queues and workflows.",
)
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="Key of --certfile.")
@click.option("-l", "--loglevel", default="info", show_default=True, help="uvicorn's log level.")
@click.pass_context
def command(
    ctx: click.Context,
    address: str,
    port: int,
    basic_auth: str | None,
    auth_token: str | None,
    queues: str | None,
    beat_store: str | None,
    no_events: bool,
    interval: float,
    certfile: str | None,
    keyfile: str | None,
    loglevel: str,
) -> None:
    """Serve the live dashboard: workers, tasks, queues, workflows, beat, /metrics."""
    try:
        dashboard.require()
        credentials = Credentials.parse(basic_auth, auth_token)
        check_bind(address, credentials)
    except ImproperlyConfigured as exc:
        raise click.ClickException(str(exc)) from None
    # Starlette, uvicorn and prometheus-client come with the optional dashboard extra.
    from canvas.dashboard.monitor import Monitor
    from canvas.dashboard.server import serve  # the same extra

    app = app_from_context(ctx)
    monitor = Monitor(
        app,
        queue_names=[q.strip() for q in (queues or "").split(",") if q.strip()],
        beat_store=beat_store,
        interval=interval,
        events=not no_events,
    )
    scheme = "https" if certfile else "http"
    host = f"[{address}]" if ":" in address else address
    click.echo(f"canvas dashboard for {app.main or 'app'} on {scheme}://{host}:{port}/", err=True)
    serve(
        monitor,
        credentials,
        address=address,
        port=port,
        certfile=certfile,
        keyfile=keyfile,
        log_level=loglevel.lower(),
    )
