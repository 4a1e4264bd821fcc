"""Who may use the dashboard: loopback without credentials, anything else only with them.

The rules, checked before the server binds (``check_bind``) and on every request (``Guard``):

* **Bound to loopback** (127.0.0.0/8, ::1, ``localhost``): credentials are optional. Requests must
  name a loopback host in ``Host``, so a web page that rebinds its DNS name to 127.0.0.1 cannot
  reach the dashboard through the victim's browser.
* **Bound to any other address** (a LAN address, ``0.0.0.0``, a public one): the dashboard refuses
  to start unless HTTP basic auth (``--basic-auth user:password``) or a bearer token
  (``--auth-token``) is configured.
* **Credentials**, when configured, are required on every path, ``/metrics`` included (Prometheus
  sends ``basic_auth`` or ``authorization: Bearer``). A browser that opens ``/?token=...`` gets
  the token back as an HttpOnly, SameSite=Strict cookie, so the page's own requests (and its
  event stream, which cannot set headers) carry it. Comparisons are constant-time.
* **Actions** (every non-GET request) must carry the ``X-Canvas-Dashboard`` header, which a
  cross-site form cannot set: a page elsewhere cannot revoke tasks with the user's cookie or
  cached basic-auth credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from canvas.exceptions import ImproperlyConfigured

#: header the page sets on every action; cross-site forms cannot send it
ACTION_HEADER = "x-canvas-dashboard"
#: cookie holding the bearer token for the page's own requests
TOKEN_COOKIE = "canvas_dashboard_token"
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/=-]+")


def is_loopback(host: str) -> bool:
    """True for names and addresses that never leave this machine."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Credentials:
    """What a request may present: basic-auth users (name -> password) and/or one bearer token."""

    users: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None

    @property
    def required(self) -> bool:
        return bool(self.users) or bool(self.token)

    @classmethod
    def parse(cls, basic_auth: str | None, token: str | None) -> Credentials:
        """From ``--basic-auth user1:pass1,user2:pass2`` and ``--auth-token``, with clear errors."""
        users: dict[str, str] = {}
        for item in (basic_auth or "").split(","):
            if not item.strip():
                continue
            name, colon, password = item.strip().partition(":")
            if not colon or not name or not password:
                raise ImproperlyConfigured(
                    "--basic-auth takes user:password pairs separated by commas, e.g. "
                    "'admin:s3cret'; one item has no user or no password."
                )
            users[name] = password
        if token is not None and len(token) < 16:
            raise ImproperlyConfigured(
                "--auth-token is shorter than 16 characters; use a long random one, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
            )
        if token and not _TOKEN_CHARS.fullmatch(token):
            raise ImproperlyConfigured(
                "--auth-token may hold letters, digits and -._~+/= only (it travels in a cookie "
                "and a header); secrets.token_urlsafe() makes such tokens."
            )
        return cls(users, token or None)

    def accepts(self, authorization: str | None, cookie_token: str | None) -> bool:
        """True when the ``Authorization`` header or the token cookie matches."""
        if self.token and cookie_token and _same(cookie_token, self.token):
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self.token:
            return _same(value, self.token)
        if scheme == "basic" and self.users:
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            name, _, password = decoded.partition(":")
            expected = self.users.get(name)
            # Compare even for an unknown name, so timing does not tell which names exist.
            matches = _same(password, expected if expected is not None else "")
            return matches and expected is not None
        return False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def check_bind(address: str, credentials: Credentials) -> None:
    """Refuse to serve beyond loopback without credentials; the error names both fixes."""
    if is_loopback(address) or credentials.required:
        return
    raise ImproperlyConfigured(
        f"Refusing to serve the dashboard on {address!r} without authentication: anyone who "
        "reaches that address could revoke tasks and shut workers down. Give --basic-auth "
        "user:password or --auth-token TOKEN (or CANVAS_DASHBOARD_BASIC_AUTH / "
        "CANVAS_DASHBOARD_TOKEN), or bind to 127.0.0.1."
    )


@dataclass(frozen=True)
class Verdict:
    """What ``Guard.check`` decided: ``status`` 0 lets the request through."""

    status: int = 0
    reason: str = ""
    set_cookie: str | None = None


class Guard:
    """The per-request checks of the module docstring, free of any web framework."""

    def __init__(self, credentials: Credentials, *, loopback_only: bool) -> None:
        self.credentials = credentials
        self.loopback_only = loopback_only

    def check(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str], secure: bool
    ) -> Verdict:
        """Decide on one request; ``headers`` has lowercase names."""
        if self.loopback_only and not self.credentials.required:
            host = headers.get("host", "")
            if not is_loopback(_hostname(host)):
                return Verdict(403, f"Host {host!r} is not this machine's loopback name.")
        set_cookie = None
        if self.credentials.required:
            cookie_token = _cookie(headers.get("cookie", ""), TOKEN_COOKIE)
            query_token = next(iter(parse_qs(query.decode("latin-1")).get("token") or ()), None)
            if (
                query_token
                and self.credentials.token
                and _same(query_token, self.credentials.token)
            ):
                set_cookie = _token_cookie(query_token, secure)
            elif not self.credentials.accepts(headers.get("authorization"), cookie_token):
                return Verdict(401, "Authentication required.")
        if method not in ("GET", "HEAD") and headers.get(ACTION_HEADER) != "1":
            return Verdict(403, f"Actions need the {ACTION_HEADER} header (sent by the page).")
        return Verdict(0, "", set_cookie)

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value for a 401: basic when users are set, else bearer."""
        if self.credentials.users:
            return 'Basic realm="canvas dashboard", charset="UTF-8"'
        return 'Bearer realm="canvas dashboard"'


def _hostname(host_header: str) -> str:
    """``Host`` without its port: ``[::1]:5555`` -> ``::1``, ``localhost:5555`` -> ``localhost``."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def _cookie(header: str, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is no credential
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _token_cookie(token: str, secure: bool) -> str:
    value = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    return value + "; Secure" if secure else value


__all__ = [
    "ACTION_HEADER",
    "TOKEN_COOKIE",
    "Credentials",
    "Guard",
    "Verdict",
    "check_bind",
    "is_loopback",
]
