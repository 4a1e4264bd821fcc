"""The Redis bus on Redis Cluster: classic ``PUBLISH`` is forwarded to every node of a cluster,
so a subscriber connected to any node hears what a publisher sent through any other.

URL: the broker's (``redis+cluster://host:port[,host:port...]/``). A cluster has one database,
so channels are ``canvas-bus:0:<topic>``. A subscriber whose node fails misses what was published
until it subscribes again (the bus contract allows it: control replies and events are best
effort); the publishing client follows the failover by itself.
"""

from __future__ import annotations

from typing import Any

from canvas.bus.redis import RedisBus
from canvas.transports.redis_cluster import cluster_client


class RedisClusterBus(RedisBus):
    """``RedisBus`` through a ``RedisCluster`` client."""

    def database(self) -> int:
        return 0

    def make_client(self) -> Any:
        return cluster_client(self.url)
