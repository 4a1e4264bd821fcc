"""Queues for the dashboard: which to watch, how deep each is, and its dead letters.

Depth is what the transport reports as waiting (``Transport.size``): messages held by a worker are
not counted, as in ``canvas inspect queues``. Dead letters are read the way ``canvas dlq list``
reads them (held, then handed back: looking changes nothing) and replayed by the same code as
``canvas dlq replay``, so a message that does not verify under ``security_key`` is refused here
too. Arguments are never read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canvas.cli.dlq import DeadLetter, Replayed, holding, queue_names, replay_letters
from canvas.signing import unwrap

if TYPE_CHECKING:
    from canvas.app import Canvas

#: dead letters listed per queue at most (the page shows the count of the rest)
LETTERS_SHOWN = 50


@dataclass(frozen=True)
class QueueDepth:
    """One work queue and its dead-letter queue; ``None`` depth when the broker did not answer."""

    name: str
    depth: int | None
    dead_letter_queue: str
    dead_letters: int | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "depth": self.depth,
            "dead_letter_queue": self.dead_letter_queue,
            "dead_letters": self.dead_letters,
            "error": self.error,
        }


def configured_queues(app: Canvas, extra: Iterable[str] = ()) -> list[str]:
    """Queues the app sends to: the default, static ``task_routes``, tasks' own, plus ``extra``."""
    found = [str(app.conf.task_default_queue)]
    routes = app.conf.task_routes
    for table in routes if isinstance(routes, list | tuple) else [routes]:
        if isinstance(table, Mapping):
            for target in table.values():
                queue = target.get("queue") if isinstance(target, Mapping) else target
                if isinstance(queue, str):
                    found.append(queue)
    found.extend(t.queue for t in app.tasks.values() if t.queue)
    found.extend(extra)
    return sorted(dict.fromkeys(q for q in found if q))


def depths(app: Canvas, names: Sequence[str]) -> list[QueueDepth]:
    """Every queue's depth and dead-letter count; a broker error leaves ``None``, never raises."""
    transport = unwrap(app.transport)
    found = []
    for name in names:
        dlq = transport.dead_letters(name)
        try:
            found.append(QueueDepth(name, transport.size(name), dlq, transport.size(dlq)))
        except Exception as exc:  # the page shows "?" and the next refresh tries again
            found.append(QueueDepth(name, None, dlq, None, f"{type(exc).__name__}: {exc}"))
    return found


def dead_letters(app: Canvas, queue: str, limit: int = LETTERS_SHOWN) -> dict[str, Any]:
    """The first ``limit`` dead letters of ``queue`` (id, task, size, reason) and the total."""
    _, dlq = queue_names(app, queue)
    transport = unwrap(app.transport)
    total = transport.size(dlq)
    with holding(transport, dlq, limit) as held:
        letters = [DeadLetter.of(d).as_dict() for d in held.deliveries]
    return {"queue": dlq, "total": total, "letters": letters}


def replay(app: Canvas, queue: str, ids: Sequence[str], *, every: bool) -> Replayed:
    """Publish dead letters of ``queue`` to it again (all of them with ``every``)."""
    if not ids and not every:
        raise ValueError("name the dead letters to replay, or replay them all")
    return replay_letters(app, queue, ids, every=every)


__all__ = ["QueueDepth", "configured_queues", "dead_letters", "depths", "replay"]
