"""A stop signal sets its event from the relay's thread, never inside the handler."""

from __future__ import annotations

import os
import signal
import threading

from canvas.core import signal_relay


def test_the_handler_returns_while_the_interrupted_thread_holds_the_event_s_lock() -> None:
    # Given the main thread inside Event.wait's bookkeeping, holding the event's lock (where a
    # signal handler calling event.set() would wait for ever)
    event = threading.Event()
    relay = signal_relay.setting(event)
    with event._cond:  # type: ignore[attr-defined]
        # When the signal's handler runs then (in a thread here, so that a handler that waits
        # for the lock fails this test instead of hanging it)
        handler = threading.Thread(target=relay.handler, args=(signal.SIGTERM, None))
        handler.start()
        handler.join(5)
        # Then it returned without the lock
        assert not handler.is_alive()
        assert not event.is_set()
    # And the event is set once the lock is free
    assert event.wait(5)


def test_a_real_signal_wakes_a_waiting_main_thread() -> None:
    event = threading.Event()
    relay = signal_relay.setting(event)
    previous = signal.signal(signal.SIGUSR2, relay.handler)
    try:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        assert event.wait(10)
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_reaction_that_fails_does_not_deafen_the_relay() -> None:
    heard: list[int] = []

    def react(signum: int) -> None:
        heard.append(signum)
        if len(heard) == 1:
            raise RuntimeError("first one fails")

    done = threading.Event()
    relay = signal_relay.SignalRelay(lambda signum: (react(signum), done.set()))
    relay.handler(signal.SIGTERM, None)
    relay.handler(signal.SIGINT, None)
    assert done.wait(5)
    assert heard == [signal.SIGTERM, signal.SIGINT]
