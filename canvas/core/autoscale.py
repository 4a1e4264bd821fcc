"""The pool's autoscaler: how many processes ``--autoscale=max,min`` wants, as Celery's does.

The worker starts ``min`` pool processes. Once a second its supervisor tells the autoscaler the
pool's size and the *demand*: the tasks running now plus the messages waiting in the worker's
queues (Celery counts the requests its worker reserved; a canvas pool process takes a message
only when it can start it, so what waits is still in the queue). The answer:

* more demand than processes: grow at once, up to ``max``;
* less demand than processes, for ``keepalive`` seconds in a row (``AUTOSCALE_KEEPALIVE`` in the
  environment, 30 by default, as in Celery): shrink to the demand, down to ``min``;
* a pool outside new bounds (``canvas control autoscale MAX MIN``): back inside at once.

Pure policy: no clock, no pool. ``canvas.core.operate`` applies the answer.
"""

from __future__ import annotations

import os
from typing import Any

from canvas.config import load_class
from canvas.exceptions import ImproperlyConfigured

#: the environment variable (Celery's) that sets the keepalive, in seconds
KEEPALIVE_ENV = "AUTOSCALE_KEEPALIVE"
DEFAULT_KEEPALIVE = 30.0
#: most pool processes a worker runs (the size of its page of terminate flags)
MOST_PROCESSES = 4096
#: seconds between two looks at the demand (Celery's autoscaler thread sleeps one second)
INTERVAL = 1.0


def parse(value: str) -> tuple[int, int]:
    """``--autoscale`` to ``(max, min)``: ``"10,3"``, or one number for ``(n, 0)``. As Celery,
    the larger number is the maximum whichever comes first."""
    parts = [part.strip() for part in str(value).split(",")]
    if len(parts) > 2:
        raise ValueError(f"{value!r} is not max,min: give two numbers at most (e.g. 10,3)")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"{value!r} is not max,min: give whole numbers (e.g. 10,3)") from None
    high, low = (numbers[0], 0) if len(numbers) == 1 else (max(numbers), min(numbers))
    check_bounds(high, low)
    return high, low


def check_bounds(max: int, min: int) -> None:
    """Refuse bounds no pool can keep, naming the offending values."""
    if min < 0 or max < 1:
        raise ValueError(f"autoscale needs max >= 1 and min >= 0, got max={max} min={min}")
    if max > MOST_PROCESSES:
        raise ValueError(f"autoscale allows {MOST_PROCESSES} processes at most, got max={max}")
    if min > max:
        raise ValueError(f"autoscale needs min <= max, got max={max} min={min}")


def keepalive_from_env() -> float:
    """Seconds a process may idle before the pool shrinks (``AUTOSCALE_KEEPALIVE``)."""
    raw = os.environ.get(KEEPALIVE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_KEEPALIVE
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{KEEPALIVE_ENV}={raw!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"{KEEPALIVE_ENV}={raw!r} must be more than 0 seconds")
    return seconds


def autoscaler_class(spec: Any) -> type[Autoscaler]:
    """The ``worker_autoscaler`` setting's class: this one or a subclass (Celery's setting)."""
    found = load_class(spec, "worker_autoscaler", "canvas.core.autoscale:Autoscaler")
    if not issubclass(found, Autoscaler):
        raise ImproperlyConfigured(
            f"worker_autoscaler {spec!r} is not a subclass of canvas.core.autoscale.Autoscaler "
            "(subclass it and override target(now, processes, demand))."
        )
    return found


class Autoscaler:
    """Keeps the pool between ``min`` and ``max`` processes, following the demand."""

    def __init__(self, max: int, min: int, keepalive: float = DEFAULT_KEEPALIVE) -> None:
        check_bounds(max, min)
        self.max = max
        self.min = min
        self.keepalive = keepalive
        #: when every process was last needed (``None``: not looked yet)
        self._full_at: float | None = None

    def update(self, max: int | None = None, min: int | None = None) -> tuple[int, int]:
        """New bounds (``None`` keeps one); ``(max, min)`` as they now are."""
        high = self.max if max is None else max
        low = self.min if min is None else min
        check_bounds(high, low)
        self.max, self.min = high, low
        return high, low

    def target(self, now: float, processes: int, demand: int) -> int:
        """The pool size wanted at ``now`` (monotonic seconds)."""
        wanted = sorted((self.min, demand, self.max))[1]
        if self._full_at is None or wanted >= processes:
            self._full_at = now
        if wanted > processes or processes > self.max:
            return wanted
        if wanted < processes and now - self._full_at >= self.keepalive:
            self._full_at = now  # the next shrink waits its own keepalive
            return wanted
        return processes

    def info(self, processes: int, demand: int) -> dict[str, int]:
        """Celery's ``autoscaler`` entry of ``inspect stats``."""
        return {"max": self.max, "min": self.min, "current": processes, "qty": demand}
