"""Private Redis and RabbitMQ servers for the chaos suite, on their own loopback ports.

Faults are injected into these only, never into the shared services the other suites use. Each
server lives in its own temporary directory and is always stopped at the end (the process group
is killed if it does not stop in time).

Redis runs with an append-only file (fsynced every second; every write would cost an fsync per
command on this disk), and the cases restart it cleanly (SIGTERM writes the file out), so a
restart keeps everything it acknowledged: the guarantees under test are ours, not a cache's.
RabbitMQ runs as its own Erlang node (``chaos-<port>@localhost``) with no plugins;
``stop_app``/``start_app`` restart the broker inside the node, as an operator would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import amqp
import redis

LOOPBACK = "127.0.0.1"
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it is truthy; ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _stop_group(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(10)


class RedisServer:
    """``redis-server`` on ``port`` with an append-only file in ``directory``."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://{LOOPBACK}:{self.port}/{db}"

    def start(self, timeout: float = 15.0) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        if not port_free(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another chaos run going on?")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server",
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.log),
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
        wait_until(self.ping, timeout, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        client = redis.Redis(host=LOOPBACK, port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=self.port, db=db, socket_timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM: a clean shutdown; SIGKILL: a crash)."""
        if self.proc is not None:
            _stop_group(self.proc, sig, timeout=15)
            self.proc = None

    def restart(self, down_for: float = 0.0, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        if down_for:
            time.sleep(down_for)  # the outage itself: it lasts this long
        self.start()

    def close(self) -> None:
        self.stop(signal.SIGKILL)


class RabbitServer:
    """A RabbitMQ node of its own: AMQP on ``port``, Erlang distribution on ``dist_port``."""

    def __init__(self, port: int, directory: Path, dist_port: int | None = None) -> None:
        self.port = port
        self.dist_port = dist_port or port + 10000
        self.directory = directory
        self.node = f"chaos-{port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "rabbitmq.out"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{LOOPBACK}:{self.port}//"

    def _env(self) -> dict[str, str]:
        base = self.directory
        return {
            **os.environ,
            "HOME": str(base),  # the Erlang cookie lives here, shared by the CLI tools
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }

    def start(self, timeout: float = 60.0) -> None:
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not server.exists():
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        for port in (self.port, self.dist_port):
            if not port_free(port):
                raise RuntimeError(f"port {port} is taken: is another chaos run going on?")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "enabled_plugins").write_text("[].\n")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(server)],
                env=self._env(),
                cwd=self.directory,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._started, timeout, f"RabbitMQ node {self.node} on port {self.port}", 0.2)

    def _started(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"rabbitmq-server exited; see {self.log}")
        return self.ping()

    def ping(self) -> bool:
        try:
            conn = amqp.Connection(
                f"{LOOPBACK}:{self.port}", userid="guest", password="guest", connect_timeout=1
            )
            conn.connect()
        except (OSError, amqp.exceptions.AMQPError):
            return False
        conn.close()
        return True

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
        return done.stdout

    def stop_app(self) -> None:
        self.ctl("stop_app")
        wait_until(lambda: not self.ping(), 15, "RabbitMQ to stop accepting connections")

    def start_app(self) -> None:
        self.ctl("start_app")
        wait_until(self.ping, 30, "RabbitMQ to accept connections again")

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self.ctl("stop", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        _stop_group(self.proc, signal.SIGTERM, timeout=15)
        self.proc = None
