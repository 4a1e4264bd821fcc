"""A Redis result store: pub/sub wakes waiters, Lua scripts join workflows atomically.

URL: ``redis://[:password@]host:6379/0`` or ``rediss://`` for TLS. Options: ``prefix`` (default
``canvas``) starts every key and channel, ``expires`` (seconds) is the TTL of every key written.

Keys (``p`` is the prefix)::

    p-task-meta-<task id>          string  b"<status>\\n<meta>"; also the pub/sub channel
    p-workflow-{<workflow id>}     hash    info, per node s:/n:/i:/o: (spec, successors,
                                           n_inputs, order), d: (done) and c: (inputs done)
    p-{scheduled}-<space>          zset    delayed message keys by due time, per broker
    p-{scheduled}-<space>-payloads hash    delayed message payloads
    p-lease-<name>, p-counter-<key>
    p-{revoked}, p-{revoked}-expiry  zsets  revoked task ids by revoke time, by expiry

Guarantees: ``store`` is SET + PUBLISH in one round trip, ``get`` one MGET, ``wait`` subscribes
and blocks (never polls), and ``complete`` is one script, so a join fires exactly once however
many workers finish its inputs at the same moment. All keys of one workflow share the hash tag
``{<workflow id>}``; the task meta key does not (see ``complete``), nor does ``p-{scheduled}``
share a slot with anything but its payload hash.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import redis
from redis.client import PubSub
from redis.commands.core import Script
from redis.typing import EncodableT

from canvas.backends.base import Backend, Fired, NodeRecord

# Field names in the workflow hash: s: spec, n: comma-joined successors, i: n_inputs,
# o: order of insertion, d: done marker, c: number of inputs done (multi-input nodes only).
_SAVE = """
local base = redis.call('HLEN', KEYS[1])
local args = {'info', ARGV[2]}
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  local n = #args
  args[n + 1] = 's:' .. id; args[n + 2] = ARGV[i + 1]
  args[n + 3] = 'n:' .. id; args[n + 4] = ARGV[i + 2]
  args[n + 5] = 'i:' .. id; args[n + 6] = ARGV[i + 3]
  args[n + 7] = 'o:' .. id; args[n + 8] = base + (i - 3) / 4
  if #args >= 4000 then redis.call('HSET', KEYS[1], unpack(args)); args = {} end
end
if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
"""

# HMGET of KEYS[1] in chunks (Lua's stack holds a few thousand values); the complete scripts
# of this store and of the cluster store start with it.
_HMGET = """
local function hmget(fields)
  local out = {}
  for i = 1, #fields, 1000 do
    local part = redis.call('HMGET', KEYS[1], unpack(fields, i, math.min(i + 999, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end
"""

# The done marker makes a node count once as an input of each successor, so a counter equals
# the number of distinct inputs done, and a node with one input fires without one.
_COMPLETE = (
    _HMGET
    + """
local node = ARGV[1]
local successors = redis.call('HGET', KEYS[1], 'n:' .. node)
if successors and redis.call('HSETNX', KEYS[1], 'd:' .. node, '1') == 0 then return {} end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '1' then redis.call('PUBLISH', KEYS[2], string.match(ARGV[2], '^[^\\n]*\\n')) end
if not successors or successors == '' then return {} end
local ids, fields = {}, {}
for id in string.gmatch(successors, '[^,]+') do
  ids[#ids + 1] = id
  fields[#fields + 1] = 'i:' .. id
end
local needs = hmget(fields)
local fired, specs = {}, {}
for k, id in ipairs(ids) do
  local need = tonumber(needs[k])
  -- f: marks a join handed out (update_join may resize one later: it must not fire it again)
  if need and (need <= 1 or (redis.call('HINCRBY', KEYS[1], 'c:' .. id, 1) == need
      and redis.call('HSETNX', KEYS[1], 'f:' .. id, '1') == 1)) then
    fired[#fired + 1] = id
    specs[#specs + 1] = 's:' .. id
  end
end
if #fired == 0 then return {} end
local values = hmget(specs)
local out = {}
for k, id in ipairs(fired) do
  out[#out + 1] = id
  out[#out + 1] = values[k]
end
return out
"""
)

# Replace a join's record; fire it now if every input is done already (c: counts them: a join
# stored with OPEN_JOIN inputs counts without ever firing). The o: order is kept if present.
_UPDATE_JOIN = """
local id = ARGV[2]
local order = redis.call('HGET', KEYS[1], 'o:' .. id) or redis.call('HLEN', KEYS[1])
redis.call('HSET', KEYS[1], 's:' .. id, ARGV[3], 'n:' .. id, ARGV[4], 'i:' .. id, ARGV[5],
  'o:' .. id, order)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local done = tonumber(redis.call('HGET', KEYS[1], 'c:' .. id) or '0')
if done >= tonumber(ARGV[5]) and redis.call('HSETNX', KEYS[1], 'f:' .. id, '1') == 1 then
  return {id, ARGV[3]}
end
return {}
"""

# A worker's claim of a node run (a counter, see Backend.claim_node) and the node's spec: one
# round trip before the run. The caller puts the workflow's hash tag in the counter's name.
_CLAIM_NODE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('HGET', KEYS[2], 's:' .. ARGV[2])}
"""

_SCHEDULE = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[4]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  end
end
"""

_CLAIM = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
if #keys == 0 then return {} end
local payloads = redis.call('HMGET', KEYS[2], unpack(keys))
local out, rescore, lost = {}, {}, {}
for k, key in ipairs(keys) do
  if payloads[k] then
    out[#out + 1] = key
    out[#out + 1] = payloads[k]
    rescore[#rescore + 1] = ARGV[2]
    rescore[#rescore + 1] = key
  else
    lost[#lost + 1] = key
  end
end
if #rescore > 0 then redis.call('ZADD', KEYS[1], unpack(rescore)) end
if #lost > 0 then redis.call('ZREM', KEYS[1], unpack(lost)) end
return out
"""

_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: claim_due unpacks keys into one Lua call; Lua's stack allows a few thousand values
_MAX_CLAIM = 1000
#: idle pub/sub connections kept for later waits
_MAX_IDLE_PUBSUB = 8

_create_lock = threading.Lock()


def _reset_create_lock() -> None:
    global _create_lock
    _create_lock = threading.Lock()


# A thread of the parent may hold the lock at fork time; the child must not inherit it held.
os.register_at_fork(after_in_child=_reset_create_lock)


# Drop revokes whose time to live ran out, then add ARGV[4..] revoked at ARGV[1], expiring at
# ARGV[2]; both sets expire with the latest revoke (ARGV[3] ms).
_REVOKE = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[i])
end
for k = 1, 2 do
  if redis.call('PTTL', KEYS[k]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[k], ARGV[3])
  end
end
"""


@dataclass
class _Connection:
    """What one process uses: a client, its scripts and idle pub/sub connections."""

    pid: int
    client: redis.Redis
    scripts: dict[str, Script]
    idle: list[PubSub] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _encode(status: str, meta: bytes) -> bytes:
    # The status rides in front of the meta so that wait() can tell a ready result from a
    # STARTED one without decoding the meta, which the store treats as opaque.
    return status.encode() + b"\n" + meta


def _split(value: bytes) -> tuple[str, bytes]:
    status, _, meta = value.partition(b"\n")
    return status.decode(), meta


class RedisBackend(Backend):
    """Results, workflows, delayed messages, leases and counters in one Redis database."""

    #: the Lua scripts this store runs, by name
    SCRIPTS: ClassVar[dict[str, str]] = {
        "save": _SAVE,
        "complete": _COMPLETE,
        "update_join": _UPDATE_JOIN,
        "claim_node": _CLAIM_NODE,
        "schedule": _SCHEDULE,
        "claim": _CLAIM,
        "acquire": _ACQUIRE,
        "release": _RELEASE,
        "revoke": _REVOKE,
    }

    OPTIONS: ClassVar[frozenset[str]] = Backend.OPTIONS | {"prefix"}

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.prefix: str = str(self.options.get("prefix", "canvas"))
        self._connection: _Connection | None = None

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> _Connection:
        """This process's connection, made on first use and again after ``os.fork``."""
        conn = self._connection
        if conn is not None and conn.pid == os.getpid():
            return conn
        with _create_lock:
            conn = self._connection
            if conn is None or conn.pid != os.getpid():
                # A forked child makes its own client. The parent's, dropped here, stays
                # usable by the parent: redis-py never shuts a socket down from another pid.
                client = self.make_client()
                scripts = {
                    name: client.register_script(source) for name, source in self.SCRIPTS.items()
                }
                conn = self._connection = _Connection(os.getpid(), client, scripts)
            return conn

    def make_client(self) -> Any:
        """A new client for this store (the Redis Cluster store makes a cluster client)."""
        return redis.Redis.from_url(self.url, socket_keepalive=True)

    def close(self) -> None:
        conn, self._connection = self._connection, None
        if conn is None or conn.pid != os.getpid():
            return
        with conn.lock:
            idle, conn.idle = conn.idle, []
        for pubsub in idle:
            pubsub.close()
        conn.client.close()

    # -- keys --------------------------------------------------------------------------------
    def _meta_key(self, task_id: str) -> str:
        return f"{self.prefix}-task-meta-{task_id}"

    def _workflow_key(self, workflow_id: str) -> str:
        return f"{self.prefix}-workflow-{{{workflow_id}}}"

    def _scheduled_keys(self, space: str = "") -> list[str]:
        zset = f"{self.prefix}-{{scheduled}}" + (f"-{space}" if space else "")
        return [zset, f"{zset}-payloads"]

    # -- task meta ---------------------------------------------------------------------------
    def store(self, task_id: str, status: str, meta: bytes) -> None:
        key, value = self._meta_key(task_id), _encode(status, meta)
        pipe = self._conn().client.pipeline(transaction=False)
        pipe.set(key, value, px=_ms(self.expires))
        if self.is_ready(status):
            # Only ready states wake waiters, so progress updates cost one command. The message
            # names the status only: waiters read the result (Redis drops a subscriber whose
            # output buffer passes 32 MB, so a large result must not travel through pub/sub).
            pipe.publish(key, _encode(status, b""))
        pipe.execute()

    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        if not task_ids:
            return []
        values = cast(
            list[bytes | None], self._conn().client.mget([self._meta_key(t) for t in task_ids])
        )
        return [None if v is None else _split(v)[1] for v in values]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Subscribe, read the key once, then block on the channel.

        The GET happens only after the server confirmed the subscription: a result stored
        in between is then either seen by the GET or delivered as a message.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = self._conn()
        key = self._meta_key(task_id)
        channel = key.encode()
        with conn.lock:
            pubsub = conn.idle.pop() if conn.idle else conn.client.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
        reusable = False
        try:
            pubsub.subscribe(key)
            subscribed = False
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                message = pubsub.get_message(timeout=remaining)  # type: ignore[arg-type]
                if message is None:
                    if remaining != 0.0:
                        continue
                    if subscribed:
                        reusable = True
                        return None
                    # Out of time before the confirmation came: one last look at the key. The
                    # connection is dropped: its late confirmation could pass for a later one's.
                    value = cast(bytes | None, conn.client.get(key))
                    return _split(value)[1] if value and self.is_ready(_split(value)[0]) else None
                if message["channel"] != channel:
                    continue  # left over from an earlier wait on this connection
                if message["type"] == "subscribe" and not subscribed:
                    subscribed = True
                    value = cast(bytes | None, conn.client.get(key))
                elif message["type"] == "message":
                    value = message["data"]
                    if value is not None and not _split(value)[1]:
                        value = cast(bytes | None, conn.client.get(key))  # notified by id
                else:
                    continue
                if value is not None:
                    status, meta = _split(value)
                    if self.is_ready(status):
                        reusable = True
                        return meta
        finally:
            self._give_back(conn, pubsub, key, reusable)

    @staticmethod
    def _give_back(conn: _Connection, pubsub: PubSub, key: str, reusable: bool) -> None:
        if reusable:
            pubsub.unsubscribe(key)  # type: ignore[no-untyped-call]
            with conn.lock:
                if len(conn.idle) < _MAX_IDLE_PUBSUB and conn.pid == os.getpid():
                    conn.idle.append(pubsub)
                    return
        pubsub.close()

    def forget_many(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            self._conn().client.delete(*[self._meta_key(t) for t in task_ids])

    # -- workflows ---------------------------------------------------------------------------
    def save_workflow(self, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes) -> None:
        args: list[EncodableT] = [_ms(self.expires), info]
        for node in nodes:
            args += [node.id, node.spec, ",".join(node.successors), node.n_inputs]
        conn = self._conn()
        conn.scripts["save"](keys=[self._workflow_key(workflow_id)], args=args)

    def update_join(self, workflow_id: str, node: NodeRecord) -> list[Fired]:
        args: list[EncodableT] = [_ms(self.expires), node.id, node.spec]
        args += [",".join(node.successors), node.n_inputs]
        found = self._conn().scripts["update_join"](
            keys=[self._workflow_key(workflow_id)], args=args
        )
        return [Fired(found[0].decode(), found[1])] if found else []

    def workflow_info(self, workflow_id: str) -> bytes | None:
        return cast(bytes | None, self._conn().client.hget(self._workflow_key(workflow_id), "info"))

    def workflow_nodes(self, workflow_id: str) -> list[NodeRecord]:
        key = self._workflow_key(workflow_id)
        fields = cast(dict[bytes, bytes], self._conn().client.hgetall(key))
        order = []
        for name in fields:
            if name.startswith(b"i:"):
                node_id = name[2:]
                order.append((int(fields.get(b"o:" + node_id, b"0")), node_id))
        nodes = []
        for _, node_id in sorted(order):
            successors = fields.get(b"n:" + node_id, b"").decode()
            nodes.append(
                NodeRecord(
                    id=node_id.decode(),
                    spec=fields.get(b"s:" + node_id, b""),
                    successors=tuple(s for s in successors.split(",") if s),
                    n_inputs=int(fields[b"i:" + node_id]),
                )
            )
        return nodes

    def node_specs(self, workflow_id: str, node_ids: Sequence[str]) -> list[bytes | None]:
        if not node_ids:
            return []
        key = self._workflow_key(workflow_id)
        specs = self._conn().client.hmget(key, [f"s:{n}" for n in node_ids])
        return cast(list[bytes | None], specs)

    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        """One EVALSHA: done marker, meta, publish, then the successors' input counters.

        Redis Cluster: the script also writes the task meta key, which lives outside the
        workflow's hash slot so that ``AsyncResult(node_id)`` finds it like any task's.
        """
        keys = [self._workflow_key(workflow_id), self._meta_key(node_id)]
        ready = "1" if self.is_ready(status) else "0"
        args: list[EncodableT] = [node_id, _encode(status, meta), _ms(self.expires), ready]
        reply: list[bytes] = self._conn().scripts["complete"](keys=keys, args=args)
        return [Fired(reply[i].decode(), reply[i + 1]) for i in range(0, len(reply), 2)]

    # -- delayed messages --------------------------------------------------------------------
    def schedule(self, key: str, due: float, payload: bytes, space: str = "") -> None:
        # The set lives at least ``expires`` past the latest due time it holds.
        ttl = _ms(max(0.0, due - time.time()) + self.expires)
        args: list[EncodableT] = [repr(due), key, payload, ttl]
        self._conn().scripts["schedule"](keys=self._scheduled_keys(space), args=args)

    def claim_due(
        self, now: float, lease: float, limit: int = 100, space: str = ""
    ) -> list[tuple[str, bytes]]:
        args: list[EncodableT] = [repr(now), repr(now + lease), min(limit, _MAX_CLAIM)]
        keys = self._scheduled_keys(space)
        reply: list[bytes] = self._conn().scripts["claim"](keys=keys, args=args)
        return [(reply[i].decode(), reply[i + 1]) for i in range(0, len(reply), 2)]

    def ack_scheduled(self, keys: Sequence[str], space: str = "") -> None:
        if not keys:
            return
        zset, payloads = self._scheduled_keys(space)
        pipe = self._conn().client.pipeline(transaction=False)
        pipe.zrem(zset, *keys)
        pipe.hdel(payloads, *keys)
        pipe.execute()

    def next_due(self, space: str = "") -> float | None:
        first = cast(
            list[tuple[bytes, float]],
            self._conn().client.zrange(self._scheduled_keys(space)[0], 0, 0, withscores=True),
        )
        return float(first[0][1]) if first else None

    # -- leases ------------------------------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        script = self._conn().scripts["acquire"]
        return bool(script(keys=[f"{self.prefix}-lease-{name}"], args=[owner, _ms(ttl)]))

    def release_lease(self, name: str, owner: str) -> None:
        self._conn().scripts["release"](keys=[f"{self.prefix}-lease-{name}"], args=[owner])

    # -- counters ----------------------------------------------------------------------------
    def incr(self, key: str, ttl: float, by: int = 1) -> int:
        name = f"{self.prefix}-counter-{key}"
        pipe = self._conn().client.pipeline(transaction=False)
        pipe.incrby(name, by)
        pipe.pexpire(name, _ms(ttl), nx=True)
        value, _ = pipe.execute()
        return int(value)

    def claim_node(
        self, workflow_id: str, node_id: str, key: str, ttl: float
    ) -> tuple[int, bytes | None]:
        keys = [f"{self.prefix}-counter-{key}", self._workflow_key(workflow_id)]
        script = self._conn().scripts["claim_node"]
        count, spec = script(keys=keys, args=[_ms(ttl), node_id])
        return int(count), spec

    # -- revokes -----------------------------------------------------------------------------
    def _revoked_keys(self) -> list[str]:
        return [f"{self.prefix}-{{revoked}}", f"{self.prefix}-{{revoked}}-expiry"]

    def add_revoked(self, task_ids: Sequence[str], ttl: float) -> None:
        if not task_ids:
            return
        now = time.time()
        self._conn().scripts["revoke"](
            keys=self._revoked_keys(), args=[now, now + ttl, _ms(ttl), *task_ids]
        )

    def revoked_since(self, since: float) -> list[tuple[str, float]]:
        by_time, by_expiry = self._revoked_keys()
        pipe = self._conn().client.pipeline(transaction=False)
        pipe.zrangebyscore(by_time, since, "+inf", withscores=True)
        pipe.zrangebyscore(by_expiry, "-inf", time.time())
        found, expired = cast(tuple[list[tuple[bytes, float]], list[bytes]], pipe.execute())
        gone = set(expired)
        return [(m.decode(), float(score)) for m, score in found if m not in gone]
