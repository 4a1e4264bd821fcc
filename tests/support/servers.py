"""The servers the suite talks to, from one naming scheme, and clear failures when one is down.

``CANVAS_TEST_REDIS``, ``CANVAS_TEST_AMQP`` and ``CANVAS_TEST_POSTGRES`` name them. Point them
elsewhere (another Redis port, a RabbitMQ vhost, another database) to run two suites side by side
without one consuming the other's messages. A missing server fails the test, never skips it.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import unquote, urlsplit, urlunsplit

import amqp
import psycopg
import pytest
import redis

REDIS_URL = os.environ.get("CANVAS_TEST_REDIS", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("CANVAS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_URL = os.environ.get("CANVAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "postgresql": 5432}


def redis_db(db: int) -> str:
    """``REDIS_URL``'s server with another database number (tests that need one of their own)."""
    parts = urlsplit(REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str) -> None:
    """Fail (not skip) with a clear message: the suite promises real services."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.split("+")[0], 0)
    if not _answers(host, port):
        pytest.fail(
            f"{name} is not answering on {host}:{port} ({url}). Start it (scripts/services.sh "
            "does), or point CANVAS_TEST_REDIS / CANVAS_TEST_AMQP / CANVAS_TEST_POSTGRES at one "
            "that runs, and run the tests again.",
            pytrace=False,
        )


def amqp_connection() -> amqp.Connection:
    """A py-amqp connection to ``AMQP_URL`` (for tests that look at queues directly)."""
    parts = urlsplit(AMQP_URL)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    conn = amqp.Connection(
        f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost,
        connect_timeout=2,
    )
    conn.connect()
    return conn


def check_redis(url: str = REDIS_URL) -> str:
    """``url`` when a Redis server answers a PING there; the test fails otherwise."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        problem = None
    except redis.RedisError as exc:
        problem = exc
    finally:
        client.close()
    if problem is not None:
        pytest.fail(
            f"Redis is not answering at {url} ({problem}). Start redis-server there (or run "
            "scripts/services.sh), or point CANVAS_TEST_REDIS at one that runs.",
            pytrace=False,
        )
    return url


def check_amqp() -> str:
    """``AMQP_URL`` when RabbitMQ accepts a connection there; the test fails otherwise."""
    try:
        amqp_connection().close()
    except (OSError, amqp.exceptions.AMQPError) as exc:
        pytest.fail(
            f"RabbitMQ is not answering at {AMQP_URL} ({exc!r}). Start rabbitmq-server (or run "
            "scripts/services.sh), or point CANVAS_TEST_AMQP at one that runs.",
            pytrace=False,
        )
    return AMQP_URL


def check_postgres() -> str:
    """``POSTGRES_URL`` when PostgreSQL accepts a connection there; the test fails otherwise."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is not answering at {POSTGRES_URL} ({exc}). Start it (or run "
            "scripts/services.sh), or point CANVAS_TEST_POSTGRES at one that runs.",
            pytrace=False,
        )
    return POSTGRES_URL
