"""``canvas dlq list|show|replay|purge`` on the embedded broker, Redis and RabbitMQ.

Dead letters are made the way a worker makes them: a message for a task the worker does not know
is consumed in this process (``consume(..., burst=True)``) and dead-lettered. Each test has its
own queue and removes it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from canvas import security
from canvas.app import Canvas
from canvas.cli.dlq import REPLAYS_HEADER
from canvas.cli.main import cli
from canvas.core.worker import consume
from canvas.security import KEY_ID_HEADER, SIGNED_CONTENT_TYPE
from canvas.transports.base import REASON_HEADER, OutgoingMessage, Transport
from tests.support.servers import AMQP_URL, amqp_connection, redis_db, require_service

pytestmark = pytest.mark.integration

# A database of its own: kombu's lease index is per database, and the transport contract tests
# use one-second leases in theirs.
REDIS_BROKER = redis_db(12)
KEY = "dlq-cli-test-signing-key-0123456789abcdef"
SECRET_ARG = "do-not-print-me"


class SecureCanvas(Canvas):
    """The app with its transport wrapped for ``security_*`` (a no-op once app.py wraps it)."""

    @property
    def transport(self) -> Transport:
        inner = Canvas.transport.fget(self)  # type: ignore[attr-defined]
        return self._connection("secure-transport", lambda: security.wrap(self, inner))  # type: ignore[no-any-return]


@pytest.fixture(params=["embedded", "redis", "amqp"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return f"embedded://{tmp_path / 'broker.db'}"
    if request.param == "redis":
        require_service("Redis", REDIS_BROKER)
        return REDIS_BROKER
    require_service("RabbitMQ", AMQP_URL)
    return AMQP_URL


@pytest.fixture
def make_app(broker: str) -> Iterator[Callable[..., tuple[Canvas, str]]]:
    """``make_app(**settings)``: an app on its own queue, importable as ``-A <module>``."""
    made: list[tuple[Canvas, str, str]] = []

    def make(**settings: Any) -> tuple[Canvas, str]:
        queue = f"dlq-cli-{uuid.uuid4().hex[:10]}"
        app = SecureCanvas(
            "dlqtest",
            broker=broker,
            backend="memory://",
            set_as_current=False,
            task_default_queue=queue,
            worker_lease_seconds=30.0,
            **settings,
        )
        module = types.ModuleType(f"dlq_cli_app_{uuid.uuid4().hex[:8]}")
        module.app = app  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
        made.append((app, module.__name__, queue))
        return app, module.__name__

    yield make
    for app, module_name, queue in made:
        sys.modules.pop(module_name, None)
        transport = security.unwrap(app.transport)
        for name in (queue, queue + ".dlq"):
            transport.purge(name)
        app.close()
        if broker.startswith("amqp"):
            _delete_amqp_queues([queue, queue + ".dlq"])


def _delete_amqp_queues(names: list[str]) -> None:
    conn = amqp_connection()
    try:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)
    finally:
        conn.close()


def run(module: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["-A", module, "dlq", *args], input=input, catch_exceptions=False
    )


def work(app: Canvas) -> None:
    """Consume the app's queue until it is empty, in this process."""
    consume(app, [str(app.conf.task_default_queue)], "test@host", threading.Event(), burst=True)


def dead_letter_unknown(app: Canvas, n: int = 1) -> list[str]:
    """Send ``n`` calls of a task no worker knows; the worker dead-letters them."""
    ids = [
        app.send_task("proj.not_registered", args=[i, SECRET_ARG], kwargs={"k": SECRET_ARG}).id
        for i in range(n)
    ]
    work(app)
    return ids


def dlq_size(app: Canvas) -> int:
    return security.unwrap(app.transport).size(str(app.conf.task_default_queue) + ".dlq")


def wait_size(app: Canvas, queue: str, expected: int, timeout: float = 10.0) -> None:
    transport = security.unwrap(app.transport)
    deadline = time.monotonic() + timeout
    while transport.size(queue) != expected:
        assert time.monotonic() < deadline, f"{queue} never had {expected} messages"
        time.sleep(0.05)


def test_list_shows_id_task_size_and_reason_never_arguments(make_app) -> None:
    app, module = make_app()
    ids = dead_letter_unknown(app, 3)
    result = run(module, "list")
    assert result.exit_code == 0, result.output
    for task_id in ids:
        assert task_id in result.output
    assert "proj.not_registered" in result.output
    assert "unknown task 'proj.not_registered'" in result.output
    assert SECRET_ARG not in result.output
    assert "3 dead letter(s)" in result.output
    # Listing changes nothing, and twice gives the same answer.
    wait_size(app, str(app.conf.task_default_queue) + ".dlq", 3)
    rows = [json.loads(line) for line in run(module, "list", "--json").output.splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert all(r["size"] > 0 and r["reason"].startswith("unknown task") for r in rows)


def test_list_limit_and_an_empty_queue(make_app) -> None:
    app, module = make_app()
    assert "empty" in run(module, "list").output
    dead_letter_unknown(app, 3)
    result = run(module, "list", "--limit", "2")
    assert "3 dead letter(s), 1 not shown (--limit)" in result.output


def test_show_gives_arguments_only_when_asked(make_app) -> None:
    app, module = make_app()
    (task_id,) = dead_letter_unknown(app)
    plain = run(module, "show", task_id)
    assert plain.exit_code == 0, plain.output
    assert f"id: {task_id}" in plain.output and "reason: unknown task" in plain.output
    assert SECRET_ARG not in plain.output
    shown = json.loads(run(module, "show", task_id, "--args", "--json").output)
    assert shown["args"] == [0, SECRET_ARG] and shown["kwargs"] == {"k": SECRET_ARG}
    missing = run(module, "show", "no-such-id")
    assert missing.exit_code == 1 and "No dead letter with id 'no-such-id'" in missing.output


def test_replay_by_id_runs_once_the_task_exists(make_app) -> None:
    app, module = make_app()
    first, second = dead_letter_unknown(app, 2)
    calls: list[Any] = []

    def not_registered(i: int, s: str, k: Any = None) -> int:
        calls.append(i)
        return i

    app.task(name="proj.not_registered")(not_registered)
    result = run(module, "replay", first)
    assert result.exit_code == 0, result.output
    assert f"replayed 1 message(s) to {app.conf.task_default_queue}" in result.output
    work(app)
    assert calls == [0]
    assert app.AsyncResult(first).get(timeout=5) == 0
    assert [
        r["id"] for r in map(json.loads, run(module, "list", "--json").output.splitlines())
    ] == [second]


def test_replay_all_and_the_replay_count(make_app) -> None:
    app, module = make_app()
    ids = dead_letter_unknown(app, 3)
    assert run(module, "replay", "--all").output.startswith("replayed 3 message(s)")
    assert dlq_size(app) == 0
    work(app)  # still unknown: dead-lettered again, now marked as replayed once
    wait_size(app, str(app.conf.task_default_queue) + ".dlq", 3)
    shown = json.loads(run(module, "show", ids[0], "--json").output)
    assert shown["headers"][REPLAYS_HEADER] == 1


def test_purge_by_id_and_all(make_app) -> None:
    app, module = make_app()
    first, *rest = dead_letter_unknown(app, 3)
    assert run(module, "purge", first).output.strip().startswith("purged 1 message(s)")
    assert dlq_size(app) == 2
    aborted = run(module, "purge", "--all", input="n\n")
    assert aborted.exit_code == 1 and dlq_size(app) == 2
    assert "purged 2 message(s)" in run(module, "purge", "--all", input="y\n").output
    assert dlq_size(app) == 0


def test_usage_errors(make_app) -> None:
    _, module = make_app()
    for command in ("replay", "purge"):
        result = run(module, command)
        assert result.exit_code == 2 and "give --all" in result.output


def test_signed_dead_letters_are_verified_and_resigned_on_replay(make_app) -> None:
    app, module = make_app(security_key=KEY, security_encryption_key=KEY[::-1])
    (task_id,) = dead_letter_unknown(app)
    rows = [json.loads(line) for line in run(module, "list", "--json").output.splitlines()]
    assert rows[0]["signed_by"] == security.fingerprint(KEY)
    shown = json.loads(run(module, "show", task_id, "--args", "--json").output)
    assert shown["args"] == [0, SECRET_ARG]  # decrypted for whoever holds the key
    # An altered dead letter, and an unsigned one, are refused and stay.
    transport = security.unwrap(app.transport)
    queue = str(app.conf.task_default_queue)
    reader = transport.consumer([queue + ".dlq"])
    dead = reader.get(5)
    assert dead is not None
    forged = bytearray(dead.body)
    forged[-1] ^= 1
    headers = {**dead.headers, "id": "forged"}
    transport.publish(
        [
            OutgoingMessage(queue + ".dlq", bytes(forged), headers, SIGNED_CONTENT_TYPE),
            OutgoingMessage(queue + ".dlq", b"[[1],{}]", {**headers, "id": "unsigned"}),
        ]
    )
    dead.reject(requeue=True)
    reader.close()
    result = run(module, "replay", "--all")
    assert result.exit_code == 1
    assert "refused forged: bad signature" in result.output
    assert "refused unsigned: unsigned message" in result.output
    assert "replayed 1 message(s)" in result.output and "refused 2" in result.output
    wait_size(app, queue + ".dlq", 2)
    # The replayed message is freshly signed: a worker accepts it (and, the task being unknown
    # still, dead-letters it for that reason, not for its signature).
    reader = transport.consumer([queue])
    raw = reader.get(5)
    assert raw is not None and raw.headers[KEY_ID_HEADER] == security.fingerprint(KEY)
    raw.reject(requeue=True)
    reader.close()
    work(app)
    reasons = {
        r["id"]: r["reason"]
        for r in map(json.loads, run(module, "list", "--json").output.splitlines())
    }
    assert reasons[task_id] == "unknown task 'proj.not_registered'"


def test_a_captured_message_that_already_ran_is_not_replayed(make_app) -> None:
    """A signed message captured off the wire, dropped into the dead-letter queue under a made-up
    clear id after it ran: replay matches the signed id, and refuses a finished call."""
    app, module = make_app(security_key=KEY)
    calls: list[int] = []
    app.task(name="proj.echo")(lambda i: calls.append(i) or i)
    queue = str(app.conf.task_default_queue)
    task_id = app.send_task("proj.echo", args=[7]).id
    transport = security.unwrap(app.transport)
    reader = transport.consumer([queue])
    captured = reader.get(5)
    assert captured is not None
    body, content_type = captured.body, captured.content_type
    captured.reject(requeue=True)
    reader.close()
    work(app)
    assert calls == [7] and app.AsyncResult(task_id).get(timeout=5) == 7
    clear = {"id": "innocent", "task": "proj.echo", REASON_HEADER: "made up"}
    transport.publish([OutgoingMessage(queue + ".dlq", body, clear, content_type)])
    by_clear_id = run(module, "replay", "innocent")
    assert by_clear_id.exit_code == 1
    assert f"its signed headers say it is {task_id!r}" in by_clear_id.output
    by_real_id = run(module, "replay", task_id)
    assert by_real_id.exit_code == 1 and "already ended SUCCESS" in by_real_id.output
    assert dlq_size(app) == 1
    forced = run(module, "replay", "--all", "--force")
    assert forced.exit_code == 0, forced.output
    assert f"proj.echo[{task_id}]" in forced.output  # what really runs, with its original id
    work(app)
    assert calls == [7, 7]


def test_dead_letter_output_escapes_control_characters(make_app) -> None:
    app, module = make_app()
    queue = str(app.conf.task_default_queue)
    evil = "x\n\x1b[2Jforged line"
    headers = {"id": evil, "task": "t\x1b]0;title\x07", REASON_HEADER: "r\nr"}
    security.unwrap(app.transport).publish([OutgoingMessage(queue + ".dlq", b"", headers)])
    for args in (["list"], ["show", evil]):
        output = run(module, *args).output
        assert "\x1b" not in output and "\x07" not in output and "\nforged" not in output
        assert "x\\n\\x1b[2Jforged line" in output
