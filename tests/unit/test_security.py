"""Signed and encrypted messages and results: settings, envelopes, the wrappers, the URL check.

The transport tests run on the embedded transport with a private temporary file (``memory://``)
and the store tests on the in-memory store: no server, a few milliseconds each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from canvas import states
from canvas.app import Canvas
from canvas.backends.base import UNREADABLE_SPEC, NodeRecord
from canvas.backends.memory import MemoryBackend
from canvas.core import metas
from canvas.core.complete import UnreadableNode, load_node
from canvas.exceptions import ImproperlyConfigured
from canvas.security import (
    KEY_ID_HEADER,
    SIGNED_CONTENT_TYPE,
    Sealer,
    SecureBackend,
    SecureTransport,
    SecurityError,
    SecuritySettings,
    fingerprint,
    forged_meta,
    unwrap,
    warn_insecure_broker,
    wrap,
)
from canvas.transports.base import REASON_HEADER, OutgoingMessage
from canvas.transports.embedded import EmbeddedTransport

KEY = "k" * 32
OLD_KEY = "o" * 32
ENC_KEY = "e" * 32
HEADERS = {"task": "proj.add", "id": "t-1", "retries": 0, "eta": None, "chain": ["a", "b"]}


def settings(**conf: Any) -> SecuritySettings:
    found = SecuritySettings.from_conf({"security_key": KEY, **conf})
    assert found is not None
    return found


def sealer(**conf: Any) -> Sealer:
    return Sealer(settings(**conf))


@pytest.fixture
def transport() -> Iterator[EmbeddedTransport]:
    inner = EmbeddedTransport("memory://", {"visibility_timeout": 30, "poll_interval": 0.01})
    yield inner
    inner.close()


def message(body: bytes = b"[[2,2],{}]", **headers: Any) -> OutgoingMessage:
    return OutgoingMessage("q", body, {**HEADERS, **headers}, "application/x-msgpack")


# -- settings --------------------------------------------------------------------------------
class TestSettings:
    def test_off_without_a_key(self) -> None:
        assert SecuritySettings.from_conf({}) is None
        assert SecuritySettings.from_conf({"security_key": None}) is None

    def test_a_short_key_is_refused_with_the_fix(self) -> None:
        with pytest.raises(ImproperlyConfigured, match=r"security_key is 5 bytes.*token_urlsafe"):
            SecuritySettings.from_conf({"security_key": "short"})

    def test_a_key_of_the_wrong_type_is_refused(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="str or bytes, not int"):
            SecuritySettings.from_conf({"security_key": 12345})

    def test_encryption_needs_a_signing_key(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="need security_key"):
            SecuritySettings.from_conf({"security_encryption_key": ENC_KEY})

    def test_key_ids_default_to_fingerprints(self) -> None:
        found = settings(security_encryption_key=ENC_KEY)
        assert found.key_id == fingerprint(KEY) and len(found.key_id) == 8
        assert found.encryption_key_id == fingerprint(ENC_KEY)
        assert fingerprint(KEY) != fingerprint(OLD_KEY)

    def test_explicit_ids_and_an_older_key(self) -> None:
        found = settings(security_key_id="2024", security_keys={"2023": OLD_KEY})
        assert found.key_id == "2024"
        assert sorted(found.signing_keys) == ["2023", "2024"]

    def test_defaults(self) -> None:
        found = settings()
        assert (found.max_age, found.clock_skew, found.replay_cache) == (3600.0, 60.0, True)
        assert found.encryption_key_id is None
        assert KEY not in repr(found)


# -- message envelopes -------------------------------------------------------------------------
class TestMessages:
    def test_round_trip_keeps_headers_body_and_content_type(self) -> None:
        box = sealer()
        envelope = box.seal_message(HEADERS, b"body", "application/json")
        opened = box.open_message(envelope, SIGNED_CONTENT_TYPE)
        assert (opened.headers, opened.body, opened.content_type) == (
            HEADERS,
            b"body",
            "application/json",
        )
        assert opened.key_id == fingerprint(KEY)
        assert abs(opened.issued_at - time.time()) < 5

    def test_every_envelope_has_its_own_nonce(self) -> None:
        box = sealer()
        first = box.open_message(box.seal_message(HEADERS, b"x", "c"), SIGNED_CONTENT_TYPE)
        second = box.open_message(box.seal_message(HEADERS, b"x", "c"), SIGNED_CONTENT_TYPE)
        assert first.nonce != second.nonce

    def test_encrypted_body_is_not_readable_on_the_wire(self) -> None:
        box = sealer(security_encryption_key=ENC_KEY)
        envelope = box.seal_message(HEADERS, b"the secret argument", "c")
        assert b"the secret argument" not in envelope
        assert box.open_message(envelope, SIGNED_CONTENT_TYPE).body == b"the secret argument"

    @pytest.mark.parametrize("encrypted", [False, True])
    def test_any_flipped_byte_is_refused(self, encrypted: bool) -> None:
        # Given an envelope, when any one of its bytes after the magic changes,
        # then it never opens (the MAC covers everything, the key id included).
        conf = {"security_encryption_key": ENC_KEY} if encrypted else {}
        box = sealer(**conf)
        envelope = box.seal_message(HEADERS, b"body", "c")
        for i in range(4, len(envelope)):
            forged = bytearray(envelope)
            forged[i] ^= 0x01
            with pytest.raises(SecurityError):
                box.open_message(bytes(forged), SIGNED_CONTENT_TYPE)

    def test_unsigned_messages_are_refused(self) -> None:
        with pytest.raises(SecurityError, match="unsigned"):
            sealer().open_message(b"[[2,2],{}]", "application/x-msgpack")
        with pytest.raises(SecurityError, match="unsigned"):
            sealer().open_message(b"not an envelope", SIGNED_CONTENT_TYPE)

    def test_another_secret_is_refused(self) -> None:
        envelope = sealer().seal_message(HEADERS, b"body", "c")
        other = sealer(security_key=OLD_KEY, security_key_id=fingerprint(KEY))
        with pytest.raises(SecurityError, match="bad signature"):
            other.open_message(envelope, SIGNED_CONTENT_TYPE)

    def test_an_unknown_key_id_is_refused(self) -> None:
        envelope = sealer(security_key=OLD_KEY).seal_message(HEADERS, b"body", "c")
        with pytest.raises(SecurityError, match="unknown key id"):
            sealer().open_message(envelope, SIGNED_CONTENT_TYPE)

    def test_rotation_accepts_the_old_key_listed_in_security_keys(self) -> None:
        old = sealer(security_key=OLD_KEY, security_key_id="old")
        envelope = old.seal_message(HEADERS, b"body", "c")
        new = sealer(security_key_id="new", security_keys={"old": OLD_KEY})
        assert new.open_message(envelope, SIGNED_CONTENT_TYPE).key_id == "old"

    def test_expired_and_future_messages_are_refused(self) -> None:
        box = sealer(security_max_age=60, security_clock_skew=5)
        now = time.time()
        old = box.seal_message(HEADERS, b"body", "c", now=now - 61)
        with pytest.raises(SecurityError, match="expired or replayed: issued 61s ago"):
            box.open_message(old, SIGNED_CONTENT_TYPE, now=now)
        future = box.seal_message(HEADERS, b"body", "c", now=now + 30)
        with pytest.raises(SecurityError, match="in the future"):
            box.open_message(future, SIGNED_CONTENT_TYPE, now=now)
        # A dead letter is checked for its signature only, so that it can be replayed.
        assert box.open_message(old, SIGNED_CONTENT_TYPE, now=now, check_age=False).body == b"body"

    def test_a_missing_encryption_key_is_refused(self) -> None:
        envelope = sealer(security_encryption_key=ENC_KEY).seal_message(HEADERS, b"b", "c")
        with pytest.raises(SecurityError, match="encrypted with unknown key id"):
            sealer().open_message(envelope, SIGNED_CONTENT_TYPE)

    def test_a_signed_plaintext_message_is_accepted_by_an_encrypting_node(self) -> None:
        envelope = sealer().seal_message(HEADERS, b"b", "c")
        box = sealer(security_encryption_key=ENC_KEY)
        assert box.open_message(envelope, SIGNED_CONTENT_TYPE).body == b"b"


# -- store records ---------------------------------------------------------------------------
class TestRecords:
    @pytest.mark.parametrize("encrypted", [False, True])
    def test_round_trip_and_binding(self, encrypted: bool) -> None:
        conf = {"security_encryption_key": ENC_KEY} if encrypted else {}
        box = sealer(**conf)
        record = box.seal_record(b"meta", "meta:a")
        assert box.open_record(record, "meta:a") == b"meta"
        assert (b"meta" in record[4:]) is not encrypted
        # Given a valid record, when it is copied to another task's place, then it fails.
        with pytest.raises(SecurityError, match="bad signature"):
            box.open_record(record, "meta:b")

    def test_unsigned_records_are_refused(self) -> None:
        with pytest.raises(SecurityError, match="unsigned record at meta:a"):
            sealer().open_record(b"\x85plain", "meta:a")


# -- SecureTransport -----------------------------------------------------------------------------
class TestSecureTransport:
    def test_publish_signs_and_the_consumer_verifies(self, transport: EmbeddedTransport) -> None:
        secure = SecureTransport(transport, sealer())
        secure.publish([message()])
        raw = transport.consumer(["q"]).get(1)
        assert raw is not None
        assert raw.content_type == SIGNED_CONTENT_TYPE
        assert raw.headers["id"] == "t-1" and raw.headers[KEY_ID_HEADER] == fingerprint(KEY)
        raw.reject(requeue=True)
        consumer = secure.consumer(["q"])
        delivery = consumer.get(1)
        assert delivery is not None
        assert delivery.headers == HEADERS
        assert delivery.body == b"[[2,2],{}]"
        assert delivery.content_type == "application/x-msgpack"
        delivery.ack()
        assert transport.size("q") == 0 and consumer.get(0.05) is None
        consumer.close()

    def test_clear_headers_are_replaced_by_the_signed_ones(
        self, transport: EmbeddedTransport
    ) -> None:
        # Given a signed message whose clear headers were altered on the way,
        # then the worker sees the headers that were signed.
        box = sealer()
        envelope = box.seal_message(HEADERS, b"b", "application/x-msgpack")
        forged = {**HEADERS, "task": "proj.evil"}
        transport.publish([OutgoingMessage("q", envelope, forged, SIGNED_CONTENT_TYPE)])
        delivery = SecureTransport(transport, box).consumer(["q"]).get(1)
        assert delivery is not None and delivery.headers["task"] == "proj.add"

    def test_bad_messages_are_dead_lettered_and_the_next_one_is_served(
        self, transport: EmbeddedTransport, caplog: pytest.LogCaptureFixture
    ) -> None:
        box = sealer(security_max_age=60)
        secure = SecureTransport(transport, box)
        good = box.seal_message(HEADERS, b"good", "application/x-msgpack")
        tampered = bytearray(good)
        tampered[-40] ^= 1
        old = box.seal_message(HEADERS, b"old", "c", now=time.time() - 3600)
        other = sealer(security_key=OLD_KEY).seal_message(HEADERS, b"x", "c")
        transport.publish(
            [
                OutgoingMessage("q", b"[[1],{}]", {**HEADERS, "id": "plain"}),
                OutgoingMessage("q", bytes(tampered), {**HEADERS, "id": "tampered"}, "x"),
                OutgoingMessage("q", bytes(tampered), {**HEADERS, "id": "t2"}, SIGNED_CONTENT_TYPE),
                OutgoingMessage("q", old, {**HEADERS, "id": "old"}, SIGNED_CONTENT_TYPE),
                OutgoingMessage("q", other, {**HEADERS, "id": "other"}, SIGNED_CONTENT_TYPE),
                OutgoingMessage("q", good, HEADERS, SIGNED_CONTENT_TYPE),
            ]
        )
        with caplog.at_level(logging.ERROR, logger="canvas.security"):
            delivery = secure.consumer(["q"]).get(2)
        assert delivery is not None and delivery.body == b"good"
        dead = transport.consumer(["q.dlq"], prefetch=10)
        reasons = {}
        while (d := dead.get(0.05)) is not None:
            reasons[d.headers["id"]] = d.headers[REASON_HEADER]
        assert reasons["plain"].startswith("security: unsigned")
        assert reasons["tampered"].startswith("security: unsigned")
        assert reasons["t2"].startswith("security: bad signature")
        assert reasons["old"].startswith("security: expired or replayed")
        assert reasons["other"].startswith("security: signed with unknown key id")
        # Logged with the reason and the id, never the arguments.
        assert "[[1],{}]" not in caplog.text and "plain" in caplog.text

    def test_a_second_first_delivery_is_a_replay_but_a_redelivery_runs(
        self, transport: EmbeddedTransport
    ) -> None:
        nonces: dict[bytes, int] = {}

        def seen(nonce: bytes) -> bool:
            nonces[nonce] = nonces.get(nonce, 0) + 1
            return nonces[nonce] > 1

        secure = SecureTransport(transport, sealer(), seen=seen)
        secure.publish([message()])
        consumer = secure.consumer(["q"])
        first = consumer.get(1)
        assert first is not None
        # A worker died: the broker hands the same envelope back, marked redelivered.
        first.reject(requeue=True)
        again = consumer.get(1)
        assert again is not None and again.redelivered
        # Someone copies the envelope and publishes it again: refused.
        raw = again.tag
        transport.publish([OutgoingMessage("q", raw.body, raw.headers, raw.content_type)])
        again.ack()
        assert consumer.get(0.2) is None
        dead = transport.consumer(["q.dlq"]).get(1)
        assert dead is not None and dead.headers[REASON_HEADER].startswith("security: replayed")

    def test_a_store_outage_does_not_block_consumption(self, transport: EmbeddedTransport) -> None:
        def seen(nonce: bytes) -> bool:
            raise ConnectionError("store down")

        secure = SecureTransport(transport, sealer(), seen=seen)
        secure.publish([message()])
        assert secure.consumer(["q"]).get(1) is not None

    def test_dead_letters_keep_the_original_envelope(self, transport: EmbeddedTransport) -> None:
        secure = SecureTransport(transport, sealer(security_encryption_key=ENC_KEY))
        secure.publish([message(b"secret args")])
        delivery = secure.consumer(["q"]).get(1)
        assert delivery is not None
        delivery.reject(requeue=False, reason="unknown task 'proj.add'")
        dead = transport.consumer(["q.dlq"]).get(1)
        assert dead is not None and b"secret args" not in dead.body
        assert dead.headers[REASON_HEADER] == "unknown task 'proj.add'"
        assert secure.open(dead, check_age=False).body == b"secret args"

    def test_extend_size_purge_and_attributes_pass_through(
        self, transport: EmbeddedTransport
    ) -> None:
        secure = SecureTransport(transport, sealer())
        secure.publish([message(), message()])
        assert secure.size("q") == 2 and secure.dead_letters("q") == "q.dlq"
        assert secure.path == transport.path
        assert secure.visibility_timeout == transport.visibility_timeout
        consumer = secure.consumer(["q"])
        delivery = consumer.get(1)
        assert delivery is not None
        consumer.extend([delivery])
        assert secure.purge("q") == 1
        consumer.close()
        assert secure.size("q") == 1


# -- SecureBackend -------------------------------------------------------------------------------
class TestSecureBackend:
    def backend(self, **conf: Any) -> tuple[SecureBackend, MemoryBackend]:
        inner = MemoryBackend()
        return SecureBackend(inner, sealer(**conf), forged=forged_meta), inner

    def meta(self, task_id: str, value: Any = 4) -> bytes:
        return metas.encode(metas.make_meta(task_id, states.SUCCESS, value))

    def test_metas_are_sealed_and_read_back(self) -> None:
        secure, inner = self.backend(security_encryption_key=ENC_KEY)
        meta = self.meta("a", "visible?")
        secure.store("a", states.SUCCESS, meta)
        raw = inner.get(["a"])[0]
        assert raw is not None and b"visible?" not in raw
        assert secure.get(["a"]) == [meta]
        assert secure.get(["missing"]) == [None]
        assert secure.wait("a", 1) is not None

    def test_a_forged_meta_reads_as_a_security_failure(self) -> None:
        secure, inner = self.backend()
        inner.store("a", states.SUCCESS, self.meta("a", "forged"))
        secure.store("b", states.SUCCESS, self.meta("b"))
        stolen = inner.get(["b"])[0]
        assert stolen is not None
        inner.store("c", states.SUCCESS, stolen)  # b's valid record copied to c
        for task_id in ("a", "c"):
            meta = metas.decode(secure.get([task_id])[0])
            assert meta is not None and meta["status"] == states.FAILURE
            assert meta["result"]["exc_type"] == "SecurityError"

    def test_workflows_specs_and_joins(self) -> None:
        secure, inner = self.backend()
        nodes = [
            NodeRecord("a", b"spec-a", ("c",), 0),
            NodeRecord("b", b"spec-b", ("c",), 0),
            NodeRecord("c", b"spec-c", (), 2),
        ]
        secure.save_workflow("w", nodes, b"info")
        assert inner.node_specs("w", ["a"])[0] != b"spec-a"
        assert secure.workflow_info("w") == b"info"
        assert secure.node_specs("w", ["a", "zz"]) == [b"spec-a", None]
        assert [n.spec for n in secure.workflow_nodes("w")] == [b"spec-a", b"spec-b", b"spec-c"]
        meta = self.meta("a")
        assert secure.complete("w", "a", states.SUCCESS, meta) == []
        fired = secure.complete("w", "b", states.SUCCESS, self.meta("b"))
        assert [(f.id, f.spec) for f in fired] == [("c", b"spec-c")]
        assert secure.get(["a"]) == [meta]

    def test_a_forged_spec_reads_as_refused_and_fails_its_node(self) -> None:
        secure, inner = self.backend()
        inner.save_workflow("w", [NodeRecord("a", b"evil", (), 0)], b"info")
        (spec,) = secure.node_specs("w", ["a"])
        assert spec.startswith(UNREADABLE_SPEC)
        with pytest.raises(UnreadableNode, match="security: .*spec:w:a"):
            load_node(spec)

    def test_parked_messages_are_sealed_and_forged_ones_dropped(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        secure, inner = self.backend()
        secure.schedule("good", 1.0, b"payload")
        inner.schedule("forged", 2.0, b"payload")
        with caplog.at_level(logging.ERROR, logger="canvas.security"):
            assert secure.claim_due(10.0, 30.0) == [("good", b"payload")]
        assert "forged" in caplog.text
        secure.ack_scheduled(["good"])
        assert secure.next_due() is None

    def test_counters_and_leases_pass_through(self) -> None:
        secure, _ = self.backend()
        assert secure.incr("x", 10) == 1 and secure.incr("x", 10) == 2
        assert secure.acquire_lease("beat", "me", 10)
        assert not secure.acquire_lease("beat", "you", 10)
        secure.release_lease("beat", "me")
        assert secure.expires == 86400.0


# -- wiring ------------------------------------------------------------------------------------
class TestWrap:
    def test_off_returns_the_same_objects(self, transport: EmbeddedTransport) -> None:
        app = Canvas("t", set_as_current=False)
        assert wrap(app, transport) is transport
        backend = MemoryBackend()
        assert wrap(app, backend) is backend

    def test_on_wraps_once_and_uses_the_store_as_replay_cache(
        self, transport: EmbeddedTransport
    ) -> None:
        app = Canvas("t", set_as_current=False, security_key=KEY, result_backend="memory://")
        secure = wrap(app, transport)
        assert isinstance(secure, SecureTransport) and wrap(app, secure) is secure
        assert unwrap(secure) is transport and unwrap(transport) is transport
        assert isinstance(wrap(app, MemoryBackend()), SecureBackend)
        assert secure.seen is not None
        assert secure.seen(b"n") is False and secure.seen(b"n") is True
        app.close()

    def test_replay_cache_can_be_turned_off(self, transport: EmbeddedTransport) -> None:
        app = Canvas("t", set_as_current=False, security_key=KEY, security_replay_cache=False)
        secure = wrap(app, transport)
        assert isinstance(secure, SecureTransport) and secure.seen is None

    def test_anything_else_is_a_type_error(self) -> None:
        app = Canvas("t", set_as_current=False, security_key=KEY)
        with pytest.raises(TypeError, match="not str"):
            wrap(app, "redis://")  # type: ignore[call-overload]


# -- the broker URL check --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "use_ssl", "expected"),
    [
        ("amqp://guest:guest@localhost:5672//", False, None),
        ("amqp://guest:guest@127.0.0.2:5672//", False, None),
        ("redis://[::1]:6379/0", False, None),
        ("embedded:///tmp/broker.db", False, None),
        ("amqp://guest:guest@rabbit.internal//", False, ["no TLS", "guest/guest"]),
        ("amqp://rabbit.internal//", False, ["no TLS", "guest/guest"]),
        ("amqps://guest:guest@rabbit.internal//", False, ["guest/guest"]),
        ("amqp://app:s3cret@rabbit.internal//", False, ["no TLS"]),
        ("amqp://app:s3cret@rabbit.internal//", True, None),
        ("amqps://app:s3cret@10.0.0.5//", False, None),
        ("redis://10.0.0.5:6379/0", False, ["no TLS", "no password"]),
        ("rediss://:pw@cache.example.com:6380/0", False, None),
        ("redis://:pw@cache.example.com/0?ssl_cert_reqs=required", False, None),
    ],
)
def test_warn_insecure_broker(url: str, use_ssl: bool, expected: list[str] | None) -> None:
    warning = warn_insecure_broker(url, use_ssl=use_ssl)
    if expected is None:
        assert warning is None
        return
    assert warning is not None
    for part in expected:
        assert part in warning
    assert "s3cret" not in warning and "security_key" in warning
