"""Malformed input: every field of the envelope fuzzed, against a real worker.

Hypothesis draws batches of messages as a buggy producer or anyone with write access to the
broker could send them: valid calls, calls with one or more header fields replaced by values of
the wrong type (or non-finite numbers), bodies that do not decode, and raw Redis frames that are
truncated, too short for their header, name another queue, or are plain garbage. The oracle, for
every batch: the worker keeps serving (a probe task runs), and every message ends exactly once —
run once (one effect, a stored result) or in the dead-letter queue with a reason that says why
(the field's name, for a bad field). Nothing is retried with backoff, lost, or left queued.

Three fixed batches run in the default suite (a few seconds); ``pytest -m chaos`` (``make
chaos``) draws 25 random ones on the Redis transport and 10 on RabbitMQ (header fields and
bodies: RabbitMQ frames its own messages).
"""

from __future__ import annotations

import math
import struct
import uuid
from typing import Any

import msgpack
import pytest
import redis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from canvas import security, states
from canvas.core import envelope, messages
from canvas.security import SecureTransport
from canvas.transports.base import OutgoingMessage

from .ledger import DLQ

pytestmark = pytest.mark.integration

#: the header fields a worker reads (``canvas.core.envelope.FIELDS``), all of them fuzzed
FIELDS = sorted(envelope.FIELDS)

#: values of every type a header may carry on the wire (text excluded: see ``_values``)
_wire_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack carries
garbage = st.one_of(
    st.booleans(),
    _wire_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=20),
    st.lists(_wire_ints, max_size=3),
    st.dictionaries(st.text(max_size=5), _wire_ints, max_size=3),
)


def _values(field: str) -> st.SearchStrategy[Any]:
    """Values for ``field``; text only where some text is wrong (numbers, JSON, names)."""
    text_ok = envelope.FIELDS[field][0]("some text")
    options = [garbage] if text_ok else [garbage, st.text(max_size=20)]
    if field in envelope.REQUIRED:
        options += [st.none(), st.just("")]
    return st.one_of(*options).filter(lambda v: _is_bad(field, v))


def _is_bad(field: str, value: Any) -> bool:
    """Would ``envelope.check`` refuse this value for this field? (``None`` means absent.)"""
    if value is None:
        return field in envelope.REQUIRED
    if field == "task" and isinstance(value, str) and value.startswith("chaos."):
        return False  # a real task name (a valid call, or an unknown task: either is fine)
    test, _ = envelope.FIELDS[field]
    return not test(value)


@st.composite
def bad_headers(draw: st.DrawFn) -> dict[str, Any]:
    """One or more fields set to values the worker must refuse."""
    fields = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True))
    changes = {}
    for field in fields:
        changes[field] = draw(_values(field))
    return changes


_VALID_PAYLOAD = msgpack.packb(
    [{"task": "chaos.work", "id": "frame"}, b"\x92\x90\x80", "application/x-msgpack", None, b""]
)

#: raw frames for the Redis transport, as ``(kind, bytes)``: the test puts the queue name in
frames = st.one_of(
    st.tuples(st.just("raw"), st.binary(max_size=2)),  # under three bytes
    st.tuples(st.just("raw"), st.binary(min_size=3, max_size=64)),  # no valid header
    st.tuples(  # valid header, truncated msgpack
        st.just("ours"),
        st.integers(min_value=0, max_value=len(_VALID_PAYLOAD) - 1).map(
            lambda n: _VALID_PAYLOAD[:n]
        ),
    ),
    st.tuples(st.just("ours"), st.binary(max_size=32)),  # valid header, garbage payload
    st.tuples(st.just("other"), st.text(min_size=1, max_size=8)),  # names another queue
)


def frame(queue: str, kind: str, data: Any) -> bytes:
    if kind == "raw":
        return bytes(data)
    name = queue.encode() if kind == "ours" else str(data).encode()
    payload = bytes(data) if kind == "ours" else _VALID_PAYLOAD
    return struct.pack("!BH", 0, len(name)) + name + payload


def _amqp_safe(value: Any) -> bool:
    """What an AMQP header table carries unchanged: signed 64-bit ints, finite floats (RabbitMQ
    refuses others), no bytes (they arrive as text, which may be a valid value)."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, bytes):
        return False
    if isinstance(value, list):
        return all(_amqp_safe(v) for v in value)
    if isinstance(value, dict):
        return all(_amqp_safe(v) for v in value.values())
    return True


@st.composite
def batches(draw: st.DrawFn, frames_too: bool = True) -> dict[str, Any]:
    fields = bad_headers() if frames_too else bad_headers().filter(_amqp_safe)
    return {
        "valid": draw(st.integers(min_value=1, max_value=5)),
        "bad_fields": draw(st.lists(fields, min_size=1, max_size=12)),
        "bad_bodies": draw(st.lists(st.binary(max_size=24), max_size=4)),
        "frames": draw(st.lists(frames, max_size=8)) if frames_too else [],
    }


def fuzz(examples: int, derandomize: bool = False) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
    )


#: one batch of every kind, always run (a drawn batch may leave some kind out)
EVERY_KIND = {
    "valid": 2,
    "bad_fields": [{"eta": "tomorrow"}, {"time_limit": "abc", "retries": -1}, {"id": 5}],
    "bad_bodies": [b"\xc1 not msgpack"],
    "frames": [
        ("raw", b"\x01"),
        ("raw", b"\x00\xff\xffjunk"),
        ("ours", b"\x95\x81"),
        ("other", "q"),
    ],
}


@fuzz(1, derandomize=True)
@given(batch=batches())
@example(batch=EVERY_KIND)
def test_malformed_input_never_stalls_loses_or_reruns(cluster, batch: dict[str, Any]) -> None:
    """The default run's share: two fixed batches, a few seconds."""
    check_batch(cluster(f"malformed-{uuid.uuid4().hex[:6]}"), batch)


@settings(
    phases=[Phase.explicit],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=batches())
@example(batch=EVERY_KIND)
def test_malformed_signed_input(cluster, batch: dict[str, Any]) -> None:
    """With signing on: bad fields in a validly signed envelope, and raw frames that never
    reach verification, end the same way."""
    name = f"malformed-signed-{uuid.uuid4().hex[:6]}"
    check_batch(cluster(name, CHAOS_SECURITY_KEY="malformed-suite-key-" + "k" * 24), batch)


@pytest.mark.chaos
@fuzz(25)
@given(batch=batches())
def test_malformed_input_many_batches(cluster, batch: dict[str, Any]) -> None:
    check_batch(cluster(f"malformed-{uuid.uuid4().hex[:6]}"), batch)


@pytest.mark.chaos
@fuzz(10)
@given(batch=batches(frames_too=False))
def test_malformed_input_on_rabbitmq(cluster, rabbit, batch: dict[str, Any]) -> None:
    check_batch(cluster(f"malformed-amqp-{uuid.uuid4().hex[:6]}", broker=rabbit.url), batch)


def check_batch(case: Any, batch: dict[str, Any]) -> None:
    """Publish the batch, start a worker, and hold it to the oracle (the module docstring)."""
    raw = security.unwrap(case.app.transport)
    ledger = case.ledger
    outgoing: list[OutgoingMessage] = []
    bad_field_ids: dict[str, list[str]] = {}
    for changes in batch["bad_fields"]:
        task_id = str(uuid.uuid4())
        message = messages.build(case.app, "chaos.work", task_id, [1], {}, {})
        headers = {**message.headers, **changes, "id": task_id}
        if "id" in changes:
            headers["id"] = changes["id"]
        outgoing.append(OutgoingMessage(case.queue, message.body, headers))
        if "id" in changes:
            ledger.extra_dead[str(changes["id"])] += 1  # dead-lettered under what it claims
        else:
            ledger.expect(task_id, DLQ)
            bad_field_ids[task_id] = sorted(changes)
    for body in batch["bad_bodies"]:
        task_id = str(uuid.uuid4())
        message = messages.build(case.app, "chaos.work", task_id, [1], {}, {})
        if _decodes(body):
            continue
        outgoing.append(OutgoingMessage(case.queue, body, message.headers))
        ledger.expect(task_id, DLQ)
    secure = case.app.transport
    if isinstance(secure, SecureTransport):  # signed: the worker gets past verification
        outgoing = [secure.seal(m) for m in outgoing]
    raw.publish(outgoing)
    blobs = [frame(case.queue, kind, data) for kind, data in batch["frames"]]
    if blobs:
        client = redis.Redis.from_url(raw.url)
        client.lpush(raw.key(case.queue), *blobs)
        client.close()
        ledger.extra_dead["None"] += len(blobs)
    for i in range(batch["valid"]):
        ledger.send("chaos.work", (i,))
    case.start_worker(concurrency=2)
    recover = case.probe(timeout=30)
    verdict = case.finish(
        f"{len(outgoing)} bad messages, {len(blobs)} bad frames", recover, settle_timeout=60
    )
    verdict.assert_ok()
    assert recover < 20, f"a healthy task waited {recover:.1f}s behind the bad messages"
    for task_id, fields in bad_field_ids.items():
        reason = verdict.dead_letters[task_id]
        assert any(f"header {f!r}" in reason for f in fields), reason
        assert "worker_max_deliveries" not in reason, reason
    runs = ledger.effects.execute(
        f"SELECT count(*) FROM runs WHERE id IN ({','.join('?' * len(bad_field_ids))})",
        list(bad_field_ids),
    )
    assert runs.fetchone()[0] == 0, "a refused message ran"


def _decodes(body: bytes) -> bool:
    """Bodies that happen to be a valid ``[args, kwargs]`` would run: not malformed."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:
        return False
    return isinstance(value, list | tuple) and len(value) >= 2


def test_the_fuzzed_fields_are_every_field_the_worker_reads() -> None:
    assert set(FIELDS) >= {"task", "id", "eta", "expires", "retries", "time_limit"}
    assert set(FIELDS) >= {"soft_time_limit", "errback_for", "workflow", "priority", "stamps"}
    assert not _is_bad("eta", 1.0) and _is_bad("eta", math.inf) and _is_bad("retries", "3")
    assert states.SUCCESS  # the oracle's other outcome
