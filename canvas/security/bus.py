"""The bus with signatures: remote control and events that nobody without the key can forge.

With ``security_key`` set, every bus payload is sealed as a store record is (signed, and
encrypted with ``security_encryption_key``), bound to its topic (``bus:<topic>``): a command or
reply cannot be forged, altered, or moved to another topic. A subscriber drops what does not
verify and logs it (once per ``_LOG_EVERY`` refusals), so a forged ``shutdown`` or ``revoke``
does nothing. Replays are bounded by the control requests' own age limit
(``canvas.core.mailbox.EXPIRES``), which travels inside the signed payload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from canvas.bus.base import Bus, BusMessage, Subscription
from canvas.exceptions import SecurityError
from canvas.security.sealer import Sealer

logger = logging.getLogger("canvas.security")

_LOG_EVERY = 100


class SecureBus(Bus):
    """Seals what it publishes; its subscriptions open what they receive."""

    def __init__(self, inner: Bus, sealer: Sealer) -> None:
        super().__init__(inner.url, inner.options)
        self.inner = inner
        self.sealer = sealer

    def publish(self, topic: str, payload: bytes) -> None:
        self.inner.publish(topic, self.sealer.seal_record(payload, f"bus:{topic}"))

    def subscribe(self, topics: Sequence[str]) -> SecureSubscription:
        return SecureSubscription(self.inner.subscribe(topics), self.sealer)

    def close(self) -> None:
        self.inner.close()


class SecureSubscription(Subscription):
    def __init__(self, inner: Subscription, sealer: Sealer) -> None:
        super().__init__(inner.topics)
        self.inner = inner
        self.sealer = sealer
        self.refused = 0

    def get(self, timeout: float) -> BusMessage | None:
        deadline = time.monotonic() + timeout
        while True:
            message = self.inner.get(max(0.0, deadline - time.monotonic()))
            if message is None:
                return None
            try:
                opened = self.sealer.open_record(message.payload, f"bus:{message.topic}")
            except SecurityError as exc:
                if self.refused % _LOG_EVERY == 0:
                    logger.warning("Dropped a bus message on %s: %s", message.topic, exc)
                self.refused += 1
                continue
            return BusMessage(message.topic, opened)

    def close(self) -> None:
        self.inner.close()
