"""Which failures are outages: a broker or store that did not answer, not the message's fault.

A worker counts the deliveries of a message (``worker_max_deliveries``) to stop a poison message
that keeps killing or failing its worker. A failover is not that: for a few seconds every write
to the failed node's slots is refused, and each message handled meanwhile fails and comes back.
Those returns must not count, or good work reaches the dead-letter queue as poison.

Classes are matched by module and name, so that this check imports no client library.
"""

from __future__ import annotations

#: exception classes (by module, then name) that mean "could not reach the server, or it could
#: not serve yet": connection loss, timeouts, a cluster mid-failover, a replica not yet promoted
_OUTAGES: dict[str, frozenset[str]] = {
    "redis.exceptions": frozenset(
        {"ConnectionError", "TimeoutError", "ClusterError", "TryAgainError", "ReadOnlyError"}
    ),
    "sqlalchemy.exc": frozenset({"OperationalError", "DisconnectionError", "TimeoutError"}),
    "psycopg": frozenset({"OperationalError"}),
    "psycopg2": frozenset({"OperationalError"}),
    "sqlite3": frozenset({"OperationalError"}),
    "amqp.exceptions": frozenset({"ConnectionError", "RecoverableConnectionError"}),
    "kombu.exceptions": frozenset({"OperationalError"}),
}


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says a server was unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for cls in type(current).__mro__:
            if cls is OSError or cls.__name__ in _OUTAGES.get(cls.__module__, ()):
                return True
        current = current.__cause__
    return False
