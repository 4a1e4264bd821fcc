"""``canvas events``' frame: what each panel shows for a snapshot (no terminal needed)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from canvas.dashboard.terminal import WORKFLOWS_SHOWN, render

NOW = 1_800_000_000.0


def text_of(snapshot: dict[str, Any], width: int = 140) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(render(snapshot, title="canvas · proj"))
    return console.export_text()


def snapshot(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "now": NOW,
        "workers": [],
        "queues": [],
        "workflows": [],
        "tasks": {"by_state": {}, "rates": {}},
        "events": {"on": True, "error": None, "seen": 0, "lag": None},
    }
    return {**base, **parts}


def test_workers_show_status_heartbeat_age_load_counts_and_pool() -> None:
    frame = text_of(
        snapshot(
            workers=[
                {
                    "hostname": "w1@host",
                    "online": True,
                    "heartbeat": NOW - 1.5,
                    "loadavg": [0.5, 0.25, 0.125],
                    "active": 2,
                    "processed": 120,
                    "failed": 3,
                    "pool": "prefork",
                    "concurrency": 4,
                },
                {"hostname": "w2@host", "online": False, "heartbeat": None},
            ],
            events={"on": True, "error": None, "seen": 42, "lag": 0.0123},
        )
    )
    row = next(line for line in frame.splitlines() if "w1@host" in line).split()
    assert row[:11] == [
        "│",
        "w1@host",
        "online",
        "1.5",
        "s",
        "ago",
        "0.50",
        "0.25",
        "0.12",
        "2",
        "120",
    ]
    assert row[11:15] == ["3", "prefork", "×", "4"]
    assert "w2@host" in frame and "offline" in frame
    assert "canvas · proj · 42 events · lag 0.01 s · 1 worker online" in frame


def test_tasks_per_state_with_the_rate_each_state_is_entered_at() -> None:
    frame = text_of(
        snapshot(
            tasks={
                "by_state": {"STARTED": 4, "SUCCESS": 120, "PROGRESS": 1},
                "rates": {"STARTED": 2.5, "SUCCESS": 2.4, "FAILURE": 0.1},
            }
        )
    )
    rows = {
        line.split()[1]: line.split()[2:4]
        for line in frame.splitlines()
        if line.count("│") == 2 and len(line.split()) >= 4
    }
    assert rows["STARTED"] == ["4", "2.5"]
    assert rows["SUCCESS"] == ["120", "2.4"]
    assert rows["FAILURE"] == ["0", "0.1"]  # entered lately, none left in it now
    assert rows["PROGRESS"] == ["1", "0.0"]  # a custom state is shown too
    assert "PENDING" not in frame


def test_running_workflows_get_a_progress_bar_each() -> None:
    flows = [
        {
            "id": "aaaaaaaa-1",
            "label": "add → tsum (10 tasks)",
            "total": 10,
            "done": 5,
            "failed": 0,
            "finished": False,
            "state": "STARTED",
        },
        {
            "id": "bbbbbbbb-2",
            "label": "done one",
            "total": 2,
            "done": 2,
            "failed": 0,
            "finished": True,
            "state": "SUCCESS",
        },
    ]
    frame = text_of(snapshot(workflows=flows))
    assert "workflows · 1 running · 1 finished" in frame
    line = next(line for line in frame.splitlines() if "aaaaaaaa" in line)
    assert "add → tsum (10 tasks)" in line and "5/10" in line and "STARTED" in line
    half = line.count("━")
    full = next(
        line
        for line in text_of(snapshot(workflows=[dict(flows[0], done=10)])).splitlines()
        if "aaaaaaaa" in line
    )
    assert half > 0 and abs(full.count("━") - 2 * half) <= 2  # the bar grows with the work done
    assert "bbbbbbbb" not in frame  # finished ones are counted, not listed
    many = [dict(flows[0], id=f"{i:08d}-x") for i in range(WORKFLOWS_SHOWN + 3)]
    assert "3 more not shown" in text_of(snapshot(workflows=many))


def test_queues_and_an_idle_or_cut_off_system_say_so() -> None:
    frame = text_of(
        snapshot(
            queues=[
                {"name": "canvas", "depth": 7, "dead_letters": 1},
                {"name": "down", "depth": None, "dead_letters": None},
            ],
            events={
                "on": True,
                "error": "events feed lost: ConnectionError: refused",
                "seen": 3,
                "lag": None,
            },
        )
    )
    assert next(line for line in frame.splitlines() if "canvas " in line and "7" in line).split()[
        1:4
    ] == ["canvas", "7", "1"]
    assert next(line for line in frame.splitlines() if " down " in line).split()[1:4] == [
        "down",
        "?",
        "?",
    ]
    assert "events feed lost: ConnectionError: refused" in frame
    assert "no worker heard from yet" in frame and "no task events yet" in frame
    assert "no workflow running" in frame
    assert "events off" in text_of(
        snapshot(events={"on": False, "error": None, "seen": 0, "lag": None})
    )
