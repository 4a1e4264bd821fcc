"""The beat leader lease: of all beats on one result store, only the holder fires.

The lease lives in the result store (``Backend.acquire_lease``) with a time to live of
``beat_lease_ttl`` seconds (default 10). The leader renews it every third of that; a follower
tries to take it just as often, so when a leader dies a follower fires within about 1⅓ TTL, and
at once (one retry interval) when a leader stops cleanly and releases it.

A leader that cannot renew (the store is down, or it was paused past the TTL and someone else
took over) stops firing on the spot. Renewal times come from a monotonic clock, never from the
``now`` a tick is given, so a wall clock that jumps cannot keep a stale leader firing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from canvas.backends.base import Backend

logger = logging.getLogger("canvas.beat")

__all__ = ["Lease", "default_owner"]


def default_owner() -> str:
    """Unique per process and readable in the store: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """One named lease held (or wanted) by one owner."""

    def __init__(
        self,
        backend: Backend,
        name: str,
        *,
        ttl: float = 10.0,
        owner: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"beat_lease_ttl = {ttl!r}: the lease needs a positive time to live")
        self.backend = backend
        self.name = name
        self.ttl = float(ttl)
        self.owner = owner or default_owner()
        self.clock = clock
        self.held = False
        self._next_try = float("-inf")
        #: when our hold surely ended if we fail to renew (a conservative local copy of the TTL)
        self._valid_until = float("-inf")

    @property
    def interval(self) -> float:
        """How often the leader renews and a follower asks."""
        return self.ttl / 3

    def hold(self) -> bool:
        """True while we hold the lease: renews or asks for it when due, else answers locally."""
        now = self.clock()
        if now < self._next_try:
            return self.held and now < self._valid_until
        try:
            held = self.backend.acquire_lease(self.name, self.owner, self.ttl)
        except Exception as exc:  # the store is down: not holding is the safe answer
            logger.warning("beat: cannot reach the result store for the lease: %s", exc)
            held = False
        if held != self.held:
            if held:
                logger.info("beat: %s is now the leader (lease %r)", self.owner, self.name)
            else:
                logger.warning("beat: %s is no longer the leader (lease %r)", self.owner, self.name)
        self.held = held
        self._next_try = now + self.interval
        # Counted from before the request went out, so our view never outlives the store's.
        self._valid_until = now + self.ttl if held else float("-inf")
        return held

    def seconds_to_next_try(self) -> float:
        return max(self._next_try - self.clock(), 0.0)

    def release(self) -> None:
        """Give the lease up, so a follower takes over at its next try rather than after the TTL."""
        if not self.held:
            return
        self.held = False
        self._next_try = float("-inf")
        try:
            self.backend.release_lease(self.name, self.owner)
        except Exception as exc:  # it expires by itself
            logger.warning("beat: could not release the lease %r: %s", self.name, exc)
