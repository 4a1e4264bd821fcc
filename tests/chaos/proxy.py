"""A loopback TCP proxy that can blackhole or sever the connections passing through it.

``Proxy(target_port)`` listens on an ephemeral port of 127.0.0.1 and forwards every connection to
``127.0.0.1:target_port``, from an asyncio loop in a daemon thread.

* ``blackhole()``: from now on no byte crosses, in either direction, and new connections are
  accepted but not forwarded; nothing is closed, as when a network path silently drops packets.
  Bytes already read are held, not lost (TCP would retransmit them), and flow again after
  ``restore()`` unless an end gave up in the meantime.
* ``sever()``: close every current connection at once (a connection drop); new ones work.

Only loopback addresses are ever used.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

LOOPBACK = "127.0.0.1"


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._open = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-proxy", daemon=True)

    # -- control (any thread) ----------------------------------------------------------------
    def start(self) -> Proxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the chaos proxy did not start")
        return self

    def url(self, scheme_and_auth: str, path: str = "") -> str:
        return f"{scheme_and_auth}{LOOPBACK}:{self.port}{path}"

    def blackhole(self) -> None:
        self._call(self._open.clear)

    def restore(self) -> None:
        self._call(self._open.set)

    def sever(self) -> None:
        self._call(self._close_all)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown)
        self._thread.join(10)

    def _call(self, fn: Any) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        if not done.wait(10):
            raise RuntimeError("the chaos proxy loop is not answering")

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._open.set()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, LOOPBACK, 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._close_all()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.call_later(0.05, self._loop.stop)

    def _close_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(client_w)
        writers = [client_w]
        try:
            await self._open.wait()
            try:
                upstream_r, upstream_w = await asyncio.open_connection(LOOPBACK, self.target_port)
            except OSError:
                return
            writers.append(upstream_w)
            self._writers.add(upstream_w)
            await asyncio.gather(self._pump(client_r, upstream_w), self._pump(upstream_r, client_w))
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            for writer in writers:
                self._writers.discard(writer)
                with contextlib.suppress(Exception):
                    writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._open.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self._open.wait()  # read just before a blackhole began: hold it
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
