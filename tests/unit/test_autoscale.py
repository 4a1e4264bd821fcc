"""The autoscale policy (``canvas.core.autoscale``): bounds, growth, the keepalive, parsing."""

from __future__ import annotations

from typing import Any

import pytest

from canvas import Canvas
from canvas.core.autoscale import Autoscaler, keepalive_from_env, parse
from canvas.core.worker import Worker, WorkerOptions
from canvas.exceptions import ImproperlyConfigured


@pytest.mark.parametrize(
    ("value", "bounds"),
    [("10,3", (10, 3)), ("3,10", (10, 3)), ("4", (4, 0)), (" 5 , 2 ", (5, 2)), ("2,2", (2, 2))],
)
def test_parse_reads_celerys_forms(value: str, bounds: tuple[int, int]) -> None:
    assert parse(value) == bounds


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("ten", "whole numbers"),
        ("10,three", "whole numbers"),
        ("", "whole numbers"),
        ("1,2,3", "two numbers at most"),
        ("0", "max >= 1"),
        ("4,-1", "min >= 0"),
        ("5000,1", "4096 processes at most"),
    ],
)
def test_parse_names_what_is_wrong(value: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse(value)


def test_update_refuses_min_over_max_and_keeps_the_old_bounds() -> None:
    scaler = Autoscaler(4, 1)
    with pytest.raises(ValueError, match="min <= max, got max=4 min=6"):
        scaler.update(min=6)
    assert (scaler.max, scaler.min) == (4, 1)
    assert scaler.update(max=8) == (8, 1)
    assert scaler.update(None, 2) == (8, 2)


@pytest.mark.parametrize(
    ("processes", "demand", "size"),
    [
        (1, 0, 1),  # idle at min: stays
        (1, 3, 3),  # work waits: grows at once
        (1, 9, 4),  # ... never past max
        (4, 9, 4),  # at max: stays
        (0, 0, 1),  # below min (min raised): grows to it
        (6, 6, 4),  # above max (max lowered): shrinks at once
    ],
)
def test_target_follows_the_demand_within_bounds(processes: int, demand: int, size: int) -> None:
    assert Autoscaler(4, 1, keepalive=30).target(100.0, processes, demand) == size


def test_shrinks_only_after_the_keepalive_of_idle_processes() -> None:
    # Given a pool grown to 4 by load at t=0
    scaler = Autoscaler(4, 1, keepalive=30)
    assert scaler.target(0.0, 1, 4) == 4
    # When the demand drops to 2, the idle processes stay for the keepalive
    assert scaler.target(1.0, 4, 2) == 4
    assert scaler.target(29.9, 4, 2) == 4
    # Then the pool shrinks to the demand, not below it
    assert scaler.target(30.0, 4, 2) == 2
    # And a busy moment restarts the count: a later drop waits a full keepalive again
    assert scaler.target(40.0, 2, 2) == 2
    assert scaler.target(41.0, 2, 0) == 2
    assert scaler.target(69.9, 2, 0) == 2
    assert scaler.target(70.0, 2, 0) == 1


def test_info_is_celerys_stats_entry() -> None:
    assert Autoscaler(3, 1).info(2, 5) == {"max": 3, "min": 1, "current": 2, "qty": 5}


def test_keepalive_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOSCALE_KEEPALIVE", raising=False)
    assert keepalive_from_env() == 30.0
    monkeypatch.setenv("AUTOSCALE_KEEPALIVE", "0.5")
    assert keepalive_from_env() == 0.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("AUTOSCALE_KEEPALIVE", bad)
        with pytest.raises(ValueError, match="AUTOSCALE_KEEPALIVE"):
            keepalive_from_env()


class Eager(Autoscaler):
    """A project's own rule: straight to max at the first waiting message."""

    def target(self, now: float, processes: int, demand: int) -> int:
        return self.max if demand else super().target(now, processes, demand)


def _worker(**settings: Any) -> Worker:
    app = Canvas("scaling", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.update(settings)
    return Worker(app, WorkerOptions(pool="threads", autoscale=(4, 1)))


def test_worker_autoscaler_names_the_class_as_in_celery() -> None:
    assert type(_worker().autoscaler) is Autoscaler
    # Celery's import path, after the import change, is the same class
    assert type(_worker(worker_autoscaler="canvas.worker.autoscale:Autoscaler").autoscaler) is (
        Autoscaler
    )
    eager = _worker(worker_autoscaler="tests.unit.test_autoscale:Eager").autoscaler
    assert isinstance(eager, Eager) and eager.target(0.0, 1, 1) == 4


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("builtins:dict", "not a subclass of canvas.core.autoscale.Autoscaler"),
        ("celery.worker.autoscale:Autoscaler", "cannot load it"),
    ],
)
def test_a_worker_autoscaler_canvas_cannot_use_is_refused(spec: str, error: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=f"worker_autoscaler '{spec}'.*{error}"):
        _worker(worker_autoscaler=spec)
