"""The Redis transport: a reliable queue on plain Redis lists, one command per fetch.

URL format: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS). Kombu's Redis transport
stays available as ``kombu+redis://``; this one exists because kombu's costs nine Redis commands
per message (BRPOP, then MULTI/ZADD/HSET/EXEC to track it, then MULTI/ZREM/HDEL/EXEC to ack it)
and can lose a message whose BRPOP reply was in flight when its consumer died. Here:

* publish is one ``LPUSH`` per queue and batch; a fetch is one ``BLMOVE`` from the queue into the
  consumer's own processing list (atomic on the server: nothing is in flight); an ack is one
  ``LREM``. Three commands per message.
* A consumer is alive while its heartbeat (a score in ``<prefix>:consumers``) is younger than
  ``visibility_timeout``; ``get`` and ``extend`` renew it. Any consumer, every few seconds, moves
  the processing lists of dead consumers back to their queues, marking each message redelivered.
* ``reject(requeue=True)`` puts the message back at the head of its queue, redelivered;
  ``reject(requeue=False, reason=...)`` moves it to ``<queue>.dlq`` with the reason in a header.
* Priorities: messages with a priority go to one of four lists (0-2, 3-5, 6-8, 9); consumers of
  a queue where priorities were ever used check them highest first (a Lua script), others pay
  nothing for the feature.

Options: ``visibility_timeout`` (seconds, default 60), ``prefix`` (key prefix, default
``canvas``). Every consumer of one Redis database should use the same ``visibility_timeout``.

Keys live in *key spaces*: a queue's lists, its priority flag, the processing lists holding its
deliveries and the registry of its consumers share one (``key_space(queue)``). On one node every
queue is in the key space ``<prefix>``; Redis Cluster (``canvas.transports.redis_cluster``) gives
each queue its own hash-tagged one, so that every script and BLMOVE stays in one slot.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
import redis

from canvas.transports.base import (
    REASON_HEADER,
    Consumer,
    Delivery,
    OutgoingMessage,
    Transport,
    is_reply_queue,
    reply_expires,
)
from canvas.transports.redis_lane import Lane

_LEVELS = (9, 6, 3)  # priority lists, highest first; below 3 (or none) is the plain list
_HEADER = struct.Struct("!BH")  # delivery count, queue name length

# Move the processing lists of consumers whose heartbeat is older than ARGV[1] back to their
# queues (head first, so they run next), counting one more delivery for each message. A frame
# too short for its header, or naming a queue its consumer did not read, goes back to that
# consumer's first queue unchanged, where a consumer dead-letters it: never lost, never pushed to
# a key made of garbage.
_REAP = """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 20)
local moved = 0
for _, id in ipairs(dead) do
  local plist = ARGV[2] .. ':p:' .. id
  local home = redis.call('HGET', KEYS[2], id)
  local first = ARGV[3]
  if home then first = string.sub(home, 2, string.find(home, '\\0', 2, true) - 1) end
  while true do
    local m = redis.call('RPOP', plist)
    if not m then break end
    local queue = nil
    if #m >= 3 then
      local qlen = string.byte(m, 2) * 256 + string.byte(m, 3)
      if #m >= 3 + qlen then queue = string.sub(m, 4, 3 + qlen) end
    end
    if queue and home and not string.find(home, '\\0' .. queue .. '\\0', 1, true) then
      queue = nil
    end
    if queue then
      local count = string.byte(m, 1)
      local again = string.char(math.min(count + 1, 255)) .. string.sub(m, 2)
      redis.call('RPUSH', ARGV[2] .. ':q:' .. queue, again)
    else
      redis.call('RPUSH', ARGV[2] .. ':q:' .. first, m)
    end
    moved = moved + 1
  end
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return moved
"""

# Drop every list of a queue, counting what they held (one slot: one script).
_PURGE = """
local n = 0
for _, key in ipairs(KEYS) do
  n = n + redis.call('LLEN', key)
  redis.call('DEL', key)
end
return n
"""

# Take the first message of the highest-priority non-empty list into the processing list.
_FETCH_PRIORITY = """
for i = 1, #KEYS - 1 do
  local m = redis.call('LMOVE', KEYS[i], KEYS[#KEYS], 'RIGHT', 'LEFT')
  if m then return m end
end
return false
"""


def encode(queue: str, message: OutgoingMessage, count: int = 0) -> bytes:
    name = queue.encode()
    # 16 random bytes make every blob unique: an ack removes its own copy, not a twin's.
    payload: bytes = msgpack.packb(
        [message.headers, message.body, message.content_type, message.priority, os.urandom(16)],
        use_bin_type=True,
    )
    return _HEADER.pack(min(count, 255), len(name)) + name + payload


def decode(blob: bytes) -> tuple[int, str, list[Any]]:
    """``(delivery count, queue, [headers, body, content_type, priority, id])`` of a frame;
    ``ValueError`` naming what is wrong with a frame that is not one."""
    if len(blob) < _HEADER.size:
        raise ValueError(f"frame of {len(blob)} bytes is shorter than its header")
    count, length = _HEADER.unpack_from(blob)
    if len(blob) < _HEADER.size + length:
        raise ValueError("frame is shorter than its queue name")
    try:
        queue = blob[_HEADER.size : _HEADER.size + length].decode()
        payload = msgpack.unpackb(blob[_HEADER.size + length :], raw=False, strict_map_key=False)
    except Exception as exc:
        raise ValueError(f"undecodable frame ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, list) or len(payload) != 5:
        raise ValueError("frame payload is not [headers, body, content_type, priority, id]")
    headers, body, content_type, priority, _ = payload
    if not isinstance(headers, dict):
        raise ValueError(f"frame headers are a {type(headers).__name__}, not a mapping")
    if not isinstance(body, bytes) or not isinstance(content_type, str):
        raise ValueError("frame body is not bytes, or its content type not a string")
    if priority is not None and not isinstance(priority, int):
        raise ValueError("frame priority is not an int")
    return count, queue, payload


class RedisTransport(Transport):
    """Queues as Redis lists; see the module docstring for the guarantees."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.visibility_timeout = float(self.options.get("visibility_timeout") or 60.0)
        self.prefix = str(self.options.get("prefix") or "canvas")
        self._client: redis.Redis | None = None
        self._lane: Lane | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        """One client (with its connection pool) per process; a forked child makes its own."""
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = self.make_client()
                self._pid = os.getpid()
                pool = getattr(self._client, "connection_pool", None)  # a cluster has none
                self._lane = Lane(pool) if isinstance(pool, redis.ConnectionPool) else None
            return self._client

    def make_client(self) -> Any:
        """A new client for this broker (the cluster transport makes a cluster client)."""
        return redis.Redis.from_url(self.url)

    def key_space(self, queue: str) -> str:
        """The key prefix shared by ``queue``'s lists, processing lists and consumer registry."""
        return self.prefix

    def key(self, queue: str, priority: int | None = None) -> str:
        level = next((lv for lv in _LEVELS if (priority or 0) >= lv), None)
        return f"{self.key_space(queue)}:q:{queue}" + (f":p{level}" if level is not None else "")

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        first = messages[0]
        if len(messages) == 1 and not first.priority and not is_reply_queue(first.queue):
            # delay(): one LPUSH, no pipeline, on the connection kept for single sends
            client, key, frame = self.client, self.key(first.queue), encode(first.queue, first)
            lane = self._lane
            if lane is None or not lane.lpush(key, frame):
                client.lpush(key, frame)
            return
        batches: dict[str, list[bytes]] = {}
        flagged: set[str] = set()
        replies: set[str] = set()
        for message in messages:
            if is_reply_queue(message.queue):
                key = self.key(message.queue)
                replies.add(key)
            else:
                key = self.key(message.queue, message.priority)
                if message.priority:
                    flagged.add(message.queue)
            batches.setdefault(key, []).append(encode(message.queue, message))
        pipe = self.client.pipeline(transaction=False)
        for queue in flagged:
            pipe.set(f"{self.key_space(queue)}:prio:{queue}", 1)
        for key, blobs in batches.items():
            pipe.lpush(key, *blobs)
        for key in replies:  # a reply list outlives its client by reply_expires at most
            pipe.expire(key, max(1, int(reply_expires(self.options))))
        pipe.execute()

    def consumer(self, queues: Iterable[str], prefetch: int = 1) -> RedisConsumer:
        return RedisConsumer(self, list(queues), prefetch)

    def purge(self, queue: str) -> int:
        keys = [self.key(queue)] + [self.key(queue, level) for level in _LEVELS]
        return int(self.client.register_script(_PURGE)(keys=keys))

    def size(self, queue: str) -> int:
        keys = [self.key(queue)] + [self.key(queue, level) for level in _LEVELS]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.llen(key)
        return int(sum(pipe.execute()))

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
                if self._lane is not None:
                    self._lane.close()
            self._client = self._lane = None


class RedisConsumer(Consumer):
    """Fetches into its own processing list; alive while its heartbeat is fresh."""

    def __init__(self, transport: RedisTransport, queues: list[str], prefetch: int) -> None:
        if not queues:
            raise ValueError("A consumer needs at least one queue.")
        self.transport = transport
        self.queues = queues
        self.prefetch = max(1, prefetch)
        self.id = uuid.uuid4().hex
        # Its own pool: BLMOVE blocks a socket. Typed Any: redis-py's stubs reject bytes values.
        self.client: Any = transport.make_client()
        # Per key space: where this consumer's deliveries wait for their ack, the registry of
        # heartbeats its reaper reads, and its queues there (for the reaper: frames naming
        # another queue go back to the first). On one node there is one space: canvas:p:<id>.
        self.spaces: dict[str, list[str]] = {}
        for queue in queues:
            self.spaces.setdefault(transport.key_space(queue), []).append(queue)
        #: the processing list of the first queue (of every queue, on one node)
        self.processing = self.processing_list(self.queues[0])
        self.reap_script = self.client.register_script(_REAP)
        self.fetch_script = self.client.register_script(_FETCH_PRIORITY)
        self.lease = transport.visibility_timeout
        self.unsettled = 0
        self.turn = 0
        self.prioritized: set[str] = set()
        self.next_beat = 0.0
        self.closed = False
        for space, mine in self.spaces.items():
            self.client.hset(f"{space}:homes", self.id, "\0" + "\0".join(mine) + "\0")
        self._beat(force=True)

    # -- liveness ----------------------------------------------------------------------------
    def processing_list(self, queue: str) -> str:
        """The list holding this consumer's unsettled deliveries from ``queue``."""
        return f"{self.transport.key_space(queue)}:p:{self.id}"

    def _beat(self, force: bool = False) -> None:
        """Renew the heartbeat, reap dead consumers, and look for queues using priorities."""
        now = time.time()
        if not force and now < self.next_beat:
            return
        self.next_beat = now + min(self.lease / 4.0, 5.0)
        pipe = self.client.pipeline(transaction=False)
        for space in self.spaces:
            pipe.zadd(f"{space}:consumers", {self.id: now})
        for queue in self.queues:
            pipe.exists(f"{self.transport.key_space(queue)}:prio:{queue}")
        flags = pipe.execute()[len(self.spaces) :]
        self.prioritized = {q for q, flag in zip(self.queues, flags, strict=True) if flag}
        self._reap(now - self.lease)

    def _reap(self, older_than: float) -> None:
        for space, mine in self.spaces.items():
            keys = [f"{space}:consumers", f"{space}:homes"]
            self.reap_script(keys=keys, args=[older_than, space, mine[0]])

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew this consumer's heartbeat: every delivery it holds stays its own."""
        now = time.time()
        if len(self.spaces) == 1:
            self.client.zadd(f"{next(iter(self.spaces))}:consumers", {self.id: now})
            return
        pipe = self.client.pipeline(transaction=False)
        for space in self.spaces:
            pipe.zadd(f"{space}:consumers", {self.id: now})
        pipe.execute()

    # -- fetching ----------------------------------------------------------------------------
    def get(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        looked = False  # get(0) still looks once: a message waiting already is handed out
        while True:
            self._beat()
            if self.unsettled < self.prefetch:
                fetched = self._fetch_any()
                if fetched is not None:
                    return self._delivery(*fetched)
            left = deadline - time.monotonic()
            if left <= 0 and (looked or self.unsettled >= self.prefetch):
                return None
            if self.unsettled >= self.prefetch:
                time.sleep(min(left, 0.05))
                continue
            fetched = self._block(min(left, 1.0 if len(self.queues) == 1 else 0.1))
            looked = True
            if fetched is not None:
                return self._delivery(*fetched)

    def _fetch_any(self) -> tuple[bytes, str] | None:
        """One non-blocking look at each queue, in turn (round robin across queues)."""
        if len(self.queues) == 1 and not self.prioritized:
            return None  # the blocking BLMOVE below is the one command a fetch costs
        for offset in range(len(self.queues)):
            queue = self.queues[(self.turn + offset) % len(self.queues)]
            if queue in self.prioritized:
                keys = [self.transport.key(queue, lv) for lv in _LEVELS]
                keys += [self.transport.key(queue), self.processing_list(queue)]
                blob = self.fetch_script(keys=keys)
            else:
                source = self.transport.key(queue)
                blob = self.client.lmove(source, self.processing_list(queue), "RIGHT", "LEFT")
            if blob is not None:  # an empty frame is a (bad) message too
                self.turn += offset + 1
                return bytes(blob), queue
        return None

    def _block(self, seconds: float) -> tuple[bytes, str] | None:
        queue = self.queues[self.turn % len(self.queues)]
        self.turn += 1
        blob = self.client.blmove(
            self.transport.key(queue),
            self.processing_list(queue),
            max(seconds, 0.01),
            "RIGHT",
            "LEFT",
        )
        return (bytes(blob), queue) if blob is not None else None

    def _delivery(self, blob: bytes, source: str) -> Delivery:
        self.unsettled += 1
        try:
            count, queue, (headers, body, content_type, _priority, _id) = decode(blob)
            if queue != source:
                raise ValueError(f"frame names queue {queue!r} but was read from {source!r}")
        except ValueError as exc:
            # A bad message, not a bad connection: the worker dead-letters the raw frame.
            return Delivery(
                queue=source,
                body=blob,
                headers={},
                content_type="application/octet-stream",
                redelivered=blob[:1] not in (b"", b"\0"),
                tag=blob,
                consumer=self,
                error=str(exc),
            )
        return Delivery(
            queue=queue,
            body=body,
            headers=dict(headers),
            content_type=content_type,
            redelivered=count > 0,
            tag=blob,
            consumer=self,
        )

    # -- settling ----------------------------------------------------------------------------
    def ack(self, delivery: Delivery) -> None:
        self.client.lrem(self.processing_list(delivery.queue), 1, delivery.tag)
        self.unsettled -= 1

    def reject(self, delivery: Delivery, requeue: bool, reason: str = "") -> None:
        blob: bytes = delivery.tag
        pipe = self.client.pipeline(transaction=True)
        if requeue and delivery.error is None:
            count, queue, payload = decode(blob)
            name = queue.encode()
            again = _HEADER.pack(min(count + 1, 255), len(name)) + blob[_HEADER.size :]
            pipe.rpush(self.transport.key(queue, payload[3]), again)
        else:
            headers = {**delivery.headers, REASON_HEADER: reason or "rejected"}
            dead_queue = self.transport.dead_letters(delivery.queue)
            dead = OutgoingMessage(dead_queue, delivery.body, headers, delivery.content_type)
            pipe.lpush(self.transport.key(dead_queue), encode(dead_queue, dead))
        pipe.lrem(self.processing_list(delivery.queue), 1, blob)
        pipe.execute()
        self.unsettled -= 1

    def close(self) -> None:
        """Give unsettled messages back at once (as a dead consumer's would be, later)."""
        if self.closed:
            return
        self.closed = True
        try:
            for space in self.spaces:
                self.client.zadd(f"{space}:consumers", {self.id: 0})
            self._reap(0)
        finally:
            self.client.close()
