"""Checks on a broker URL made when a worker starts: is the broker exposed without protection?

Kept apart from ``canvas.security`` so that every worker can run them without loading the
cryptography package.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, urlsplit

_TLS_SCHEMES = {"amqps", "rediss"}
_AMQP_SCHEMES = {"amqp", "amqps", "pyamqp"}
_REDIS_SCHEMES = {"redis", "rediss"}


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_insecure_broker(url: str, *, use_ssl: bool = False) -> str | None:
    """A warning for a broker off this machine reached without TLS or with default credentials.

    ``use_ssl`` is ``broker_use_ssl``. Loopback and embedded brokers never warn: traffic that
    does not leave the machine needs neither. The warning never shows the password.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _AMQP_SCHEMES | _REDIS_SCHEMES:
        return None
    host = parts.hostname or "localhost"
    if _is_loopback(host):
        return None
    problems = []
    query = {k.lower() for k in parse_qs(parts.query)}
    if scheme not in _TLS_SCHEMES and not use_ssl and not query & {"ssl", "ssl_cert_reqs"}:
        problems.append("no TLS (use amqps:// or rediss://, or set broker_use_ssl)")
    if scheme in _AMQP_SCHEMES and (parts.username or "guest") == "guest":
        if (parts.password or "guest") == "guest":
            problems.append("RabbitMQ's default guest/guest credentials")
    if scheme in _REDIS_SCHEMES and not parts.password:
        problems.append("no password (Redis accepts anyone by default)")
    if not problems:
        return None
    shown = f"{scheme}://{host}{f':{parts.port}' if parts.port else ''}"
    return (
        f"The broker {shown} is not on this machine and is reached with {' and '.join(problems)}: "
        "anyone on the network path can read or inject tasks. Also consider security_key to "
        "sign messages."
    )
