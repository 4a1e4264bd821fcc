"""What the kept connection saves a single ``delay()`` on Redis: ``python
benchmarks/redis_lane.py`` (``$CANVAS_TEST_REDIS``, default ``redis://127.0.0.1:6379/0``).

Six alternating rounds of 5,000 ``add.delay(i, i)`` in one process, with the transport's kept
connection (``canvas.transports.redis_lane``) and without it (every send through redis-py's
client, as before). Prints the calls per second and the time per call: median and range.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid

from canvas import Canvas

URL = os.environ.get("CANVAS_TEST_REDIS", "redis://127.0.0.1:6379/0")
CALLS = 5000
ROUNDS = 6


def main() -> None:
    queue = f"bench-lane-{uuid.uuid4().hex[:6]}"
    app = Canvas("lane", broker=URL, backend=URL, task_default_queue=queue)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(0, 0)  # connect, and make the lane
    transport = app.transport
    lane = transport._lane
    rates: dict[str, list[float]] = {"kept connection": [], "client": []}
    try:
        for round_ in range(ROUNDS):
            order = list(rates) if round_ % 2 == 0 else list(reversed(rates))
            for way in order:
                transport._lane = lane if way == "kept connection" else None
                started = time.perf_counter()
                for i in range(CALLS):
                    add.delay(i, i)
                rates[way].append(CALLS / (time.perf_counter() - started))
            transport.purge(queue)
    finally:
        transport._lane = lane
        transport.purge(queue)
        app.close()
    print("| single sends through | delay() per second (median) | range | µs per call |")
    print("| --- | ---: | ---: | ---: |")
    for way, values in rates.items():
        middle, low, high = statistics.median(values), min(values), max(values)
        print(f"| {way} | {middle:,.0f} | {low:,.0f}–{high:,.0f} | {1e6 / middle:.0f} |")


if __name__ == "__main__":
    main()
