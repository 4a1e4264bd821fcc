"""Fixtures of the chaos suite: private servers, a cluster per case, and the report table.

Quick cases are marked ``integration`` and run by default. Long ones are marked ``chaos`` and run
only when asked for: ``pytest -m chaos tests/chaos`` (or ``CANVAS_CHAOS=1``). Servers listen on
127.0.0.1 only, on free ports the kernel picks (so two runs can go on at once), or from
``CANVAS_CHAOS_PORT`` when it is set: broker Redis there, store Redis on +1, RabbitMQ on +3 (its
Erlang distribution on +10003).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import REPORT, Cluster, table
from .proxy import Proxy
from .servers import RabbitServer, RedisServer, free_port

FIXED_PORT = int(os.environ.get("CANVAS_CHAOS_PORT") or 0)


def port(offset: int) -> int:
    return FIXED_PORT + offset if FIXED_PORT else free_port()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = "chaos" in (config.getoption("markexpr", "") or "") or os.environ.get("CANVAS_CHAOS")
    if wanted:
        return
    here = Path(__file__).parent
    skipped = [i for i in items if i.get_closest_marker("chaos") and here in i.path.parents]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [i for i in items if i not in skipped]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("chaos ledger")
        terminalreporter.write_line(table(REPORT))


@pytest.fixture(scope="session")
def chaos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="session")
def broker_redis(chaos_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(port(0), chaos_dir / "broker-redis")
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def store_redis(chaos_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(port(1), chaos_dir / "store-redis")
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def rabbit(chaos_dir: Path) -> Iterator[RabbitServer]:
    server = RabbitServer(port(3), chaos_dir / "rabbitmq", dist_port=port(10003))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def proxies() -> Iterator[Callable[[int], Proxy]]:
    made: list[Proxy] = []

    def make(target_port: int) -> Proxy:
        made.append(Proxy(target_port).start())
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    broker_redis: RedisServer,
    store_redis: RedisServer,
) -> Iterator[Callable[..., Cluster]]:
    """``cluster(name, broker=None, **env)``: a case on a fresh queue; Redis broker by default."""
    made: list[Cluster] = []
    for server in (broker_redis, store_redis):
        if not server.ping():  # a failed case may have left it down
            server.start()
        server.client().flushall()

    def make(name: str, broker: str | None = None, **env: str) -> Cluster:
        made.append(
            Cluster(
                name,
                broker or broker_redis.url(),
                store_redis.url(),
                tmp_path,
                store=store_redis.client(),
                extra=env,
            )
        )
        return made[-1]

    yield make
    for case in made:
        case.close()
