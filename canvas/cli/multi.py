"""``canvas multi``: start and stop named background workers, as ``celery multi`` does.

    canvas multi start w1 w2 -A proj --pidfile=/var/run/canvas/%n.pid \\
        --logfile=/var/log/canvas/%n%I.log
    canvas multi stop w1 w2 --pidfile=/var/run/canvas/%n.pid

    canvas multi start 3 -A proj -c 2 -Q:1 hipri -c:2-3 4

Templates: ``%n`` the node name (``w1``), ``%h`` the full node name (``w1@host``), ``%d`` the
domain, ``%I`` the pool process index (empty for the main process, whose log holds all).
Other options (``-l``, ``-c``, ``-Q``, ...) are passed to each worker. As in celery multi, a
number names that many nodes (``3``: canvas1, canvas2, canvas3), and ``-OPTION:SELECTOR VALUE``
gives one option to some nodes only: the selector is a node's number (``1``), a range
(``1-3``), a comma list (``1,3``) or node names (``w1,w2``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click

#: ``-Q:1`` / ``--queues:1-3=x`` / ``-c:w1,w2``: an option for some nodes only
_PER_NODE = re.compile(r"^(-{1,2}[A-Za-z][\w-]*):([\w@.,-]+)(?:=(.*))?$")
NODE_PREFIX = "canvas"
DEFAULT_PIDFILE = "%n.pid"
DEFAULT_LOGFILE = "%n%I.log"
STOP_TIMEOUT = 60.0


def expand(template: str, node: str) -> str:
    host = socket.gethostname()
    name, _, node_host = node.partition("@")
    node_host = node_host or host
    return (
        template.replace("%h", f"{name}@{node_host}")
        .replace("%n", name)
        .replace("%d", node_host.partition(".")[2])
        .replace("%I", "")
        .replace("%i", "")
    )


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


@click.command(
    "multi",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument(
    "action", type=click.Choice(["start", "stop", "stopwait", "restart", "show", "kill"])
)
@click.argument("rest", nargs=-1, type=click.UNPROCESSED)
@click.option("--pidfile", default=DEFAULT_PIDFILE, show_default=True, help="Pid file template.")
@click.option("--logfile", default=DEFAULT_LOGFILE, show_default=True, help="Log file template.")
@click.option("-A", "--app", "app_spec", help="App module (also accepted before 'multi').")
@click.pass_context
def command(
    ctx: click.Context,
    action: str,
    rest: tuple[str, ...],
    pidfile: str,
    logfile: str,
    app_spec: str | None,
) -> None:
    """Start, stop or restart named workers in the background."""
    app_spec = app_spec or (ctx.find_root().obj or {}).get("app")
    # Node names come first, worker options after them (as with celery multi).
    split = next((i for i, arg in enumerate(rest) if arg.startswith("-")), len(rest))
    nodes, extra = node_names(rest[:split]), [*rest[split:], *ctx.args]
    if not nodes:
        raise click.UsageError("Name at least one worker, e.g. 'canvas multi start w1 -A proj'.")
    common, specific = split_options(extra)
    for position, node in enumerate(nodes, start=1):
        pid_path = Path(expand(pidfile, node)).absolute()
        log_path = Path(expand(logfile, node)).absolute()
        extra = common + [
            arg for sel, args in specific if selected(sel, position, node) for arg in args
        ]
        if action == "show":
            click.echo(" ".join(_worker_argv(app_spec, node, pid_path, log_path, extra)))
        elif action == "start":
            _start(app_spec, node, pid_path, log_path, extra)
        elif action in ("stop", "stopwait", "kill"):
            sig = signal.SIGKILL if action == "kill" else signal.SIGTERM
            _stop(node, pid_path, sig, wait=action == "stopwait")
        else:  # restart
            _stop(node, pid_path, signal.SIGTERM, wait=True)
            _start(app_spec, node, pid_path, log_path, extra)


def node_names(given: tuple[str, ...]) -> list[str]:
    """``('3',)`` -> canvas1..canvas3, as celery multi numbers its nodes; names as given."""
    if len(given) == 1 and given[0].isdigit():
        return [f"{NODE_PREFIX}{i}" for i in range(1, int(given[0]) + 1)]
    return list(given)


def split_options(args: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The options every node gets, and ``(selector, [option, value])`` for some nodes only."""
    common: list[str] = []
    specific: list[tuple[str, list[str]]] = []
    index = 0
    while index < len(args):
        arg = args[index]
        match = _PER_NODE.match(arg)
        if match is None:
            common.append(arg)
            index += 1
            continue
        option, selector, value = match.groups()
        if value is None and index + 1 < len(args) and not args[index + 1].startswith("-"):
            value, index = args[index + 1], index + 1
        specific.append((selector, [option] if value is None else [option, value]))
        index += 1
    return common, specific


def selected(selector: str, position: int, node: str) -> bool:
    """Whether ``-X:selector`` names this node (by number, range, list or name)."""
    name = node.partition("@")[0]
    for part in selector.split(","):
        low, dash, high = part.partition("-")
        if dash and low.isdigit() and high.isdigit():
            if int(low) <= position <= int(high):
                return True
        elif part.isdigit():
            if int(part) == position:
                return True
        elif part in (name, node):
            return True
    return False


def _worker_argv(
    app_spec: str | None, node: str, pid_path: Path, log_path: Path, extra: list[str]
) -> list[str]:
    if not app_spec:
        raise click.UsageError(
            "multi start needs --app (or -A), e.g. 'canvas multi start w1 -A proj'."
        )
    hostname = node if "@" in node else f"{node}@%h"
    return [
        sys.executable,
        "-m",
        "canvas.cli.main",
        "-A",
        app_spec,
        "worker",
        "-n",
        hostname,
        f"--pidfile={pid_path}",
        f"--logfile={log_path}",
        *extra,
    ]


def _start(
    app_spec: str | None, node: str, pid_path: Path, log_path: Path, extra: list[str]
) -> None:
    if _read_pid(pid_path) is not None:
        raise click.ClickException(f"{node}: already running (pid file {pid_path}).")
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = _worker_argv(app_spec, node, pid_path, log_path, extra)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=os.getcwd(),
        )
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if _read_pid(pid_path) == proc.pid:
            click.echo(f"> {node}: OK (pid {proc.pid})")
            return
        if proc.poll() is not None:
            raise click.ClickException(
                f"{node}: worker exited with code {proc.returncode}; see {log_path}."
            )
        time.sleep(0.05)
    raise click.ClickException(f"{node}: no pid file after 15 s; see {log_path}.")


def _stop(node: str, pid_path: Path, sig: signal.Signals, wait: bool) -> None:
    pid = _read_pid(pid_path)
    if pid is None:
        click.echo(f"> {node}: not running (no live pid in {pid_path})")
        return
    os.kill(pid, sig)
    click.echo(f"> Stopping {node} (pid {pid}): sent {sig.name}")
    if not wait and sig != signal.SIGKILL:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            click.echo(f"> {node}: stopped")
            return
        time.sleep(0.1)
    raise click.ClickException(f"{node}: still running after {STOP_TIMEOUT:.0f} s (pid {pid}).")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
