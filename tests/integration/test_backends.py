"""The result-store contract, run against every store: memory, Redis, SQLite and PostgreSQL,
and the Django app's store (the SQL store on its models' tables) on SQLite and PostgreSQL.

Redis and PostgreSQL are the real servers (``CANVAS_TEST_REDIS``, ``CANVAS_TEST_POSTGRES``, by
default on 127.0.0.1); a test fails, never skips, when one is not answering. Each test gets its
own key prefix or table prefix and removes what it wrote.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import create_engine, func, select

from canvas import states
from canvas.backends.base import Backend, Fired, NodeRecord
from canvas.backends.memory import MemoryBackend
from canvas.backends.redis import RedisBackend
from canvas.backends.sql import SQLBackend
from canvas.contrib.django.store import DjangoStore, DjangoTables
from canvas.exceptions import ImproperlyConfigured
from tests.support.servers import POSTGRES_URL

pytestmark = pytest.mark.integration


Factory = Callable[..., Backend]


def _tracking(make: Callable[[dict[str, Any]], Backend]) -> tuple[Factory, list[Backend]]:
    made: list[Backend] = []

    def factory(**options: Any) -> Backend:
        made.append(make(options))
        return made[-1]

    return factory, made


# -- helpers run in child processes (fork: they use the parent's backend object) --------------
def _reporting(body: Callable[[], Any], out: Any) -> None:
    try:
        out.put(body())
    except Exception as exc:  # the parent fails the test with it instead of timing out
        out.put(f"child failed: {exc!r}")


def _complete_all(backend: Backend, workflow_id: str, ids: list[str], go: Any, out: Any) -> None:
    def body() -> list[tuple[str, str]]:
        go.wait(10)
        return [
            (node_id, f.id)
            for node_id in ids
            for f in backend.complete(workflow_id, node_id, states.SUCCESS, node_id.encode())
        ]

    _reporting(body, out)


def _store_once(cls: type[Backend], url: str, options: dict[str, Any], go: Any, out: Any) -> None:
    def body() -> list[bytes | None]:
        go.wait(10)
        backend = cls(url, options)
        task_id = f"t-{os.getpid()}"
        backend.store(task_id, states.SUCCESS, b"ok")
        try:
            return backend.get([task_id])
        finally:
            backend.close()

    _reporting(body, out)


def _gather(procs: list[Any], go: Any, out: Any) -> list[Any]:
    for p in procs:
        p.start()
    go.set()
    got = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
    out.close()
    out.join_thread()
    assert [g for g in got if isinstance(g, str)] == []
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return got


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _node(node_id: str, successors: tuple[str, ...] = (), n_inputs: int = 0) -> NodeRecord:
    return NodeRecord(node_id, f"spec-{node_id}".encode(), successors, n_inputs)


def _join(n: int) -> tuple[list[NodeRecord], list[str]]:
    inputs = [f"in{k}" for k in range(n)]
    return [_node(i, ("join",)) for i in inputs] + [_node("join", (), n)], inputs


def _uid() -> str:
    return uuid.uuid4().hex


# -- the contract ----------------------------------------------------------------------------
class BackendContract:
    """Behaviour every store promises; subclasses provide the ``factory`` fixture."""

    #: whether the store keeps revoked ids (one that does not says so when asked)
    keeps_revokes = True

    @pytest.fixture
    def backend(self, factory: Factory) -> Backend:
        return factory()

    def waiting(self, backend: Backend, task_id: str) -> bool:
        """Whether a waiter is now blocked on ``task_id`` (true where it cannot be seen)."""
        return True

    def test_store_get_forget(self, backend: Backend) -> None:
        a, b = _uid(), _uid()
        assert backend.get([]) == []
        assert backend.get([a]) == [None]
        backend.store(a, states.STARTED, b"started")
        backend.store(a, states.SUCCESS, b"\x00done\n")
        backend.store(b, states.FAILURE, b"boom")
        assert backend.get([a, _uid(), b]) == [b"\x00done\n", None, b"boom"]
        backend.forget(a)  # Celery's form: one id
        backend.forget_many([])
        assert backend.get([a, b]) == [None, b"boom"]
        c = _uid()
        backend.store(c, states.SUCCESS, b"c")
        backend.forget([b, c])  # a list deletes each
        assert backend.get([b, c]) == [None, None]

    def test_wait_returns_when_another_thread_stores(self, backend: Backend) -> None:
        task_id, got = _uid(), []
        waiter = threading.Thread(target=lambda: got.append(backend.wait(task_id, 10)))
        waiter.start()
        _until(lambda: self.waiting(backend, task_id))
        backend.store(task_id, states.STARTED, b"not yet")
        backend.store(task_id, states.SUCCESS, b"result")
        waiter.join(10)
        assert got == [b"result"]

    def test_wait_returns_a_stored_result_at_once(self, backend: Backend) -> None:
        task_id = _uid()
        backend.store(task_id, states.REVOKED, b"revoked")
        assert backend.wait(task_id, 0) == b"revoked"
        assert backend.wait(task_id, None) == b"revoked"

    def test_wait_times_out_with_none(self, backend: Backend) -> None:
        task_id = _uid()
        backend.store(task_id, states.STARTED, b"running")
        start = time.monotonic()
        assert backend.wait(task_id, 0.3) is None
        assert 0.25 <= time.monotonic() - start < 3
        assert backend.wait(_uid(), 0) is None

    def test_workflow_saved_and_grown(self, backend: Backend) -> None:
        wf = _uid()
        nodes = [_node("a", ("b",)), _node("b", ("c",), 1), _node("c", (), 1)]
        backend.save_workflow(wf, nodes, b"info")
        assert backend.workflow_info(wf) == b"info"
        assert backend.workflow_nodes(wf) == nodes
        assert backend.node_specs(wf, ["c", "x", "a"]) == [b"spec-c", None, b"spec-a"]
        backend.save_workflow(wf, [_node("d", (), 1)], b"info2")
        assert [n.id for n in backend.workflow_nodes(wf)] == ["a", "b", "c", "d"]
        assert backend.workflow_info(wf) == b"info2"
        assert backend.workflow_info(_uid()) is None
        assert backend.workflow_nodes(_uid()) == []
        assert backend.node_specs(_uid(), ["a"]) == [None]

    def test_complete_wires_a_chain(self, backend: Backend) -> None:
        wf = _uid()
        a, b, c = (f"{x}-{wf}" for x in "abc")
        backend.save_workflow(wf, [_node(a, (b,)), _node(b, (c,), 1), _node(c, (), 1)], b"")
        assert backend.complete(wf, a, states.SUCCESS, b"ra") == [Fired(b, f"spec-{b}".encode())]
        assert backend.get([a]) == [b"ra"]
        assert backend.wait(a, 0) == b"ra"
        assert backend.complete(wf, b, states.SUCCESS, b"rb") == [Fired(c, f"spec-{c}".encode())]
        assert backend.complete(wf, c, states.SUCCESS, b"rc") == []
        assert backend.get([a, b, c]) == [b"ra", b"rb", b"rc"]

    def test_join_fires_once_on_its_last_input(self, backend: Backend) -> None:
        wf = _uid()
        nodes, inputs = _join(3)
        backend.save_workflow(wf, nodes, b"")
        assert backend.complete(wf, inputs[2], states.SUCCESS, b"2") == []
        assert backend.complete(wf, inputs[0], states.SUCCESS, b"0") == []
        assert backend.complete(wf, inputs[0], states.SUCCESS, b"again") == []
        assert backend.complete(wf, inputs[1], states.SUCCESS, b"1") == [
            Fired("join", b"spec-join")
        ]
        assert backend.complete(wf, inputs[1], states.SUCCESS, b"1") == []

    def test_fan_out_fires_every_successor_in_order(self, backend: Backend) -> None:
        wf = _uid()
        succ = tuple(f"s{k}" for k in range(5))
        backend.save_workflow(wf, [_node("root", succ)] + [_node(s, (), 1) for s in succ], b"")
        fired = backend.complete(wf, "root", states.SUCCESS, b"")
        assert [f.id for f in fired] == list(succ)

    def test_second_complete_keeps_the_first_meta(self, backend: Backend) -> None:
        wf, a = _uid(), _uid()
        backend.save_workflow(wf, [_node(a, ("b",)), _node("b", (), 1)], b"")
        assert backend.complete(wf, a, states.SUCCESS, b"first") == [Fired("b", b"spec-b")]
        assert backend.complete(wf, a, states.FAILURE, b"second") == []
        assert backend.get([a]) == [b"first"]

    def test_complete_without_a_workflow_still_records(self, backend: Backend) -> None:
        task_id = _uid()
        assert backend.complete(_uid(), task_id, states.SUCCESS, b"meta") == []
        assert backend.get([task_id]) == [b"meta"]

    def test_twenty_threads_fire_a_join_once(self, backend: Backend) -> None:
        wf = _uid()
        nodes, inputs = _join(20)
        backend.save_workflow(wf, nodes, b"")
        start = threading.Barrier(len(inputs))
        results: dict[str, list[Fired]] = {}

        def run(node_id: str) -> None:
            start.wait(10)
            results[node_id] = backend.complete(wf, node_id, states.SUCCESS, b"")

        threads = [threading.Thread(target=run, args=(i,)) for i in inputs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 20
        assert sorted(f.id for fired in results.values() for f in fired) == ["join"]

    def test_twenty_threads_complete_one_node_once(self, backend: Backend) -> None:
        wf = _uid()
        backend.save_workflow(wf, [_node("a", ("b",)), _node("b", (), 1)], b"")
        start = threading.Barrier(20)
        results: list[list[Fired]] = []

        def run(k: int) -> None:
            start.wait(10)
            results.append(backend.complete(wf, "a", states.SUCCESS, str(k).encode()))

        threads = [threading.Thread(target=run, args=(k,)) for k in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(len(r) for r in results) == [0] * 19 + [1]

    def test_scheduled_messages_are_leased_until_acked(self, backend: Backend) -> None:
        now = time.time()
        assert backend.next_due() is None
        backend.schedule("k1", now - 10, b"p1")
        backend.schedule("k2", now - 5, b"p2")
        backend.schedule("k3", now + 3600, b"p3")
        assert backend.next_due() == pytest.approx(now - 10)
        assert backend.claim_due(now, lease=30) == [("k1", b"p1"), ("k2", b"p2")]
        assert backend.claim_due(now, lease=30) == []
        assert backend.next_due() == pytest.approx(now + 30)
        # Given a claimer that died, when the lease runs out, the payloads come back.
        assert backend.claim_due(now + 31, lease=30) == [("k1", b"p1"), ("k2", b"p2")]
        backend.ack_scheduled(["k1"])
        assert backend.claim_due(now + 100, lease=30) == [("k2", b"p2")]
        backend.ack_scheduled(["k2", "missing"])
        backend.ack_scheduled([])
        assert backend.next_due() == pytest.approx(now + 3600)
        backend.schedule("k3", now - 1, b"p3b")  # the key is unique: rescheduling replaces
        assert backend.claim_due(now, lease=30) == [("k3", b"p3b")]
        backend.ack_scheduled(["k3"])
        assert backend.next_due() is None

    def test_parked_messages_are_released_only_to_their_own_broker(self, backend: Backend) -> None:
        # Given two apps on different brokers sharing this store, each parking a message
        now = time.time()
        backend.schedule("same-id:0", now - 5, b"for broker a", space="a")
        backend.schedule("same-id:0", now - 4, b"for broker b", space="b")
        backend.schedule("x|y%_", now - 3, b"odd key", space="a")
        # When broker a's worker looks, it sees and takes only its own
        assert backend.next_due(space="a") == pytest.approx(now - 5)
        assert backend.claim_due(now, lease=30, space="a") == [
            ("same-id:0", b"for broker a"),
            ("x|y%_", b"odd key"),
        ]
        # Then broker b's message waits for broker b, untouched by a's claim and ack
        backend.ack_scheduled(["same-id:0", "x|y%_"], space="a")
        assert backend.next_due(space="a") is None
        assert backend.next_due() is None
        assert backend.claim_due(now, lease=30, space="b") == [("same-id:0", b"for broker b")]
        backend.ack_scheduled(["same-id:0"], space="b")
        assert backend.next_due(space="b") is None

    def test_claim_due_honours_limit(self, backend: Backend) -> None:
        now = time.time()
        for k in range(5):
            backend.schedule(f"k{k}", now - 10 + k, f"p{k}".encode())
        assert [key for key, _ in backend.claim_due(now, 60, limit=2)] == ["k0", "k1"]
        assert [key for key, _ in backend.claim_due(now, 60, limit=10)] == ["k2", "k3", "k4"]

    def test_concurrent_claims_take_disjoint_batches(self, backend: Backend) -> None:
        now = time.time()
        for k in range(60):
            backend.schedule(f"k{k}", now - 1, b"")
        start = threading.Barrier(6)
        claimed: list[str] = []

        def run() -> None:
            start.wait(10)
            while batch := backend.claim_due(now, 60, limit=7):
                claimed.extend(key for key, _ in batch)

        threads = [threading.Thread(target=run) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(claimed) == sorted(f"k{k}" for k in range(60))

    def test_leases(self, backend: Backend) -> None:
        name = _uid()
        assert backend.acquire_lease(name, "a", 30)
        assert not backend.acquire_lease(name, "b", 30)
        assert backend.acquire_lease(name, "a", 30)  # renewed by its owner
        backend.release_lease(name, "b")  # not b's to give up
        assert not backend.acquire_lease(name, "b", 30)
        backend.release_lease(name, "a")
        assert backend.acquire_lease(name, "b", 30)

    def test_lease_is_taken_over_after_its_ttl(self, backend: Backend) -> None:
        name = _uid()
        assert backend.acquire_lease(name, "a", 0.2)
        assert not backend.acquire_lease(name, "b", 10)
        start = time.monotonic()
        _until(lambda: backend.acquire_lease(name, "b", 10))
        assert time.monotonic() - start > 0.1
        assert not backend.acquire_lease(name, "a", 10)

    def test_incr(self, backend: Backend) -> None:
        key = _uid()
        assert [backend.incr(key, 60) for _ in range(3)] == [1, 2, 3]
        assert backend.incr(_uid(), 60) == 1
        short = _uid()
        assert backend.incr(short, 0.2) == 1
        assert backend.incr(short, 0.2) == 2
        _until(lambda: backend.incr(short, 0.2) == 1)  # its first use started the ttl

    def test_incr_by_takes_a_count_back(self, backend: Backend) -> None:
        key = _uid()
        assert [backend.incr(key, 60, by=n) for n in (1, 1, -1, 0)] == [1, 2, 1, 1]

    def test_claim_node_counts_claims_and_reads_the_spec(self, backend: Backend) -> None:
        wf, a = _uid(), _uid()
        backend.save_workflow(wf, [_node(a, ())], b"info")
        key = f"claim:{{{wf}}}:{a}:0"
        assert backend.claim_node(wf, a, key, 60) == (1, b"spec-" + a.encode())
        assert backend.claim_node(wf, a, key, 60) == (2, b"spec-" + a.encode())
        assert backend.incr(key, 60) == 3  # the same counter as incr's
        assert backend.claim_node(_uid(), a, f"claim:{{x}}:{_uid()}", 60) == (1, None)
        short = f"claim:{{{wf}}}:{a}:1"
        assert backend.claim_node(wf, a, short, 0.2)[0] == 1
        _until(lambda: backend.claim_node(wf, a, short, 0.2)[0] == 1)  # its first use set a ttl

    def test_revokes_are_kept_for_their_ttl_and_listed_since_a_time(self, backend: Backend) -> None:
        if not self.keeps_revokes:
            with pytest.raises(NotImplementedError, match="statedb"):
                backend.add_revoked(["x"], 60)
            with pytest.raises(NotImplementedError, match="statedb"):
                backend.revoked_since(0)
            return
        # Given two revokes, one with a short time to live, and a third made later
        before = time.time() - 0.001
        first, short, later = _uid(), _uid(), _uid()
        backend.add_revoked([first], 60)
        backend.add_revoked([short], 0.3)
        mark = time.time()
        _until(lambda: time.time() > mark + 0.002)  # the clock moves on
        backend.add_revoked([later], 60)
        seen = dict(backend.revoked_since(before))
        # Then each is listed with its revoke time, and since= leaves out the older ones
        assert {first, short, later} <= set(seen)
        assert seen[first] <= mark < seen[later]
        assert later in dict(backend.revoked_since(seen[later]))
        assert first not in dict(backend.revoked_since(seen[later]))
        # And the short one expires on its own, the others stay
        _until(lambda: short not in dict(backend.revoked_since(before)))
        assert {first, later} <= set(dict(backend.revoked_since(before)))
        # And revoking again keeps the id once, from its latest revoke
        backend.add_revoked([first], 60)
        again = [t for t, _ in backend.revoked_since(before) if t == first]
        assert again == [first] and dict(backend.revoked_since(before))[first] > seen[later]

    def test_records_expire(self, factory: Factory) -> None:
        # (long enough that a loaded machine still reads the record before it expires)
        backend = factory(expires=1.5)
        task_id, wf = _uid(), _uid()
        backend.store(task_id, states.SUCCESS, b"meta")
        backend.save_workflow(wf, [_node("a")], b"info")
        assert backend.get([task_id]) == [b"meta"]
        _until(lambda: backend.get([task_id]) == [None] and backend.workflow_info(wf) is None, 15)
        assert backend.workflow_nodes(wf) == []
        assert backend.wait(task_id, 0) is None


class ProcessContract(BackendContract):
    """For stores that several worker processes share."""

    def test_processes_fire_a_join_once(self, backend: Backend) -> None:
        # Given 4 forked processes that each complete all 30 inputs of one join (every input
        # runs 4 times, as under redelivery), exactly one call fires the join.
        wf = _uid()
        nodes, inputs = _join(30)
        backend.save_workflow(wf, nodes, b"")  # the parent's connection is open when forking
        ctx = multiprocessing.get_context("fork")
        go, out = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_complete_all, args=(backend, wf, inputs[k:] + inputs[:k], go, out))
            for k in (0, 8, 15, 23)
        ]
        fired = [item for got in _gather(procs, go, out) for item in got]
        assert [f for _, f in fired] == ["join"]
        assert backend.get(inputs) == [i.encode() for i in inputs]
        # The parent's own connection still works after the children used theirs.
        assert backend.complete(wf, "join", states.SUCCESS, b"") == []

    def test_processes_share_results(self, factory: Factory) -> None:
        # Several processes creating the store at once (tables, scripts) all succeed.
        backend = factory()
        ctx = multiprocessing.get_context("fork")
        go, out = ctx.Event(), ctx.Queue()
        args = (type(backend), backend.url, backend.options, go, out)
        procs = [ctx.Process(target=_store_once, args=args) for _ in range(4)]
        got = _gather(procs, go, out)
        assert got == [[b"ok"]] * 4
        assert backend.get([f"t-{p.pid}" for p in procs]) == [b"ok"] * 4


# -- the stores ------------------------------------------------------------------------------
class TestMemory(BackendContract):
    @pytest.fixture
    def factory(self) -> Factory:
        return lambda **options: MemoryBackend("memory://", options)

    def test_instances_do_not_share_state(self) -> None:
        one, two = MemoryBackend(), MemoryBackend()
        one.store("t", states.SUCCESS, b"x")
        assert two.get(["t"]) == [None]


class TestRedis(ProcessContract):
    @pytest.fixture
    def prefix(self) -> str:
        return f"canvas-test-{_uid()[:12]}"

    @pytest.fixture
    def client(self, redis_url: str) -> Iterator[redis.Redis]:
        client = redis.Redis.from_url(redis_url)
        yield client
        client.close()

    @pytest.fixture
    def factory(self, redis_url: str, prefix: str, client: redis.Redis) -> Iterator[Factory]:
        factory, made = _tracking(
            lambda options: RedisBackend(redis_url, {"prefix": prefix, **options})
        )
        yield factory
        for backend in made:
            backend.close()
        keys = list(client.scan_iter(match=f"{prefix}-*"))
        if keys:
            client.delete(*keys)

    def waiting(self, backend: Backend, task_id: str) -> bool:
        assert isinstance(backend, RedisBackend)
        client = backend._conn().client
        channel = backend._meta_key(task_id)
        return bool(dict(client.pubsub_numsub(channel)).get(channel.encode()))

    def test_every_key_has_a_ttl(self, backend: Backend, client: redis.Redis, prefix: str) -> None:
        wf = _uid()
        nodes, inputs = _join(2)
        backend.save_workflow(wf, nodes, b"info")
        for node_id in inputs:
            backend.complete(wf, node_id, states.SUCCESS, b"")
        backend.store(_uid(), states.STARTED, b"")
        backend.schedule("k", time.time() + 7 * 86400, b"p")
        backend.claim_due(time.time(), 10)
        backend.acquire_lease("beat", "me", 10)
        backend.incr("count", 10)
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{prefix}-*"))
        assert len(keys) >= 7
        assert {k: client.pttl(k) > 0 for k in keys} == {k: True for k in keys}
        assert [k for k in keys if wf in k] == [f"{prefix}-workflow-{{{wf}}}"]
        # A far-off delayed message keeps its set alive until after it is due.
        assert client.pttl(f"{prefix}-{{scheduled}}") > 7 * 86400 * 1000

    def test_wait_reuses_its_pubsub_connection(self, backend: Backend) -> None:
        assert isinstance(backend, RedisBackend)
        for _ in range(3):
            assert backend.wait(_uid(), 0.05) is None
            task_id = _uid()
            backend.store(task_id, states.SUCCESS, b"x")
            assert backend.wait(task_id, 5) == b"x"
        assert len(backend._conn().idle) == 1


class TestSQLite(ProcessContract):
    @pytest.fixture
    def factory(self, tmp_path: Any) -> Iterator[Factory]:
        url = f"sqlite:///{tmp_path / 'canvas.db'}"
        factory, made = _tracking(lambda options: SQLBackend(url, options))
        yield factory
        for backend in made:
            backend.close()

    def test_memory_database_is_refused(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="sqlite:///canvas.db"):
            SQLBackend("sqlite://")

    def test_cleanup_deletes_expired_rows(self, factory: Factory) -> None:
        backend = factory(expires=0.05, cleanup_every=0)
        assert isinstance(backend, SQLBackend)
        backend.store("t", states.SUCCESS, b"")
        backend.save_workflow("wf", [_node("a", ("b",)), _node("b", (), 1)], b"")
        backend.complete("wf", "a", states.SUCCESS, b"")
        _until(lambda: backend.get(["t", "a"]) == [None, None])  # "a" was written last
        backend.cleanup()
        engine = backend._current().engine
        with engine.connect() as conn:
            counts = [
                conn.scalar(select(func.count()).select_from(t)) for t in backend.tables.expiring
            ]
        assert counts == [0] * len(counts)


def _open_store(url: str, go: Any, out: Any) -> None:
    def body() -> list[bytes | None]:
        go.wait(10)
        backend = SQLBackend(url)
        try:
            return backend.get(["none"])
        finally:
            backend.close()

    _reporting(body, out)


def test_processes_opening_a_rollback_journal_file_together_all_switch_it_to_wal(
    tmp_path: Any,
) -> None:
    # Given SQLite files in rollback-journal mode (as Django's migrations leave them), when
    # several processes open each at once, then none fails with "database is locked".
    ctx = multiprocessing.get_context("fork")
    for n in range(5):
        path = tmp_path / f"rollback-{n}.db"
        sqlite3.connect(path).close()
        go, out = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_open_store, args=(f"sqlite:///{path}", go, out)) for _ in range(6)
        ]
        assert _gather(procs, go, out) == [[None]] * 6


class TestPostgreSQL(ProcessContract):
    @pytest.fixture
    def factory(self, postgres_url: str) -> Iterator[Factory]:
        prefix = f"canvas_t{_uid()[:12]}"
        factory, made = _tracking(
            lambda options: SQLBackend(postgres_url, {"prefix": prefix, **options})
        )
        yield factory
        for backend in made:
            backend.close()
        tables = SQLBackend(postgres_url, {"prefix": prefix}).tables
        engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
        tables.metadata.drop_all(engine)
        engine.dispose()

    def waiting(self, backend: Backend, task_id: str) -> bool:
        assert isinstance(backend, SQLBackend)
        query = "SELECT count(*) FROM pg_stat_activity WHERE query = %s AND state = 'idle'"
        listen = f'LISTEN "{backend._channel(task_id)}"'
        with psycopg.connect(POSTGRES_URL) as conn:
            row = conn.execute(query, [listen]).fetchone()
        return bool(row and row[0])

    def test_url_schemes_use_psycopg(self) -> None:
        for url in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
            assert SQLBackend(url)._url.drivername == "postgresql+psycopg"


# -- the Django app's store: the tables its migrations make (tests/integration/test_django_*
#    checks the migrations make these), created here under a prefix of the test's own --------
def _django_factory(url: str) -> Iterator[Factory]:
    prefix = f"canvas_t{_uid()[:12]}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    tables = DjangoTables(prefix)
    tables.metadata.create_all(engine)
    factory, made = _tracking(lambda options: DjangoStore(url, {"prefix": prefix, **options}))
    yield factory
    for backend in made:
        backend.close()
    tables.metadata.drop_all(engine)
    engine.dispose()


class TestDjangoSQLite(ProcessContract):
    keeps_revokes = False  # no model for them yet: worker --statedb keeps them

    @pytest.fixture
    def factory(self, tmp_path: Any) -> Iterator[Factory]:
        yield from _django_factory(f"sqlite:///{tmp_path / 'django.sqlite3'}")


class TestDjangoPostgreSQL(ProcessContract):
    keeps_revokes = False  # no model for them yet: worker --statedb keeps them

    @pytest.fixture
    def factory(self, postgres_url: str) -> Iterator[Factory]:
        yield from _django_factory(postgres_url)

    waiting = TestPostgreSQL.waiting

    def test_missing_tables_name_the_migration(self, postgres_url: str) -> None:
        store = DjangoStore(postgres_url, {"prefix": f"canvas_t{_uid()[:12]}"})
        with pytest.raises(ImproperlyConfigured, match="manage.py migrate canvas_django"):
            store.get(["x"])
        store.close()
