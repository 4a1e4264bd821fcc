"""The line between a worker's supervisor and one pool process: framed dicts on a socket pair.

Each prefork child gets one end of a ``socket.socketpair()``. The child writes reports (its
``TaskMonitor``'s steps) and a listener thread in it reads orders; the supervisor drains the
reports every ``DRAIN_INTERVAL`` seconds in its loop, and at once before it answers a command (so
``inspect active`` is exact), and writes orders from its control thread. A frame is a 4-byte
big-endian length and a msgpack dict; writes are whole frames under a lock, reads too, so threads
never interleave theirs. A child never blocks on its reports: its send buffer holds thousands of
frames, and if the supervisor stalls long enough to fill it, reports are dropped (the
supervisor's picture heals with the next task the process starts). When the supervisor dies, its
end closes and the child's listener sees end of file: the child stops taking work
(``on_close``) rather than run on as an orphan.
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
#: seconds between two drains of the reports by the supervisor's loop
DRAIN_INTERVAL = 0.1
_BUFFER = 1024 * 1024


class Link:
    """One end of the line; ``send`` is safe from any thread."""

    def __init__(self, sock: socket.socket, drop_when_full: bool = False) -> None:
        self.sock = sock
        self.drop_when_full = drop_when_full
        self.dropped = 0
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        self._buffer = bytearray()

    @classmethod
    def pair(cls) -> tuple[Link, Link]:
        """(supervisor end, child end): the supervisor reads without blocking, the child's
        reports never block it."""
        one, two = socket.socketpair()
        for end in (one, two):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        one.setblocking(False)
        return cls(one), cls(two, drop_when_full=True)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frame: dict[str, Any]) -> None:
        data: bytes = msgpack.packb(frame, default=short_repr, use_bin_type=True)
        if len(data) > MAX_FRAME:
            raise ValueError(f"frame of {len(data)} bytes is over {MAX_FRAME}")
        frame_bytes = _LENGTH.pack(len(data)) + data
        with self._send_lock:
            if not self.drop_when_full:
                self.sock.sendall(frame_bytes)
                return
            try:
                sent = self.sock.send(frame_bytes, socket.MSG_DONTWAIT)
            except BlockingIOError:
                self.dropped += 1
                return
            if sent < len(frame_bytes):  # never leave half a frame: finish it, blocking
                self.sock.sendall(frame_bytes[sent:])

    def receive(self) -> list[dict[str, Any]] | None:
        """Every whole frame waiting now (maybe none); ``None`` at end of file. On a blocking
        socket (the child's), waits for the first read."""
        with self._receive_lock:
            closed = False
            while True:
                try:
                    data = self.sock.recv(65536)
                except BlockingIOError:
                    break
                if not data:
                    closed = True
                    break
                self._buffer += data
                if self.sock.getblocking():
                    break
            frames = self._frames()
        return None if closed and not frames else frames

    def _frames(self) -> list[dict[str, Any]]:
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
