"""Which message-signing scheme the settings choose, checked without loading cryptography.

canvas signs with one of two schemes (``canvas.security`` does the signing):

* **HMAC**, canvas's own: ``security_key`` is a shared secret (``security_keys``,
  ``security_encryption_key``... add rotation and encryption);
* **X.509**, Celery's ``auth`` serializer: ``security_key`` is the path of a PEM private key,
  with ``security_certificate``, ``security_cert_store``, ``task_serializer='auth'`` and
  ``accept_content=['auth']``.

``scheme(conf)`` names the one the settings ask for and refuses a mixed or incomplete
configuration with ``ImproperlyConfigured`` naming the settings; a key file path is never taken as
an HMAC secret. It runs when an app finalizes (a worker starting) and before any connection is
signed, so a producer and a worker fail the same way.

How a signed message looks from outside (``is_signed``, ``KEY_ID_HEADER``) and the transport
under a signing wrapper (``unwrap``) are here too: ``canvas dlq`` and the dashboard read dead
letters of any app, and only a process that signs loads ``canvas.security`` and cryptography
(``pip install 'canvas-workflows[auth]'``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, cast

from canvas.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from canvas.security.transport import SecureTransport
    from canvas.transports.base import Transport

#: content type of a signed message on the wire; the real one travels inside the envelope
SIGNED_CONTENT_TYPE = "application/x-canvas-signed"
#: clear header naming the key (or certificate) that signed the message, for people and dlq
KEY_ID_HEADER = "x-canvas-key-id"
#: the first bytes of a signed message's envelope
MESSAGE_MAGIC = b"CVS1"

#: the serializer name that means "signed with X.509" (Celery's)
AUTH = "auth"
#: what to install for signing (the ``auth`` extra, as ``celery[auth]``)
INSTALL = "pip install 'canvas-workflows[auth]'"

#: settings that only the X.509 scheme reads
X509_SETTINGS = ("security_certificate", "security_cert_store", "security_key_password")
#: what the X.509 scheme needs, all of them (Celery's ``setup_security`` asks the same)
X509_REQUIRED = ("security_key", "security_certificate", "security_cert_store")
#: settings that only the HMAC scheme reads
HMAC_SETTINGS = (
    "security_key_id",
    "security_keys",
    "security_encryption_key",
    "security_encryption_key_id",
    "security_encryption_keys",
)

_KEY_FILE = re.compile(r"\.(pem|key|crt|cer|der|p8|pk8)$", re.IGNORECASE)

Scheme = Literal["hmac", "x509"]


def uses_auth_serializer(conf: Mapping[str, Any]) -> bool:
    return conf.get("task_serializer") == AUTH or AUTH in list(conf.get("accept_content") or ())


def looks_like_pem_text(value: Any) -> bool:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return isinstance(text, str) and text.lstrip().startswith("-----BEGIN")


def looks_like_key_file(value: Any) -> bool:
    """A ``security_key`` that names a key file (or holds PEM text) rather than a secret."""
    if isinstance(value, os.PathLike) or looks_like_pem_text(value):
        return True
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return isinstance(value, str) and bool(_KEY_FILE.search(value.strip()))


def _shown(key: Any) -> str:
    """How an error names ``security_key``: never the key itself."""
    return "<PEM text>" if looks_like_pem_text(key) else repr(key)


def scheme(conf: Mapping[str, Any]) -> Scheme | None:
    """The signing scheme the settings choose (``None``: signing is off); see the docstring."""
    x509 = [name for name in X509_SETTINGS if conf.get(name)]
    if uses_auth_serializer(conf):
        x509.append("task_serializer/accept_content 'auth'")
    hmac = [name for name in HMAC_SETTINGS if conf.get(name)]
    key = conf.get("security_key")
    if x509:
        if hmac:
            raise ImproperlyConfigured(
                f"Both signing schemes are configured: X.509 ({', '.join(x509)}) and canvas's "
                f"HMAC keys ({', '.join(hmac)}). Choose one: for Celery's X.509 signing unset "
                f"{', '.join(hmac)}; for HMAC signing unset {', '.join(x509)}."
            )
        missing = [name for name in X509_REQUIRED if not conf.get(name)]
        if missing:
            raise ImproperlyConfigured(
                f"X.509 message signing ({', '.join(x509)}) also needs {', '.join(missing)}: "
                "security_key (the PEM private key file), security_certificate (its PEM "
                "certificate) and security_cert_store (a glob of the certificates to trust)."
            )
        if conf.get("task_serializer") != AUTH or list(conf.get("accept_content") or ()) != [AUTH]:
            raise ImproperlyConfigured(
                "X.509 message signing needs task_serializer='auth' and accept_content=['auth'] "
                f"(now {conf.get('task_serializer')!r} and {conf.get('accept_content')!r}): a "
                "worker that also accepted unsigned messages would verify nothing."
            )
        if not isinstance(key, str | bytes | os.PathLike):
            raise ImproperlyConfigured(
                f"security_key must be the path of a PEM private key file for X.509 signing, "
                f"not {type(key).__name__}."
            )
        return "x509"
    if key and looks_like_key_file(key):
        raise ImproperlyConfigured(
            f"security_key={_shown(key)} looks like a private key file, and without "
            "security_certificate it would be taken as an HMAC secret. For Celery's X.509 "
            "signing also set security_certificate, security_cert_store, task_serializer='auth' "
            "and accept_content=['auth']; for canvas's HMAC signing give the secret itself."
        )
    if key or hmac:
        return "hmac"
    return None


def body_serializer(conf: Mapping[str, Any], name: str) -> str:
    """The serializer that encodes a body: ``'auth'`` means ``security_serializer`` (``'json'``,
    as Celery's ``setup_security(serializer=...)``), signed by the transport."""
    if name != AUTH:
        return name
    if scheme(conf) != "x509":  # e.g. @app.task(serializer='auth') in an app that signs nothing
        raise ImproperlyConfigured(
            "serializer 'auth' signs with X.509: set security_key, security_certificate, "
            "security_cert_store, task_serializer='auth' and accept_content=['auth']."
        )
    return str(conf.get("security_serializer") or "json")


def accepted(conf: Mapping[str, Any]) -> list[str]:
    """``accept_content`` with ``'auth'`` read as the signed body's serializer: the transport
    verifies every message before the worker decodes it, and refuses any unsigned one."""
    return [body_serializer(conf, name) for name in conf.get("accept_content") or ()]


def load_security() -> ModuleType:
    """``canvas.security``, imported only by processes that sign (cryptography is ~10 MB)."""
    try:
        from canvas import security  # heavy and optional: only apps that sign load it
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"Message signing needs the cryptography package ({exc}): {INSTALL}."
        ) from exc
    return security


def check_certificates(conf: Mapping[str, Any]) -> None:
    """Read the X.509 key, certificate and store now, refusing an expired certificate: the
    start-up check of a worker and of ``app.setup_security()``. A connection opened later (by a
    pool process forked after a certificate expired) only warns (``canvas.security.x509``)."""
    if scheme(conf) != "x509":
        return
    load_security()
    from canvas.security.x509 import CertificateKeys  # cryptography: only apps that sign

    CertificateKeys.from_conf(conf, strict=True)


def is_signed(body: bytes, content_type: str) -> bool:
    return content_type == SIGNED_CONTENT_TYPE and body[:4] == MESSAGE_MAGIC


def sealing(transport: Transport) -> SecureTransport | None:
    """``transport`` if it is a signing wrapper, else ``None``. Only a process that imported
    ``canvas.security`` can hold one, so this never loads it."""
    module = sys.modules.get("canvas.security.transport")
    if module is not None and isinstance(transport, module.SecureTransport):
        return cast("SecureTransport", transport)
    return None


def unwrap(transport: Transport) -> Transport:
    """The transport under a signing wrapper (``canvas dlq`` reads raw messages)."""
    secure = sealing(transport)
    return transport if secure is None else secure.inner
