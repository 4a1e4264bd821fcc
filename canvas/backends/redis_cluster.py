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

**Completion in two steps.** ``AsyncResult(task_id)`` must find a node's meta from its task id
alone, so the meta cannot live in the workflow's slot, and one script cannot write both. The
single-node ``complete`` is therefore split, in an order that stays idempotent and loses nothing
if the worker dies between steps (its message comes back and runs again):

1. One script on the workflow hash: the node's done mark, its successors' join counters, and
   the list of successors it fired (``r:<node>``). Called again before step 3 happened, it
   returns that same list (they may not have been published); after step 3, nothing.
2. ``SET`` and ``PUBLISH`` of the meta (its own slot, one script: ``store``).
3. ``HSET m:<node>``: the meta is written. From here a redelivery finds the meta and takes the
   single node's path for a finished task (``rewire``).

The single-node store's guarantee holds: a join fires once however many inputs complete at the
same moment (step 1 is atomic). What differs: between steps 1 and 2 a successor's state may be
read before its input's meta is visible, and two runs of one node racing through step 1 before
either reached step 3 both publish its successors (the worker's duplicate claim runs one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from canvas.backends.base import Backend, Fired
from canvas.backends.redis import RedisBackend, _encode, _ms
from canvas.transports.redis_cluster import cluster_client

# Step 1 of complete (see the module docstring): the single-node script without the meta key.
# Returns {step, id1, spec1, id2, spec2, ...}: step 0 when the meta is written already (nothing
# to do), 1 when it must be written and marked, 2 for a task outside any stored workflow.
_COMPLETE_WORKFLOW = """
local function hmget(fields)
  local out = {}
  for i = 1, #fields, 1000 do
    local part = redis.call('HMGET', KEYS[1], unpack(fields, i, math.min(i + 999, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end
local node = ARGV[1]
local successors = redis.call('HGET', KEYS[1], 'n:' .. node)
if not successors then return {2} end
local fired = {}
if redis.call('HSETNX', KEYS[1], 'd:' .. node, '1') == 0 then
  if redis.call('HEXISTS', KEYS[1], 'm:' .. node) == 1 then return {0} end
  local again = redis.call('HGET', KEYS[1], 'r:' .. node) or ''
  for id in string.gmatch(again, '[^,]+') do fired[#fired + 1] = id end
else
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
local out = {1}
if #fired == 0 then return out end
local specs = {}
for k, id in ipairs(fired) do specs[k] = 's:' .. id end
local values = hmget(specs)
for k, id in ipairs(fired) do
  out[#out + 1] = id
  out[#out + 1] = values[k]
end
return out
"""

# SET and PUBLISH of a meta in one call (a cluster pipeline cannot carry PUBLISH); the cluster
# forwards the message to every node.
_STORE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] == '1' then redis.call('PUBLISH', KEYS[1], ARGV[1]) end
"""


class RedisClusterBackend(RedisBackend):
    """``RedisBackend`` on Redis Cluster; see the module docstring for the key layout."""

    SCRIPTS: ClassVar[dict[str, str]] = {
        **RedisBackend.SCRIPTS,
        "complete_workflow": _COMPLETE_WORKFLOW,
        "store": _STORE,
    }

    def make_client(self) -> Any:
        return cluster_client(self.url)

    def _workflow_key(self, workflow_id: str) -> str:
        return f"{self.prefix}-workflow-{{wf:{workflow_id}}}"

    def store(self, task_id: str, status: str, meta: bytes) -> None:
        ready = "1" if self.is_ready(status) else "0"
        args: list[EncodableT] = [_encode(status, meta), _ms(self.expires), ready]
        self._conn().scripts["store"](keys=[self._meta_key(task_id)], args=args)

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

    def complete(self, workflow_id: str, node_id: str, status: str, meta: bytes) -> list[Fired]:
        """Three steps, each idempotent (see the module docstring)."""
        conn = self._conn()
        workflow = self._workflow_key(workflow_id)
        reply: list[Any] = conn.scripts["complete_workflow"](keys=[workflow], args=[node_id])
        step = int(reply[0])
        if step:
            self.store(node_id, status, meta)
        if step == 1:
            conn.client.hset(workflow, f"m:{node_id}", "1")
        return [Fired(reply[i].decode(), reply[i + 1]) for i in range(1, len(reply), 2)]
