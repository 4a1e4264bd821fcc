"""The local Redis Cluster of the tests: ``scripts/redis-cluster.sh start``, or a clear failure.

Six redis-server processes on ports 7000-7005 (``REDIS_CLUSTER_PORT`` moves them). Starting is
idempotent, so every test process of a run may ask; the first one pays the three seconds.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "redis-cluster.sh"
BASE_PORT = int(os.environ.get("REDIS_CLUSTER_PORT") or 7000)
CLUSTER_URL = f"redis+cluster://127.0.0.1:{BASE_PORT}/"


def start_cluster() -> str:
    """The cluster's URL once it answers with ``cluster_state:ok``; the test fails otherwise."""
    done = subprocess.run(
        ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"The Redis Cluster did not start ({SCRIPT} start exited {done.returncode}):\n"
            f"{done.stdout}{done.stderr}",
            pytrace=False,
        )
    return CLUSTER_URL
