"""Measurement hooks shared by both benchmark apps: bytes put on the broker, per message.

Imported by ``canvas_app.py`` and ``celery_app.py`` (so by the driver and by every worker process
of both systems), it depends on neither canvas nor Celery, only on the two client libraries both
of them publish through:

* Redis: kombu's Redis transport (Celery) and canvas's own Redis transport both put messages on a
  queue with ``LPUSH <list> <payload>...`` (the list's name contains the queue's name). We wrap
  redis-py's ``lpush`` and record ``len(payload)`` of each value pushed to a list of the benchmark
  queue: the exact bytes the broker stores for that message.
* RabbitMQ: both publish with py-amqp's ``send_method(Basic.Publish, ..., message)``. We record
  ``len(body) + len(encoded properties)``: the content body and the content header (headers table
  and properties) as they go on the wire, without AMQP frame overhead.

Each record is one ``os.write`` of ``"<bytes>\\n"`` to ``$BENCH_BYTES_FILE`` (opened ``O_APPEND``,
so forked pool processes share it safely); the driver truncates the file before a measurement and
reads it after. The cost is one short syscall per publish, the same for both systems.
"""

from __future__ import annotations

import os
from typing import Any

_fd: int | None = None
_queue_prefix: str = ""
_installed = False


def _record(size: int) -> None:
    if _fd is not None:
        try:
            os.write(_fd, b"%d\n" % size)
        except OSError:
            pass


def install() -> None:
    """Patch redis-py and py-amqp publishing when ``BENCH_BYTES_FILE`` is set (idempotent)."""
    global _fd, _queue_prefix, _installed
    path = os.environ.get("BENCH_BYTES_FILE")
    if _installed or not path:
        return
    _installed = True
    _queue_prefix = os.environ.get("BENCH_QUEUE", "bench")
    _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    prefix_b = _queue_prefix.encode()

    try:
        from redis.commands.core import ListCommands
    except ImportError:  # pragma: no cover - both venvs have redis-py
        ListCommands = None
    if ListCommands is not None:
        original_lpush = ListCommands.lpush

        def lpush(self: Any, name: Any, *values: Any) -> Any:
            key = name if isinstance(name, bytes) else str(name).encode()
            if prefix_b in key and not key.endswith(b".dlq"):
                for value in values:
                    _record(
                        len(value if isinstance(value, bytes | bytearray) else str(value).encode())
                    )
            return original_lpush(self, name, *values)

        ListCommands.lpush = lpush  # type: ignore[method-assign]

    try:
        import amqp.spec
        from amqp.abstract_channel import AbstractChannel
    except ImportError:  # pragma: no cover
        return
    publish_sig = amqp.spec.Basic.Publish
    original_send = AbstractChannel.send_method

    def send_method(
        self: Any,
        sig: Any,
        format: Any = None,
        args: Any = None,
        content: Any = None,
        *rest: Any,
        **kwargs: Any,
    ) -> Any:
        if sig == publish_sig and content is not None and args:
            routing_key = args[2] if len(args) > 2 else ""
            if _queue_prefix in str(routing_key) and not str(routing_key).endswith(".dlq"):
                body = content.body
                if isinstance(body, str):
                    body = body.encode()
                try:
                    header = len(content._serialize_properties())
                except Exception:
                    header = 0
                _record(len(body) + header)
        return original_send(self, sig, format, args, content, *rest, **kwargs)

    AbstractChannel.send_method = send_method  # type: ignore[method-assign]


def read(path: str) -> list[int]:
    """The sizes recorded so far in ``path``, in write order."""
    try:
        with open(path, "rb") as f:
            return [int(line) for line in f.read().split() if line.strip()]
    except FileNotFoundError:
        return []


def reset(path: str) -> None:
    """Forget what was recorded (writers keep appending: their fds are ``O_APPEND``)."""
    try:
        os.truncate(path, 0)
    except FileNotFoundError:
        pass
