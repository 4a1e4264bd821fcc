"""Plug-ins: a package adds a transport, a result store or a schedule store by entry point.

The plug-in here is a real distribution (a ``.dist-info`` with ``entry_points.txt`` and a module)
on ``sys.path``, found by ``importlib.metadata`` as an installed package would be.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from canvas import Canvas, backends, transports
from canvas.beat import stores
from canvas.exceptions import ImproperlyConfigured

PLUGIN = """
from canvas.backends.memory import MemoryBackend
from canvas.beat.stores import MemoryStore
from canvas.transports.embedded import EmbeddedTransport


class PluginTransport(EmbeddedTransport):
    def __init__(self, url, options=None):
        super().__init__("embedded://" + url.split("://", 1)[1], options)


class PluginBackend(MemoryBackend):
    pass


class PluginStore(MemoryStore):
    pass
"""

ENTRY_POINTS = """
[canvas.transports]
plugq = canvas_plugin_example:PluginTransport
redis = canvas_plugin_example:PluginTransport

[canvas.backends]
plugstore = canvas_plugin_example:PluginBackend

[canvas.stores]
plugbeat = canvas_plugin_example:PluginStore
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Install the plug-in distribution on ``sys.path`` for this test only."""
    (tmp_path / "canvas_plugin_example.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "canvas_plugin_example-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: canvas-plugin-example\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("canvas_plugin_example", None)


def test_a_transport_scheme_from_an_entry_point(plugin: Path) -> None:
    # Given a package that declares the transport scheme "plugq"
    # When an app uses a broker URL with that scheme
    app = Canvas(
        "plugin", broker=f"plugq://{plugin / 'q.sqlite'}", backend="memory://", set_as_current=False
    )

    @app.task(name="plugin.add")
    def add(x: int, y: int) -> int:
        return x + y

    # Then the plug-in's transport carries the message
    assert type(app.transport).__name__ == "PluginTransport"
    add.delay(1, 2)
    assert app.transport.size("canvas") == 1
    app.close()


def test_a_result_store_and_a_schedule_store_from_entry_points(plugin: Path) -> None:
    # Given a package that declares the store schemes "plugstore" and "plugbeat"
    # Then each lookup finds the plug-in's class
    assert backends.resolve("plugstore://").__name__ == "PluginBackend"
    assert stores.resolve("plugbeat://").__name__ == "PluginStore"


def test_the_alias_table_wins_over_an_entry_point_and_unknown_schemes_still_fail(
    plugin: Path,
) -> None:
    # Given a plug-in that also claims the built-in scheme "redis"
    # Then the built-in one is used, and an unknown scheme names the closest, plug-ins included
    assert transports.resolve("redis://x").__name__ == "RedisTransport"
    with pytest.raises(ImproperlyConfigured, match="Did you mean 'plugq'") as error:
        transports.resolve("plugz://x")
    assert "plugq" in str(error.value).split("Known schemes:")[1]
