"""``canvas events``: the dashboard's picture in a terminal, redrawn in place (rich).

Four panels from the same ``Monitor`` the web page reads: workers (online, heartbeat age, load,
active/processed/failed, pool), tasks per state with the rate each state is entered at (per
second, over the last ``RATE_WINDOW`` seconds), the running workflows with a progress bar each,
and the queues with their depth. ``render(snapshot)`` is pure, so what a frame shows is tested
without a terminal; ``run`` redraws it until interrupted (or until ``until(snapshot)`` is true).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from canvas import states
from canvas.dashboard.monitor import RATE_WINDOW, Monitor

if TYPE_CHECKING:
    from canvas.app import Canvas

#: terminal colour of each state (the pictures' light fills do not read as text)
STATE_STYLES = {
    states.PENDING: "grey62",
    states.RECEIVED: "blue",
    states.STARTED: "yellow",
    states.RETRY: "dark_orange",
    states.SUCCESS: "green",
    states.FAILURE: "red",
    states.REVOKED: "grey50",
    states.REJECTED: "magenta",
}
#: running workflows shown at most (the newest); the title counts the rest
WORKFLOWS_SHOWN = 12


def render(snapshot: Mapping[str, Any], *, title: str = "canvas") -> RenderableType:
    """One frame: a header line and the four panels."""
    now = float(snapshot.get("now") or time.time())
    return Group(
        _header(snapshot, title, now),
        Panel(_workers(snapshot.get("workers") or [], now), title="workers", title_align="left"),
        Panel(_tasks(snapshot.get("tasks") or {}), title="tasks", title_align="left"),
        _workflows_panel(snapshot.get("workflows") or []),
        Panel(_queues(snapshot.get("queues") or []), title="queues", title_align="left"),
    )


def _header(snapshot: Mapping[str, Any], title: str, now: float) -> Text:
    events = snapshot.get("events") or {}
    online = sum(1 for w in snapshot.get("workers") or () if w.get("online"))
    line = Text(f"{title} · ", style="bold")
    if not events.get("on"):
        line.append("events off", style="red")
    elif events.get("error"):
        line.append(str(events["error"]), style="red")
    else:
        line.append(f"{events.get('seen', 0)} events")
        if events.get("lag") is not None:
            line.append(f" · lag {events['lag']:.2f} s")
    line.append(f" · {online} worker{'s' if online != 1 else ''} online")
    line.append(time.strftime("  %H:%M:%S", time.localtime(now)), style="dim")
    return line


def _workers(workers: Iterable[Mapping[str, Any]], now: float) -> RenderableType:
    table = Table(box=None, expand=True, pad_edge=False)
    for column in ("worker", "status", "heartbeat", "load", "active", "processed", "failed"):
        table.add_column(
            column, justify="right" if column in ("active", "processed", "failed") else "left"
        )
    table.add_column("pool")
    rows = 0
    for worker in workers:
        rows += 1
        beat = worker.get("heartbeat")
        age = f"{max(0.0, now - float(beat)):.1f} s ago" if beat else "–"
        load = " ".join(f"{float(v):.2f}" for v in worker.get("loadavg") or ()) or "–"
        pool = " × ".join(str(v) for v in (worker.get("pool"), worker.get("concurrency")) if v)
        table.add_row(
            str(worker.get("hostname")),
            Text("online", style="green") if worker.get("online") else Text("offline", style="red"),
            age,
            load,
            _number(worker.get("active")),
            _number(worker.get("processed")),
            _number(worker.get("failed")),
            pool or "–",
        )
    if not rows:
        return Text("no worker heard from yet", style="dim")
    return table


def _tasks(tasks: Mapping[str, Any]) -> RenderableType:
    by_state: Mapping[str, int] = tasks.get("by_state") or {}
    rates: Mapping[str, float] = tasks.get("rates") or {}
    table = Table(box=None, pad_edge=False)
    table.add_column("state")
    table.add_column("now", justify="right")
    table.add_column(f"entered/s ({RATE_WINDOW:.0f} s)", justify="right")
    for state in STATE_STYLES:
        count, rate = by_state.get(state, 0), rates.get(state, 0.0)
        if count or rate:
            table.add_row(Text(state, style=STATE_STYLES[state]), str(count), f"{rate:.1f}")
    for state in sorted(set(by_state) - set(STATE_STYLES)):  # custom states (update_state)
        table.add_row(state, str(by_state[state]), f"{rates.get(state, 0.0):.1f}")
    if not table.row_count:
        return Text("no task events yet", style="dim")
    return table


def _workflows_panel(workflows: Iterable[Mapping[str, Any]]) -> Panel:
    flows = list(workflows)
    running = [w for w in flows if not w.get("finished")]
    finished = len(flows) - len(running)
    title = f"workflows · {len(running)} running · {finished} finished"
    if not running:
        return Panel(Text("no workflow running", style="dim"), title=title, title_align="left")
    table = Table(box=None, expand=True, pad_edge=False, show_header=False)
    table.add_column("id", no_wrap=True)
    table.add_column("workflow", ratio=3, overflow="ellipsis", no_wrap=True)
    table.add_column("progress", ratio=2, min_width=10)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for flow in running[:WORKFLOWS_SHOWN]:
        total = int(flow.get("total") or 0)
        done = int(flow.get("done") or 0)
        state = str(flow.get("state") or states.PENDING)
        bar = ProgressBar(
            total=max(total, 1),
            completed=done,
            complete_style="red" if flow.get("failed") else "green",
        )
        table.add_row(
            str(flow.get("id", ""))[:8],
            str(flow.get("label") or ""),
            bar,
            f"{done}/{total}",
            Text(state, style=STATE_STYLES.get(state, "")),
        )
    if len(running) > WORKFLOWS_SHOWN:
        title += f" · {len(running) - WORKFLOWS_SHOWN} more not shown"
    return Panel(table, title=title, title_align="left")


def _queues(queues: Iterable[Mapping[str, Any]]) -> RenderableType:
    table = Table(box=None, pad_edge=False)
    for column in ("queue", "waiting", "dead letters"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for queue in queues:
        dead = queue.get("dead_letters")
        table.add_row(
            str(queue.get("name")),
            _number(queue.get("depth"), "?"),
            Text(_number(dead, "?"), style="red" if dead else ""),
        )
    return table


def _number(value: Any, missing: str = "–") -> str:
    return missing if value is None else str(value)


def run(
    app: Canvas,
    *,
    queue_names: Iterable[str] = (),
    interval: float = 1.0,
    console: Console | None = None,
    until: Callable[[Mapping[str, Any]], bool] | None = None,
    stop: threading.Event | None = None,
) -> Mapping[str, Any]:
    """Redraw the picture every ``interval`` seconds until interrupted, ``stop`` is set, or
    ``until(snapshot)`` holds; returns the last snapshot drawn."""
    stop = stop or threading.Event()
    monitor = Monitor(app, queue_names=queue_names, interval=interval)
    title = f"canvas · {app.main or 'app'}"
    monitor.start()
    snapshot = monitor.snapshot()
    try:
        with Live(
            render(snapshot, title=title),
            console=console,
            refresh_per_second=4,
            transient=False,
        ) as live:
            while not stop.is_set():
                snapshot = monitor.snapshot()
                live.update(render(snapshot, title=title))
                if until is not None and until(snapshot):
                    break
                stop.wait(min(interval, 0.5))
    except KeyboardInterrupt:
        pass
    finally:
        monitor.stop()
    return snapshot


__all__ = ["STATE_STYLES", "render", "run"]
