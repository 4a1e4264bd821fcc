"""Draw the canvas advantage per scenario and config as a PNG (run with the Celery venv's Python).

Input: a JSON file written by ``report.chart`` with ``series`` (one per config: label -> advantage
or null), ``targets`` (label -> the advantage the issue asks for, or null) and ``title``.
Usage: ``python chart.py data.json out.png``.
"""

from __future__ import annotations

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(data_path: str, out_path: str) -> None:
    data = json.load(open(data_path))
    series = data["series"]
    labels = list(dict.fromkeys(k for s in series for k in s["values"]))
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(labels) * max(1, len(series)) / 2 + 2))
    height = 0.8 / max(1, len(series))
    colors = ["#3b75af", "#ef8536", "#519e3e", "#c53a32", "#8d69b8"]
    for i, s in enumerate(series):
        ys = [j + i * height for j in range(len(labels))]
        xs = [s["values"].get(label) for label in labels]
        for y, x in zip(ys, xs, strict=True):
            if x is None:
                ax.text(1, y, " not measured", va="center", fontsize=7, color="grey")
        ax.barh(
            [y for y, x in zip(ys, xs, strict=True) if x is not None],
            [x for x in xs if x is not None],
            height=height,
            left=0,
            color=colors[i % len(colors)],
            label=s["config"],
        )
        for y, x in zip(ys, xs, strict=True):
            if x is not None:
                ax.text(x, y, f" {x:.2f}×", va="center", fontsize=7)
    for j, label in enumerate(labels):
        target = data["targets"].get(label)
        if target:
            ax.plot(
                [target, target],
                [j - height / 2, j + 0.8 - height / 2],
                color="black",
                linestyle="--",
                linewidth=1,
            )
    ax.axvline(1, color="grey", linewidth=1)
    ax.set_xscale("log")
    finite = [x for s in series for x in s["values"].values() if x]
    lo = min([0.5, *finite]) / 1.5
    hi = max([20, *finite]) * 2
    ax.set_xlim(10 ** math.floor(math.log10(lo)), hi)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(labels))])
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("canvas advantage (log scale; > 1 = canvas better; dashed = target)")
    ax.set_title(data["title"], fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
