"""``canvas -A proj dlq``: look at, replay and purge dead-lettered messages.

A message lands in ``<queue>.dlq`` when a worker cannot or must not run it (unknown task,
undecodable body, delivered too many times, refused by security...); the reason is in its
``x-canvas-reason`` header. These commands read the dead-letter queue through the app's
transport, raw (still signed and encrypted), holding what they read and handing back whatever
they do not remove, so listing changes nothing::

    canvas -A proj dlq list                  # id, task, size, reason; never the arguments
    canvas -A proj dlq show <id> [--args]    # headers; the decoded arguments only with --args
    canvas -A proj dlq replay <id>... | --all
    canvas -A proj dlq purge <id>... | --all

``replay`` publishes the message to its queue again, with its original id, then removes it from
the dead-letter queue (a crash in between leaves a copy in both, never in neither), and prints
the task and id that will really run. With ``security_key`` set it first checks the signature
(not the age), matches the ids against the signed headers (not the clear ones) and sends the
message freshly signed; a message that does not verify (unsigned, altered, unknown key) is never
replayed: purge it. A call that already has a final result (it ran: a captured message dropped
into the dead-letter queue) is refused unless ``--force``. A task that was dead-lettered for
killing its worker too often is dead-lettered again at its first redelivery. What is printed
from a message (ids, reasons) has its control characters escaped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from canvas import signing, states
from canvas.cli.base import app_from_context
from canvas.core import envelope, metas, protocol
from canvas.core.envelope import printable
from canvas.exceptions import SecurityError
from canvas.signing import KEY_ID_HEADER, is_signed, sealing, unwrap
from canvas.transports.base import DLQ_SUFFIX, REASON_HEADER, Delivery, OutgoingMessage, Transport

if TYPE_CHECKING:
    from canvas.app import Canvas

#: header counting how many times a message was replayed from the dead-letter queue
REPLAYS_HEADER = "x-canvas-replays"
#: seconds to wait for one more message of a queue that says it has more
FETCH_TIMEOUT = 2.0


@dataclass(frozen=True)
class DeadLetter:
    """What ``list`` shows of one dead-lettered message."""

    id: str | None
    task: str | None
    reason: str
    size: int
    signed_by: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeadLetter:
        h = delivery.headers
        return cls(
            id=_text(h.get("id")),
            task=_text(h.get("task")),
            reason=str(h.get(REASON_HEADER) or ""),
            size=len(delivery.body),
            signed_by=_text(h.get(KEY_ID_HEADER))
            if is_signed(delivery.body, delivery.content_type)
            else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "size": self.size,
            "reason": self.reason,
            "signed_by": self.signed_by,
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def queue_names(app: Canvas, queue: str | None) -> tuple[str, str]:
    """The work queue and its dead-letter queue, from ``--queue`` (either name works)."""
    name = queue or str(app.conf.task_default_queue)
    if name.endswith(DLQ_SUFFIX):
        name = name[: -len(DLQ_SUFFIX)]
    return name, unwrap(app.transport).dead_letters(name)


class Held:
    """Dead letters read and not yet settled; ``remove`` acks one for good."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._removed: set[int] = set()

    def remove(self, delivery: Delivery) -> None:
        delivery.ack()
        self._removed.add(id(delivery))

    def kept(self) -> list[Delivery]:
        return [d for d in self.deliveries if id(d) not in self._removed]


@contextlib.contextmanager
def holding(transport: Transport, dlq: str, limit: int) -> Iterator[Held]:
    """Up to ``limit`` dead letters, held; those not removed go back to the queue at the end."""
    expected = min(transport.size(dlq), limit)
    consumer = transport.consumer([dlq], prefetch=max(1, expected))
    held = Held()
    try:
        while len(held.deliveries) < expected:
            delivery = consumer.get(FETCH_TIMEOUT)
            if delivery is None:
                break
            held.deliveries.append(delivery)
        yield held
    finally:
        try:
            # Newest first: a transport that puts a requeued message at the head keeps the order.
            for delivery in reversed(held.kept()):
                delivery.reject(requeue=True)
        finally:
            consumer.close()


def _select(held: Sequence[Delivery], ids: Sequence[str], every: bool) -> list[Delivery]:
    if every:
        return list(held)
    wanted = set(ids)
    return [d for d in held if _text(d.headers.get("id")) in wanted]


@click.group("dlq")
def command() -> None:
    """Inspect, replay or purge dead-lettered messages."""


_queue_option = click.option(
    "-Q", "--queue", help="The work queue (or its .dlq); default: task_default_queue."
)
_limit_option = click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Read at most this many dead letters.",
)


@command.command("list")
@_queue_option
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def list_(ctx: click.Context, queue: str | None, limit: int, as_json: bool) -> None:
    """List dead letters: id, task, size and reason (never the arguments)."""
    app = app_from_context(ctx)
    _, dlq = queue_names(app, queue)
    transport = unwrap(app.transport)
    total = transport.size(dlq)
    with holding(transport, dlq, limit) as held:
        letters = [DeadLetter.of(d) for d in held.deliveries]
    if as_json:
        for letter in letters:
            click.echo(json.dumps(letter.as_dict()))
        return
    if not letters:
        click.echo(f"{dlq}: empty")
        return
    click.echo(f"{'ID':<36}  {'TASK':<30}  {'SIZE':>8}  REASON")
    for letter in letters:
        shown_id, task = printable(letter.id or "?"), printable(letter.task or "?")
        click.echo(f"{shown_id:<36}  {task:<30}  {letter.size:>8}  {printable(letter.reason)}")
    more = total - len(letters)
    click.echo(
        f"{dlq}: {total} dead letter(s)" + (f", {more} not shown (--limit)" if more > 0 else "")
    )


@command.command("show")
@click.argument("task_id")
@_queue_option
@_limit_option
@click.option("--args", "show_args", is_flag=True, help="Also decode and print the arguments.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(
    ctx: click.Context,
    task_id: str,
    queue: str | None,
    limit: int,
    show_args: bool,
    as_json: bool,
) -> None:
    """Show one dead letter's headers and reason (and its arguments with --args)."""
    app = app_from_context(ctx)
    _, dlq = queue_names(app, queue)
    with holding(unwrap(app.transport), dlq, limit) as held:
        found = _select(held.deliveries, [task_id], every=False)
        if not found:
            raise click.ClickException(f"No dead letter with id {task_id!r} in {dlq}.")
        delivery = found[0]
        info: dict[str, Any] = {
            **DeadLetter.of(delivery).as_dict(),
            "queue": dlq,
            "content_type": delivery.content_type,
            "headers": {k: v for k, v in delivery.headers.items() if k != REASON_HEADER},
        }
        if show_args:
            info.update(_arguments(app, delivery))
    if as_json:
        click.echo(json.dumps(info, default=repr))
        return
    for key in ("id", "task", "reason", "size", "queue", "content_type", "signed_by"):
        click.echo(f"{key}: {printable(info[key], 1000)}")
    click.echo("headers:")
    for key, value in sorted(info["headers"].items()):
        click.echo(f"  {printable(key)}: {value!r}")
    for key in ("args", "kwargs", "error"):
        if key in info:
            click.echo(f"{key}: {info[key]!r}")


def _arguments(app: Canvas, delivery: Delivery) -> dict[str, Any]:
    body, content_type = delivery.body, delivery.content_type
    if is_signed(body, content_type):
        secure = sealing(app.transport)  # the app wraps its transport when it signs
        if secure is None:
            return {"error": "signed message, and security_key is not set here"}
        try:
            opened = secure.open(delivery, check_age=False)
        except SecurityError as exc:
            return {"error": str(exc)}
        body, content_type = opened.body, opened.content_type
    # Only what the app's workers accept: a dead letter may be hostile, and pickle runs code.
    accept = protocol.accepted_content_types(signing.accepted(app.conf))
    try:
        args, kwargs = protocol.decode_body(body, content_type, accept)
    except Exception as exc:  # any reason it does not decode is worth showing
        return {"error": f"cannot decode body: {exc}"}
    return {"args": args, "kwargs": kwargs}


@command.command("replay")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Replay every dead letter of the queue.")
@click.option("--force", is_flag=True, help="Replay even a call that already has a final result.")
@_queue_option
@_limit_option
@click.pass_context
def replay(
    ctx: click.Context,
    task_ids: tuple[str, ...],
    every: bool,
    force: bool,
    queue: str | None,
    limit: int,
) -> None:
    """Publish dead letters to their queue again (verified and re-signed when signing is on)."""
    if not task_ids and not every:
        raise click.UsageError("Name the ids to replay, or give --all.")
    app = app_from_context(ctx)
    outcome = replay_letters(app, queue, task_ids, every=every, limit=limit, force=force)
    for refused_id, reason in outcome.refused:
        click.echo(f"refused {printable(refused_id)}: {printable(reason, 500)}", err=True)
    refused = len(outcome.refused)
    click.echo(
        f"replayed {outcome.replayed} message(s) to {outcome.queue}"
        + (f", refused {refused}" if refused else "")
    )
    for task, task_id in outcome.sent:  # as verified: what will really run
        click.echo(f"  {printable(task)}[{printable(task_id)}]")
    if refused:
        ctx.exit(1)


@dataclass(frozen=True)
class Replayed:
    """What ``replay_letters`` did: what went back to ``queue`` (task, id: as verified, what
    really runs), and which were refused why."""

    queue: str
    replayed: int
    refused: list[tuple[str | None, str]]
    sent: list[tuple[str, str]] = field(default_factory=list)


class NotReplayable(Exception):
    """Why one dead letter is not replayed."""


def replay_letters(
    app: Canvas,
    queue: str | None,
    task_ids: Sequence[str],
    *,
    every: bool,
    limit: int = 10_000,
    force: bool = False,
) -> Replayed:
    """Publish dead letters to their queue again; the ``replay`` command and the dashboard's.

    Ids are matched against the verified headers, not the clear ones (which anyone with write
    access to the broker could have set), and a call that already has a final result is
    refused unless ``force``: a captured message dropped into the dead-letter queue must not
    run a finished call again."""
    target, dlq = queue_names(app, queue)
    publisher = app.transport  # signs when security_key is set
    replayed = 0
    refused: list[tuple[str | None, str]] = []
    sent: list[tuple[str, str]] = []
    wanted = set(task_ids)
    with holding(unwrap(publisher), dlq, limit) as held:
        for delivery in held.deliveries:
            clear_id = _text(delivery.headers.get("id"))
            try:
                message = _replayable(publisher, target, delivery)
            except (SecurityError, NotReplayable) as exc:
                if every or clear_id in wanted:
                    refused.append((clear_id, str(exc)))
                continue
            task_id, task = message.headers["id"], message.headers["task"]
            if not every and task_id not in wanted:
                if clear_id in wanted:
                    refused.append((clear_id, f"its signed headers say it is {task_id!r}"))
                continue
            final = _final_state(app, task_id)
            if final is not None and not force:
                refused.append((task_id, f"it already ended {final}; --force replays it anyway"))
                continue
            publisher.publish([message])
            held.remove(delivery)
            replayed += 1
            sent.append((task, task_id))
    return Replayed(target, replayed, refused, sent)


def _final_state(app: Canvas, task_id: str) -> str | None:
    meta = metas.decode(app.backend.get([task_id])[0])
    status = meta.get("status") if meta else None
    return str(status) if status in states.READY_STATES else None


def _replayable(publisher: Transport, queue: str, delivery: Delivery) -> OutgoingMessage:
    """The message a replay sends: the verified envelope, its original id; headers that the
    worker would refuse (see ``canvas.core.envelope``) are refused here already."""
    headers = {k: v for k, v in delivery.headers.items() if k not in (REASON_HEADER, KEY_ID_HEADER)}
    body, content_type = delivery.body, delivery.content_type
    secure = sealing(publisher)
    if secure is not None:
        opened = secure.open(delivery, check_age=False)  # raises for unsigned or altered
        headers, body, content_type = dict(opened.headers), opened.body, opened.content_type
    try:
        envelope.check(headers)
    except envelope.BadMessage as exc:
        raise NotReplayable(f"not a task message that can run: {exc}") from None
    replays = headers.get(REPLAYS_HEADER)
    headers[REPLAYS_HEADER] = (replays if isinstance(replays, int) else 0) + 1
    return OutgoingMessage(queue, body, headers, content_type)


@command.command("purge")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Drop every dead letter of the queue.")
@_queue_option
@_limit_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def purge(
    ctx: click.Context,
    task_ids: tuple[str, ...],
    every: bool,
    queue: str | None,
    limit: int,
    yes: bool,
) -> None:
    """Drop dead letters for good."""
    if not task_ids and not every:
        raise click.UsageError("Name the ids to purge, or give --all.")
    app = app_from_context(ctx)
    _, dlq = queue_names(app, queue)
    transport = unwrap(app.transport)
    if every:
        if not yes:
            click.confirm(f"Drop all {transport.size(dlq)} message(s) of {dlq}?", abort=True)
        click.echo(f"purged {transport.purge(dlq)} message(s) from {dlq}")
        return
    dropped = 0
    with holding(transport, dlq, limit) as held:
        for delivery in _select(held.deliveries, task_ids, every=False):
            held.remove(delivery)
            dropped += 1
    click.echo(f"purged {dropped} message(s) from {dlq}")
