"""Celery's per-worker task rate limits (``rate_limit='10/s'``, ``task_default_rate_limit``).

Each call of a rate-limited task takes the next free slot of its task name: the first at once,
then one every ``1/rate`` seconds. A call whose slot is later is parked until then (as a
countdown is, acked and kept in the store) and runs when it comes back, so a limited task never
holds a pool process while it waits and other tasks run meanwhile. The limit is per worker, as
in Celery: a prefork worker gives each of its N pool processes 1/N of it.
"""

from __future__ import annotations

import re
import threading

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(?:/\s*([smh]))?\s*$")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}

#: the header a parked, rate-limited call comes back with: it runs without taking a new slot
SLOT_HEADER = "rate_slot"


def rate(value: str | int | float | None) -> float:
    """Tasks per second for Celery's rate forms: ``10``, ``"10/s"``, ``"100/m"``, ``"5/h"``."""
    if value is None or value == "" or value == 0:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    match = _RATE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a rate such as '10/s', '100/m' or '5/h'")
    return float(match.group(1)) / _PER[match.group(2) or "s"]


class Slots:
    """The next free slot of each rate-limited task name in this process."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()
        #: how many processes share the worker's limit (set by the worker before it forks)
        self.processes = 1

    def take(self, name: str, limit: str | int | float, now: float) -> float:
        """When the next call of ``name`` may start (``now`` or later); 0-rate means at once."""
        per_second = rate(limit) / max(1, self.processes)
        if per_second <= 0:
            return now
        with self._lock:
            start = max(now, self._next.get(name, 0.0))
            self._next[name] = start + 1.0 / per_second
        return start


#: this process's slots: the pool processes of one worker each have their own after the fork
slots = Slots()
