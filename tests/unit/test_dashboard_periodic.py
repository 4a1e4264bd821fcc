"""Beat entries on the dashboard: the next run is the one beat would send, from beat's own store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from canvas import Canvas
from canvas.beat.stores import FileStore
from canvas.dashboard.periodic import entries
from canvas.schedules import crontab

NOW = datetime(2026, 3, 10, 12, 0, 5, tzinfo=UTC)


def make_app() -> Canvas:
    app = Canvas("periodic-test", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.beat_schedule = {
        "every-10s": {"task": "proj.tick", "schedule": 10.0},
        "morning": {"task": "proj.report", "schedule": crontab(hour=7, minute=30)},
        "typo": {"task": "proj.x", "schedule": 5.0, "kwarg": {}},
    }
    return app


def test_next_runs_follow_the_last_runs_beat_recorded(tmp_path: Path) -> None:
    # Given beat recorded the 10 s entry's last slot at 12:00:00 in its file store
    store = tmp_path / "beat-schedule"
    FileStore(str(store)).save({"every-10s": datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)})
    # When the dashboard reads the entries at 12:00:05
    found = {e.name: e for e in entries(make_app(), str(store), now=NOW)}
    # Then the next run is the slot after the recorded one, and the cron entry's is tomorrow 7:30
    assert found["every-10s"].last_run == datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
    assert found["every-10s"].next_run == datetime(2026, 3, 10, 12, 0, 10, tzinfo=UTC)
    assert found["morning"].last_run is None
    assert found["morning"].next_run == datetime(2026, 3, 11, 7, 30, tzinfo=UTC)
    # And an entry beat would refuse is listed with beat's reason, not dropped
    assert found["typo"].next_run is None
    assert found["typo"].error is not None and "'kwarg'" in found["typo"].error
    assert "kwargs" in found["typo"].error


def test_a_store_written_after_the_first_read_is_read_again(tmp_path: Path) -> None:
    store = tmp_path / "beat-schedule"
    app = make_app()
    before = {e.name: e for e in entries(app, str(store), now=NOW)}
    assert before["every-10s"].next_run == datetime(2026, 3, 10, 12, 0, 10, tzinfo=UTC)
    FileStore(str(store)).save({"every-10s": datetime(2026, 3, 10, 12, 0, 10, tzinfo=UTC)})
    after = {e.name: e for e in entries(app, str(store), now=NOW + timedelta(seconds=6))}
    assert after["every-10s"].next_run == datetime(2026, 3, 10, 12, 0, 20, tzinfo=UTC)


def test_a_last_run_from_a_clock_in_the_future_is_not_trusted(tmp_path: Path) -> None:
    store = tmp_path / "beat-schedule"
    FileStore(str(store)).save({"every-10s": NOW + timedelta(days=3)})
    found = {e.name: e for e in entries(make_app(), str(store), now=NOW)}
    assert found["every-10s"].next_run == datetime(2026, 3, 10, 12, 0, 10, tzinfo=UTC)


def test_an_unreadable_store_still_lists_every_entry(tmp_path: Path) -> None:
    found = entries(make_app(), "nosuchscheme://x", now=NOW)
    assert [e.name for e in found] == ["every-10s", "morning", "typo"]
    assert found[0].next_run == datetime(2026, 3, 10, 12, 0, 10, tzinfo=UTC)
    assert found[0].as_dict()["next_run"] == "2026-03-10T12:00:10+00:00"
