"""A real headless Chromium for the dashboard's browser tests: Debian's, driven by Playwright.

No browser is downloaded: Playwright launches the system ``chromium`` (``scripts/system-deps.sh
browser`` installs it; ``CANVAS_TEST_CHROMIUM`` points elsewhere). A missing browser fails the
test with the command that installs it, as a missing server does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from tests.support.workers import ROOT

#: where screenshots are kept after the run (CI keeps this directory as its artefacts)
ARTIFACTS = Path(os.environ.get("CANVAS_TEST_ARTIFACTS") or ROOT / "test-artifacts")
#: flags that work on a machine with no GPU, no sandbox support and no network beyond loopback
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    configured = os.environ.get("CANVAS_TEST_CHROMIUM")
    found = configured or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        pytest.fail(
            "No chromium to drive: install Debian's (bash scripts/system-deps.sh browser, which "
            "make test runs) or point CANVAS_TEST_CHROMIUM at one.",
            pytrace=False,
        )
    return found


@contextmanager
def browser_context(viewport: tuple[int, int] = (1400, 860)) -> Iterator[BrowserContext]:
    """A fresh Chromium profile in a temporary directory, closed and removed afterwards."""
    executable = chromium_path()
    with tempfile.TemporaryDirectory(prefix="canvas-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            args=list(FLAGS),
            headless=True,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            yield context
        finally:
            context.close()


def artifact(name: str) -> Path:
    """A path under the artefacts directory (created), for a screenshot."""
    path = ARTIFACTS / "dashboard" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
