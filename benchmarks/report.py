"""From raw benchmark records to the Markdown report, the targets, the chart and the README block.

Every number in a table is the median over the runs with its min–max; a ratio compares medians.
"canvas/Celery" is the plain ratio of the two medians; "advantage" turns it so that above 1 always
means canvas is better (rates: canvas/Celery; times, bytes, commands, memory: Celery/canvas).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BROKER_NAMES = {
    "redis": "Redis broker + Redis results",
    "rabbitmq": "RabbitMQ broker + Redis results",
}
HIGHER, LOWER, NONE = "higher", "lower", ""
#: suffix of the scenarios canvas runs again with broker_confirm="off" (RabbitMQ only)
NOCONFIRM = "-noconfirm"
#: a metric of every scenario's record (the CPU shares), not of one scenario
EVERY = "*"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    scenario: str
    get: Callable[[dict[str, Any]], float | None]
    better: str
    unit: str  # "/s", "s", "B", "MB", "%", "" (count)
    #: Celery's scenario to compare with, when canvas's is a variant of it
    celery_scenario: str | None = None

    def scenario_of(self, system: str) -> str:
        return (self.celery_scenario or self.scenario) if system == "celery" else self.scenario


def _path(*keys: str) -> Callable[[dict[str, Any]], float | None]:
    def get(metrics: dict[str, Any]) -> float | None:
        value: Any = metrics
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value if isinstance(value, int | float) else None

    return get


def _memory(
    when: str, which: str, field: str = "rss_mb"
) -> Callable[[dict[str, Any]], float | None]:
    def get(metrics: dict[str, Any]) -> float | None:
        data = metrics.get(when) or {}
        if which == "main":
            main = data.get("main") or {}
            return main.get(field)
        values = [c.get(field) for c in data.get("children") or [] if c.get(field) is not None]
        return max(values) if values else None

    return get


def metrics_for(lengths: list[int]) -> list[Metric]:
    out = [
        Metric(
            "throughput",
            "1. add(i, i) with results: tasks/s",
            "throughput",
            _path("tasks_per_s"),
            HIGHER,
            "/s",
        ),
        Metric(
            "noop",
            "2. no-op, ignore_result: drained, tasks/s",
            "noop",
            _path("tasks_per_s"),
            HIGHER,
            "/s",
        ),
        Metric(
            "enqueue_single",
            "3a. enqueue, single calls: sends/s",
            "enqueue",
            _path("single_per_s"),
            HIGHER,
            "/s",
        ),
        Metric(
            "enqueue_group",
            "3b. enqueue, group batch publish: sends/s",
            "enqueue",
            _path("group_per_s"),
            HIGHER,
            "/s",
        ),
        Metric(
            "msg_bytes",
            "    message size, add(i, i)",
            "enqueue",
            _path("single_message_bytes_avg"),
            LOWER,
            "B",
        ),
        Metric(
            "throughput_noconfirm",
            "1'. with results, canvas broker_confirm=off: tasks/s",
            "throughput" + NOCONFIRM,
            _path("tasks_per_s"),
            HIGHER,
            "/s",
            "throughput",
        ),
        Metric(
            "noop_noconfirm",
            "2'. no-op drained, canvas broker_confirm=off: tasks/s",
            "noop" + NOCONFIRM,
            _path("tasks_per_s"),
            HIGHER,
            "/s",
            "noop",
        ),
        Metric(
            "enqueue_single_noconfirm",
            "3a'. enqueue single, canvas broker_confirm=off: sends/s",
            "enqueue" + NOCONFIRM,
            _path("single_per_s"),
            HIGHER,
            "/s",
            "enqueue",
        ),
        Metric(
            "enqueue_group_noconfirm",
            "3b'. enqueue group, canvas broker_confirm=off: sends/s",
            "enqueue" + NOCONFIRM,
            _path("group_per_s"),
            HIGHER,
            "/s",
            "enqueue",
        ),
    ]
    for length in lengths:
        out += [
            Metric(
                f"chain{length}",
                f"4. chain of {length}: time to result",
                "chains",
                _path(str(length), "seconds"),
                LOWER,
                "s",
            ),
            Metric(
                f"chain{length}_max",
                f"    chain of {length}: largest message",
                "chains",
                _path(str(length), "max_bytes"),
                LOWER,
                "B",
            ),
            Metric(
                f"chain{length}_total",
                f"    chain of {length}: total message bytes",
                "chains",
                _path(str(length), "total_bytes"),
                LOWER,
                "B",
            ),
        ]
    out += [
        Metric(
            "chord",
            "5a. chord of N add + tsum: time to result",
            "chord",
            _path("seconds"),
            LOWER,
            "s",
        ),
        Metric(
            "chord_runs", "    chord body runs (must be 1)", "chord", _path("body_runs"), NONE, ""
        ),
        Metric(
            "group", "5b. group of N add: time to results", "group", _path("seconds"), LOWER, "s"
        ),
        Metric(
            "cmds_result",
            "6a. Redis commands per task, with result",
            "throughput",
            _path("redis_commands_per_task"),
            LOWER,
            "",
        ),
        Metric(
            "cmds_noop",
            "6b. Redis commands per task, ignore_result",
            "noop",
            _path("redis_commands_per_task"),
            LOWER,
            "",
        ),
        Metric(
            "mem_main_idle",
            "7. worker RSS at idle: main process",
            "memory",
            _memory("idle", "main"),
            LOWER,
            "MB",
        ),
        Metric(
            "mem_child_idle",
            "7. worker RSS at idle: pool process (largest)",
            "memory",
            _memory("idle", "child"),
            LOWER,
            "MB",
        ),
        Metric(
            "mem_main_idle_uss",
            "    worker USS at idle: main process",
            "memory",
            _memory("idle", "main", "uss_mb"),
            LOWER,
            "MB",
        ),
        Metric(
            "mem_child_idle_uss",
            "    worker USS at idle: pool process (largest)",
            "memory",
            _memory("idle", "child", "uss_mb"),
            LOWER,
            "MB",
        ),
        Metric(
            "mem_main_after",
            "    worker RSS after the runs: main process",
            "memory",
            _memory("after", "main"),
            LOWER,
            "MB",
        ),
        Metric(
            "mem_child_after",
            "    worker RSS after the runs: pool process (largest)",
            "memory",
            _memory("after", "child"),
            LOWER,
            "MB",
        ),
        Metric(
            "cpu_foreign",
            "8. CPU used by other work during the scenarios (% of the machine)",
            EVERY,
            _path("cpu", "foreign_pct"),
            NONE,
            "%",
        ),
        Metric(
            "cpu_rabbitmq",
            "    CPU used by the RabbitMQ server (shared), same time",
            EVERY,
            _path("cpu", "rabbitmq_pct"),
            NONE,
            "%",
        ),
    ]
    return out


# -- aggregation -------------------------------------------------------------------------------
@dataclass
class Cell:
    values: list[float]
    errors: list[str]
    runs: int

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def configs(raw: dict[str, Any]) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for r in raw["records"]:
        key = (r["broker"], int(r["concurrency"]))
        if key not in seen:
            seen.append(key)
    return seen


def cell(raw: dict[str, Any], metric: Metric, broker: str, concurrency: int, system: str) -> Cell:
    values, errors, runs = [], [], 0
    scenario = metric.scenario_of(system)
    for r in raw["records"]:
        if (r["broker"], int(r["concurrency"]), r["system"]) != (broker, concurrency, system):
            continue
        if scenario == EVERY:
            if isinstance(r.get("cpu"), dict):
                value = metric.get({"cpu": r["cpu"]})
                values += [] if value is None else [float(value)]
            continue
        if r["scenario"] != scenario:
            continue
        runs += 1
        if not r.get("ok"):
            errors.append(str(r.get("error")))
            continue
        metrics = r.get("metrics") or {}
        value = metric.get(metrics)
        if value is None:
            # a chain length that failed inside an otherwise good scenario
            sub = (
                metrics.get(metric.key.removeprefix("chain").split("_")[0])
                if metric.scenario == "chains"
                else None
            )
            if isinstance(sub, dict) and sub.get("error"):
                errors.append(str(sub["error"]))
            continue
        values.append(float(value))
    return Cell(values, errors, runs)


def advantage(metric: Metric, canvas: float | None, celery: float | None) -> float | None:
    if canvas is None or celery is None or metric.better == NONE:
        return None
    if metric.better == HIGHER:
        return canvas / celery if celery else None
    return celery / canvas if canvas else None


# -- formatting ---------------------------------------------------------------------------------
def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "B":
        for step, name in ((1e6, "MB"), (1e3, "KB")):
            if value >= step:
                return f"{value / step:.3g} {name}"
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value:.3g} s"
    if unit == "/s":
        return f"{value:,.0f}"
    if unit == "MB":
        return f"{value:.1f}"
    if unit == "%":
        return f"{value:.0f}%"
    return f"{value:.3g}"


def fmt_cell(c: Cell, unit: str) -> str:
    if not c.values:
        if c.errors:
            return "**error**: " + _clip(c.errors[0], 90)
        return "–"
    text = fmt(c.median, unit)
    if len(c.values) > 1:
        text += f" ({fmt(min(c.values), unit)}–{fmt(max(c.values), unit)})"
    if c.errors:
        text += f" ⚠ {len(c.errors)} of {c.runs} runs failed"
    return text


def _clip(text: str, n: int) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def config_name(broker: str, concurrency: int) -> str:
    return f"{'Redis' if broker == 'redis' else 'RabbitMQ'} c={concurrency}"


def one_line(scenario: str, metrics: dict[str, Any]) -> str:
    """A short progress line for the console."""
    if scenario in ("throughput", "noop"):
        return (
            f"{metrics.get('tasks_per_s')} tasks/s, "
            f"{metrics.get('redis_commands_per_task')} Redis cmds/task"
        )
    if scenario == "enqueue":
        return f"single {metrics.get('single_per_s')}/s, group {metrics.get('group_per_s')}/s"
    if scenario == "chains":
        return ", ".join(
            f"{k}: {v['seconds']}s max {v['max_bytes']}B" if "seconds" in v else f"{k}: error"
            for k, v in metrics.items()
        )
    if scenario in ("chord", "group"):
        return f"{metrics.get('seconds')} s" + (
            f", body ran {metrics.get('body_runs')}x" if scenario == "chord" else ""
        )
    if scenario == "memory":
        return json.dumps(metrics)[:200]
    return json.dumps(metrics)[:200]


# -- targets ------------------------------------------------------------------------------------
def _median(
    raw: dict[str, Any], metrics: dict[str, Metric], key: str, broker: str, c: int, system: str
) -> float | None:
    return cell(raw, metrics[key], broker, c, system).median


def targets(raw: dict[str, Any], broker: str, c: int) -> list[tuple[str, str, str]]:
    """(target, status, detail) for one config; status is "met", "missed" or "n/a"."""
    lengths = [int(x) for x in str(raw["settings"]["lengths"]).split(",") if x]
    ms = {m.key: m for m in metrics_for(lengths)}

    def med(key: str, system: str = "canvas") -> float | None:
        return _median(raw, ms, key, broker, c, system)

    out: list[tuple[str, str, str]] = []

    def ratio_target(name: str, key: str, need: float) -> None:
        adv = advantage(ms[key], med(key), med(key, "celery"))
        if adv is None:
            out.append((name, "n/a", "not measured"))
        else:
            out.append((name, "met" if adv >= need else "missed", f"{adv:.2f}× (need {need:g}×)"))

    ratio_target("with results >= 3x Celery", "throughput", 3)
    ratio_target("no-op drain >= 3x Celery", "noop", 3)
    # The issue asks 3× on Redis; on RabbitMQ, where canvas waits for each confirm and Celery
    # does not, at least Celery's rate.
    single_need = 3 if broker == "redis" else 1
    ratio_target(f"enqueue single >= {single_need}x Celery", "enqueue_single", single_need)
    group_rate, celery_single = med("enqueue_group"), med("enqueue_single", "celery")
    if group_rate is None or not celery_single:
        out.append(("group batch publish >= 10x Celery per-call", "n/a", "no data"))
    else:
        adv = group_rate / celery_single
        out.append(
            (
                "group batch publish >= 10x Celery per-call",
                "met" if adv >= 10 else "missed",
                f"{adv:.2f}× (need 10×)",
            )
        )
    sizes = {n: med(f"chain{n}_max") for n in lengths}
    known = {n: s for n, s in sizes.items() if s is not None}
    if known:
        largest = max(known.values())
        flat = max(known.values()) <= 1.1 * min(known.values())
        ok = largest < 2048 and flat
        out.append(
            (
                "chain message < 2 KB, flat in length",
                "met" if ok else "missed",
                f"largest {fmt(largest, 'B')}; "
                + ", ".join(f"{n}: {fmt(s, 'B')}" for n, s in known.items()),
            )
        )
    else:
        out.append(("chain message < 2 KB, flat in length", "n/a", "no data"))
    per_step = {n: med(f"chain{n}") for n in lengths}
    per_step = {n: t / n for n, t in per_step.items() if t is not None}
    mid = [n for n in per_step if n >= 200]
    if len(mid) >= 2:
        lo, hi = min(mid), max(mid)
        growth = per_step[hi] / per_step[lo]
        out.append(
            (
                "chain time linear in length",
                "met" if growth <= 1.25 else "missed",
                f"ms/step {lo}: {1000 * per_step[lo]:.2f}, {hi}: {1000 * per_step[hi]:.2f} "
                f"({growth:.2f}×, need <= 1.25×)",
            )
        )
    else:
        out.append(("chain time linear in length", "n/a", "no data"))
    if 500 in lengths:
        ratio_target("chain of 500 >= 5x faster", "chain500", 5)
    ratio_target("chord of 1,000 >= 4x faster", "chord", 4)
    ratio_target("group of 1,000 >= 4x faster", "group", 4)
    runs = cell(raw, ms["chord_runs"], broker, c, "canvas").values
    out.append(
        (
            "chord body runs once",
            "n/a" if not runs else ("met" if all(r == 1 for r in runs) else "missed"),
            f"runs per chord: {sorted(set(int(r) for r in runs))}" if runs else "no data",
        )
    )
    cmds = med("cmds_result")
    out.append(
        (
            "<= 6 Redis commands per task with a result",
            "n/a" if cmds is None else ("met" if cmds <= 6 else "missed"),
            "no data"
            if cmds is None
            else f"{cmds:.2f}"
            + (" (results only: broker is RabbitMQ)" if broker == "rabbitmq" else ""),
        )
    )
    mem = [med("mem_main_idle"), med("mem_child_idle")]
    uss = [med("mem_main_idle_uss"), med("mem_child_idle_uss")]
    if None in mem:
        out.append(("worker memory <= 30 MB per process at idle", "n/a", "no data"))
    else:
        worst = max(m for m in mem if m is not None)
        out.append(
            (
                "worker memory <= 30 MB per process at idle",
                "met" if worst <= 30 else "missed",
                f"main {mem[0]:.1f} MB, pool process {mem[1]:.1f} MB (RSS); USS "
                + " / ".join("–" if u is None else f"{u:.1f}" for u in uss)
                + " MB",
            )
        )
    return out


# -- the report ---------------------------------------------------------------------------------
def summary_tables(raw: dict[str, Any], primary_only: bool = False) -> list[str]:
    lines: list[str] = []
    cfgs = configs(raw)
    names = [config_name(b, c) for b, c in cfgs]
    lines += [
        "| target | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    per = [targets(raw, b, c) for b, c in cfgs]
    icons = {"met": "✅", "missed": "❌", "n/a": "–"}
    for i, (name, _, _) in enumerate(per[0] if per else []):
        row = [f"{icons[p[i][1]]} {p[i][2]}" for p in per]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines.append("")
    for broker, c in cfgs[:1] if primary_only else cfgs:
        lines += config_table(raw, broker, c)
    return lines


def config_table(raw: dict[str, Any], broker: str, c: int) -> list[str]:
    lengths = [int(x) for x in str(raw["settings"]["lengths"]).split(",") if x]
    lines = [
        f"### {BROKER_NAMES[broker]}, worker with {c} process{'es' if c > 1 else ''}",
        "",
        "| scenario | canvas | Celery | canvas/Celery | canvas advantage |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in metrics_for(lengths):
        a, b = cell(raw, m, broker, c, "canvas"), cell(raw, m, broker, c, "celery")
        if not (a.runs or a.values) and (m.celery_scenario or not (b.runs or b.values)):
            continue
        ratio = f"{a.median / b.median:.3g}" if a.median is not None and b.median else "–"
        adv = advantage(m, a.median, b.median)
        adv_text = "–" if adv is None else (f"**{adv:.2f}×**" if adv >= 1 else f"{adv:.2f}×")
        label = m.label.replace(" N ", f" {raw['settings']['fanout']:,} ").replace(
            "    ", "&nbsp;&nbsp;&nbsp;&nbsp;"
        )
        lines.append(
            f"| {label} | {fmt_cell(a, m.unit)} | {fmt_cell(b, m.unit)} | {ratio} | {adv_text} |"
        )
    lines.append("")
    return lines


def details(raw: dict[str, Any]) -> list[str]:
    lines = ["## Details", "", "### Redis commands per task, by command (first good run)", ""]
    for scenario in ("throughput", "noop"):
        for broker, c in configs(raw):
            for system in ("canvas", "celery"):
                rec = next(
                    (
                        r
                        for r in raw["records"]
                        if r.get("ok")
                        and r["scenario"] == scenario
                        and r["broker"] == broker
                        and int(r["concurrency"]) == c
                        and r["system"] == system
                    ),
                    None,
                )
                if rec is None:
                    continue
                m = rec["metrics"]
                n = raw["settings"]["n"]
                by = ", ".join(
                    f"{k} {v / n:.2f}"
                    for k, v in m["redis_commands_by_name"].items()
                    if v / n >= 0.01
                )
                lines.append(
                    f"- {scenario}, {config_name(broker, c)}, {system}: "
                    f"**{m['redis_commands_per_task']}** = {by}"
                )
    lines += [
        "",
        "### Worker memory per process, MB (first good run: RSS / PSS / USS)",
        "",
        "| config | system | idle main | idle pool processes | after main | after pool processes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def show(p: dict[str, Any] | None) -> str:
        return "–" if not p else f"{p['rss_mb']} / {p['pss_mb']} / {p['uss_mb']}"

    for broker, c in configs(raw):
        for system in ("canvas", "celery"):
            rec = next(
                (
                    r
                    for r in raw["records"]
                    if r.get("ok")
                    and r["scenario"] == "memory"
                    and r["broker"] == broker
                    and int(r["concurrency"]) == c
                    and r["system"] == system
                ),
                None,
            )
            if rec is None:
                continue
            idle, after = rec["metrics"]["idle"], rec["metrics"]["after"]
            lines.append(
                f"| {config_name(broker, c)} | {system} | {show(idle['main'])} | "
                f"{'; '.join(show(k) for k in idle['children'])} | {show(after['main'])} | "
                f"{'; '.join(show(k) for k in after['children'])} |"
            )
    lines += [
        "",
        "### Chains (first good run per config)",
        "",
        "| config | system | length | time | ms/step | messages | first | largest | total "
        "| workflow kept in the store |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for broker, c in configs(raw):
        for system in ("canvas", "celery"):
            rec = next(
                (
                    r
                    for r in raw["records"]
                    if r.get("ok")
                    and r["scenario"] == "chains"
                    and r["broker"] == broker
                    and int(r["concurrency"]) == c
                    and r["system"] == system
                ),
                None,
            )
            if rec is None:
                continue
            for length, v in rec["metrics"].items():
                if "seconds" not in v:
                    lines.append(
                        f"| {config_name(broker, c)} | {system} | {length} | "
                        f"error: {_clip(v.get('error', ''), 80)} ||||||||"
                    )
                    continue
                lines.append(
                    f"| {config_name(broker, c)} | {system} | {length} | {v['seconds']:.3g} s | "
                    f"{v['ms_per_step']:.2f} | {v['messages']} | {fmt(v['first_bytes'], 'B')} | "
                    f"{fmt(v['max_bytes'], 'B')} | {fmt(v['total_bytes'], 'B')} | "
                    f"{fmt(v['workflow_store_bytes'], 'B')} |"
                )
    errors = [r for r in raw["records"] if not r.get("ok")]
    lines += ["", "### Errors", ""]
    if not errors:
        lines.append("None.")
    for r in errors:
        lines.append(
            f"- run {r['run']}, {config_name(r['broker'], int(r['concurrency']))}, "
            f"{r['system']}, {r['scenario']}: `{_clip(str(r.get('error')), 300)}`"
        )
    for r in raw["records"]:
        if r.get("ok") and r["scenario"] == "chains":
            for length, v in r["metrics"].items():
                if "error" in v:
                    lines.append(
                        f"- run {r['run']}, {config_name(r['broker'], int(r['concurrency']))}, "
                        f"{r['system']}, chain of {length}: `{_clip(v['error'], 300)}`"
                    )
        if r.get("ok") and r.get("metrics", {}).get("warnings"):
            lines.append(
                f"- run {r['run']}, {r['system']}, {r['scenario']}: "
                f"{'; '.join(r['metrics']['warnings'])}"
            )
    lines.append("")
    return lines


def header(raw: dict[str, Any]) -> list[str]:
    m, v, s = raw["machine"], raw["versions"], raw["settings"]
    cv, ce = v.get("canvas", {}), v.get("celery", {})
    return [
        f"- **Machine**: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('memory_gb')} GB, "
        f"{m.get('kernel')}; load average at start {m.get('load_start')}, at end "
        f"{m.get('load_end')}; CPU busy with other work before each session: "
        f"{_background(raw)}; **during the scenarios** (other work, RabbitMQ excluded): "
        f"{_foreign(raw)} of the machine (the 2 cores are shared with other users of the "
        "machine)",
        f"- **canvas** {cv.get('canvas-workflows', '?')} (commit {v.get('canvas_commit')}), "
        f"kombu {cv.get('kombu')}, redis-py {cv.get('redis')}, py-amqp {cv.get('amqp')}, "
        f"Python {cv.get('python')}",
        f"- **canvas sources** (hash of canvas/*.py) at start {v.get('canvas_tree_start', '?')}, "
        f"at end {v.get('canvas_tree_end', '?')}"
        + (
            " — **the code changed during the run**: runs measured different code"
            if v.get("canvas_tree_start") != v.get("canvas_tree_end")
            else " (unchanged)"
        ),
        f"- **Celery** {ce.get('celery', '?')}, kombu {ce.get('kombu')}, billiard "
        f"{ce.get('billiard')}, redis-py {ce.get('redis')}, py-amqp {ce.get('amqp')}, "
        f"Python {ce.get('python')}",
        f"- **Servers**: Redis {v.get('redis_server')} ({raw.get('redis')}); RabbitMQ "
        f"{v.get('rabbitmq_server')} on 127.0.0.1:5672",
        f"- **Settings**: {s['runs']} run(s) per system and config, alternating; N = {s['n']:,} "
        f"tasks (scenarios 1–3), chord/group of {s['fanout']:,}, chains of {s['lengths']}; "
        f"{raw['duration_s'] / 60:.1f} minutes in all",
    ]


def _background(raw: dict[str, Any]) -> str:
    values = sorted(
        r["background_cpu"]
        for r in raw["records"]
        if isinstance(r.get("background_cpu"), int | float)
    )
    if not values:
        return "not measured"
    return f"median {statistics.median(values):.0f}% (min {values[0]:.0f}%, max {values[-1]:.0f}%)"


def _foreign(raw: dict[str, Any]) -> str:
    values = sorted(
        r["cpu"]["foreign_pct"]
        for r in raw["records"]
        if isinstance(r.get("cpu"), dict) and isinstance(r["cpu"].get("foreign_pct"), int | float)
    )
    if not values:
        return "not measured"
    return f"median {statistics.median(values):.0f}% (min {values[0]:.0f}%, max {values[-1]:.0f}%)"


def markdown(raw: dict[str, Any], chart: Path | None) -> str:
    lines = [
        f"# canvas vs Celery — {raw['started'][:10]}",
        "",
        *header(raw),
        "",
        "Medians over the runs, (min–max) when there was more than one. **canvas advantage**"
        " above 1× means canvas is better (faster, more per second, fewer bytes, commands "
        "or MB). Method: [benchmarks/README.md](../README.md).",
        "",
    ]
    if chart is not None:
        lines += [f"![canvas advantage per scenario]({chart.name})", ""]
    lines += ["## Targets (issue: benchmarks side by side with Celery)", ""]
    lines += summary_tables(raw)
    lines += details(raw)
    lines += ["## Commands", "", "```"]
    lines += [f"{k}: {v}" for k, v in raw["commands"].items()]
    lines += ["```", ""]
    return "\n".join(lines)


README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"


def update_readme(path: Path, raw: dict[str, Any], stem: Path) -> None:
    """Replace the block between the markers in README.md with the latest summary."""
    if not path.exists():
        return
    text = path.read_text()
    if README_START not in text or README_END not in text:
        return
    rel = (
        stem.with_suffix(".md").relative_to(path.parent)
        if stem.is_absolute() and path.parent in stem.parents
        else stem.with_suffix(".md")
    )
    block = [
        README_START,
        "",
        f"Latest full results: [{rel}]({rel}) ({raw['started'][:10]}).",
        "",
        *header(raw),
        "",
        *summary_tables(raw, primary_only=True),
        README_END,
    ]
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    path.write_text(before + "\n".join(block) + after)


def chart(raw: dict[str, Any], out: Path, log: Callable[[str], None]) -> Path | None:
    """The advantage per headline scenario and config, drawn by chart.py in the Celery venv."""
    from harness import CELERY_PY, HERE

    lengths = [int(x) for x in str(raw["settings"]["lengths"]).split(",") if x]
    wanted = {
        "throughput": 3,
        "noop": 3,
        "enqueue_single": 3,
        "enqueue_group": None,
        "chord": 4,
        "group": 4,
        "cmds_result": None,
        "mem_child_idle": None,
    }
    for n in lengths:
        wanted[f"chain{n}"] = 5 if n == 500 else None
    series = []
    for broker, c in configs(raw):
        values = {}
        for m in metrics_for(lengths):
            if m.key not in wanted:
                continue
            adv = advantage(
                m,
                cell(raw, m, broker, c, "canvas").median,
                cell(raw, m, broker, c, "celery").median,
            )
            values[m.label.strip().split(":")[0]] = adv
        series.append({"config": config_name(broker, c), "values": values})
    targets_by_label = {
        m.label.strip().split(":")[0]: wanted[m.key]
        for m in metrics_for(lengths)
        if m.key in wanted
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(
            {
                "series": series,
                "targets": targets_by_label,
                "title": f"canvas vs Celery, {raw['started'][:10]}: canvas advantage "
                "(× better; 1 = same as Celery)",
            },
            f,
        )
    try:
        subprocess.run(
            [str(CELERY_PY), str(HERE / "chart.py"), f.name, str(out)],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except Exception as exc:
        log(f"chart not drawn: {exc}")
        return None
    finally:
        Path(f.name).unlink(missing_ok=True)
    return out
