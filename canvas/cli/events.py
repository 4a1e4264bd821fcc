"""``canvas events``: the event stream of the cluster.

``--dump`` prints each event as it comes, one line each (``-j/--json`` for JSON lines), as
``celery events --dump`` does. Without it, the live terminal view of ``canvas.dashboard.terminal``
(workers, tasks per state with rates, running workflows, queues) redraws until interrupted; it
needs the ``dashboard`` extra.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from canvas import dashboard
from canvas.cli.base import app_from_context
from canvas.exceptions import ImproperlyConfigured


@click.command("events")
@click.option("-d", "--dump", is_flag=True, help="Print raw events as they come.")
@click.option("-j", "--json", "as_json", is_flag=True, help="With --dump: one JSON object a line.")
@click.option("-n", "--limit", type=int, help="With --dump: stop after this many events.")
@click.option(
    "-t", "--timeout", type=float, help="With --dump: stop when no event came for this long (s)."
)
@click.option("-Q", "--queues", help="Without --dump: comma-separated queues to show too.")
@click.option("--no-wakeup", is_flag=True, help="Do not ask workers for a heartbeat at start.")
@click.pass_context
def command(
    ctx: click.Context,
    dump: bool,
    as_json: bool,
    limit: int | None,
    timeout: float | None,
    no_wakeup: bool,
    queues: str | None,
) -> None:
    """Watch the events of workers and tasks (--dump prints them raw)."""
    app = app_from_context(ctx)
    if not dump:
        try:
            dashboard.require("rich", "prometheus_client")
        except ImproperlyConfigured as exc:
            raise click.ClickException(f"{exc} (or use 'canvas events --dump').") from None
        # rich and prometheus-client come with the optional dashboard extra.
        from canvas.dashboard import terminal

        terminal.run(app, queue_names=[q for q in (queues or "").split(",") if q])
        return

    def show(event: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(event, default=repr, sort_keys=True))
        else:
            click.echo(dump_line(event))

    receiver = app.events.Receiver(None, handlers={"*": show})
    try:
        receiver.capture(limit=limit, timeout=timeout, wakeup=not no_wakeup)
    except TimeoutError:
        pass
    except KeyboardInterrupt:
        receiver.should_stop = True


def dump_line(event: dict[str, Any]) -> str:
    """``<time> [<type>] <hostname>: field=value ...``, as ``celery events --dump`` prints."""
    when = dt.datetime.fromtimestamp(float(event.get("timestamp") or 0), dt.UTC)
    skip = {"type", "timestamp", "hostname", "local_received", "clock", "utcoffset", "pid"}
    fields = " ".join(f"{k}={event[k]!r}" for k in sorted(event) if k not in skip)
    return f"{when:%H:%M:%S.%f} [{event.get('type')}] {event.get('hostname')}: {fields}"
