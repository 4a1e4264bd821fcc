"""The Redis transport on Redis Cluster: the same reliable queue, each queue in its own slot.

URL: ``redis+cluster://[[user]:password@]host:port[,host:port...]/`` (``rediss+cluster://`` for
TLS). Any one node is enough to start from; redis-py's ``RedisCluster`` finds the others, follows
``MOVED``/``ASK`` redirections, and after a failover asks the cluster again for its slots.

Celery cannot use Redis Cluster as a broker (celery#2852, kombu#526: its commands span keys in
several slots, ``CROSSSLOT``). Here every command and script touches one queue's keys only, and
those share the hash tag ``{q:<queue>}`` (a dead-letter queue ``<queue>.dlq`` shares its
queue's tag, so ``reject`` moves a message there in one transaction)::

    <prefix>:{q:<queue>}:q:<queue>          list   the queue (and :p3, :p6, :p9 priority lists)
    <prefix>:{q:<queue>}:q:<queue>.dlq      list   its dead letters
    <prefix>:{q:<queue>}:p:<consumer id>    list   a consumer's unsettled deliveries
    <prefix>:{q:<queue>}:consumers          zset   consumer heartbeats, read by the reaper
    <prefix>:{q:<queue>}:prio:<queue>       string set once priorities were used

Redis replicates asynchronously: a primary answers a write before its replica has it, and a
primary killed in between takes the write with it. So a publish also waits, with ``WAIT``, until
one replica of the queue's primary acknowledged it (transport option ``replica_wait``, seconds,
default 2; ``0`` turns the wait off). A replica that does not answer in time is logged, and the
publish returns: the message is then as safe as Redis's replication makes it.

A consumer of several queues (on several nodes) polls them in turn: a non-blocking ``LMOVE``
on each, then a short ``BLMOVE`` on one, rotating (see ``RedisConsumer``), so no queue starves
and no multi-key command spans slots. Its heartbeat is renewed in the registry of each queue's
slot, and each slot's reaper hands back what a dead consumer held there. The guarantees are the
single node's: a delivery is moved atomically into a processing list, never in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from canvas.exceptions import ImproperlyConfigured
from canvas.transports.base import DLQ_SUFFIX, OutgoingMessage
from canvas.transports.redis import RedisTransport

logger = logging.getLogger(__name__)

#: how long a command keeps retrying while a failed primary is replaced (about 10 s in all)
_RETRIES = 25


def cluster_client(url: str, **options: Any) -> RedisCluster:
    """A ``RedisCluster`` client for a ``redis+cluster://`` or ``rediss+cluster://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis+cluster", "rediss+cluster"):
        raise ImproperlyConfigured(f"Not a Redis Cluster URL: {url!r}")
    _, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(
                f"Redis Cluster URL {url!r}: each node must be host:port, got {item!r}."
            )
        nodes.append(ClusterNode(host.strip("[]"), int(port)))  # type: ignore[no-untyped-call]
    credentials: dict[str, Any] = {}
    if "@" in parts.netloc:
        user, _, password = parts.netloc.rpartition("@")[0].partition(":")
        credentials = {"username": unquote(user) or None, "password": unquote(password) or None}
    return RedisCluster(
        startup_nodes=nodes,
        ssl=parts.scheme == "rediss+cluster",
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), _RETRIES),
        socket_keepalive=True,
        **credentials,
        **options,
    )


class ReplicaWait:
    """``WAIT 1`` on each primary a write went to, up to ``seconds`` (0: no wait).

    The node's pool hands back the connection that just wrote (it is last in, first out), and
    ``WAIT`` covers that connection's writes. A replica that does not answer in time is logged,
    once a minute at most, and the write stands as safe as Redis's replication makes it.
    """

    def __init__(self, value: Any, setting: str, what: str) -> None:
        try:
            self.seconds = float(2.0 if value is None else value)
        except (TypeError, ValueError):
            raise ImproperlyConfigured(
                f"{setting} replica_wait={value!r}: give seconds (0 turns it off)."
            ) from None
        self.what = what
        self._warned_at = 0.0

    def __call__(self, client: Any, keys: Iterable[str]) -> None:
        if self.seconds <= 0:
            return
        primaries: dict[str, ClusterNode] = {}
        for key in keys:
            nodes = client.nodes_manager.slots_cache.get(client.keyslot(key)) or []
            if len(nodes) > 1:  # a primary without replicas has nobody to wait for
                primaries[nodes[0].name] = nodes[0]
        for node in primaries.values():
            acked = client.get_redis_connection(node).execute_command(
                "WAIT", 1, int(self.seconds * 1000)
            )
            if not acked and time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                logger.warning(
                    "No replica of %s acknowledged %s within %.1f s: until one does, "
                    "a crash of that primary can lose it (replica_wait).",
                    node.name,
                    self.what,
                    self.seconds,
                )


class RedisClusterTransport(RedisTransport):
    """``RedisTransport`` with one hash-tagged key space per queue (see the module docstring)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.replica_wait = ReplicaWait(
            self.options.get("replica_wait"), "broker_transport_options", "a publish"
        )

    def make_client(self) -> Any:
        return cluster_client(self.url)

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        super().publish(messages)
        self.replica_wait(self.client, {self.key(m.queue, m.priority) for m in messages})

    def where(self) -> str:
        """The nodes of the URL, sorted, without credentials (``urlsplit`` reads no list of
        ports). Apps parking countdowns in one store must list the same nodes."""
        scheme, _, rest = self.url.partition("://")
        hosts = rest.rpartition("@")[2].partition("/")[0]
        return f"{scheme}://{','.join(sorted(hosts.lower().split(',')))}/"

    def key_space(self, queue: str) -> str:
        tag = queue.removesuffix(DLQ_SUFFIX) or queue
        return f"{self.prefix}:{{q:{tag}}}"
