"""Celery's command-line habits: ``multi`` per-node options, worker flags, ``app.start``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from canvas.cli.main import cli
from canvas.cli.multi import selected, split_options


def test_multi_numbers_nodes_and_gives_per_node_options() -> None:
    # Given celery multi's own example: three nodes, -Q for the first, -c for the last two
    run = CliRunner().invoke(
        cli,
        ["multi", "show", "3", "-A", "proj", "-c", "2", "-Q:1", "hipri", "-c:2-3", "4"],
    )
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    # Then each node gets the common options and its own
    assert [line.split(" -n ")[1].split()[0] for line in lines] == [
        "canvas1@%h",
        "canvas2@%h",
        "canvas3@%h",
    ]
    assert lines[0].endswith("-c 2 -Q hipri")
    assert lines[1].endswith("-c 2 -c 4") and lines[2].endswith("-c 2 -c 4")


@pytest.mark.parametrize(
    ("selector", "position", "node", "expected"),
    [
        ("1", 1, "w1", True),
        ("1", 2, "w2", False),
        ("1-3", 2, "w2", True),
        ("1,3", 2, "w2", False),
        ("w2", 2, "w2", True),
        ("w1,w2", 2, "w2@host", True),
    ],
)
def test_selectors(selector: str, position: int, node: str, expected: bool) -> None:
    assert selected(selector, position, node) is expected


def test_split_options_takes_values_after_or_with_equals() -> None:
    common, specific = split_options(["-l", "INFO", "--queues:w1=a,b", "-c:2", "3", "-E"])
    assert common == ["-l", "INFO", "-E"]
    assert specific == [("w1", ["--queues", "a,b"]), ("2", ["-c", "3"])]


def test_a_bad_autoscale_stops_the_worker_with_a_clear_error() -> None:
    run = CliRunner().invoke(cli, ["-A", "canvas:Canvas", "worker", "--autoscale=3,ten"])
    assert run.exit_code == 2
    assert "--autoscale" in run.output and "'3,ten' is not max,min" in run.output


def test_worker_accepts_celerys_flags() -> None:
    run = CliRunner().invoke(cli, ["worker", "--help"])
    for flag in (
        "--autoscale",
        "--max-tasks-per-child",
        "--max-memory-per-child",
        "--time-limit",
        "--soft-time-limit",
        "--detach",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
        "-O",
    ):
        assert flag in run.output
