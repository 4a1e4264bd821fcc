"""Task states, with Celery's names and values.

A task moves PENDING -> RECEIVED -> STARTED -> SUCCESS | FAILURE, may pass through RETRY, and may
end REVOKED (expired or revoked before it ran) or REJECTED (its message was dead-lettered).
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

ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, REJECTED})
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED, REJECTED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, RETRY})
EXCEPTION_STATES = frozenset({FAILURE, RETRY, REVOKED, REJECTED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED, REJECTED})
