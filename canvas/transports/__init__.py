"""Transports, chosen by broker URL scheme.

``redis://`` / ``rediss://`` use canvas's own reliable Redis queue (``canvas.transports.redis``;
kombu's Redis transport stays available as ``kombu+redis://``), ``redis+cluster://`` /
``rediss+cluster://`` the same queue on Redis Cluster (``canvas.transports.redis_cluster``),
``amqp://`` / ``amqps://`` / ``pyamqp://`` go through kombu;
``embedded://<path>`` (the default when no broker is configured) is a SQLite file on this machine
that needs no server. A scheme not in the table may come from an installed package's
``canvas.transports`` entry point (its name is the scheme), or be a dotted ``module:Class`` path.
"""

from __future__ import annotations

from typing import Any

from canvas.registry import lookup
from canvas.transports.base import Consumer, Delivery, OutgoingMessage, Transport

TRANSPORT_ALIASES: dict[str, str] = {
    "redis": "canvas.transports.redis:RedisTransport",
    "rediss": "canvas.transports.redis:RedisTransport",
    "redis+cluster": "canvas.transports.redis_cluster:RedisClusterTransport",
    "rediss+cluster": "canvas.transports.redis_cluster:RedisClusterTransport",
    "kombu+redis": "canvas.transports.kombu:KombuRedisTransport",
    "kombu+rediss": "canvas.transports.kombu:KombuRedisTransport",
    "amqp": "canvas.transports.kombu:AMQPTransport",
    "amqps": "canvas.transports.kombu:AMQPTransport",
    "pyamqp": "canvas.transports.kombu:AMQPTransport",
    "embedded": "canvas.transports.embedded:EmbeddedTransport",
    "memory": "canvas.transports.embedded:EmbeddedTransport",
}


def resolve(url: str) -> type[Transport]:
    """The transport class for ``url``, or an error that suggests the closest known scheme."""
    scheme = url.split("://", 1)[0] if "://" in url else url
    cls: type[Transport] = lookup(
        scheme, TRANSPORT_ALIASES, what="broker", shown=url, group="canvas.transports"
    )
    return cls


def create(url: str, options: dict[str, Any] | None = None) -> Transport:
    cls = resolve(url)
    if url.startswith("kombu+"):
        url = url[len("kombu+") :]  # kombu itself knows the plain scheme
    return cls(url, options)


__all__ = [
    "TRANSPORT_ALIASES",
    "Consumer",
    "Delivery",
    "OutgoingMessage",
    "Transport",
    "create",
    "resolve",
]
