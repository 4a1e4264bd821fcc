"""The ``rpc://`` store on the embedded transport: replies routed by the handled message,
kept by the client in any order, and a workflow a worker's machine cannot see reported, not
waited on. Real worker processes on RabbitMQ and Redis: tests/migration/test_rpc.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from canvas import Canvas, states
from canvas.backends.base import UNREADABLE_SPEC, NodeRecord
from canvas.backends.memory import MemoryBackend
from canvas.backends.rpc import RpcBackend, replying_for, without_replies
from canvas.core import envelope, messages, metas
from canvas.transports.base import Transport
from canvas.transports.embedded import EmbeddedConsumer, EmbeddedTransport


@pytest.fixture
def transport(tmp_path: Path) -> Iterator[Transport]:
    broker = EmbeddedTransport(f"embedded://{tmp_path / 'broker.sqlite'}")
    yield broker
    broker.close()


def rpc(transport: Transport, local: bool = False) -> RpcBackend:
    return RpcBackend(MemoryBackend("memory://"), lambda: transport, local=local)


def meta(task_id: str, status: str, result: object = None) -> bytes:
    return metas.encode(metas.make_meta(task_id, status, result))


def test_a_result_goes_to_the_queue_its_message_named(transport: Transport) -> None:
    client, other, worker = rpc(transport), rpc(transport), rpc(transport)
    # Given a client that sent a message (so it reads its reply queue)
    reply_to = client.reply_to()
    other.reply_to()
    # When a worker records the result while it handles that message
    with replying_for({"reply_to": reply_to}):
        worker.store("t1", states.SUCCESS, meta("t1", states.SUCCESS, 3))
    # Then the client reads it, another client does not, and no store holds it
    assert metas.decode(client.wait("t1", 5))["result"] == 3  # type: ignore[index]
    assert other.get(["t1"]) == [None]
    assert worker.inner.get(["t1"]) == [None]


def test_without_reply_to_nothing_is_sent(transport: Transport) -> None:
    client, worker = rpc(transport), rpc(transport)
    client.reply_to()
    worker.store("t1", states.SUCCESS, meta("t1", states.SUCCESS))  # outside any handling
    assert transport.size(client.queue) == 0


def test_replies_read_on_the_way_are_kept_and_the_first_outcome_stays(
    transport: Transport,
) -> None:
    client, worker = rpc(transport), rpc(transport)
    with replying_for({"reply_to": client.reply_to()}):
        worker.store("quick", states.SUCCESS, meta("quick", states.SUCCESS, 1))
        worker.store("slow", states.STARTED, meta("slow", states.STARTED))
        worker.store("slow", states.SUCCESS, meta("slow", states.SUCCESS, 2))
        worker.store("slow", states.STARTED, meta("slow", states.STARTED))  # a late duplicate
    # When the client waits for the slow one
    assert metas.decode(client.wait("slow", 5))["result"] == 2  # type: ignore[index]
    # Then the quick one was read on the way: there at once, the queue empty
    assert transport.size(client.queue) == 0
    assert metas.decode(client.get(["quick"])[0])["result"] == 1  # type: ignore[index]
    # And forget drops it
    client.forget("quick")  # one id, as Celery's backend.forget takes
    assert client.get(["quick"]) == [None]


def test_a_workflow_a_workers_machine_does_not_hold_fails_every_wait_on_it(
    transport: Transport,
) -> None:
    # Given a client that saved a chain a -> b in its machine-local state store
    client, worker = rpc(transport, local=True), rpc(transport, local=True)
    client.save_workflow(
        "wf", [NodeRecord("a", b"spec-a", ("b",), 0), NodeRecord("b", b"spec-b", (), 1)], b""
    )
    reply_to = client.reply_to()
    # When a worker of another machine claims node a
    with replying_for({"reply_to": reply_to}):
        _, spec = worker.claim_node("wf", "a", "claim:a", 60)
        assert spec is not None and spec.startswith(UNREADABLE_SPEC)
        assert b"db+postgresql://" in spec
        failed = meta("a", states.FAILURE, {"exc_type": "UnreadableNode"})
        assert worker.complete("wf", "a", states.FAILURE, failed) == []
    # Then a wait on the chain's last node gets that failure instead of waiting for ever
    assert client.wait("b", 5) == failed
    # And outside a handled message (render, status) a missing spec stays missing
    assert worker.node_specs("wf", ["a"]) == [None]


def test_only_a_broken_connection_replaces_the_reply_consumer(
    transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real brokers: tests/migration/test_rpc.py; here, which errors count as a broken one."""

    def reset(*_: object) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    def bug(*_: object) -> None:
        raise ValueError("a bug")

    client, worker = rpc(transport), rpc(transport)
    reply_to = client.reply_to()
    with replying_for({"reply_to": reply_to}):
        worker.store("t1", states.SUCCESS, meta("t1", states.SUCCESS, 3))
    # Given a reply consumer whose connection was reset
    broken = client._consumer
    assert isinstance(broken, EmbeddedConsumer)
    monkeypatch.setattr(broken, "get", reset)
    # Then the same wait reads the reply through a new consumer, and the broken one is closed
    assert metas.decode(client.wait("t1", 5))["result"] == 3  # type: ignore[index]
    kept = client._consumer
    assert kept is not None and kept is not broken and broken._conn is None
    # But a bug is raised, not taken for a broken connection: the consumer stays
    monkeypatch.setattr(EmbeddedConsumer, "get", bug)
    with pytest.raises(ValueError, match="a bug"):
        client.wait("t2", 1)
    assert client._consumer is kept
    # And when the new consumer breaks too (the broker is down), the wait says so
    monkeypatch.setattr(EmbeddedConsumer, "get", reset)
    with pytest.raises(ConnectionResetError):
        client.wait("t2", 1)
    assert client._consumer is None  # the next call opens another


def test_reply_to_must_name_a_reply_queue() -> None:
    headers = {"task": "t", "id": "1", "reply_to": "canvas"}
    with pytest.raises(envelope.BadMessage, match="reply_to"):
        envelope.check(headers)
    envelope.check({**headers, "reply_to": "canvas.rpc.abc123"})


def test_messages_name_the_callers_reply_queue(tmp_path: Path) -> None:
    app = Canvas("rpc", broker="memory://", backend="rpc://", set_as_current=False)
    plain = Canvas("plain", broker="memory://", set_as_current=False)
    app.conf.embedded_dir = plain.conf.embedded_dir = str(tmp_path)
    try:
        backend = app.backend
        assert isinstance(backend, RpcBackend) and backend.local
        sent = messages.build(app, "t", "1", (), {}, {})
        assert sent.headers["reply_to"] == backend.queue
        # A message a worker sends while it handles another keeps that one's client
        with replying_for({"reply_to": "canvas.rpc.caller"}):
            assert messages.build(app, "t", "2", (), {}, {}).headers["reply_to"] == (
                "canvas.rpc.caller"
            )
        # ...and none when that one had none, nor from beat: nobody waits on those
        with replying_for({}):
            assert "reply_to" not in messages.build(app, "t", "3", (), {}, {}).headers
        with without_replies():
            assert "reply_to" not in messages.build(app, "t", "4", (), {}, {}).headers
        assert "reply_to" not in messages.build(plain, "t", "5", (), {}, {}).headers
    finally:
        app.close()
        plain.close()
