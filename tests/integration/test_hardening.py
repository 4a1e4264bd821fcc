"""One bad message, record or setting never stalls a worker, loses a task or runs it twice.

Each test feeds a real worker what a buggy producer or anyone with write access to the broker or
the store could: the worker must dead-letter the bad input with a reason naming the fault, and
keep serving healthy tasks at once (no backoff, no loop).
"""

from __future__ import annotations

import math
import sqlite3
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis

from canvas import chain
from canvas.backends.redis import RedisBackend
from canvas.core import protocol
from canvas.exceptions import PayloadTooLarge
from canvas.transports.base import REASON_HEADER, Delivery, OutgoingMessage
from tests.support.seed import Seed
from tests.support.servers import check_redis
from tests.support.workers import wait_for

pytestmark = pytest.mark.integration

#: how long a healthy task may take behind the bad messages (backoff loops took 47 s)
PROMPT = 10.0


def _seed(name: str, tmp_path: Path) -> Iterator[Seed]:
    if name != "embedded":
        check_redis()
    seed = Seed(name, tmp_path)
    try:
        yield seed
    finally:
        seed.close()


@pytest.fixture(params=["redis", "embedded"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seed]:
    yield from _seed(request.param, tmp_path)


@pytest.fixture
def redis_env(tmp_path: Path) -> Iterator[Seed]:
    yield from _seed("redis", tmp_path)


def dead_letters(seed: Seed, count: int, timeout: float = 30.0) -> list[Delivery]:
    """Wait for ``count`` messages in the default queue's dead-letter queue; ack them."""
    found: list[Delivery] = []
    dlq = seed.app.transport.consumer([seed.app.conf.task_default_queue + ".dlq"], prefetch=100)
    try:

        def more() -> bool:
            delivery = dlq.get(timeout=0.2)
            if delivery is not None:
                found.append(delivery)
                delivery.ack()
            return len(found) >= count

        wait_for(more, timeout, f"{count} dead letters")
    finally:
        dlq.close()
    return found


def reasons(found: list[Delivery]) -> list[str]:
    return sorted(str(d.headers.get(REASON_HEADER)) for d in found)


def good_body() -> bytes:
    return protocol.encode_body([1, 2], {})[0]


def headers_for(seed: Seed, **fields: Any) -> dict[str, Any]:
    headers: dict[str, Any] = {"task": seed.tasks.add.name, "id": f"bad-{len(fields)}"}
    headers.update(fields)
    return headers


def test_undecodable_frames_on_redis_go_to_the_dlq(redis_env: Seed) -> None:
    seed = redis_env
    queue = seed.app.conf.task_default_queue
    name = queue.encode()
    prefix = struct.pack("!BH", 0, len(name)) + name

    def frame(payload: Any) -> bytes:
        return prefix + msgpack.packb(payload, use_bin_type=True)

    good = [{"task": seed.tasks.add.name, "id": "x"}, good_body(), protocol.MSGPACK, None, b"i"]
    frames = [
        frame(good)[:-5],  # truncated msgpack
        frame({"not": "a list"}),
        frame([["headers", "as", "a", "list"], *good[1:]]),
        prefix + msgpack.packb([{}], use_bin_type=True)[:-1] + b"\xc4\x02\xff\xfe",
        prefix + b"\x95\x81\xa2id\xa3\xff\xfe\xfd",  # invalid UTF-8 in a header
        b"\x01",  # under three bytes
        b"\x00\xff\xffgarbage with no valid header",
        struct.pack("!BH", 0, 4) + b"evil" + msgpack.packb(good, use_bin_type=True),
    ]
    client = redis.Redis.from_url(seed.app.broker_url)
    client.lpush(seed.app.transport.key(queue), *frames)
    seed.start_worker("-P", "prefork", "-c", "2")
    assert seed.tasks.add.delay(2, 3).get(timeout=PROMPT) == 5
    found = dead_letters(seed, len(frames))
    assert all("cannot decode message" in r for r in reasons(found))
    assert sorted(d.body for d in found) == sorted(frames)  # each raw frame, kept as it came
    assert not client.keys(b"canvas:q:evil*") and not client.keys(b"canvas:q:\xff*")
    client.close()


def test_reaper_hands_malformed_frames_to_the_dlq(redis_env: Seed) -> None:
    """A consumer that dies holding frames too short to parse loses none of them."""
    seed = redis_env
    queue = seed.app.conf.task_default_queue
    client = redis.Redis.from_url(seed.app.broker_url)
    dead = seed.app.transport.consumer([queue])
    processing = dead.processing
    client.lpush(processing, b"\x01", b"", b"\x00\x00\x09abc")
    dead.close()  # reaps its processing list at once
    assert client.llen(processing) == 0
    seed.start_worker("-P", "solo")
    found = dead_letters(seed, 3)
    assert sorted(d.body for d in found) == [b"", b"\x00\x00\x09abc", b"\x01"]
    client.close()


def test_embedded_row_with_undecodable_headers_goes_to_the_dlq(tmp_path: Path) -> None:
    gen = _seed("embedded", tmp_path)
    seed = next(gen)
    try:
        seed.app.transport.publish([OutgoingMessage(seed.app.conf.task_default_queue, b"", {})])
        path = seed.app.transport.path
        with sqlite3.connect(path) as db:
            db.execute("UPDATE canvas_messages SET headers = ?", (b"\xc1\xc1 not msgpack",))
        seed.start_worker("-P", "prefork", "-c", "1")
        assert seed.tasks.add.delay(2, 3).get(timeout=PROMPT) == 5
        (found,) = dead_letters(seed, 1)
        assert "cannot decode message: undecodable headers" in found.headers[REASON_HEADER]
    finally:
        next(gen, None)


BAD_FIELDS: list[tuple[str, Any]] = [
    ("eta", "tomorrow"),
    ("eta", [1]),
    ("eta", math.inf),
    ("expires", "soon"),
    ("expires", {"a": 1}),
    ("retries", "3"),
    ("retries", -1),
    ("soft_time_limit", "ten"),
    ("time_limit", "abc"),
    ("errback_for", 5),
    ("errback_for", "not json"),
    ("priority", "high"),
    ("stamps", [1, 2]),
    ("workflow", 7),
]


def test_bad_header_fields_are_dead_lettered_at_once_naming_the_field(env: Seed) -> None:
    seed = env
    queue = seed.app.conf.task_default_queue
    seed.app.transport.publish(
        [
            OutgoingMessage(queue, good_body(), headers_for(seed, **{field: value}, n=i))
            for i, (field, value) in enumerate(BAD_FIELDS)
        ]
    )
    seed.start_worker("-P", "prefork", "-c", "1")
    assert seed.tasks.add.delay(2, 3).get(timeout=PROMPT) == 5
    found = dead_letters(seed, len(BAD_FIELDS))
    for delivery in found:
        reason = delivery.headers[REASON_HEADER]
        named = [f for f, _ in BAD_FIELDS if f"header {f!r}" in reason]
        assert named and "worker_max_deliveries" not in reason, reason
    # The keeper of the one pool process lived through time_limit="abc": hard limits still hold.
    from canvas.exceptions import TimeLimitExceeded

    with pytest.raises(TimeLimitExceeded):
        seed.tasks.hard_limited.delay(10).get(timeout=15)


def test_a_message_over_the_size_limit_is_refused_on_receipt(env: Seed) -> None:
    seed = env
    seed.app.conf.task_max_payload_bytes = 1000
    body = protocol.encode_body(["x" * 2000, 1], {})[0]
    queue = seed.app.conf.task_default_queue
    seed.app.transport.publish([OutgoingMessage(queue, body, headers_for(seed))])
    seed.env["CANVAS_TEST_MAX_PAYLOAD"] = "1000"
    seed.start_worker("-P", "solo")
    (found,) = dead_letters(seed, 1)
    assert "over task_max_payload_bytes=1000" in found.headers[REASON_HEADER]


def test_an_unstorable_result_runs_once_and_fails_naming_its_type(env: Seed, unique: str) -> None:
    seed = env
    seed.start_worker("-P", "prefork", "-c", "1")
    result = seed.tasks.unstorable.delay(unique)
    with pytest.raises(TypeError, match="object"):
        result.get(timeout=PROMPT)
    assert seed.tasks.add.delay(1, 1).get(timeout=PROMPT) == 2
    assert (seed.state / unique).read_text().count("\n") == 1


def test_a_huge_result_fails_clearly_and_is_not_logged_in_full(env: Seed, unique: str) -> None:
    seed = env
    worker = seed.start_worker("-P", "prefork", "-c", "1")
    size = 9 * 1024 * 1024
    with pytest.raises(PayloadTooLarge, match="result_max_payload_bytes"):
        seed.tasks.big.delay(unique, size).get(timeout=30)
    small = seed.tasks.big.delay(unique + "-small", 100_000)
    assert small.get(timeout=PROMPT) == "x" * 100_000
    assert len(worker.output()) < 50_000  # the repr in the log is bounded


def test_task_ids_are_escaped_in_the_log(env: Seed) -> None:
    seed = env
    worker = seed.start_worker("-P", "solo")
    # (a fresh id each run: a result already stored under it would answer before the worker)
    tag = uuid.uuid4().hex[:8]
    evil = f"abc{tag}\n[2026-01-01 00:00:00: INFO/MainProcess] forged \x1b[31mred"
    assert seed.tasks.add.apply_async((1, 2), task_id=evil).get(timeout=PROMPT) == 3
    text = worker.output()
    assert "\x1b" not in text and "\nforged" not in text and "\n[2026-01-01" not in text
    assert f"abc{tag}\\n[2026" in text


def test_a_corrupted_node_record_fails_the_workflow_with_the_reason(redis_env: Seed) -> None:
    seed = redis_env
    add = seed.tasks.add
    result = chain(add.s(1, 2), add.s(3), add.s(4)).apply_async()
    workflow = result.workflow.id
    middle = result.parent.id
    client = redis.Redis.from_url(seed.app.backend.url)
    key = f"canvas-workflow-{{{workflow}}}"
    assert client.hexists(key, f"s:{middle}")
    client.hset(key, f"s:{middle}", b"\x93 corrupted \xc1")
    seed.start_worker("-P", "prefork", "-c", "1")
    with pytest.raises(Exception, match="node record is corrupted"):
        result.get(timeout=PROMPT)
    assert result.parent.state == "FAILURE"
    assert add.delay(1, 1).get(timeout=PROMPT) == 2
    client.close()


BEAT_APP = """
import os
from canvas import Canvas

# main is the queue's name: each run has a beat lease of its own
app = Canvas(os.environ["B_QUEUE"], broker=os.environ["B_BROKER"], backend=os.environ["B_BROKER"],
             task_default_queue=os.environ["B_QUEUE"])
app.conf.beat_schedule = {"tick": {"task": "beatapp.tick", "schedule": 0.2}}
app.conf.beat_lease_ttl = 2.0  # a killed beat's successor takes over within 2 s


@app.task(name="beatapp.tick")
def tick():
    with open(os.path.join(os.environ["B_DIR"], "ticks"), "a") as f:
        f.write(f"{os.getpid()}\\n")
"""


@pytest.mark.parametrize("run", range(2))
def test_worker_with_embedded_beat_consumes_and_stops_on_sigterm(
    tmp_path: Path, unique: str, run: int
) -> None:
    """``worker -B``: the pool runs what beat sends, and one SIGTERM stops all of it."""
    import contextlib
    import os
    import re
    import signal
    import subprocess

    from tests.support.workers import CANVAS, WorkerProcess

    url = check_redis()
    (tmp_path / "beatapp.py").write_text(BEAT_APP)
    env = {**os.environ, "B_BROKER": url, "B_QUEUE": unique, "B_DIR": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CANVAS, "-A", "beatapp", "worker", "-B", "-c", "2", "-l", "INFO"]
            + ["-s", str(tmp_path / "schedule")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(proc, log)
    try:
        worker.wait_ready()
        ticks = tmp_path / "ticks"

        def pids() -> list[int]:
            return [int(p) for p in ticks.read_text().split()] if ticks.exists() else []

        wait_for(lambda: len(pids()) >= 3, 20, "three beat ticks run by the pool")
        # Pool processes replaced while beat runs: a fork while beat's thread held a lock or a
        # connection left new pool processes that never consumed.
        for _ in range(2):
            victims = set(pids())
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            wait_for(
                lambda v=victims: len(set(pids()[-2:]) - v) >= 1,  # type: ignore[misc]
                20,
                "a tick run by a new pool process",
            )
        # A beat process that dies (after it ran a while) is started again.
        started = re.findall(r"Beat process (\d+) started", worker.output())
        os.kill(int(started[-1]), signal.SIGKILL)
        wait_for(
            lambda: len(re.findall(r"Beat process (\d+) started", worker.output())) == 2,
            20,
            "beat started again",
        )
        count = len(pids())
        wait_for(lambda: len(pids()) >= count + 2, 20, "ticks from the new beat")
        if run == 1:
            # A supervisor killed outright leaves no beat behind sending for ever.
            beat = int(re.findall(r"Beat process (\d+) started", worker.output())[-1])
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            wait_for(lambda: not _alive(beat), 20, "the orphaned beat to stop")
            return
        proc.terminate()
        assert proc.wait(20) == 0, worker.output()
        assert "beat: stopped" in worker.output()
    finally:
        worker.kill()


def test_embedded_broker_and_result_files_are_private(tmp_path: Path) -> None:
    import os
    import stat

    gen = _seed("embedded", tmp_path)
    seed = next(gen)
    try:
        old = os.umask(0o022)
        try:
            seed.start_worker("-P", "solo")
            assert seed.tasks.add.delay(1, 2).get(timeout=PROMPT) == 3
        finally:
            os.umask(old)
        directory = tmp_path / "embedded"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        files = [p for p in directory.iterdir() if p.is_file()]
        assert {p.name for p in files} >= {"broker.sqlite", "results.sqlite"}
        for path in files:  # the databases and their -wal/-shm files
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        next(gen, None)


def test_pidfile_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    import os
    import subprocess

    from tests.support.workers import CANVAS

    gen = _seed("embedded", tmp_path)
    seed = next(gen)
    try:
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        link = tmp_path / "worker.pid"
        link.symlink_to(victim)
        command = [*CANVAS, "--app=tasks", "worker", "-P", "solo", "--burst"]
        env = {**os.environ, **seed.env}
        cwd = Path(seed.tasks.__file__).parent
        refused = subprocess.run(
            [*command, "--pidfile", str(link)], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert refused.returncode != 0 and "not a regular file" in refused.stderr
        assert victim.read_text() == "precious\n"
        # A stale pid file of ours (its process is gone) is replaced, then removed at exit.
        stale = tmp_path / "stale.pid"
        stale.write_text("999999999\n")
        ran = subprocess.run(
            [*command, "--pidfile", str(stale)], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert ran.returncode == 0, ran.stderr
        assert not stale.exists()
    finally:
        next(gen, None)


@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
def test_a_forged_result_never_raises_past_except_exception(redis_env: Seed, name: str) -> None:
    from canvas import states
    from canvas.core import metas
    from canvas.exceptions import RemoteError

    seed = redis_env
    forged = metas.make_meta("forged-" + name, states.FAILURE)
    forged["result"] = {"exc_type": name, "exc_module": "builtins", "exc_message": [0]}
    seed.app.backend.store("forged-" + name, states.FAILURE, metas.encode(forged))
    try:
        seed.app.AsyncResult("forged-" + name).get(timeout=5)
    except Exception as exc:
        assert isinstance(exc, RemoteError) and name in str(exc)
    else:
        pytest.fail("get() returned")


def test_a_result_over_redis_pubsub_limit_reaches_its_waiter(redis_env: Seed, unique: str) -> None:
    """Redis drops a subscriber sent over 32 MB: waiters are told the id only, then read it."""
    seed = redis_env
    seed.env["CANVAS_TEST_MAX_RESULT"] = str(64 * 1024 * 1024)
    seed.start_worker("-P", "solo")
    size = 40 * 1024 * 1024
    result = seed.tasks.big.delay(unique, size)
    assert len(result.get(timeout=60)) == size


def test_an_unreadable_parked_message_does_not_stop_the_timer(env: Seed) -> None:
    import time

    seed = env
    space = seed.app.transport.space
    key = f"corrupted-{uuid.uuid4().hex[:8]}:0"
    seed.app.backend.schedule(key, time.time() - 1, b"\xc1 not a record", space=space)
    worker = seed.start_worker("-P", "prefork", "-c", "1")
    assert seed.tasks.add.apply_async((2, 2), countdown=0.5).get(timeout=PROMPT) == 4

    def dropped() -> bool:
        # On the shared Redis another test's worker (same broker, same space) may be the one
        # that reads and drops it: then it is gone from the set, logged elsewhere.
        if f"{key} is unreadable" in worker.output():
            return True
        backend = seed.app.backend
        if isinstance(backend, RedisBackend):
            zset = f"{backend.prefix}-{{scheduled}}-{space}"
            return redis.Redis.from_url(backend.url).zscore(zset, key) is None
        return False

    wait_for(dropped, PROMPT, "the unreadable record to be dropped")


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_task_that_exits_its_process_fails_instead_of_being_lost(
    env: Seed, unique: str, pool: str
) -> None:
    from canvas.exceptions import WorkerLostError

    seed = env
    seed.start_worker("-P", pool, "-c", "1")
    with pytest.raises(WorkerLostError, match="raised SystemExit"):
        seed.tasks.exits.delay(unique).get(timeout=PROMPT)
    # prefork: a new process takes over; threads: the one thread goes on consuming
    assert seed.tasks.add.delay(1, 1).get(timeout=PROMPT) == 2
    # and the worker no longer counts the call that exited as running
    inspect = seed.tasks.app.control.inspect(timeout=5)

    def nothing_running() -> bool:
        active = inspect.active()  # {} until the worker answers
        return bool(active) and not any(active.values())

    wait_for(nothing_running, PROMPT, "the worker to list no running task")
    assert (seed.state / unique).read_text().count("\n") == 1


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"  # a zombie has exited
