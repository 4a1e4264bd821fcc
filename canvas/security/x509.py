"""X.509 message signing: Celery's ``auth`` serializer settings, in canvas's signed envelopes.

A producer signs each message with its RSA private key (``security_key``, decrypted with
``security_key_password``); the envelope names the signer by its certificate's issuer and serial
number (``security_certificate``), as Celery does. A worker looks that certificate up in its store
(``security_cert_store``: a glob, or a directory, of PEM files) and refuses the message when the
certificate is unknown or has expired, or when the signature (RSA-PSS with ``security_digest``,
``sha256`` by default) does not match. A refused message is dead-lettered like any message that
fails verification (``canvas.security.transport``).

The envelope is canvas's (``canvas.security.sealer``): the headers, issue time and nonce are
signed with the body, so ``security_max_age`` and the replay cache hold here too. Store records
and the bus are sealed with the same key, as with HMAC keys: countdown/ETA messages and workflow
node specs wait in the result store, and someone who can write there must not be able to have a
worker publish them under its own signature. (Celery signs task messages, and events with
``event_serializer='auth'``; its ETA messages wait in worker memory.) Signing costs about 0.4 ms
per message or record with a 2048-bit key; verifying about 0.02 ms.

Start-up checks what Celery finds only when a message fails: the key must match the certificate,
every file in the store must be a readable RSA certificate, none may have expired (Celery's rule;
nor may the signer's own), and the glob must match at least one. After start-up (a pool process
forked later opens its own connections, so reads the files again) a certificate that has expired
since is only warned about: messages signed with it are refused one by one, while the process
still takes work signed by the others.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from canvas import signing
from canvas.exceptions import ImproperlyConfigured, SecurityError
from canvas.security.sealer import Sealer, SecuritySettings

logger = logging.getLogger("canvas.security")

#: certificates already warned about as expired: once per process, not per connection
_SAID_EXPIRED: set[str] = set()


def certificate_id(cert: x509.Certificate) -> str:
    """Issuer and serial number: what names a certificate (Celery's ``Certificate.get_id``)."""
    issuer = " ".join(str(attribute.value) for attribute in cert.issuer)
    return f"{issuer} {cert.serial_number}"


def digest_named(name: Any) -> hashes.HashAlgorithm:
    """``security_digest`` as a hash (``'sha256'``, ``'sha512'``, ``'sha3_256'``...)."""
    algorithm = getattr(hashes, str(name).upper(), None)
    if not isinstance(algorithm, type) or not issubclass(algorithm, hashes.HashAlgorithm):
        raise ImproperlyConfigured(
            f"security_digest={name!r} is not a hash algorithm; use 'sha256' (the default), "
            "'sha384' or 'sha512'."
        )
    return algorithm()


def _read(setting: str, path: Any) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ImproperlyConfigured(f"{setting}: cannot read {path!r}: {exc.strerror}.") from None


def load_private_key(path: Any, password: Any = None) -> rsa.RSAPrivateKey:
    """The RSA key in the PEM file ``path`` (``security_key``)."""
    if isinstance(password, str):
        password = password.encode()
    if signing.looks_like_pem_text(path):
        raise ImproperlyConfigured(
            "security_key holds PEM text; give the path of the key file, as in Celery."
        )
    try:
        key = serialization.load_pem_private_key(_read("security_key", path), password=password)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise ImproperlyConfigured(
            f"security_key {path!r}: {exc} (security_key_password)."
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ImproperlyConfigured(
            f"security_key {path!r} is not a PEM private key, or security_key_password is "
            f"wrong ({exc})."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ImproperlyConfigured(
            f"security_key {path!r} is a {type(key).__name__}; only RSA keys are supported "
            "(as in Celery)."
        )
    return key


def load_certificates(setting: str, path: Any) -> list[x509.Certificate]:
    """Every certificate in one PEM file (a bundle may hold several)."""
    try:
        certs = x509.load_pem_x509_certificates(_read(setting, path))
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{setting}: {path!r} is not a PEM certificate ({exc})."
        ) from None
    for cert in certs:
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise ImproperlyConfigured(
                f"{setting}: {path!r} holds a non-RSA certificate ({certificate_id(cert)!r}); "
                "only RSA is supported (as in Celery)."
            )
    return certs


def _public_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def has_expired(cert: x509.Certificate, now: dt.datetime | None = None) -> bool:
    return (now or dt.datetime.now(dt.UTC)) >= cert.not_valid_after_utc


def _expired(setting: str, cert: x509.Certificate, path: Any, strict: bool, why: str) -> None:
    """Refuse an expired certificate at start-up (``strict``); after it, warn once and go on."""
    if not has_expired(cert):
        return
    cert_id = certificate_id(cert)
    said = (
        f"{setting}: certificate {cert_id!r} in {path!r} expired on "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    )
    if strict:
        raise ImproperlyConfigured(f"{said}; renew it or remove it.")
    if cert_id not in _SAID_EXPIRED:
        _SAID_EXPIRED.add(cert_id)
        logger.warning("%s; %s", said, why)


def load_store(pattern: Any, *, strict: bool = True) -> dict[str, x509.Certificate]:
    """The certificates by id, from a glob or a directory (``security_cert_store``).

    An expired one refuses start-up (``strict``). Loaded later it is kept with a warning, so
    ``CertificateSealer`` refuses its messages saying it expired, as processes that loaded it
    before it expired do.
    """
    pattern = os.fspath(pattern)
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*")
    paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not paths:
        raise ImproperlyConfigured(
            f"security_cert_store={pattern!r} matches no certificate file; a worker could "
            "verify no message."
        )
    store: dict[str, x509.Certificate] = {}
    for path in paths:
        for cert in load_certificates("security_cert_store", path):
            cert_id = certificate_id(cert)
            _expired(
                "security_cert_store", cert, path, strict, "messages signed with it are refused."
            )
            if store.get(cert_id, cert) != cert:
                raise ImproperlyConfigured(
                    f"security_cert_store: two different certificates are named {cert_id!r} "
                    f"(issuer and serial number); {path!r} is the second."
                )
            store[cert_id] = cert
    return store


@dataclass(frozen=True)
class CertificateKeys:
    """The signer's key and certificate id, and the store of certificates it trusts (one that
    has expired since start-up stays in it, so its messages are refused naming its expiry)."""

    key: rsa.RSAPrivateKey = field(repr=False)
    cert_id: str
    store: dict[str, x509.Certificate] = field(repr=False)
    digest: hashes.HashAlgorithm

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], *, strict: bool = True) -> CertificateKeys:
        """The settings' key, certificate and store; ``strict`` at start-up (see ``load_store``)."""
        key = load_private_key(conf.get("security_key"), conf.get("security_key_password"))
        cert_path = conf.get("security_certificate")
        cert = load_certificates("security_certificate", cert_path)[0]
        if _public_der(cert.public_key()) != _public_der(key.public_key()):
            raise ImproperlyConfigured(
                f"security_certificate {cert_path!r} is not the certificate of security_key "
                f"{conf.get('security_key')!r}: every message would be refused."
            )
        _expired(
            "security_certificate",
            cert,
            cert_path,
            strict,
            "every message and record this process signs is refused: renew it.",
        )
        return cls(
            key=key,
            cert_id=certificate_id(cert),
            store=load_store(conf.get("security_cert_store"), strict=strict),
            digest=digest_named(conf.get("security_digest") or "sha256"),
        )


class CertificateSealer(Sealer):
    """A ``Sealer`` whose envelopes carry an RSA-PSS signature and the signer's certificate id."""

    def __init__(self, settings: SecuritySettings, keys: CertificateKeys) -> None:
        super().__init__(settings)
        self.keys = keys

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> CertificateSealer:
        """The sealer of one connection, made in each process that opens one. Start-up has
        refused expired certificates already (``signing.check_certificates``), so one that has
        expired since only warns: a pool process forked later still takes work."""
        keys = CertificateKeys.from_conf(conf, strict=False)
        return cls(SecuritySettings.window(conf, keys.cert_id, {}), keys)

    def _padding(self) -> padding.PSS:
        return padding.PSS(mgf=padding.MGF1(self.keys.digest), salt_length=padding.PSS.MAX_LENGTH)

    def _sign(self, kid: str, data: bytes) -> bytes:
        return self.keys.key.sign(data, self._padding(), self.keys.digest)

    def _check(self, kid: str, data: bytes, signature: bytes) -> None:
        cert = self.keys.store.get(kid)
        if cert is None:
            raise SecurityError(f"unknown certificate {kid!r}: not in security_cert_store")
        if has_expired(cert):
            raise SecurityError(
                f"certificate {kid!r} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
            )
        public_key = cert.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)  # load_store keeps RSA ones only
        try:
            public_key.verify(signature, data, self._padding(), self.keys.digest)
        except InvalidSignature:
            raise SecurityError("bad signature: altered, or signed with another key") from None


__all__ = [
    "CertificateKeys",
    "CertificateSealer",
    "certificate_id",
    "digest_named",
    "has_expired",
    "load_certificates",
    "load_private_key",
    "load_store",
]
