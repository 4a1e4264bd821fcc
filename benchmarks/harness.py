"""The processes a benchmark run needs: a Redis server, workers of both systems, driver calls.

Everything here binds or connects to loopback only. Every process the harness starts gets its own
session (process group), so it can be stopped by its own id, children included, and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CANVAS_PY = ROOT / ".venv" / "bin" / "python"
CANVAS_CLI = ROOT / ".venv" / "bin" / "canvas"
CELERY_VENV = HERE / ".venv-celery"
CELERY_PY = CELERY_VENV / "bin" / "python"
CELERY_CLI = CELERY_VENV / "bin" / "celery"
#: what the Celery venv gets; matplotlib draws the chart from there (the canvas venv stays clean)
CELERY_REQUIREMENTS = ["celery[redis]>=5.4,<6", "matplotlib>=3.8"]

QUEUES = {"canvas": "bench-canvas", "celery": "bench-celery"}
BENCH_DB = 9


def python_for(system: str) -> Path:
    return CANVAS_PY if system == "canvas" else CELERY_PY


def ensure_celery_venv(log: Any = print) -> None:
    """Create ``benchmarks/.venv-celery`` with Celery and matplotlib from PyPI if it is missing."""
    if CELERY_CLI.exists() and CELERY_PY.exists():
        return
    log(f"creating {CELERY_VENV} (Celery and matplotlib, for benchmarking only)")
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(CELERY_VENV)], check=True)
    subprocess.run([str(CELERY_PY), "-m", "pip", "install", "-q", *CELERY_REQUIREMENTS], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the harness dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class RedisServer:
    """A private ``redis-server`` on a free loopback port, or an existing server's URL.

    Private is the default: ``INFO commandstats`` is per server, so commands from anyone else's
    tests on a shared server would be counted as ours; and nothing we do can disturb them.
    """

    def __init__(self, url: str | None, workdir: Path) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.private = url is None
        if url is None:
            binary = shutil.which("redis-server")
            if binary is None:
                url = f"redis://127.0.0.1:6379/{BENCH_DB}"
                self.private = False
            else:
                port = _free_port()
                self.proc = subprocess.Popen(
                    [
                        binary,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(workdir),
                        "--loglevel",
                        "warning",
                        "--protected-mode",
                        "yes",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=open(workdir / "redis.log", "wb"),
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
                url = f"redis://127.0.0.1:{port}/{BENCH_DB}"
        self.url = url
        self.client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def flush(self) -> None:
        """Empty the benchmark database (only that one)."""
        self.client.flushdb()

    def version(self) -> str:
        return str(self.client.info("server").get("redis_version"))

    def stop(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
                self.proc.wait(5)


def rabbitmq_version(url: str) -> str | None:
    """RabbitMQ's version, or ``None`` when it does not answer (its configs are then skipped)."""
    sys.path.insert(0, str(HERE))
    from driver import amqp_connect

    try:
        conn = amqp_connect(url)
    except Exception:
        return None
    try:
        version = conn.server_properties.get("version")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        conn.close()


def purge_rabbitmq_queue(url: str, queue: str) -> None:
    from driver import amqp_connect

    try:
        conn = amqp_connect(url)
    except Exception:
        return
    try:
        channel = conn.channel()
        try:
            channel.queue_purge(queue)
        except Exception:
            pass
    finally:
        try:
            conn.close()
        except Exception:
            pass


@dataclass
class Env:
    """Where one system's worker and driver connect, and where their hooks write."""

    system: str
    broker: str
    backend: str
    workdir: Path
    queue: str = field(init=False)
    bytes_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.queue = QUEUES[self.system]
        self.bytes_file = self.workdir / f"bytes-{self.system}.txt"

    def vars(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BENCH_BROKER=self.broker,
            BENCH_BACKEND=self.backend,
            BENCH_QUEUE=self.queue,
            BENCH_BYTES_FILE=str(self.bytes_file),
            PYTHONPATH=str(HERE),
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.pop("VIRTUAL_ENV", None)
        return env


def worker_command(system: str, concurrency: int) -> list[str]:
    if system == "canvas":
        return [
            str(CANVAS_CLI),
            "-A",
            "canvas_app",
            "worker",
            "-l",
            "WARNING",
            "-c",
            str(concurrency),
            "-P",
            "prefork",
        ]
    return [
        str(CELERY_CLI),
        "-A",
        "celery_app",
        "worker",
        "--concurrency",
        str(concurrency),
        "-P",
        "prefork",
        "-l",
        "WARNING",
        "-n",
        "bench-celery@%h",
    ]


class Worker:
    """A worker of either system, in its own process group, with its log in ``workdir``."""

    def __init__(self, env: Env, concurrency: int, tag: str, extra: Sequence[str] = ()) -> None:
        self.env = env
        self.command = [*worker_command(env.system, concurrency), *extra]
        self.log_path = env.workdir / f"worker-{tag}.log"
        self.proc = subprocess.Popen(
            self.command,
            cwd=str(HERE),
            env=env.vars(),
            stdin=subprocess.DEVNULL,
            stdout=open(self.log_path, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def memory(self) -> dict[str, Any]:
        """RSS and PSS (MB) of the main process and of each pool process."""
        main = _proc_memory(self.proc.pid)
        kids = [_proc_memory(pid) for pid in _children(self.proc.pid)]
        kids = [k for k in kids if k]
        return {"main": main, "children": kids}

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 20.0) -> float:
        """Warm shutdown (SIGTERM), then kill the group; returns seconds the shutdown took."""
        t0 = time.monotonic()
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(self.proc)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return time.monotonic() - t0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _proc_memory(pid: int) -> dict[str, float] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None

    def field_kb(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + ":"):
                return float(line.split()[1])
        return 0.0

    return {
        "rss_mb": round(field_kb(status, "VmRSS") / 1024, 1),
        "pss_mb": round(field_kb(rollup, "Pss") / 1024, 1),
        "uss_mb": round(
            (field_kb(rollup, "Private_Clean") + field_kb(rollup, "Private_Dirty")) / 1024, 1
        ),
    }


def drive(
    env: Env, scenario: str, *, n: int, timeout: float, lengths: str = "", confirm: str = ""
) -> dict[str, Any]:
    """Run one scenario in a fresh driver process; ``{"ok": bool, "metrics"|"error": ...}``,
    with ``cpu``: who used the machine meanwhile (``CpuMeter``). ``confirm`` sets canvas's
    ``broker_confirm`` for this driver."""
    meter = CpuMeter()
    result = _drive(env, scenario, n=n, timeout=timeout, lengths=lengths, confirm=confirm)
    result["cpu"] = meter.stop()
    return result


def _drive(
    env: Env, scenario: str, *, n: int, timeout: float, lengths: str, confirm: str
) -> dict[str, Any]:
    command = [
        str(python_for(env.system)),
        str(HERE / "driver.py"),
        "--system",
        env.system,
        "--scenario",
        scenario,
        "--n",
        str(n),
        "--timeout",
        str(timeout),
    ]
    if lengths:
        command += ["--lengths", lengths]
    # The driver bounds its own waits; this outer bound catches a hang anywhere else.
    variables = env.vars()
    if confirm:
        variables["BENCH_CONFIRM"] = confirm
    proc = subprocess.Popen(
        command,
        cwd=str(HERE),
        env=variables,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        out, err = proc.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return {
            "ok": False,
            "error": f"driver did not finish within {timeout + 60:.0f}s",
            "stderr": err.decode(errors="replace")[-2000:],
        }
    _kill_group(proc)  # threads or pools a library left behind
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            if not result.get("ok"):
                result["stderr"] = err.decode(errors="replace")[-2000:]
            return result
    return {
        "ok": False,
        "error": f"driver exited {proc.returncode} without a result",
        "stderr": err.decode(errors="replace")[-2000:],
    }


def versions() -> dict[str, Any]:
    """Versions of everything measured, from both venvs."""
    probe = (
        "import json, importlib.metadata as m, platform\n"
        "out = {'python': platform.python_version()}\n"
        "for name in ('canvas-workflows', 'celery', 'kombu', 'redis', 'amqp', 'billiard', "
        "'msgpack', 'matplotlib'):\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    found: dict[str, Any] = {}
    for system in ("canvas", "celery"):
        try:
            text = subprocess.run(
                [str(python_for(system)), "-c", probe],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            found[system] = json.loads(text)
        except Exception as exc:
            found[system] = {"error": str(exc)}
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "canvas"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        found["canvas_commit"] = commit + (" + uncommitted changes in canvas/" if dirty else "")
    except Exception:
        found["canvas_commit"] = "unknown"
    return found


def busy_cpu(seconds: float = 1.0) -> float:
    """Percent of the machine's CPU time spent busy over ``seconds`` (ours and everyone else's)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return float("nan")
    total = total1 - total0
    return round(100.0 * (total - (idle1 - idle0)) / total, 1) if total else 0.0


def _jiffies(pid: int, children_too: bool = False) -> int:
    """CPU ticks (user + system) of one process; with the waited-for children's if asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children_too:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks


def _machine_busy() -> tuple[int, int]:
    """(all ticks, busy ticks) of the machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields), sum(fields) - idle


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _rabbitmq_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "beam.smp":
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


class CpuMeter:
    """Who used the machine's CPU while a scenario ran: this benchmark's processes (this one,
    its drivers, workers and private Redis), the RabbitMQ server (shared with every other
    user of the machine, so shown apart), and everyone else (the *foreign* share)."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[int, int, int, int, float]:
        me = os.getpid()
        ours = _jiffies(me, children_too=True) + sum(_jiffies(p) for p in _descendants(me))
        broker = sum(_jiffies(p) for p in _rabbitmq_pids())
        total, busy = _machine_busy()
        return total, busy, ours, broker, time.monotonic()

    def stop(self) -> dict[str, float]:
        """Percent of the whole machine (all cores) over the interval."""
        t0, b0, o0, r0, _ = self.start
        t1, b1, o1, r1, _ = self._sample()
        total = max(1, t1 - t0)
        ours, broker = max(0, o1 - o0), max(0, r1 - r0)
        foreign = max(0, (b1 - b0) - ours - broker)
        return {
            "busy_pct": round(100.0 * (b1 - b0) / total, 1),
            "ours_pct": round(100.0 * ours / total, 1),
            "rabbitmq_pct": round(100.0 * broker / total, 1),
            "foreign_pct": round(100.0 * foreign / total, 1),
        }


def canvas_tree() -> str:
    """A short hash of canvas/'s Python sources: tells whether the code changed during a run."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted((ROOT / "canvas").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        info["memory_gb"] = round(mem_kb / 1024 / 1024, 1)
    except OSError:
        pass
    uname = os.uname()
    info["kernel"] = f"{uname.sysname} {uname.release} {uname.machine}"
    return info
