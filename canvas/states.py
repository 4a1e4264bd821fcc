"""Task states, with Celery's names and values.

A task moves PENDING -> RECEIVED -> STARTED -> SUCCESS | FAILURE, may pass through RETRY, and may
end REVOKED (expired or revoked before it ran) or REJECTED (its message was dead-lettered).
IGNORED names a call that raised ``Ignore`` (its stored state is left as the task set it).

``state(x)`` compares by precedence, as in Celery: ``state(PENDING) < state(SUCCESS)``, and a
custom state ranks below SUCCESS and FAILURE but above every other built-in one.
"""

from __future__ import annotations

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
RETRY = "RETRY"
REVOKED = "REVOKED"
REJECTED = "REJECTED"
IGNORED = "IGNORED"

ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, REJECTED})
# canvas differs here on purpose: REJECTED is final (the message was dead-lettered and no worker
# will run it), so it is ready and propagates; Celery lists it as unready.
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED, REJECTED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, RETRY})
EXCEPTION_STATES = frozenset({FAILURE, RETRY, REVOKED, REJECTED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED, REJECTED})

#: highest precedence first; ``None`` stands for any state not listed (a custom state)
PRECEDENCE: list[str | None] = [
    SUCCESS,
    FAILURE,
    None,
    REVOKED,
    STARTED,
    RECEIVED,
    REJECTED,
    RETRY,
    PENDING,
]
_RANK = {name: index for index, name in enumerate(PRECEDENCE)}


def precedence(name: str) -> int:
    """The rank of a state: lower is more final (a custom state ranks as ``None``)."""
    return _RANK.get(name, _RANK[None])


class state(str):
    """A state that compares by precedence: ``state(STARTED) < state(SUCCESS)``."""

    __slots__ = ()

    def __gt__(self, other: str) -> bool:
        return precedence(self) < precedence(other)

    def __ge__(self, other: str) -> bool:
        return precedence(self) <= precedence(other)

    def __lt__(self, other: str) -> bool:
        return precedence(self) > precedence(other)

    def __le__(self, other: str) -> bool:
        return precedence(self) >= precedence(other)


__all__ = [
    "ALL_STATES",
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
    "PRECEDENCE",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "UNREADY_STATES",
    "precedence",
    "state",
]
