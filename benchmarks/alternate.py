"""Alternating rounds for the benchmarks behind one change each (``queue_version.py``,
``confirm_floor.py``): every way runs once a round, in turn, so a drift in the machine's load
touches them alike; the table gives each way's median and range."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping


def alternate(ways: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each way's figures, ``rounds`` of them, taken in turn."""
    runs: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            runs[name].append(way())
    return runs


def print_table(first_column: str, figure: str, runs: Mapping[str, list[float]]) -> None:
    """A Markdown table: a row a way, with its median and range of ``figure``."""
    print(f"| {first_column} | {figure} (median) | range |")
    print("| --- | ---: | ---: |")
    for name, values in runs.items():
        low, high = min(values), max(values)
        print(f"| {name} | {statistics.median(values):.0f} | {low:.0f}–{high:.0f} |")
