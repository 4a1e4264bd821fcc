"""Message and result security: signed envelopes and encrypted bodies, for messages and records.

Turned on by one setting, ``security_key``. Then every message a producer sends is wrapped in a
signed envelope (``canvas.security.transport``) and every record written to the result store is
signed the same way (``canvas.security.store``), both by one ``Sealer``
(``canvas.security.sealer``); ``wrap`` puts the two wrappers around the app's connections.
``security_encryption_key`` also encrypts message bodies and records. A worker never runs a
message that is unsigned, altered, signed with an unknown key, or issued outside the time window:
it dead-letters it (``<queue>.dlq``) with the reason, logs it without its arguments, and carries
on.

Settings (named like Celery's ``security_*``)::

    security_key               the signing secret (str or bytes, 32 bytes or more); turns it on
    security_key_id            its id, carried by each envelope (default: a fingerprint of the key)
    security_keys              {id: secret} of older keys still accepted when verifying (rotation)
    security_encryption_key    a secret for AES-256-GCM encryption of bodies and records
    security_encryption_key_id its id (default: a fingerprint)
    security_encryption_keys   {id: secret} of older encryption keys still accepted
    security_max_age           seconds a message stays valid after it was issued (3600)
    security_clock_skew        seconds a message may look issued in the future (60)
    security_replay_cache      refuse a second delivery of one envelope within max_age (True)

Celery's X.509 signing (its ``auth`` serializer) is the other scheme: with
``security_certificate``, ``security_cert_store``, ``task_serializer='auth'`` and
``accept_content=['auth']``, ``security_key`` is the path of an RSA private key (never a secret),
and each envelope carries an RSA-PSS signature and the signer's certificate id
(``canvas.security.x509``). Messages, records and the bus are sealed as with HMAC keys; encryption
and key rotation settings belong to the HMAC scheme. ``canvas.signing`` picks the scheme.

Why HMAC-SHA256 and not Ed25519: every node of a task queue both verifies and signs (workers
publish successors, retries and results), so a private key would sit on every node anyway and a
public-key scheme separates nobody. HMAC is a shared secret like Django's ``SECRET_KEY``: no key
pairs or certificates to distribute, 32 bytes of tag, and about fifty times cheaper per message.

What is signed: the issue time, a random 96-bit nonce, the content type, every header and the
body (or its ciphertext), with the key id bound in. The clear headers a transport carries stay for
routing, logs and ``canvas dlq``; the worker replaces them with the signed copy, so altering them
changes nothing. Records in the store are bound to their place (``meta:<task id>``,
``spec:<workflow>:<node>``...) so one cannot be swapped for another.

Replays: a message older than ``security_max_age`` is refused (rotate keys to revoke faster).
Within the window, the replay cache (a counter per nonce in the result store) refuses a second
*first* delivery of the same envelope; a broker redelivery (a worker died) passes, as it must for
at-least-once. On Redis the redelivery mark lives in the message, so someone who can write to the
broker can forge it: there only the window bounds a replay. A message that waited longer than the
window in a queue is dead-lettered, not lost: ``canvas dlq replay`` checks its signature and sends
it again freshly signed.

Encryption is AES-256-GCM with the envelope's nonce; keys come from the secrets through HKDF-SHA256,
so one secret never serves two purposes. Headers stay readable: put nothing secret in them (use
``argsrepr``/``kwargsrepr`` to keep arguments out of logs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

from canvas import signing, states
from canvas.backends.base import Backend
from canvas.bus.base import Bus
from canvas.core import metas
from canvas.exceptions import SecurityError
from canvas.security.bus import SecureBus
from canvas.security.sealer import (
    KEY_ID_HEADER,
    SIGNED_CONTENT_TYPE,
    Opened,
    Sealer,
    SecuritySettings,
    fingerprint,
    is_signed,
)
from canvas.security.store import SecureBackend
from canvas.security.transport import SecureConsumer, SecureTransport
from canvas.signing import unwrap
from canvas.transports.base import Transport
from canvas.transports.checks import warn_insecure_broker

if TYPE_CHECKING:
    from canvas.app import Canvas


@overload
def wrap(app: Canvas, connection: Transport) -> Transport: ...
@overload
def wrap(app: Canvas, connection: Backend) -> Backend: ...
@overload
def wrap(app: Canvas, connection: Bus) -> Bus: ...
def wrap(app: Canvas, connection: Transport | Backend | Bus) -> Transport | Backend | Bus:
    """``connection`` (a transport, store or bus) wrapped for the app's ``security_*`` settings.

    Returns it unchanged when ``security_key`` is not set or when it is wrapped already. The
    ``Sealer`` signs with the HMAC keys or, with Celery's X.509 settings (``canvas.signing``),
    with the private key (``canvas.security.x509``). The replay cache of a transport counts
    nonces in ``app.backend`` (looked up on each use, so a forked process uses its own
    connection).
    """
    if isinstance(connection, SecureTransport | SecureBackend | SecureBus):
        return connection
    chosen = signing.scheme(app.conf)
    if chosen == "x509":
        # Imported here: only X.509 deployments load cryptography's certificate modules.
        from canvas.security.x509 import CertificateSealer

        sealer: Sealer = CertificateSealer.from_conf(app.conf)
        settings = sealer.settings
    else:
        found = SecuritySettings.from_conf(app.conf)
        if found is None:
            return connection
        settings, sealer = found, Sealer(found)
    if isinstance(connection, Bus):
        return SecureBus(connection, sealer)
    if isinstance(connection, Transport):
        seen = None
        if settings.replay_cache:
            ttl = settings.max_age + settings.clock_skew

            def seen(nonce: bytes) -> bool:
                return app.backend.incr(f"security-nonce:{nonce.hex()}", ttl) > 1

        return SecureTransport(connection, sealer, seen=seen)
    if isinstance(connection, Backend):
        return SecureBackend(connection, sealer, forged=forged_meta)
    raise TypeError(f"wrap() takes a Transport or a Backend, not {type(connection).__name__}.")


def forged_meta(task_id: str, error: SecurityError) -> bytes:
    """What a task meta that failed verification reads as: a ``FAILURE`` raising ``error``."""
    return metas.encode(metas.make_meta(task_id, states.FAILURE, exc=error))


__all__ = [
    "SecureBus",
    "KEY_ID_HEADER",
    "SIGNED_CONTENT_TYPE",
    "Opened",
    "Sealer",
    "SecureBackend",
    "SecureConsumer",
    "SecureTransport",
    "SecurityError",
    "SecuritySettings",
    "fingerprint",
    "forged_meta",
    "is_signed",
    "unwrap",
    "warn_insecure_broker",
    "wrap",
]
