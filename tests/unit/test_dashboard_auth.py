"""Who may use the dashboard: the bind check, credentials, the Host check and the action header."""

from __future__ import annotations

import base64

import pytest

from canvas.dashboard.auth import (
    ACTION_HEADER,
    TOKEN_COOKIE,
    Credentials,
    Guard,
    Verdict,
    check_bind,
    is_loopback,
)
from canvas.exceptions import ImproperlyConfigured

TOKEN = "a-long-random-token-0123456789"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("8.8.8.8", False),
        ("dashboard.example.com", False),
    ],
)
def test_loopback_addresses_are_told_apart_from_every_other(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.10", "8.8.8.8", "::"])
def test_it_refuses_to_serve_beyond_loopback_without_credentials(address: str) -> None:
    # Given no credentials, When the dashboard would bind beyond loopback, Then it refuses, naming
    # both ways to fix it
    with pytest.raises(ImproperlyConfigured) as caught:
        check_bind(address, Credentials())
    message = str(caught.value)
    assert address in message and "--basic-auth" in message and "--auth-token" in message


def test_loopback_needs_no_credentials_and_any_address_takes_them() -> None:
    check_bind("127.0.0.1", Credentials())
    check_bind("0.0.0.0", Credentials.parse("admin:s3cret", None))
    check_bind("8.8.8.8", Credentials.parse(None, TOKEN))


@pytest.mark.parametrize(
    ("basic_auth", "token", "fragment"),
    [
        ("admin", None, "user:password"),
        ("admin:", None, "user:password"),
        (":pw", None, "user:password"),
        (None, "short", "shorter than 16"),
        (None, "has spaces in it, 0123456789", "may hold"),
        (None, "semi;colon-0123456789abcdef", "may hold"),
    ],
)
def test_bad_credentials_are_refused_with_the_fix(
    basic_auth: str | None, token: str | None, fragment: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=fragment):
        Credentials.parse(basic_auth, token)


def test_basic_auth_accepts_each_user_with_their_own_password_only() -> None:
    credentials = Credentials.parse("admin:s3cret, ops:pa:ss", None)
    assert credentials.accepts(basic("admin", "s3cret"), None)
    assert credentials.accepts(basic("ops", "pa:ss"), None)  # a password may hold a colon
    assert not credentials.accepts(basic("admin", "pa:ss"), None)
    assert not credentials.accepts(basic("nobody", "s3cret"), None)
    assert not credentials.accepts("Basic !!!not-base64", None)
    assert not credentials.accepts(f"Bearer {TOKEN}", None)  # no token configured
    assert not credentials.accepts(None, None)


def test_a_bearer_token_is_accepted_in_the_header_or_the_cookie() -> None:
    credentials = Credentials.parse(None, TOKEN)
    assert credentials.accepts(f"Bearer {TOKEN}", None)
    assert credentials.accepts(f"bearer {TOKEN}", None)
    assert credentials.accepts(None, TOKEN)
    assert not credentials.accepts(f"Bearer {TOKEN}x", None)
    assert not credentials.accepts(None, TOKEN[:-1])
    assert not credentials.accepts(basic("admin", TOKEN), None)


def check(guard: Guard, method: str = "GET", query: bytes = b"", **headers: str) -> Verdict:
    lowered = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    lowered.setdefault("host", "127.0.0.1:5555")
    return guard.check(method, "/", query, lowered, secure=False)


def test_on_loopback_without_credentials_only_a_loopback_host_header_is_served() -> None:
    # A page on another site that rebinds its name to 127.0.0.1 sends its own name as Host.
    guard = Guard(Credentials(), loopback_only=True)
    assert check(guard, host="127.0.0.1:5555").status == 0
    assert check(guard, host="localhost:5555").status == 0
    assert check(guard, host="[::1]:5555").status == 0
    assert check(guard, host="localhost").status == 0
    refused = check(guard, host="evil.example:5555")
    assert refused.status == 403 and "evil.example" in refused.reason


def test_with_credentials_every_request_needs_them() -> None:
    guard = Guard(Credentials.parse("admin:s3cret", TOKEN), loopback_only=False)
    assert check(guard, host="dash.example").status == 401
    assert check(guard, authorization=basic("admin", "s3cret")).status == 0
    assert check(guard, authorization=f"Bearer {TOKEN}").status == 0
    assert check(guard, cookie=f"{TOKEN_COOKIE}={TOKEN}").status == 0
    assert check(guard, cookie=f"{TOKEN_COOKIE}=wrong").status == 401
    assert check(guard, cookie="garbage;;; =").status == 401
    assert guard.challenge.startswith("Basic")
    assert Guard(Credentials.parse(None, TOKEN), loopback_only=False).challenge.startswith("Bearer")


def test_opening_the_page_with_the_token_sets_a_strict_http_only_cookie() -> None:
    guard = Guard(Credentials.parse(None, TOKEN), loopback_only=False)
    verdict = check(guard, query=f"token={TOKEN}".encode())
    assert verdict.status == 0
    assert verdict.set_cookie is not None
    assert verdict.set_cookie.startswith(f"{TOKEN_COOKIE}={TOKEN};")
    assert "HttpOnly" in verdict.set_cookie and "SameSite=Strict" in verdict.set_cookie
    assert check(guard, query=b"token=wrong").status == 401


def test_actions_need_the_page_header_so_other_sites_cannot_post_them() -> None:
    guard = Guard(Credentials.parse("admin:s3cret", None), loopback_only=False)
    auth = basic("admin", "s3cret")
    refused = check(guard, "POST", authorization=auth)
    assert refused.status == 403 and ACTION_HEADER in refused.reason
    assert check(guard, "POST", authorization=auth, **{ACTION_HEADER: "1"}).status == 0
    # Credentials are checked before the header: no hint to a stranger.
    assert check(guard, "POST", **{ACTION_HEADER: "1"}).status == 401
