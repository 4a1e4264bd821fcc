"""Reacting to a stop signal without the deadlock of ``Event.set`` inside a signal handler.

Python runs a signal handler in the main thread, between two bytecodes of whatever it was doing.
If that was ``Event.wait`` (a worker's backoff, beat's sleep between ticks), the main thread holds
the event's internal lock for a few bytecodes before and after the wait; ``Event.set`` in the
handler then waits for that lock for ever, and the process never stops. Here the handler only
puts the signal on a ``queue.SimpleQueue``, whose ``put`` is reentrant (safe at any point of the
interrupted code), and a thread of the relay reacts: sets the event, logs, exits.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger("canvas.worker")


class SignalRelay:
    """``handler`` is the signal handler to install; ``react(signum)`` runs in the relay's thread.

    Make it in the process that will receive the signals (a thread does not survive a fork).
    """

    def __init__(self, react: Callable[[int], None]) -> None:
        self._react = react
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="canvas-signal-relay", daemon=True).start()

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self._signals.put(signum)

    def _run(self) -> None:
        # Signals go to a thread that does not block them: not to this one, so that they
        # interrupt the main thread's wait, as they did before the relay existed.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            signum = self._signals.get()
            try:
                self._react(signum)
            except Exception:  # the next signal must still be heard
                logger.exception("Reacting to signal %s failed", signum)


def setting(event: threading.Event) -> SignalRelay:
    """A relay whose reaction to any signal is ``event.set()``."""
    return SignalRelay(lambda signum: event.set())
