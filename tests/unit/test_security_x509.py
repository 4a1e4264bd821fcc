"""X.509 message signing (Celery's ``auth`` serializer): choosing the scheme, loading the key,
certificate and store, signing and verifying envelopes, and the transport refusing bad messages.

Keys and self-signed certificates are made at test time; the transport tests run on the
embedded transport in a temporary file (``memory://``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import canvas
from canvas import signing
from canvas.app import Canvas
from canvas.backends.memory import MemoryBackend
from canvas.exceptions import ImproperlyConfigured
from canvas.security import (
    KEY_ID_HEADER,
    SIGNED_CONTENT_TYPE,
    SecureBackend,
    SecureTransport,
    SecurityError,
    unwrap,
    wrap,
)
from canvas.security.x509 import (
    CertificateKeys,
    CertificateSealer,
    certificate_id,
    digest_named,
)
from canvas.transports.base import REASON_HEADER, OutgoingMessage
from canvas.transports.embedded import EmbeddedTransport
from tests.support.certificates import (
    make_certificate,
    make_key,
    write_certificate,
    write_key,
)
from tests.support.workers import ROOT

HEADERS = {"task": "proj.add", "id": "t-1", "retries": 0}
AUTH = {"task_serializer": "auth", "accept_content": ["auth"]}


class Pair:
    """A key and its self-signed certificate, written to ``<dir>/<name>.key`` and ``.pem``."""

    def __init__(self, directory: Path, name: str, valid_days: float = 1.0, **key: Any) -> None:
        self.key = make_key()
        self.cert = make_certificate(self.key, name, valid_days=valid_days)
        self.key_path = write_key(directory / f"{name}.key", self.key, **key)
        self.cert_path = write_certificate(directory / f"{name}.pem", self.cert)
        self.id = certificate_id(self.cert)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


@pytest.fixture(scope="module")
def worker(certs: Path) -> Pair:
    return Pair(certs, "worker")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    return Pair(tmp_path_factory.mktemp("elsewhere"), "stranger")


def conf(pair: Pair, store: Path | str, **more: Any) -> dict[str, Any]:
    return {
        "security_key": str(pair.key_path),
        "security_certificate": str(pair.cert_path),
        "security_cert_store": str(store),
        **AUTH,
        **more,
    }


@pytest.fixture
def transport() -> Iterator[EmbeddedTransport]:
    inner = EmbeddedTransport("memory://", {"visibility_timeout": 30, "poll_interval": 0.01})
    yield inner
    inner.close()


# -- which scheme --------------------------------------------------------------------------------
class TestScheme:
    def test_off_hmac_and_x509(self, worker: Pair, certs: Path) -> None:
        assert signing.scheme({}) is None
        assert signing.scheme({"security_key": "k" * 32}) == "hmac"
        assert signing.scheme({"security_keys": {"a": "k" * 32}}) == "hmac"
        assert signing.scheme(conf(worker, certs / "*.pem")) == "x509"

    @pytest.mark.parametrize(
        "key", ["/home/deploy/project/ssl/private/worker.key", b"/etc/ssl/w.pem", Path("w.pem")]
    )
    def test_a_key_file_is_never_taken_as_an_hmac_secret(self, key: Any) -> None:
        # Given a path long enough to pass as a 32-byte secret, and no certificate settings
        with pytest.raises(ImproperlyConfigured, match="looks like a private key file") as raised:
            signing.scheme({"security_key": key})
        # Then the error names what X.509 signing also needs
        assert "security_certificate" in str(raised.value)

    def test_pem_text_is_not_a_secret_either_and_is_never_echoed(
        self, worker: Pair, certs: Path
    ) -> None:
        pem = worker.key_path.read_text()
        with pytest.raises(ImproperlyConfigured, match="<PEM text> looks like a private key"):
            signing.scheme({"security_key": pem})
        with pytest.raises(ImproperlyConfigured, match="holds PEM text") as raised:
            CertificateKeys.from_conf({**conf(worker, certs / "*.pem"), "security_key": pem})
        assert "BEGIN" not in str(raised.value)

    def test_mixing_the_schemes_names_both_sides(self, worker: Pair, certs: Path) -> None:
        mixed = conf(worker, certs, security_keys={"old": "o" * 32}, security_encryption_key="e")
        with pytest.raises(ImproperlyConfigured, match="Both signing schemes") as raised:
            signing.scheme(mixed)
        for name in ("security_certificate", "security_keys", "security_encryption_key"):
            assert name in str(raised.value)

    @pytest.mark.parametrize(
        ("settings", "missing"),
        [
            ({"security_certificate": "w.pem"}, "security_key, security_cert_store"),
            (AUTH, "security_key, security_certificate, security_cert_store"),
            ({"security_key": "k" * 32, **AUTH}, "security_certificate, security_cert_store"),
        ],
    )
    def test_an_incomplete_x509_configuration_names_what_is_missing(
        self, settings: dict[str, Any], missing: str
    ) -> None:
        with pytest.raises(ImproperlyConfigured, match=f"also needs {missing}:"):
            signing.scheme(settings)

    @pytest.mark.parametrize(
        "serializers",
        [
            {"task_serializer": "json", "accept_content": ["auth"]},
            {"task_serializer": "auth", "accept_content": ["auth", "json"]},
            {"task_serializer": "msgpack", "accept_content": ["msgpack"]},
        ],
    )
    def test_x509_needs_the_auth_serializer_both_ways(
        self, worker: Pair, certs: Path, serializers: dict[str, Any]
    ) -> None:
        with pytest.raises(ImproperlyConfigured, match=r"task_serializer='auth' and accept"):
            signing.scheme({**conf(worker, certs), **serializers})

    def test_the_app_checks_at_finalize(self) -> None:
        app = Canvas("x", broker="memory://", backend="memory://", set_as_current=False, **AUTH)
        with pytest.raises(ImproperlyConfigured, match="also needs security_key"):
            app.finalize()

    def test_auth_reads_as_the_signed_body_serializer(self, worker: Pair, certs: Path) -> None:
        signed = conf(worker, certs)
        assert signing.body_serializer(signed, "auth") == "json"
        assert signing.accepted(signed) == ["json"]
        msgpack = {**signed, "security_serializer": "msgpack"}
        assert signing.body_serializer(msgpack, "auth") == "msgpack"
        assert signing.body_serializer({}, "pickle") == "pickle"
        # A task asking for 'auth' in an app that does not sign is not sent unsigned
        with pytest.raises(ImproperlyConfigured, match="serializer 'auth' signs with X.509"):
            signing.body_serializer({"security_key": "k" * 32}, "auth")


# -- loading the key, certificate and store ------------------------------------------------------
class TestLoading:
    def test_keys_come_from_the_settings(self, worker: Pair, certs: Path, tmp_path: Path) -> None:
        keys = CertificateKeys.from_conf(conf(worker, certs / "*.pem"))
        assert keys.cert_id == worker.id == f"worker {worker.cert.serial_number}"
        assert worker.id in keys.store
        assert keys.digest.name == "sha256"
        # A directory is read as every file in it
        write_certificate(tmp_path / "worker.crt", worker.cert)
        assert list(CertificateKeys.from_conf(conf(worker, tmp_path)).store) == [worker.id]

    def test_an_encrypted_key_with_its_password(self, tmp_path: Path) -> None:
        locked = Pair(tmp_path, "locked", password=b"s3cret")
        assert CertificateKeys.from_conf(
            conf(locked, tmp_path / "*.pem", security_key_password="s3cret")
        ).cert_id == (locked.id)
        with pytest.raises(ImproperlyConfigured, match="security_key_password"):
            CertificateKeys.from_conf(conf(locked, tmp_path / "*.pem"))
        with pytest.raises(ImproperlyConfigured, match="security_key_password is wrong"):
            CertificateKeys.from_conf(
                conf(locked, tmp_path / "*.pem", security_key_password=b"nope")
            )

    def test_files_that_cannot_be_read(self, worker: Pair, certs: Path, tmp_path: Path) -> None:
        missing = {**conf(worker, certs), "security_key": str(tmp_path / "gone.key")}
        with pytest.raises(ImproperlyConfigured, match=r"security_key: cannot read .*gone\.key"):
            CertificateKeys.from_conf(missing)
        junk = tmp_path / "junk.pem"
        junk.write_text("not a certificate")
        with pytest.raises(ImproperlyConfigured, match="junk.pem' is not a PEM certificate"):
            CertificateKeys.from_conf({**conf(worker, certs), "security_certificate": str(junk)})
        with pytest.raises(ImproperlyConfigured, match="security_cert_store: .*junk.pem"):
            CertificateKeys.from_conf(conf(worker, tmp_path / "*.pem"))

    def test_a_certificate_of_another_key(self, worker: Pair, stranger: Pair, certs: Path) -> None:
        crossed = {**conf(worker, certs), "security_certificate": str(stranger.cert_path)}
        with pytest.raises(ImproperlyConfigured, match="is not the certificate of security_key"):
            CertificateKeys.from_conf(crossed)

    def test_a_store_that_matches_nothing(self, worker: Pair, tmp_path: Path) -> None:
        with pytest.raises(ImproperlyConfigured, match="matches no certificate file"):
            CertificateKeys.from_conf(conf(worker, tmp_path / "*.pem"))

    def test_an_expired_certificate_in_the_store_stops_start_up(
        self, worker: Pair, tmp_path: Path
    ) -> None:
        old = Pair(tmp_path, "old", valid_days=-1)
        refused = f"certificate '{old.id}' in .* expired on"
        with pytest.raises(ImproperlyConfigured, match=refused):
            CertificateKeys.from_conf(conf(worker, tmp_path / "*.pem"))
        # So do app.setup_security() and a worker's start-up check (`canvas worker` runs it)
        settings = conf(worker, tmp_path / "*.pem")
        with pytest.raises(ImproperlyConfigured, match=refused):
            Canvas("x", set_as_current=False, **settings).setup_security()
        with pytest.raises(ImproperlyConfigured, match=refused):
            signing.check_certificates(settings)

    def test_a_worker_refuses_it_without_setup_security(self, worker: Pair, tmp_path: Path) -> None:
        # Given settings only (no setup_security()), and an expired certificate in the store
        old = Pair(tmp_path, "old", valid_days=-1)
        settings = conf(worker, tmp_path / "*.pem", broker_connection_retry_on_startup=False)
        (tmp_path / "proj.py").write_text(
            "from canvas import Canvas\n"
            f"app = Canvas('proj', broker='memory://', backend='memory://', **{settings!r})\n"
        )
        # When `canvas -A proj worker` starts
        run = subprocess.run(
            [sys.executable, "-m", "canvas.cli.main", "-A", "proj", "worker", "-P", "solo"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=30,  # a refusal takes a second; a worker that starts runs on
        )
        # Then it refuses in one line, naming the certificate (not "cannot connect to the broker")
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"Error: security_cert_store: certificate '{old.id}' in " in run.stderr
        assert "Traceback" not in run.stderr and "Cannot connect" not in run.stderr, run.stderr

    def test_an_expired_certificate_of_its_own_stops_start_up(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Its own certificate, not in its store: every message it signed would be refused
        lapsed = Pair(tmp_path, "lapsed", valid_days=-1)
        trusted = tmp_path / "store"
        trusted.mkdir()
        write_certificate(trusted / "other.pem", make_certificate(make_key(), "other"))
        refused = f"security_certificate: certificate '{lapsed.id}' in .* expired on"
        with pytest.raises(ImproperlyConfigured, match=refused):
            CertificateKeys.from_conf(conf(lapsed, trusted))
        # After start-up (a pool process forked later) it is a warning, as for the store's
        # certificates: the process's running siblings sign with it anyway
        with caplog.at_level(logging.WARNING, logger="canvas.security"):
            sealer(lapsed, trusted)
        assert "every message and record this process signs is refused" in caplog.text

    def test_only_rsa_keys(self, worker: Pair, certs: Path, tmp_path: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        path = tmp_path / "ec.key"
        path.write_bytes(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        with pytest.raises(ImproperlyConfigured, match="only RSA keys"):
            CertificateKeys.from_conf({**conf(worker, certs), "security_key": str(path)})

    def test_digests(self) -> None:
        assert digest_named("sha512").name == "sha512"
        assert digest_named("sha3_256").name == "sha3-256"
        with pytest.raises(ImproperlyConfigured, match="security_digest='md55'"):
            digest_named("md55")


# -- envelopes -----------------------------------------------------------------------------------
def sealer(pair: Pair, store: Path | str, **more: Any) -> CertificateSealer:
    return CertificateSealer.from_conf(conf(pair, store, **more))


class TestEnvelopes:
    def test_round_trip(self, worker: Pair, certs: Path) -> None:
        box = sealer(worker, certs / "worker.pem")
        envelope = box.seal_message(HEADERS, b"[[2,2],{}]", "application/json")
        opened = box.open_message(envelope, SIGNED_CONTENT_TYPE)
        assert (opened.headers, opened.body, opened.content_type) == (
            HEADERS,
            b"[[2,2],{}]",
            "application/json",
        )
        assert opened.key_id == worker.id

    def test_a_changed_argument_or_header_fails(self, worker: Pair, certs: Path) -> None:
        box = sealer(worker, certs / "worker.pem")
        envelope = box.seal_message(HEADERS, b"[[2,2],{}]", "application/json")
        for tampered in (
            envelope.replace(b"[[2,2]", b"[[9,9]"),
            envelope.replace(b"proj.add", b"proj.rm!"),
        ):
            assert tampered != envelope
            with pytest.raises(SecurityError, match="bad signature"):
                box.open_message(tampered, SIGNED_CONTENT_TYPE)

    def test_a_certificate_not_in_the_store_fails(
        self, worker: Pair, stranger: Pair, certs: Path
    ) -> None:
        # The stranger trusts itself, but the worker's store does not hold its certificate.
        envelope = sealer(stranger, stranger.cert_path).seal_message(HEADERS, b"x", "c")
        with pytest.raises(SecurityError, match=f"unknown certificate '{stranger.id}'"):
            sealer(worker, certs / "worker.pem").open_message(envelope, SIGNED_CONTENT_TYPE)

    def test_a_certificate_that_expired_since_start_up_fails(
        self, worker: Pair, certs: Path
    ) -> None:
        # Given a store loaded while the signer's certificate was valid (it expired since)
        box = sealer(worker, certs / "worker.pem")
        envelope = box.seal_message(HEADERS, b"x", "c")
        expired = make_certificate(worker.key, "worker", valid_days=-1)
        keys = box.keys
        stale = CertificateKeys(keys.key, keys.cert_id, {keys.cert_id: expired}, keys.digest)
        # Then the message is refused with the date
        with pytest.raises(SecurityError, match=f"certificate '{worker.id}' expired on"):
            CertificateSealer(box.settings, stale).open_message(envelope, SIGNED_CONTENT_TYPE)

    def test_records_bound_to_their_place_and_signer(
        self, worker: Pair, stranger: Pair, certs: Path
    ) -> None:
        # Given a parked countdown message as the worker's store holds it
        box = sealer(worker, certs / "worker.pem")
        record = box.seal_record(b"parked message", "parked:t-1:0")
        assert box.open_record(record, "parked:t-1:0") == b"parked message"
        # Then it cannot be moved elsewhere, nor forged by a key the store does not trust
        with pytest.raises(SecurityError, match="bad signature"):
            box.open_record(record, "parked:t-2:0")
        forged = sealer(stranger, stranger.cert_path).seal_record(b"evil", "parked:t-1:0")
        with pytest.raises(SecurityError, match="unknown certificate"):
            box.open_record(forged, "parked:t-1:0")

    def test_another_digest_fails(self, worker: Pair, certs: Path) -> None:
        envelope = sealer(worker, certs / "worker.pem", security_digest="sha512").seal_message(
            HEADERS, b"x", "c"
        )
        with pytest.raises(SecurityError, match="bad signature"):
            sealer(worker, certs / "worker.pem").open_message(envelope, SIGNED_CONTENT_TYPE)

    def test_unsigned_and_old_messages_fail(self, worker: Pair, certs: Path) -> None:
        box = sealer(worker, certs / "worker.pem", security_max_age=60)
        with pytest.raises(SecurityError, match="unsigned message"):
            box.open_message(b"[[2,2],{}]", "application/json")
        old = box.seal_message(HEADERS, b"x", "c", now=dt.datetime.now().timestamp() - 3600)
        with pytest.raises(SecurityError, match="expired or replayed"):
            box.open_message(old, SIGNED_CONTENT_TYPE)


# -- on a transport, through the app -------------------------------------------------------------
class TestTransport:
    def test_the_app_signs_and_the_consumer_dead_letters_what_fails(
        self,
        worker: Pair,
        stranger: Pair,
        certs: Path,
        transport: EmbeddedTransport,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        app = Canvas(
            "x", set_as_current=False, result_backend="memory://", **conf(worker, certs / "*.pem")
        )
        secure = wrap(app, transport)
        assert isinstance(secure, SecureTransport)
        assert isinstance(secure.sealer, CertificateSealer)
        # Records are sealed with the same key (countdown messages and workflows wait there)
        backend = wrap(app, MemoryBackend())
        assert isinstance(backend, SecureBackend)
        assert isinstance(backend.sealer, CertificateSealer)
        backend.store("t-9", "SUCCESS", b"meta")
        assert backend.get(["t-9"]) == [b"meta"]
        assert worker.id.encode() in backend.inner.get(["t-9"])[0]
        good = secure.seal(OutgoingMessage("q", b"[[2,2],{}]", HEADERS, "application/json"))
        assert good.headers[KEY_ID_HEADER] == worker.id
        foreign = sealer(stranger, stranger.cert_path).seal_message(HEADERS, b"x", "c")
        transport.publish(
            [
                OutgoingMessage("q", b"[[1,1],{}]", {**HEADERS, "id": "plain"}, "application/json"),
                OutgoingMessage(
                    "q",
                    good.body.replace(b"[[2,2]", b"[[9,9]"),
                    {**HEADERS, "id": "tampered"},
                    SIGNED_CONTENT_TYPE,
                ),
                OutgoingMessage("q", foreign, {**HEADERS, "id": "foreign"}, SIGNED_CONTENT_TYPE),
                good,
            ]
        )
        with caplog.at_level(logging.ERROR, logger="canvas.security"):
            delivery = secure.consumer(["q"]).get(2)
        assert delivery is not None and delivery.body == b"[[2,2],{}]"
        dead = transport.consumer(["q.dlq"], prefetch=10)
        reasons = {}
        while (d := dead.get(0.05)) is not None:
            reasons[d.headers["id"]] = d.headers[REASON_HEADER]
        assert reasons["plain"].startswith("security: unsigned message")
        assert reasons["tampered"].startswith("security: bad signature")
        assert reasons["foreign"].startswith(f"security: unknown certificate '{stranger.id}'")
        assert "[[1,1]" not in caplog.text and "plain" in caplog.text
        assert unwrap(secure) is transport
        app.close()

    def test_a_certificate_that_expires_after_start_up_is_refused_not_fatal(
        self, worker: Pair, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given a worker that started while every certificate in its store was valid
        write_certificate(tmp_path / "worker.pem", worker.cert)
        retired = Pair(tmp_path, "retired")
        settings = conf(worker, tmp_path / "*.pem", broker="memory://", result_backend="memory://")
        app = Canvas("x", set_as_current=False, **settings)
        signing.check_certificates(app.conf)
        # and a message its retired producer signed, still waiting in the queue
        waiting = sealer(retired, retired.cert_path).seal_message(
            {**HEADERS, "id": "retired"}, b"[[1,1],{}]", "application/json"
        )
        # When that producer's certificate expires, and then a process opens its connections
        # (a pool process forked after a crash, max_tasks_per_child or a pool grow)
        serial = retired.cert.serial_number
        expired = make_certificate(retired.key, "retired", valid_days=-1, serial=serial)
        write_certificate(retired.cert_path, expired)
        app.close()
        with caplog.at_level(logging.WARNING, logger="canvas.security"):
            transport = app.transport
            app.backend  # noqa: B018 - its store connection reads the certificates again
        # Then they open, with one warning that names the certificate and its expiry date
        said = [r.getMessage() for r in caplog.records if retired.id in r.getMessage()]
        expiry = f"expired on {expired.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        assert len(said) == 1 and expiry in said[0], said
        # And the worker's own certificate still verifies; the retired one's message is refused
        raw = unwrap(transport)
        raw.publish(
            [
                OutgoingMessage("q", waiting, {**HEADERS, "id": "retired"}, SIGNED_CONTENT_TYPE),
                transport.seal(OutgoingMessage("q", b"[[2,2],{}]", HEADERS, "application/json")),
            ]
        )
        delivery = transport.consumer(["q"]).get(2)
        assert delivery is not None and delivery.body == b"[[2,2],{}]"
        dead = raw.consumer(["q.dlq"]).get(1)
        assert dead is not None and dead.headers["id"] == "retired"
        assert dead.headers[REASON_HEADER].startswith(
            f"security: certificate '{retired.id}' expired on"
        )
        app.close()

    def test_setup_security_overrides_the_settings_and_checks_them(
        self, worker: Pair, certs: Path
    ) -> None:
        app = Canvas("x", set_as_current=False, **AUTH)
        app.setup_security(
            allowed_serializers=["json"],
            key=str(worker.key_path),
            cert=str(worker.cert_path),
            store=str(certs / "*.pem"),
            digest="sha384",
            serializer="msgpack",
        )
        assert app.conf.security_key == str(worker.key_path)
        assert (app.conf.security_digest, app.conf.security_serializer) == ("sha384", "msgpack")
        with pytest.raises(ImproperlyConfigured, match="matches no certificate file"):
            app.setup_security(store=str(certs / "*.nothing"))
        with pytest.raises(ImproperlyConfigured, match="Unknown serializer 'yaml'"):
            app.setup_security(serializer="yaml")
        with pytest.raises(ImproperlyConfigured, match="unknown serializer 'yml'"):
            app.setup_security(allowed_serializers=["yml"])

    def test_setup_security_without_settings_says_what_to_set(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="setup_security.. signs with X.509"):
            Canvas("x", set_as_current=False).setup_security()


def test_without_cryptography_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a process where cryptography is not installed (and canvas.security not loaded yet)
    for name in [m for m in sys.modules if m.startswith("canvas.security")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(canvas, "security", raising=False)
    for name in [m for m in sys.modules if m.split(".")[0] == "cryptography"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'canvas-workflows\[auth\]'"):
        signing.load_security()
