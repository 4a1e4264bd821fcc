"""The bus: broadcast messages for remote control and events, on the broker already in use.

The bus of an app follows its broker URL: ``redis://`` uses Redis pub/sub
(``canvas.bus.redis``), ``redis+cluster://`` the cluster's (``canvas.bus.redis_cluster``),
``amqp://`` a topic exchange on RabbitMQ (``canvas.bus.amqp``), the embedded default a table in
its SQLite file (``canvas.bus.embedded``). ``canvas.bus.memory`` is an in-process bus for unit
tests. See ``canvas.bus.base`` for what every bus guarantees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canvas.bus.base import Bus, BusMessage, Subscription
from canvas.registry import lookup

if TYPE_CHECKING:
    from canvas.app import Canvas

BUS_ALIASES: dict[str, str] = {
    "redis": "canvas.bus.redis:RedisBus",
    "rediss": "canvas.bus.redis:RedisBus",
    "redis+cluster": "canvas.bus.redis_cluster:RedisClusterBus",
    "rediss+cluster": "canvas.bus.redis_cluster:RedisClusterBus",
    "kombu+redis": "canvas.bus.redis:RedisBus",
    "kombu+rediss": "canvas.bus.redis:RedisBus",
    "amqp": "canvas.bus.amqp:AMQPBus",
    "amqps": "canvas.bus.amqp:AMQPBus",
    "pyamqp": "canvas.bus.amqp:AMQPBus",
    "embedded": "canvas.bus.embedded:EmbeddedBus",
    "memory": "canvas.bus.embedded:EmbeddedBus",
}


def for_transport(transport: Any) -> Bus:
    """The bus on the broker of ``transport`` (a ``canvas.transports.Transport``).

    The embedded bus needs the transport's database file (``memory://`` makes a private one).
    """
    url = str(transport.url)
    scheme = url.split("://", 1)[0]
    cls: type[Bus] = lookup(
        scheme,
        BUS_ALIASES,
        what="bus (remote control and events)",
        shown=url,
        group="canvas.buses",
    )
    return cls.for_transport(transport)


def of_app(app: Canvas) -> Bus:
    """The app's bus on its broker: one per process, opened on first use, closed by
    ``app.close()``."""
    return app.bus


__all__ = ["BUS_ALIASES", "Bus", "BusMessage", "Subscription", "for_transport", "of_app"]
