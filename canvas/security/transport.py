"""A transport wrapper that signs (and encrypts) what it publishes and verifies what it delivers.

``SecureTransport(inner, sealer)`` keeps the inner transport's guarantees and adds one: a consumer
never hands out a message that fails verification (see ``canvas.security`` for what is checked).
Such a message is dead-lettered by the inner consumer with ``x-canvas-reason: security: ...`` and
the consumer goes on fetching within the same ``get`` timeout, so a flood of forged messages
cannot stop a worker.

Settling a verified delivery settles the raw one underneath: a dead-lettered or requeued message
keeps its original envelope (still signed, still encrypted), so ``canvas dlq`` can verify it
again and nothing secret is written out in the clear.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from canvas.exceptions import SecurityError
from canvas.security.sealer import KEY_ID_HEADER, SIGNED_CONTENT_TYPE, Opened, Sealer
from canvas.transports.base import Consumer, Delivery, OutgoingMessage, Transport

logger = logging.getLogger("canvas.security")

#: prefix of the dead-letter reason of every message refused here
REASON_PREFIX = "security: "


class SecureTransport(Transport):
    """Wraps ``inner``; ``seen(nonce)`` says whether an envelope was delivered before."""

    def __init__(
        self,
        inner: Transport,
        sealer: Sealer,
        seen: Callable[[bytes], bool] | None = None,
    ) -> None:
        super().__init__(inner.url, inner.options)
        self.inner = inner
        self.sealer = sealer
        self.seen = seen
        self.visibility_timeout = inner.visibility_timeout

    def seal(self, message: OutgoingMessage) -> OutgoingMessage:
        """The signed form of one message, as it goes on the wire."""
        envelope = self.sealer.seal_message(message.headers, message.body, message.content_type)
        headers = {**message.headers, KEY_ID_HEADER: self.sealer.settings.key_id}
        return OutgoingMessage(
            queue=message.queue,
            body=envelope,
            headers=headers,
            content_type=SIGNED_CONTENT_TYPE,
            priority=message.priority,
        )

    def open(self, delivery: Delivery, check_age: bool = True) -> Opened:
        """Verify a raw delivery (or a dead letter, with ``check_age=False``)."""
        return self.sealer.open_message(delivery.body, delivery.content_type, check_age=check_age)

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.inner.publish([self.seal(m) for m in messages])

    def consumer(self, queues: Iterable[str], prefetch: int = 1) -> SecureConsumer:
        return SecureConsumer(self, self.inner.consumer(queues, prefetch))

    def purge(self, queue: str) -> int:
        return self.inner.purge(queue)

    def size(self, queue: str) -> int:
        return self.inner.size(queue)

    def dead_letters(self, queue: str) -> str:
        return self.inner.dead_letters(queue)

    def defer_confirms(self) -> AbstractContextManager[None]:
        return self.inner.defer_confirms()

    def settle_confirms(self) -> None:
        self.inner.settle_confirms()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # What a particular transport adds (``path``, ``connect``...) stays reachable.
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"<SecureTransport {self.inner!r}>"


class SecureConsumer(Consumer):
    """Hands out verified deliveries whose ``tag`` is the raw delivery underneath."""

    def __init__(self, transport: SecureTransport, inner: Consumer) -> None:
        self.transport = transport
        self.inner = inner

    def get(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        while True:
            raw = self.inner.get(max(0.0, deadline - time.monotonic()))
            if raw is None:
                return None
            if raw.error is not None:
                return raw  # undecodable: the worker dead-letters it as it came
            try:
                return self._verified(raw)
            except SecurityError as exc:
                logger.error(
                    "Refused message %s (task %r) from %s: %s",
                    raw.headers.get("id"),
                    raw.headers.get("task"),
                    raw.queue,
                    exc,
                )
                self.inner.reject(raw, requeue=False, reason=f"{REASON_PREFIX}{exc}")
            if time.monotonic() >= deadline:
                return None

    def _verified(self, raw: Delivery) -> Delivery:
        opened = self.transport.open(raw)
        # A redelivery is the same envelope coming back after a worker died: it must run again.
        if not raw.redelivered and self._seen_before(opened.nonce):
            raise SecurityError("replayed: this signed message was delivered before")
        return Delivery(
            queue=raw.queue,
            body=opened.body,
            headers=opened.headers,
            content_type=opened.content_type,
            redelivered=raw.redelivered,
            tag=raw,
            consumer=self,
        )

    def _seen_before(self, nonce: bytes) -> bool:
        seen = self.transport.seen
        if seen is None:
            return False
        try:
            return seen(nonce)
        except Exception as exc:  # the window still holds while the store is down
            logger.warning("Replay cache unavailable (%r); relying on security_max_age", exc)
            return False

    def ack(self, delivery: Delivery) -> None:
        self.inner.ack(delivery.tag)

    def reject(self, delivery: Delivery, requeue: bool, reason: str = "") -> None:
        self.inner.reject(delivery.tag, requeue=requeue, reason=reason)

    def release(self, delivery: Delivery) -> None:
        self.inner.release(delivery.tag)

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        # An undecodable delivery is handed out raw (it was never opened): extend it as is.
        self.inner.extend([d.tag if d.consumer is self else d for d in deliveries])

    def close(self) -> None:
        self.inner.close()
