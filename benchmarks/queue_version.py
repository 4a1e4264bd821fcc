"""What a confirmed publish costs on RabbitMQ by classic queue version: ``python
benchmarks/queue_version.py`` (``$CANVAS_TEST_AMQP``, default the local broker's ``/``).

Four alternating rounds of 1,000 single publishes through canvas's AMQP transport with
publisher confirms, on a version 1 queue (an fsync before each confirm) and a version 2 queue
(canvas's default). Prints the median time per publish and its range.
"""

from __future__ import annotations

import os
import time
import uuid
from functools import partial

from alternate import alternate, print_table
from kombu import Connection

from canvas.transports import OutgoingMessage, create

URL = os.environ.get("CANVAS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
PUBLISHES = 1000
ROUNDS = 4


def per_publish_us(version: int, body: bytes = b"x") -> float:
    """µs per confirmed single publish of ``body`` through canvas's transport, on a new queue
    of ``version`` (also used by ``confirm_floor.py``)."""
    transport = create(URL, {"queue_version": version})
    queue = f"bench-qv{version}-{uuid.uuid4().hex[:6]}"
    try:
        transport.publish([OutgoingMessage(queue, b"x", {"id": "warm", "task": "t"})])
        started = time.perf_counter()
        for i in range(PUBLISHES):
            transport.publish([OutgoingMessage(queue, body, {"id": str(i), "task": "t"})])
        return (time.perf_counter() - started) / PUBLISHES * 1e6
    finally:
        transport.close()
        with Connection(URL) as conn:
            for made in (queue, queue + ".dlq"):
                conn.channel().queue_delete(made)


def main() -> None:
    runs = alternate({str(v): partial(per_publish_us, v) for v in (1, 2)}, ROUNDS)
    print_table("queue version", "µs per confirmed publish", runs)


if __name__ == "__main__":
    main()
