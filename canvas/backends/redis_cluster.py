"""The Redis store on Redis Cluster: the single-node store with keys laid out by hash slot.

URL: ``redis+cluster://[[user]:password@]host:port[,host:port...]/`` (``rediss+cluster://`` for
TLS), redis-py's ``RedisCluster`` client (``MOVED``/``ASK`` and failovers handled by it). Every
script and multi-key command touches one slot::

    p-task-meta-<task id>            string  a task's meta, hashed by task id (any slot)
    p-workflow-{wf:<id>}             hash    a workflow: node specs, successors, join counters
                                             (c:), done (d:), fired (f:, r:) and meta (m:) marks
    p-{scheduled}, p-{scheduled}-payloads    delayed messages (one slot)
    p-{revoked}, p-{revoked}-expiry          revoked ids (one slot)
    p-lease-<name>, p-counter-<key>          one key each

Reads of several metas (``get``) go to each slot's node (``MGET`` per slot); pub/sub is the
cluster's classic ``PUBLISH``, heard on every node, so a waiter subscribes on any of them.

**Completion in three steps.** ``AsyncResult(task_id)`` must find a node's meta from its task
id alone, so the meta cannot live in the workflow's slot, and one script cannot write both. The
single-node ``complete`` is therefore split, in an order that stays idempotent and loses nothing
if the worker dies (or its primary fails over) between steps: its message comes back and runs
again.

1. One script on the workflow's slot: the node's done mark, its meta kept in the hash (``v:``)
   with the node in the workflow's pending set, its successors' join counters, and the list of
   successors it fired (``r:``). Called again before step 3 happened, it returns that same list
   (they may not have been published); after step 3, nothing.
2. The meta into its own key, ``SET`` and ``PUBLISH`` in one script, unless a ready meta is there
   already (the first one wins, as on one node).
3. The node leaves the pending set (``m:`` marks it written, ``v:`` is dropped).

A join fired in step 1 may have inputs whose workers are still between steps 1 and 3: the
script hands their metas out with it, and the caller writes them (step 2 on their behalf) before
it reads the join's inputs. So what a successor reads is there, as on one node, and a join fires
once however many inputs complete at the same moment. What differs: two runs of one node racing
through step 1 before either reached step 3 both publish its successors (the worker's duplicate
claim runs one), and each completion costs three round trips instead of one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from canvas import states
from canvas.backends.base import Backend, Fired, NodeRecord
from canvas.backends.redis import _HMGET, RedisBackend, _encode, _ms
from canvas.transports.redis_cluster import ReplicaWait, cluster_client

# Step 1 of complete (see the module docstring): the single-node script without the meta key,
# which keeps the meta in the hash (v:) and the node in the workflow's pending set until step 3.
# Returns {step, n, id1, spec1, ..., idn, specn, pending1, meta1, ...}: step 0 when the meta is
# written already (nothing to do), 1 when it must be written and marked, 2 for a task outside any
# stored workflow; n successors fired; when n > 0, the metas of pending nodes (their workers are
# between steps 1 and 3), which the caller writes before it reads the successors' inputs.
_COMPLETE_WORKFLOW = (
    _HMGET
    + """
local node = ARGV[1]
local successors = redis.call('HGET', KEYS[1], 'n:' .. node)
if not successors then return {2, 0} end
local fired = {}
if redis.call('HSETNX', KEYS[1], 'd:' .. node, '1') == 0 then
  if redis.call('HEXISTS', KEYS[1], 'm:' .. node) == 1 then return {0, 0} end
  local again = redis.call('HGET', KEYS[1], 'r:' .. node) or ''
  for id in string.gmatch(again, '[^,]+') do fired[#fired + 1] = id end
else
  redis.call('HSET', KEYS[1], 'v:' .. node, ARGV[2])
  redis.call('SADD', KEYS[2], node)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  local ids, fields = {}, {}
  for id in string.gmatch(successors, '[^,]+') do
    ids[#ids + 1] = id
    fields[#fields + 1] = 'i:' .. id
  end
  local needs = #fields > 0 and hmget(fields) or {}
  for k, id in ipairs(ids) do
    local need = tonumber(needs[k])
    if need and (need <= 1 or (redis.call('HINCRBY', KEYS[1], 'c:' .. id, 1) == need
        and redis.call('HSETNX', KEYS[1], 'f:' .. id, '1') == 1)) then
      fired[#fired + 1] = id
    end
  end
  if #fired > 0 then redis.call('HSET', KEYS[1], 'r:' .. node, table.concat(fired, ',')) end
end
local out = {1, #fired}
if #fired == 0 then return out end
local specs = {}
for k, id in ipairs(fired) do specs[k] = 's:' .. id end
local values = hmget(specs)
for k, id in ipairs(fired) do
  out[#out + 1] = id
  out[#out + 1] = values[k]
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local meta = redis.call('HGET', KEYS[1], 'v:' .. id)
  if meta and id ~= node then
    out[#out + 1] = id
    out[#out + 1] = meta
  end
end
return out
"""
)

# Step 3: the node's meta is in its own key; it leaves the pending set.
_MARK_WRITTEN = """
redis.call('HSET', KEYS[1], 'm:' .. ARGV[1], '1')
redis.call('HDEL', KEYS[1], 'v:' .. ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
"""

# A meta written by complete: SET and PUBLISH in one call (a cluster pipeline cannot carry
# PUBLISH; the cluster forwards the message to every node), unless a ready meta is there already
# (the first terminal meta wins, as on one node). ARGV[3]: the notification (the status only, as
# on one node: waiters read the result), empty for a state that wakes nobody; ARGV[4..]: the
# ready states.
_STORE_FIRST = """
local current = redis.call('GET', KEYS[1])
if current then
  local status = string.match(current, '^[^\\n]*')
  for i = 4, #ARGV do
    if status == ARGV[i] then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then redis.call('PUBLISH', KEYS[1], ARGV[3]) end
return 1
"""

# store(): the same without the check (a task's progress replaces what was there).
_STORE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then redis.call('PUBLISH', KEYS[1], ARGV[3]) end
"""


class RedisClusterBackend(RedisBackend):
    """``RedisBackend`` on Redis Cluster; see the module docstring for the key layout."""

    SCRIPTS: ClassVar[dict[str, str]] = {
        **RedisBackend.SCRIPTS,
        "complete_workflow": _COMPLETE_WORKFLOW,
        "mark_written": _MARK_WRITTEN,
        "store_first": _STORE_FIRST,
        "store": _STORE,
    }

    OPTIONS: ClassVar[frozenset[str]] = RedisBackend.OPTIONS | {"replica_wait"}

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.replica_wait = ReplicaWait(
            self.options.get("replica_wait"), "result_backend_transport_options", "a result"
        )

    def make_client(self) -> Any:
        return cluster_client(self.url)

    def _workflow_key(self, workflow_id: str) -> str:
        return f"{self.prefix}-workflow-{{wf:{workflow_id}}}"

    def _notice(self, status: str) -> bytes:
        """What ``PUBLISH`` sends: the status only, and only for a ready one (as on one node)."""
        return _encode(status, b"") if self.is_ready(status) else b""

    def store(self, task_id: str, status: str, meta: bytes) -> None:
        """A ready meta also waits for a replica: the worker acks the message next, and a
        primary that dies before its replica has the meta would take the outcome with it."""
        args: list[EncodableT] = [_encode(status, meta), _ms(self.expires), self._notice(status)]
        key = self._meta_key(task_id)
        conn = self._conn()
        conn.scripts["store"](keys=[key], args=args)
        if self.is_ready(status):
            self.replica_wait(conn.client, [key])

    def save_workflow(self, workflow_id: str, nodes: Sequence[NodeRecord], info: bytes) -> None:
        """Saved before its first nodes are published, and waited for like them: a node whose
        workflow record is lost would finish as a plain task and wire nothing after it."""
        super().save_workflow(workflow_id, nodes, info)
        self.replica_wait(self._conn().client, [self._workflow_key(workflow_id)])

    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        if not task_ids:
            return []
        client: Any = self._conn().client
        values = cast(
            list[bytes | None], client.mget_nonatomic([self._meta_key(t) for t in task_ids])
        )
        return [None if v is None else v.partition(b"\n")[2] for v in values]

    def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """The single node's wait, subscribed again on another node if its node fails."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return super().wait(task_id, left)
            except (RedisConnectionError, RedisTimeoutError):
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)  # a failover under way: the next subscribe finds a live node

    def claim_node(
        self, workflow_id: str, node_id: str, key: str, ttl: float
    ) -> tuple[int, bytes | None]:
        """One script when the counter carries the workflow's hash tag (the worker's run claim
        does), moved to this store's ``{wf:<id>}``; two calls otherwise."""
        single = f"{{{workflow_id}}}"
        if single not in key:
            return Backend.claim_node(self, workflow_id, node_id, key, ttl)
        tagged = key.replace(single, f"{{wf:{workflow_id}}}")
        return super().claim_node(workflow_id, node_id, tagged, ttl)

    def _workflow_keys(self, workflow_id: str) -> list[str]:
        """The workflow's hash and its set of nodes between steps 1 and 3 (one slot)."""
        key = self._workflow_key(workflow_id)
        return [key, key + "-pending"]

    def _store_first(self, task_id: str, value: bytes, status: str) -> None:
        args: list[EncodableT] = [value, _ms(self.expires), self._notice(status)]
        args += sorted(states.READY_STATES)
        self._conn().scripts["store_first"](keys=[self._meta_key(task_id)], args=args)

    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        """Three steps, each idempotent (see the module docstring), then a wait for a replica of
        each primary written to (the worker acks the node's message next)."""
        conn = self._conn()
        keys = self._workflow_keys(workflow_id)
        value = _encode(status, meta)
        args: list[EncodableT] = [node_id, value, _ms(self.expires)]
        reply: list[Any] = conn.scripts["complete_workflow"](keys=keys, args=args)
        step, count = int(reply[0]), int(reply[1])
        fired = [Fired(reply[i].decode(), reply[i + 1]) for i in range(2, 2 + 2 * count, 2)]
        written = [keys[0]]
        # Inputs of what fired whose workers are between steps 1 and 3: their metas first.
        for i in range(2 + 2 * count, len(reply), 2):
            pending, pending_id = reply[i + 1], reply[i].decode()
            self._store_first(pending_id, pending, pending.partition(b"\n")[0].decode())
            written.append(self._meta_key(pending_id))
        if step:
            self._store_first(node_id, value, status)
            written.append(self._meta_key(node_id))
        if step == 1:
            conn.scripts["mark_written"](keys=keys, args=[node_id])
        self.replica_wait(conn.client, written)
        return fired
