"""The sealer: signed (and encrypted) envelopes for messages and store records.

``SecuritySettings`` checks the ``security_*`` settings and derives the keys; ``Sealer`` signs,
encrypts, verifies and decrypts. What is signed and why is in ``canvas.security``'s docstring.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from canvas.exceptions import ImproperlyConfigured, SecurityError
from canvas.signing import KEY_ID_HEADER, MESSAGE_MAGIC, SIGNED_CONTENT_TYPE, is_signed

logger = logging.getLogger("canvas.security")

RECORD_MAGIC = b"CVR1"
MIN_KEY_BYTES = 32
NONCE_BYTES = 12
DEFAULT_MAX_AGE = 3600.0
DEFAULT_CLOCK_SKEW = 60.0


# -- settings -------------------------------------------------------------------------------
def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


def _secret(name: str, value: Any) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        raise ImproperlyConfigured(f"{name} must be str or bytes, not {type(value).__name__}.")
    if len(value) < MIN_KEY_BYTES:
        raise ImproperlyConfigured(
            f"{name} is {len(value)} bytes long; use {MIN_KEY_BYTES} or more random bytes, "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    return value


def fingerprint(secret: str | bytes) -> str:
    """The default key id of a secret: short, stable, and reveals nothing usable."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return _derive(raw, b"canvas key id v1")[:4].hex()


def _ring(
    name: str, active: Any, active_id: Any, others: Any, purpose: bytes
) -> tuple[str, dict[str, bytes]]:
    """The active key id and every accepted key (derived for ``purpose``) by id."""
    keys: dict[str, bytes] = {}
    if others is not None:
        if not isinstance(others, Mapping):
            raise ImproperlyConfigured(f"{name}s must be a mapping of key id to secret.")
        for kid, secret in others.items():
            keys[str(kid)] = _derive(_secret(f"{name}s[{kid!r}]", secret), purpose)
    raw = _secret(name, active)
    kid = str(active_id) if active_id else fingerprint(raw)
    keys[kid] = _derive(raw, purpose)
    return kid, keys


@dataclass(frozen=True)
class SecuritySettings:
    """The ``security_*`` settings, checked and with keys derived; see the module docstring."""

    key_id: str
    signing_keys: dict[str, bytes] = field(repr=False)
    encryption_key_id: str | None = None
    encryption_keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    max_age: float = DEFAULT_MAX_AGE
    clock_skew: float = DEFAULT_CLOCK_SKEW
    replay_cache: bool = True

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> SecuritySettings | None:
        """``None`` when ``security_key`` is not set (security off)."""
        key = conf.get("security_key")
        encryption = conf.get("security_encryption_key")
        if not key:
            if encryption or conf.get("security_keys"):
                raise ImproperlyConfigured(
                    "security_encryption_key and security_keys need security_key (the signing "
                    "secret): encrypted or rotated messages are always signed too."
                )
            return None
        key_id, signing = _ring(
            "security_key",
            key,
            conf.get("security_key_id"),
            conf.get("security_keys"),
            b"canvas signing v1",
        )
        enc_id: str | None = None
        enc_keys: dict[str, bytes] = {}
        if encryption:
            enc_id, enc_keys = _ring(
                "security_encryption_key",
                encryption,
                conf.get("security_encryption_key_id"),
                conf.get("security_encryption_keys"),
                b"canvas encryption v1",
            )
        return cls.window(conf, key_id, signing, enc_id, enc_keys)

    @classmethod
    def window(
        cls,
        conf: Mapping[str, Any],
        key_id: str,
        signing_keys: dict[str, bytes],
        encryption_key_id: str | None = None,
        encryption_keys: dict[str, bytes] | None = None,
    ) -> SecuritySettings:
        """Settings with these keys and the time window and replay cache ``conf`` sets (the
        X.509 scheme signs with a private key instead: its ``signing_keys`` are empty)."""
        skew = conf.get("security_clock_skew")
        replay = conf.get("security_replay_cache")
        return cls(
            key_id=key_id,
            signing_keys=signing_keys,
            encryption_key_id=encryption_key_id,
            encryption_keys=encryption_keys or {},
            max_age=float(conf.get("security_max_age") or DEFAULT_MAX_AGE),
            clock_skew=DEFAULT_CLOCK_SKEW if skew is None else float(skew),
            replay_cache=True if replay is None else bool(replay),
        )


# -- envelopes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Opened:
    """A verified message: what the producer sent, and when."""

    headers: dict[str, Any]
    body: bytes
    content_type: str
    issued_at: float
    nonce: bytes
    key_id: str


def _pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _framed(kid: str, magic: bytes, context: bytes, signed: bytes) -> bytes:
    """What a signature covers: the envelope kind, the key id, where it belongs, the content."""
    return magic + _pack([kid, context]) + signed


class Sealer:
    """Signs, encrypts, verifies and decrypts envelopes with the configured keys."""

    def __init__(self, settings: SecuritySettings) -> None:
        self.settings = settings

    # -- messages ----------------------------------------------------------------------------
    def seal_message(
        self, headers: Mapping[str, Any], body: bytes, content_type: str, now: float | None = None
    ) -> bytes:
        """The envelope for one message: ``MAGIC + [key id, signed, mac]``."""
        nonce = os.urandom(NONCE_BYTES)
        enc_id, payload = self._encrypt(body, nonce, MESSAGE_MAGIC + nonce)
        issued = time.time() if now is None else now
        signed = _pack([issued, nonce, content_type, dict(headers), enc_id, payload])
        kid = self.settings.key_id
        return MESSAGE_MAGIC + _pack([kid, signed, self._mac(kid, MESSAGE_MAGIC, b"", signed)])

    def open_message(
        self, envelope: bytes, content_type: str, now: float | None = None, check_age: bool = True
    ) -> Opened:
        """Verify and decrypt; raises ``SecurityError`` naming what is wrong (never the args)."""
        if not is_signed(envelope, content_type):
            raise SecurityError("unsigned message (security_key is set: messages must be signed)")
        kid, signed = self._verify(envelope, MESSAGE_MAGIC, b"")
        try:
            issued, nonce, inner_type, headers, enc_id, payload = _unpack(signed)
            issued = float(issued)
            if not isinstance(nonce, bytes) or not isinstance(headers, dict):
                raise TypeError("bad field types")
        except (ValueError, TypeError) as exc:
            raise SecurityError(f"malformed signed envelope ({exc})") from None
        if check_age:
            age = (time.time() if now is None else now) - issued
            if age > self.settings.max_age:
                raise SecurityError(
                    f"expired or replayed: issued {age:.0f}s ago, over security_max_age="
                    f"{self.settings.max_age:g}s ('canvas dlq replay' re-signs it if wanted)"
                )
            if -age > self.settings.clock_skew:
                raise SecurityError(
                    f"issued {-age:.0f}s in the future, over security_clock_skew="
                    f"{self.settings.clock_skew:g}s (check the clocks)"
                )
        body = self._decrypt(enc_id, payload, nonce, MESSAGE_MAGIC + nonce)
        return Opened(headers, body, str(inner_type), issued, nonce, kid)

    # -- records -----------------------------------------------------------------------------
    def seal_record(self, data: bytes, context: str) -> bytes:
        """Sign (and encrypt) a store record, bound to ``context`` (where it is stored)."""
        nonce = os.urandom(NONCE_BYTES)
        bound = context.encode()
        enc_id, payload = self._encrypt(data, nonce, RECORD_MAGIC + bound)
        signed = _pack([enc_id, nonce, payload])
        kid = self.settings.key_id
        return RECORD_MAGIC + _pack([kid, signed, self._mac(kid, RECORD_MAGIC, bound, signed)])

    def open_record(self, record: bytes, context: str) -> bytes:
        if record[:4] != RECORD_MAGIC:
            raise SecurityError(f"unsigned record at {context}")
        bound = context.encode()
        _, signed = self._verify(record, RECORD_MAGIC, bound)
        try:
            enc_id, nonce, payload = _unpack(signed)
        except (ValueError, TypeError) as exc:
            raise SecurityError(f"malformed signed record at {context} ({exc})") from None
        return self._decrypt(enc_id, payload, nonce, RECORD_MAGIC + bound)

    # -- primitives (the HMAC scheme's; ``canvas.security.x509`` signs with a private key) ------
    def _sign(self, kid: str, data: bytes) -> bytes:
        return hmac.new(self.settings.signing_keys[kid], data, hashlib.sha256).digest()

    def _check(self, kid: str, data: bytes, signature: bytes) -> None:
        """Raise ``SecurityError`` unless ``signature`` is ``kid``'s over ``data``."""
        if kid not in self.settings.signing_keys:
            raise SecurityError(
                f"signed with unknown key id {kid!r}; known: {sorted(self.settings.signing_keys)}"
            )
        if not hmac.compare_digest(signature, self._sign(kid, data)):
            raise SecurityError("bad signature: altered, or signed with another secret")

    def _mac(self, kid: str, magic: bytes, context: bytes, signed: bytes) -> bytes:
        return self._sign(kid, _framed(kid, magic, context, signed))

    def _verify(self, data: bytes, magic: bytes, context: bytes) -> tuple[str, bytes]:
        try:
            kid, signed, mac = _unpack(data[4:])
        except (ValueError, TypeError) as exc:
            raise SecurityError(f"malformed signed envelope ({exc})") from None
        if not isinstance(kid, str) or not isinstance(signed, bytes) or not isinstance(mac, bytes):
            raise SecurityError("malformed signed envelope (bad field types)")
        self._check(kid, _framed(kid, magic, context, signed), mac)
        return kid, signed

    def _encrypt(self, data: bytes, nonce: bytes, aad: bytes) -> tuple[str | None, bytes]:
        enc_id = self.settings.encryption_key_id
        if enc_id is None:
            return None, data
        return enc_id, AESGCM(self.settings.encryption_keys[enc_id]).encrypt(nonce, data, aad)

    def _decrypt(self, enc_id: Any, payload: Any, nonce: bytes, aad: bytes) -> bytes:
        if not isinstance(payload, bytes):
            raise SecurityError("malformed signed envelope (payload is not bytes)")
        if enc_id is None:
            return payload
        key = self.settings.encryption_keys.get(str(enc_id))
        if key is None:
            raise SecurityError(
                f"encrypted with unknown key id {enc_id!r}; set security_encryption_key(s)"
            )
        try:
            return AESGCM(key).decrypt(nonce, payload, aad)
        except (InvalidTag, ValueError):
            raise SecurityError("cannot decrypt: the ciphertext failed authentication") from None


__all__ = [
    "KEY_ID_HEADER",
    "SIGNED_CONTENT_TYPE",
    "Opened",
    "Sealer",
    "SecuritySettings",
    "fingerprint",
    "is_signed",
]
