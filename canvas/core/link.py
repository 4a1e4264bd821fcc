"""The line between a worker's supervisor and one pool process: framed dicts on a socket pair.

Each prefork child gets one end of a ``socket.socketpair()``. The child writes reports (its
``TaskMonitor``'s steps) and a listener thread in it reads orders; the supervisor reads reports in
its select loop and writes orders from its control thread. A frame is a 4-byte big-endian length
and a msgpack dict. Writes are whole frames under a lock, so threads of one process never
interleave theirs. When the supervisor dies, its end closes and the child's listener sees end of
file: the child stops taking work (``on_close``) rather than run on as an orphan.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import msgpack

from canvas.events.event import short_repr

logger = logging.getLogger("canvas.worker")

_LENGTH = struct.Struct("!I")
#: a frame longer than this is refused (a task's traceback fits many times over)
MAX_FRAME = 4 * 1024 * 1024


class Link:
    """One end of the line; ``send`` is safe from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()
        self._buffer = bytearray()

    @classmethod
    def pair(cls) -> tuple[Link, Link]:
        """(supervisor end, child end)."""
        one, two = socket.socketpair()
        return cls(one), cls(two)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frame: dict[str, Any]) -> None:
        data: bytes = msgpack.packb(frame, default=short_repr, use_bin_type=True)
        if len(data) > MAX_FRAME:
            raise ValueError(f"frame of {len(data)} bytes is over {MAX_FRAME}")
        with self._send_lock:
            self.sock.sendall(_LENGTH.pack(len(data)) + data)

    def receive(self) -> list[dict[str, Any]] | None:
        """The whole frames that one read brings (maybe none); ``None`` at end of file."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return []
        if not data:
            return None
        self._buffer += data
        frames = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise ValueError(f"frame of {length} bytes announced, over {MAX_FRAME}")
            if len(self._buffer) < _LENGTH.size + length:
                break
            body = bytes(self._buffer[_LENGTH.size : _LENGTH.size + length])
            del self._buffer[: _LENGTH.size + length]
            frame = msgpack.unpackb(body, raw=False, strict_map_key=False)
            if isinstance(frame, dict):
                frames.append(frame)
        return frames

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def listen(
    link: Link, on_frame: Callable[[dict[str, Any]], None], on_close: Callable[[], None]
) -> threading.Thread:
    """Read orders in a daemon thread of this process until the other end closes."""

    def run() -> None:
        try:
            while True:
                frames = link.receive()
                if frames is None:
                    break
                for frame in frames:
                    try:
                        on_frame(frame)
                    except Exception:
                        logger.exception("Could not apply an order from the supervisor")
        except (OSError, ValueError) as exc:
            logger.warning("The line to the supervisor broke: %s", exc)
        on_close()

    thread = threading.Thread(target=run, name="canvas-orders", daemon=True)
    thread.start()
    return thread
