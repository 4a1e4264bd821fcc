"""How close a confirmed canvas publish is to what RabbitMQ itself allows: ``python
benchmarks/confirm_floor.py`` (``$CANVAS_TEST_AMQP``, default the local broker's ``/``).

Alternating rounds of 1,000 single publishes of a 200-byte body, four ways: py-amqp without
confirms (what a client that does not wait pays), py-amqp waiting for each confirm of a transient
and of a persistent message (the broker's own floor for the two kinds), and canvas's transport
(confirm on, persistent: its default). All on durable classic queues of version 2. Prints the
median time per publish, its range, and the load average.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from functools import partial
from urllib.parse import unquote, urlsplit

import amqp
from alternate import alternate, print_table
from queue_version import per_publish_us

URL = os.environ.get("CANVAS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
PUBLISHES = 1000
ROUNDS = 5
BODY = b"x" * 200


def _py_amqp(confirm: bool, delivery_mode: int) -> Callable[[], float]:
    def run() -> float:
        parts = urlsplit(URL)
        vhost = unquote(parts.path[1:]) or "/"
        conn = amqp.Connection(
            f"{parts.hostname}:{parts.port or 5672}",
            userid=parts.username or "guest",
            password=parts.password or "guest",
            virtual_host=vhost,
        )
        conn.connect()
        channel = conn.channel()
        queue = f"bench-floor-{uuid.uuid4().hex[:6]}"
        channel.queue_declare(
            queue, durable=True, auto_delete=False, arguments={"x-queue-version": 2}
        )
        send = channel.basic_publish_confirm if confirm else channel.basic_publish
        message = amqp.Message(BODY, delivery_mode=delivery_mode)
        try:
            started = time.perf_counter()
            for _ in range(PUBLISHES):
                send(message, "", queue)
            return (time.perf_counter() - started) / PUBLISHES * 1e6
        finally:
            channel.queue_delete(queue)
            conn.close()

    return run


WAYS: dict[str, Callable[[], float]] = {
    "py-amqp, no confirm": _py_amqp(False, 2),
    "py-amqp, confirm, transient": _py_amqp(True, 1),
    "py-amqp, confirm, persistent": _py_amqp(True, 2),
    "canvas transport, confirm (default)": partial(per_publish_us, 2, BODY),
}


def main() -> None:
    load = os.getloadavg()[0]
    runs = alternate(WAYS, ROUNDS)
    print(f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    print_table("publish", "µs each", runs)


if __name__ == "__main__":
    main()
