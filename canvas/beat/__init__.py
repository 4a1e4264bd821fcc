"""Beat: periodic tasks and workflows on a schedule, fired once per slot by one leader.

``Scheduler`` does one round per ``tick(now)``; ``Beat``/``run_beat`` run it as a service
(``canvas -A proj beat``, or a worker's ``-B`` thread). Stores keep last-run slots
(``canvas.beat.stores``); the leader lease lives in the result store (``canvas.beat.lock``).
"""

from __future__ import annotations

from canvas.beat.lock import Lease
from canvas.beat.scheduler import Beat, Entry, Scheduler, run_beat, slot_task_id
from canvas.beat.stores import FileStore, MemoryStore, SQLStore, Store

__all__ = [
    # the loop
    "Beat",
    "Entry",
    "Lease",
    "Scheduler",
    "run_beat",
    "slot_task_id",
    # where last runs are kept
    "FileStore",
    "MemoryStore",
    "SQLStore",
    "Store",
]
