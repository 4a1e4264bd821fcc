"""The ledger: the oracle that says whether a chaos case lost or duplicated anything.

Every id the test publishes is recorded only after ``apply_async`` returned, that is after the
broker confirmed it, together with the terminal outcome the case expects (``SUCCESS``,
``FAILURE`` or ``DLQ``). At the end of a case, with the workers stopped, ``verify`` checks:

* **lost** – an expected id with no terminal record: no ready meta in the store and no dead
  letter;
* **duplicated** – an id with two terminal records (a ready meta *and* a dead letter, or two dead
  letters), an id that was published twice (two runs that were both first deliveries), an id whose
  idempotent effect is missing or doubled, and a chord body joined more than once or with the
  wrong number of inputs;
* **re-runs** – executions beyond the first that at-least-once delivery allows (a redelivery after
  a kill): counted, not a failure;
* the work queue and its dead-letter queue are empty (the dead letters were read and removed by
  the ledger) and, on Redis, no delivery is left unacknowledged;
* every key of the result store has a TTL.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from canvas import security, states
from canvas.core import metas
from canvas.transports.base import REASON_HEADER

from .app import ChaosCanvas, effects_db

DLQ = "DLQ"


@dataclass
class Verdict:
    """What ``Ledger.verify`` found; ``problems`` is empty when every guarantee held."""

    messages: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    reruns: int = 0
    dead_letters: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def assert_ok(self) -> None:
        assert not self.problems, "chaos ledger:\n  " + "\n  ".join(self.problems)


class Ledger:
    """Publishes through ``app`` and remembers what each id must end as."""

    def __init__(self, app: ChaosCanvas, effects_path: str, store: Any = None) -> None:
        self.app = app
        self.queue = str(app.conf.task_default_queue)
        self.expected: dict[str, str] = {}
        self.bodies: dict[str, int] = {}  # chord body id -> number of header tasks
        #: dead letters expected on top of an id's own outcome (a replayed copy of a message)
        self.extra_dead: Counter[str] = Counter()
        #: ids the producer had to send again (the broker went away before confirming): a second
        #: copy may have arrived, and running it is at-least-once, not a duplicate publish
        self.resent: set[str] = set()
        self._lock = threading.Lock()
        self.effects = effects_db(effects_path)
        self.store = store  # a redis.Redis for the result store, for the TTL check

    # -- publishing ----------------------------------------------------------------------------
    def send(
        self, name: str, args: tuple[Any, ...] = (), expect: str = states.SUCCESS, **options: Any
    ) -> str:
        task_id = options.pop("task_id", None) or str(uuid.uuid4())
        self.app.send_task(name, args=list(args), task_id=task_id, **options)
        with self._lock:
            self.expected[task_id] = expect  # recorded only once the broker confirmed
        return task_id

    def send_until_confirmed(
        self, name: str, args: tuple[Any, ...] = (), timeout: float = 60.0, **options: Any
    ) -> tuple[str, int]:
        """A producer that retries until the broker confirms: ``(id, failed attempts)``."""
        task_id = str(uuid.uuid4())
        deadline = time.monotonic() + timeout
        failures = 0
        while True:
            try:
                self.send(name, args, task_id=task_id, **options)
                return task_id, failures
            except Exception:
                failures += 1
                with self._lock:
                    self.resent.add(task_id)
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)  # the broker is away: try again shortly, until the deadline

    def send_batch(self, name: str, calls: list[tuple[Any, ...]]) -> list[str]:
        """Many calls in one confirmed publish (the soak's producer)."""
        from canvas.core import messages as wire

        ids = [str(uuid.uuid4()) for _ in calls]
        messages = [
            wire.build(self.app, name, task_id, list(args), {}, {})
            for task_id, args in zip(ids, calls, strict=True)
        ]
        wire.publish(self.app, messages)
        with self._lock:
            self.expected.update(dict.fromkeys(ids, states.SUCCESS))
        return ids

    def expect(self, task_id: str, outcome: str) -> None:
        """Record an id published some other way (raw, by the test) with its expected outcome."""
        self.expected[task_id] = outcome

    def sig(
        self, name: str, *args: Any, kwargs: dict[str, Any] | None = None, **options: Any
    ) -> Any:
        """A signature with its id fixed up front, so the ledger can follow every node."""
        return self.app.signature(name, args, kwargs, task_id=str(uuid.uuid4()), **options)

    def send_canvas(
        self, canvas: Any, nodes: list[Any], bodies: dict[str, int] | None = None
    ) -> Any:
        """Send a chain/group/chord whose task signatures are ``nodes`` (made with ``sig``)."""
        result = canvas.apply_async()
        with self._lock:
            for node in nodes:
                self.expected[node.options["task_id"]] = states.SUCCESS
            self.bodies.update(bodies or {})
        return result

    def chord(self, n: int, seconds: float = 0.0, **options: Any) -> tuple[Any, str]:
        """Send ``chord([work(i)...], tsum())``; returns the result and the body's id."""
        from canvas import chord

        header = [self.sig("chaos.work", i, seconds, **options) for i in range(n)]
        body = self.sig("chaos.tsum")
        result = self.send_canvas(
            chord(header, body), [*header, body], {body.options["task_id"]: n}
        )
        return result, body.options["task_id"]

    # -- waiting ---------------------------------------------------------------------------------
    def _ready(self, ids: list[str]) -> set[str]:
        done: set[str] = set()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            try:
                stored = self.app.backend.get(part)
            except Exception:  # the store is the thing that is down: nothing is known ready
                return done
            for task_id, raw in zip(part, stored, strict=True):
                meta = metas.decode(raw)
                if meta is not None and meta.get("status") in states.READY_STATES:
                    done.add(task_id)
        return done

    def pending(self) -> list[str]:
        """Ids expected to end with a meta that has none yet (dead letters are counted apart)."""
        ids = [i for i, e in self.expected.items() if e != DLQ]
        return sorted(set(ids) - self._ready(ids))

    def dlq_size(self) -> int:
        transport = security.unwrap(self.app.transport)
        return transport.size(transport.dead_letters(self.queue))

    def wait_settled(self, timeout: float) -> float:
        """Wait until every expected id has its terminal record; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        want_dead = sum(1 for e in self.expected.values() if e == DLQ)
        want_dead += sum(self.extra_dead.values())
        pending = self.pending()
        while pending or self.dlq_size() < want_dead:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(pending)} of {len(self.expected)} ids still pending after {timeout}s "
                    f"(dead letters {self.dlq_size()}/{want_dead}); first: {pending[:5]}"
                )
            time.sleep(0.2)  # a poll interval; the deadline above bounds the wait
            done = self._ready(pending)
            pending = [i for i in pending if i not in done]
        return time.monotonic() - started

    def unacked(self) -> int:
        """Deliveries held unacknowledged on the Redis broker (0 elsewhere: RabbitMQ requeues
        a dead consumer's at once). Canvas's transport: a list per consumer; kombu's: a hash."""
        client = _broker_redis(security.unwrap(self.app.transport))
        if client is None:
            return 0
        try:
            held = sum(int(client.llen(k)) for k in client.scan_iter(match="*:p:*", _type="list"))
            return held + int(client.hlen("unacked"))
        finally:
            client.close()

    def held(self) -> int:
        """Messages of this case still queued or unacknowledged."""
        return security.unwrap(self.app.transport).size(self.queue) + self.unacked()

    def wait_idle(self, timeout: float) -> None:
        """Wait until redeliveries (a killed worker's messages come back) have been handled."""
        deadline = time.monotonic() + timeout
        while self.held():
            if time.monotonic() >= deadline:
                return  # verify() reports what is left
            time.sleep(0.2)  # a poll interval; the deadline above bounds the wait

    # -- the verdict -----------------------------------------------------------------------------
    def drain_dead_letters(self) -> list[tuple[str, str]]:
        """Read and remove every dead letter: ``(id, reason)`` in arrival order."""
        transport = security.unwrap(self.app.transport)
        dlq = transport.dead_letters(self.queue)
        found: list[tuple[str, str]] = []
        consumer = transport.consumer([dlq], prefetch=100)
        try:
            # Until nothing comes: the queue's size leaves out what the consumer prefetched.
            while True:
                delivery = consumer.get(1.0 if transport.size(dlq) or not found else 0.3)
                if delivery is None:
                    break
                found.append(
                    (str(delivery.headers.get("id")), str(delivery.headers.get(REASON_HEADER)))
                )
                delivery.ack()
        finally:
            consumer.close()
        return found

    def verify(self) -> Verdict:
        verdict = Verdict(messages=len(self.expected))
        dead = self.drain_dead_letters()
        verdict.dead_letters = dict(dead)
        dead_count = Counter(i for i, _ in dead)
        ids = list(self.expected)
        ready = self._ready(ids)
        runs = self._runs()
        effects = self._effects()
        for task_id, expect in self.expected.items():
            terminal = (task_id in ready) + dead_count[task_id] - self.extra_dead[task_id]
            if terminal == 0:
                verdict.lost.append(task_id)
                verdict.problems.append(
                    f"lost: {task_id} (expected {expect}) has no terminal record"
                )
                continue
            if terminal > 1:
                verdict.duplicated.append(task_id)
                verdict.problems.append(
                    f"duplicated: {task_id} has {terminal} terminal records "
                    f"(meta: {task_id in ready}, dead letters: {dead_count[task_id]})"
                )
            if expect == DLQ and not dead_count[task_id]:
                verdict.problems.append(f"{task_id}: expected a dead letter, got a meta")
            if expect != DLQ and task_id not in ready:
                verdict.problems.append(
                    f"{task_id}: expected {expect}, dead-lettered: {verdict.dead_letters[task_id]}"
                )
            mine = runs.get(task_id, [])
            first_deliveries = sum(1 for redelivered in mine if not redelivered)
            if first_deliveries > 1 and task_id not in self.resent:
                verdict.duplicated.append(task_id)
                verdict.problems.append(
                    f"duplicated: {task_id} was published {first_deliveries} times"
                )
            verdict.reruns += max(0, len(mine) - 1)
            if expect == states.SUCCESS and effects.get(task_id, 0) != 1:
                verdict.problems.append(f"{task_id}: {effects.get(task_id, 0)} effects, not 1")
        for body, n in self.bodies.items():
            value = self._body_value(body)
            if value != {"count": n, "sum": sum(range(n))}:
                verdict.problems.append(f"chord body {body}: joined {value}, expected {n} inputs")
        verdict.problems += self._queues_drained()
        verdict.problems += self._ttls()
        return verdict

    def _runs(self) -> dict[str, list[bool]]:
        out: dict[str, list[bool]] = {}
        for task_id, redelivered in self.effects.execute(
            "SELECT id, redelivered FROM runs WHERE phase = 'start'"
        ):
            out.setdefault(task_id, []).append(bool(redelivered))
        return out

    def _effects(self) -> dict[str, int]:
        return dict(self.effects.execute("SELECT id, count(*) FROM effects GROUP BY id"))

    def _body_value(self, body: str) -> Any:
        row = self.effects.execute("SELECT value FROM effects WHERE id = ?", (body,)).fetchone()
        return json.loads(row[0]) if row else None

    def _queues_drained(self) -> list[str]:
        transport = security.unwrap(self.app.transport)
        problems = []
        for queue in (self.queue, transport.dead_letters(self.queue)):
            left = transport.size(queue)
            if left:
                problems.append(f"queue {queue} still holds {left} message(s)")
        unacked = self.unacked()
        if unacked:
            problems.append(f"{unacked} Redis deliveries left unacknowledged")
        return problems

    def _ttls(self) -> list[str]:
        if self.store is None:
            return []
        missing = [
            key.decode() for key in self.store.scan_iter(count=1000) if self.store.ttl(key) == -1
        ]
        return [f"{len(missing)} store key(s) without a TTL: {missing[:5]}"] if missing else []

    def close(self) -> None:
        self.effects.close()


def _broker_redis(transport: Any) -> Any:
    url = str(transport.url).removeprefix("kombu+")
    if url.startswith("redis+cluster://"):
        from canvas.transports.redis_cluster import cluster_client

        return cluster_client(url)  # scan_iter visits every primary
    if not url.startswith("redis://"):
        return None
    import redis

    return redis.Redis.from_url(url)
