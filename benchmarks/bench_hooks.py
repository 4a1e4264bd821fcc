"""Measurement hooks shared by both benchmark apps: bytes put on the broker, per message.

Imported by ``canvas_app.py`` and ``celery_app.py`` (so by the driver and by every worker process
of both systems), it depends on neither canvas nor Celery, only on the two client libraries both
of them publish through:

* Redis: kombu's Redis transport (Celery) and canvas's own Redis transport both put messages on a
  queue with ``LPUSH <list> <payload>...`` (the list's name contains the queue's name). We wrap
  redis-py's RESP serializer (``pack``, which every command goes through on its way to the socket:
  the client's ``lpush``, a pipeline, and canvas's kept connection for single sends) and record
  ``len(payload)`` of each value pushed to a list of the benchmark queue: the exact bytes the
  broker stores for that message. A command redis-py retries is packed, and counted, again.
* RabbitMQ: both write AMQP frames through py-amqp's transport (``_AbstractTransport.write``),
  Celery one frame or message per write, canvas a whole batch per write. We read the frames
  written: for each ``basic.publish`` to the benchmark queue, ``len(body) + len(encoded
  properties)`` from its content header: the body and the header table and properties as they go
  on the wire, without AMQP frame overhead.

Each record is one ``os.write`` of ``"<bytes>\\n"`` to ``$BENCH_BYTES_FILE`` (opened ``O_APPEND``,
so forked pool processes share it safely); the driver truncates the file before a measurement and
reads it after. The cost is one short syscall per publish, the same for both systems.
"""

from __future__ import annotations

import os
import struct
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
        from redis import connection as redis_connection
    except ImportError:  # pragma: no cover - both venvs have redis-py
        redis_connection = None
    for name in ("PythonRespSerializer", "HiredisRespSerializer"):
        serializer = getattr(redis_connection, name, None)
        if serializer is not None:
            serializer.pack = _recording_pack(serializer.pack, prefix_b)

    try:
        from amqp.transport import _AbstractTransport
    except ImportError:  # pragma: no cover
        return
    original_write = _AbstractTransport.write

    def write(self: Any, s: Any) -> Any:
        _scan_frames(self, bytes(s), prefix_b)
        return original_write(self, s)

    _AbstractTransport.write = write  # type: ignore[method-assign]


def _recording_pack(original: Any, prefix: bytes) -> Any:
    """``pack(*args)`` that first records the values of an ``LPUSH`` to a benchmark list."""

    def pack(self: Any, *args: Any) -> Any:
        command = args[0] if args else ""
        command = command.decode() if isinstance(command, bytes) else str(command)
        if len(args) > 2 and command.upper() == "LPUSH":
            key = args[1] if isinstance(args[1], bytes) else str(args[1]).encode()
            if prefix in key and not key.endswith(b".dlq"):
                for value in args[2:]:
                    _record(
                        len(value if isinstance(value, bytes | bytearray) else str(value).encode())
                    )
        return original(self, *args)

    return pack


_PUBLISH = struct.pack(">HH", 60, 40)  # basic.publish


def _scan_frames(owner: Any, data: bytes, prefix: bytes) -> None:
    """Record each ``basic.publish`` to a benchmark queue in ``data`` (whole AMQP frames).

    A publish is a method frame naming the routing key, then a content header frame giving the
    body size and the encoded properties; the record is their sum. Whether a library writes
    each frame, each message or a whole batch at once, the same messages are counted.
    """
    offset, end = 0, len(data)
    while offset + 7 <= end:
        kind, size = data[offset], int.from_bytes(data[offset + 3 : offset + 7], "big")
        payload = data[offset + 7 : offset + 7 + size]
        offset += size + 8
        if kind == 1:
            owner._bench_publish = False
            if payload[:4] == _PUBLISH:
                at = 6 + payload[6] + 1  # reserved short, exchange shortstr
                key = payload[at + 1 : at + 1 + payload[at]]
                owner._bench_publish = prefix in key and not key.endswith(b".dlq")
        elif kind == 2 and getattr(owner, "_bench_publish", False):
            owner._bench_publish = False
            body_size = int.from_bytes(payload[4:12], "big")
            _record(size - 12 + body_size)


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
