"""Quick chaos cases, part of the default run: kills, shutdowns, poison, bad and forged messages,
oversized payloads and countdowns, on a private Redis broker and store.

Each case publishes through the ledger, injects its fault, waits (with a deadline) until every id
has a terminal record, stops the workers and asks the ledger for its verdict.
"""

from __future__ import annotations

import time
import uuid

import pytest

from canvas import chain, group, security, states
from canvas.core import messages
from canvas.core.protocol import MSGPACK
from canvas.exceptions import PayloadTooLarge
from canvas.security import Sealer, SecureTransport, SecuritySettings
from canvas.transports.base import OutgoingMessage

from .ledger import DLQ
from .servers import wait_until

pytestmark = pytest.mark.integration

KEY = "chaos-suite-signing-key-0123456789abcdef"
ENC_KEY = "chaos-suite-encryption-key-0123456789abcd"


def test_sigkill_of_a_child_mid_task_loses_nothing(cluster) -> None:
    case = cluster("sigkill-child", CHAOS_LEASE="1")
    worker = case.start_worker(concurrency=2)
    for i in range(10):
        case.ledger.send("chaos.work", (i, 0.5))
    case.wait_for_runs(2)
    killed_at = time.monotonic()
    worker.kill_child()
    recover = case.probe()
    verdict = case.finish("SIGKILL 1 pool process", recover)
    verdict.assert_ok()
    assert verdict.reruns >= 1, "the killed task must have run again"
    assert time.monotonic() - killed_at < 60


def test_sigkill_of_the_whole_worker_mid_task_loses_nothing(cluster) -> None:
    case = cluster("sigkill-worker", CHAOS_LEASE="1")
    first = case.start_worker(concurrency=2)
    for i in range(10):
        case.ledger.send("chaos.work", (i, 0.5))
    case.wait_for_runs(2)
    first.kill()
    case.start_worker(concurrency=2)
    recover = case.probe()
    verdict = case.finish("SIGKILL worker + pool", recover)
    verdict.assert_ok()
    assert verdict.reruns >= 1


def test_sigterm_finishes_the_task_in_hand_and_leaves_the_rest_queued(cluster) -> None:
    case = cluster("sigterm-running", CHAOS_LEASE="1")
    worker = case.start_worker(concurrency=1)
    running = case.ledger.send("chaos.work", (0, 1.5))
    case.wait_for_runs(1)
    for i in range(1, 6):
        case.ledger.send("chaos.work", (i,))
    assert worker.term(timeout=30) == 0
    assert case.app.AsyncResult(running).state == states.SUCCESS
    case.start_worker(concurrency=2)
    verdict = case.finish("SIGTERM with a task running")
    verdict.assert_ok()
    assert verdict.reruns == 0, "a warm shutdown must not make anything run twice"


def test_a_poison_task_is_dead_lettered_after_max_deliveries(cluster) -> None:
    case = cluster("poison", CHAOS_LEASE="1")
    worker = case.start_worker(concurrency=2)
    poison = case.ledger.send("chaos.poison", expect=DLQ)
    for i in range(5):
        case.ledger.send("chaos.work", (i,))
    verdict = case.finish("task kills its process every run", case.probe())
    verdict.assert_ok()
    assert "worker_max_deliveries=3" in verdict.dead_letters[poison]
    runs = case.ledger.effects.execute("SELECT count(*) FROM runs WHERE id = ?", (poison,))
    assert runs.fetchone()[0] == 3
    assert worker.proc.returncode == 0, "the supervisor survived and shut down cleanly"


def test_malformed_and_unknown_messages_are_dead_lettered(cluster) -> None:
    case = cluster("bad-messages")
    case.start_worker(concurrency=2)
    raw = security.unwrap(case.app.transport)

    def bad(
        reason: str, body: bytes, headers: dict[str, str], content_type: str = MSGPACK
    ) -> tuple[str, str]:
        task_id = str(uuid.uuid4())
        raw.publish([OutgoingMessage(case.queue, body, {"id": task_id, **headers}, content_type)])
        case.ledger.expect(task_id, DLQ)
        return task_id, reason

    expected = dict(
        [
            bad("cannot decode body", b"\xc1\xc1 not msgpack", {"task": "chaos.work"}),
            bad("cannot decode body", b"[1, 2]", {"task": "chaos.work"}, "application/json"),
            bad(
                "cannot decode body",
                b"\x80\x04pickle",
                {"task": "chaos.work"},
                "application/x-python-serialize",
            ),
            bad("unknown task 'chaos.nope'", b"\x92\x90\x80", {"task": "chaos.nope"}),
        ]
    )
    raw.publish([OutgoingMessage(case.queue, b"\x92\x90\x80", {"task": "chaos.work"})])  # no id
    for i in range(5):
        case.ledger.send("chaos.work", (i,))
    verdict = case.finish("malformed, unknown, no id, pickle", case.probe())
    anonymous = verdict.dead_letters.pop("None", "")
    assert "header 'id' is missing" in anonymous
    verdict.assert_ok()
    for task_id, reason in expected.items():
        assert reason in verdict.dead_letters[task_id]


def test_unsigned_tampered_and_replayed_messages_never_run(cluster) -> None:
    case = cluster("forged-messages", CHAOS_SECURITY_KEY=KEY, CHAOS_ENCRYPTION_KEY=ENC_KEY)
    case.start_worker(concurrency=2)
    secure = case.app.transport
    assert isinstance(secure, SecureTransport)
    raw = secure.inner
    settings = SecuritySettings.from_conf(case.app.conf)
    assert settings is not None

    def message() -> OutgoingMessage:
        task_id = str(uuid.uuid4())
        return messages.build(case.app, "chaos.work", task_id, [7], {}, {})

    def forged(reason: str, outgoing: OutgoingMessage) -> tuple[str, str]:
        raw.publish([outgoing])
        case.ledger.expect(outgoing.headers["id"], DLQ)
        return outgoing.headers["id"], reason

    unsigned = message()
    tampered = secure.seal(message())
    flipped = bytearray(tampered.body)
    flipped[len(flipped) // 2] ^= 1
    old = message()
    old_envelope = Sealer(settings).seal_message(
        old.headers, old.body, old.content_type, now=time.time() - 7200
    )
    foreign = SecuritySettings.from_conf({"security_key": "another-key-" + "z" * 32})
    assert foreign is not None
    stranger = SecureTransport(raw, Sealer(foreign)).seal(message())
    expected = dict(
        [
            forged("unsigned message", unsigned),
            forged(
                "bad signature",
                OutgoingMessage(
                    case.queue, bytes(flipped), tampered.headers, tampered.content_type
                ),
            ),
            forged(
                "expired or replayed",
                OutgoingMessage(case.queue, old_envelope, old.headers, tampered.content_type),
            ),
            forged("unknown key id", stranger),
        ]
    )
    # A valid envelope published twice: the first runs, the copy is a replay.
    twice = secure.seal(message())
    raw.publish([twice, twice])
    case.ledger.expect(twice.headers["id"], states.SUCCESS)
    case.ledger.extra_dead[twice.headers["id"]] += 1
    result, body = case.ledger.chord(4)
    verdict = case.finish("unsigned, tampered, expired, foreign key, replayed", case.probe())
    verdict.assert_ok()
    for task_id, reason in expected.items():
        assert verdict.dead_letters[task_id].startswith("security: ")
        assert reason in verdict.dead_letters[task_id]
    assert "replayed" in verdict.dead_letters[twice.headers["id"]]
    ran = case.ledger.effects.execute(
        f"SELECT count(*) FROM runs WHERE id IN ({','.join('?' * len(expected))})", list(expected)
    )
    assert ran.fetchone()[0] == 0, "a refused message never runs"
    # Results are sealed in the store too: the raw value holds no plaintext result.
    stored = case.store.get(f"canvas-task-meta-{body}")
    assert stored is not None and b"tsum" not in stored and b"SUCCESS\n" in stored
    assert result.get(timeout=10) == 6


def test_an_oversized_argument_list_is_refused_at_publish(cluster) -> None:
    case = cluster("oversized", CHAOS_MAX_PAYLOAD="65536")
    big = "x" * 100_000
    with pytest.raises(PayloadTooLarge, match="task_max_payload_bytes=65536"):
        case.app.send_task("chaos.work", args=[big])
    members = [case.ledger.sig("chaos.work", i) for i in range(3)]
    with pytest.raises(PayloadTooLarge):
        group(*members, case.app.signature("chaos.work", (big,))).apply_async()
    with pytest.raises(PayloadTooLarge):
        case.app.signature("chaos.work", (1,)).apply_async(args=(big,), countdown=5)
    raw = security.unwrap(case.app.transport)
    assert raw.size(case.queue) == 0, "nothing is half published"
    case.start_worker(concurrency=1)
    case.ledger.send("chaos.work", (1,))
    case.finish("3 oversized publishes refused", case.probe()).assert_ok()


def test_an_oversized_later_node_is_refused_before_anything_is_published(cluster) -> None:
    case = cluster("oversized-later", CHAOS_MAX_PAYLOAD="65536")
    first, last = case.ledger.sig("chaos.work", 1), case.ledger.sig("chaos.work", 2)
    try:
        with pytest.raises(PayloadTooLarge):
            chain(first, case.app.signature("chaos.work", (0, "x" * 100_000)), last).apply_async()
    finally:
        published = security.unwrap(case.app.transport).purge(case.queue)
    assert published == 0, "the chain's first node was published"


def test_an_oversized_result_fails_its_successor_visibly(cluster) -> None:
    case = cluster("oversized-result", CHAOS_MAX_PAYLOAD="65536", CHAOS_LEASE="1")
    case.start_worker(concurrency=1)
    producer = case.ledger.sig("chaos.big", 100_000)
    consumer = case.ledger.sig("chaos.work")
    result = chain(producer, consumer).apply_async()
    case.ledger.expect(producer.options["task_id"], states.SUCCESS)
    with pytest.raises(PayloadTooLarge):
        result.get(timeout=15)


def test_a_countdown_longer_than_the_lease_runs_once_and_not_before_its_time(cluster) -> None:
    case = cluster("countdown-kill", CHAOS_LEASE="1")
    first = case.start_worker(concurrency=1)
    countdown = 4.0
    sent = time.time()
    task_id = case.ledger.send("chaos.work", (1,), countdown=countdown)
    # Parked in the store (and acked) by the first worker, which then dies.
    wait_until(lambda: _parked(case.store) == 1, 10, "the task to be parked")
    first.kill()
    case.start_worker(concurrency=1)
    verdict = case.finish("SIGKILL worker holding a parked countdown")
    verdict.assert_ok()
    runs = case.ledger.effects.execute(
        "SELECT at FROM runs WHERE id = ? AND phase = 'start'", (task_id,)
    )
    starts = [row[0] for row in runs]
    assert len(starts) == 1, f"ran {len(starts)} times"
    assert starts[0] >= sent + countdown, "ran before its time"


def _parked(store) -> int:
    """Messages parked in the store, whatever broker's set (``Transport.space``) holds them."""
    sets = [k for k in store.scan_iter("canvas-{scheduled}*") if not k.endswith(b"-payloads")]
    return sum(store.zcard(k) for k in sets)
