"""The worker supervisor's control thread: commands from the bus, heartbeats, kept revokes.

Runs in the supervisor, never in a pool process, so a worker whose every process is busy in a
long task still answers ``inspect`` and ``revoke``. It subscribes to the control topic before the
worker says "ready", and then, in one loop:

* runs each request meant for this worker (``canvas.core.mailbox``) through the command registry
  (``canvas.core.panel``) and publishes the reply to the asker's reply topic;
* sends ``worker-online`` at start, ``worker-heartbeat`` every ``HEARTBEAT_INTERVAL`` (2 s, with
  ``active``, ``processed``, ``loadavg``, ``freq`` and canvas's ``pool``, ``concurrency``,
  ``queues``), ``worker-offline`` at stop; worker events are sent whether or not task events
  are on, as in Celery;
* every few seconds, reads the revokes kept in the result store since it last looked, so a revoke
  whose broadcast it missed still reaches the pool, and writes ``--statedb`` when revokes changed.

A broker or store outage never kills the thread: it logs once, backs off and resubscribes.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from typing import Any

from canvas import signals
from canvas.bus import of_app
from canvas.bus.base import Subscription
from canvas.core import mailbox, panel
from canvas.core.revoked import StateDB, load_revokes, revoke_expires
from canvas.events.dispatcher import EventDispatcher
from canvas.events.event import HEARTBEAT_INTERVAL

logger = logging.getLogger("canvas.worker")

#: seconds between two looks at the revokes kept in the result store
REVOKE_SYNC_INTERVAL = 5.0
_SOFTWARE = {"sw_ident": "canvas", "sw_ver": "", "sw_sys": platform.system()}


class ControlServer:
    """Serves one worker (a ``panel.Remote``) on the bus; ``start`` then ``stop``."""

    def __init__(
        self,
        worker: panel.Remote,
        *,
        statedb: StateDB | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        sync_interval: float = REVOKE_SYNC_INTERVAL,
        remote_control: bool = True,
    ) -> None:
        self.worker = worker
        self.app = worker.app
        self.statedb = statedb
        self.heartbeat_interval = heartbeat_interval
        self.sync_interval = sync_interval
        self.remote_control = remote_control
        self.exchange = str(self.app.conf.control_exchange)
        self.state = panel.ControlState(worker)
        self.events = EventDispatcher(hostname=worker.hostname, app=self.app, groups=["worker"])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscription: Subscription | None = None
        self._failures = 0
        self._revokes_seen = 0.0
        self._saved_revokes = -1
        _SOFTWARE["sw_ver"] = panel._version()

    # -- life ----------------------------------------------------------------------------------
    def load_revokes(self) -> None:
        """Before the pool starts: the revokes from ``--statedb`` and from the result store."""
        now = time.time()
        if self.statedb is not None:
            self.worker.revoked.update(self.statedb.load())
        self._sync_revokes(since=now - revoke_expires(self.app))
        if len(self.worker.revoked):
            logger.info("Loaded %d revoked task ids", len(self.worker.revoked))

    def start(self) -> None:
        """Subscribe (so a request sent after "ready" is heard) and start the thread; with the
        broker down, the thread keeps trying."""
        if self.remote_control:
            try:
                self._subscribe()
            except Exception as exc:
                self._failures = 1
                logger.error("Remote control cannot reach the broker yet (%s); retrying", exc)
        self._thread = threading.Thread(target=self._run, name="canvas-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        self.events.send("worker-offline", **self._worker_fields())
        self._save_statedb(force=True)
        self._unsubscribe()

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        self.send_heartbeat("worker-online")
        next_beat = time.monotonic() + self.heartbeat_interval
        next_sync = time.monotonic() + self.sync_interval
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.heartbeat_interval
                self.send_heartbeat()
            if now >= next_sync:
                next_sync = now + self.sync_interval
                # A minute back: a client whose clock runs behind ours is still heard.
                self._sync_revokes(since=self._revokes_seen - 60.0)
                self._save_statedb()
            wait = max(0.05, min(next_beat, next_sync) - time.monotonic())
            if not self.remote_control:
                self._stop.wait(wait)
                continue
            try:
                if self._subscription is None:
                    self._subscribe()
                assert self._subscription is not None
                message = self._subscription.get(timeout=min(wait, 0.5))
                if message is not None:
                    self.handle(message.payload)
                if self._failures:
                    logger.info("Remote control is listening again")
                self._failures = 0
            except Exception as exc:
                self._failed(exc)

    def handle(self, payload: bytes) -> None:
        """Run one request if it is for this worker, and reply when asked to."""
        try:
            request = mailbox.Request.decode(payload)
        except ValueError as exc:
            logger.warning("Ignoring a bad remote control request: %s", exc)
            return
        if not request.is_for(self.worker.hostname):
            return
        if request.expired():
            logger.warning(
                "Ignoring remote control %r sent over %ss ago", request.method, mailbox.EXPIRES
            )
            return
        logger.debug("Remote control: %s %r", request.method, request.arguments)
        self.worker.drain_reports()  # answer from the pool's latest reports
        reply = panel.dispatch(self.state, request.method, request.arguments)
        if request.reply_to:
            of_app(self.app).publish(
                request.reply_to, mailbox.encode_reply(request.ticket, self.worker.hostname, reply)
            )

    def send_heartbeat(self, type: str = "worker-heartbeat") -> None:
        self.events.send(type, **self._worker_fields())
        if type == "worker-heartbeat":
            signals.heartbeat_sent.send(sender=self)

    def _worker_fields(self) -> dict[str, Any]:
        snapshot = self.worker.state.snapshot()
        return {
            "freq": self.heartbeat_interval,
            "active": len(snapshot["active"]),
            "processed": snapshot["processed"],
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "pool": self.worker.pool,
            "concurrency": self.worker.concurrency,
            "queues": list(self.worker.queues),
            **_SOFTWARE,
        }

    # -- revokes -------------------------------------------------------------------------------
    def _sync_revokes(self, since: float) -> None:
        try:
            found = load_revokes(self.app, since)
        except Exception as exc:
            logger.warning("Could not read revokes from the result store: %s", exc)
            return
        if not found:
            return
        self._revokes_seen = max(at for _, at in found)
        new = self.worker.revoked.update(found)
        if new:
            items = [(t, at) for t, at in found if t in set(new)]
            self.worker.order({"op": "revoke", "items": items})

    def _save_statedb(self, force: bool = False) -> None:
        if self.statedb is None:
            return
        count = len(self.worker.revoked)
        if force or count != self._saved_revokes:
            try:
                self.statedb.save(self.worker.revoked)
                self._saved_revokes = count
            except OSError as exc:
                logger.warning("Could not write the worker state file: %s", exc)

    # -- the subscription ----------------------------------------------------------------------
    def _subscribe(self) -> None:
        self._subscription = of_app(self.app).subscribe([mailbox.control_topic(self.exchange)])

    def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                subscription.close()
            except Exception:  # closing a broken connection
                logger.debug("closing the control subscription failed", exc_info=True)

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        if self._failures == 1:
            logger.error("Remote control lost the broker (%s); retrying with backoff", exc)
        self._unsubscribe()
        self._stop.wait(min(5.0, 0.5 * 2 ** (self._failures - 1)))
