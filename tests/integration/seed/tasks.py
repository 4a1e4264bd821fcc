"""The seed document's tasks (celery -> canvas), configured from the environment by the tests.

CANVAS_TEST_BROKER / CANVAS_TEST_BACKEND: URLs (empty: the embedded default);
CANVAS_TEST_QUEUE: the default queue; CANVAS_TEST_STATE: a directory for side effects that the
tests observe (files, since tasks run in other processes).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from canvas import Canvas
from canvas.exceptions import Reject

STATE = Path(os.environ.get("CANVAS_TEST_STATE", "/tmp/canvas-seed-state"))

app = Canvas(
    main="tasks",
    broker=os.environ.get("CANVAS_TEST_BROKER") or None,
    backend=os.environ.get("CANVAS_TEST_BACKEND") or None,
    task_default_queue=os.environ.get("CANVAS_TEST_QUEUE", "canvas"),
    embedded_dir=os.environ.get("CANVAS_EMBEDDED_DIR") or None,
    worker_lease_seconds=float(os.environ.get("CANVAS_TEST_LEASE", "60")),
    task_max_payload_bytes=int(os.environ.get("CANVAS_TEST_MAX_PAYLOAD") or 8 * 1024 * 1024),
    result_max_payload_bytes=int(os.environ.get("CANVAS_TEST_MAX_RESULT") or 8 * 1024 * 1024),
)
app.conf.task_track_started = True
app.conf.task_send_sent_event = True


def mark(name: str, text: str = "") -> None:
    """Record a side effect (append a line to a file) that the test process can read."""
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / name, "a") as f:
        f.write(text + "\n")


def count(name: str) -> int:
    path = STATE / name
    return len(path.read_text().splitlines()) if path.exists() else 0


@app.task
def add(x, y):
    z = x + y
    print(z)
    return z


@app.task
def test(arg):
    print(arg)
    return arg


@app.task(autoretry_for=(ConnectionError,), retry_kwargs={"max_retries": 5})
def refresh_timeline(user):
    return f"timeline of {user}"


@app.task(autoretry_for=(ConnectionError,), retry_kwargs={"max_retries": 5, "countdown": 0.05})
def flaky(key, failures):
    """Fails with ConnectionError ``failures`` times, then succeeds."""
    mark(key)
    if count(key) <= failures:
        raise ConnectionError(f"attempt {count(key)} failed")
    return count(key)


@app.task(
    autoretry_for=(ConnectionError,), retry_backoff=0.05, retry_backoff_max=0.2, max_retries=3
)
def backoff(key):
    mark(key)
    raise ConnectionError("always down")


class RenderError(Exception):
    """An exception class defined in a task module: rebuilt by get()."""


@app.task(bind=True, acks_late=True)
def render_scene(self, path):
    try:
        if path == "huge":
            raise MemoryError("scene too big")
        if path == "enomem":
            raise OSError(errno.ENOMEM, "no memory")
        if path == "flaky":
            mark("render-flaky")
            if count("render-flaky") < 2:
                raise RenderError("transient")
        return f"rendered {path}"
    except MemoryError as exc:
        raise Reject(exc, requeue=False) from exc
    except OSError as exc:
        if exc.errno == errno.ENOMEM:
            raise Reject(exc, requeue=False) from exc
        raise self.retry(exc, countdown=0.05) from exc
    except Exception as exc:
        raise self.retry(exc, countdown=0.05) from exc


@app.task(bind=True, acks_late=True)
def requeues(self):
    if not self.request.delivery_info["redelivered"]:
        raise Reject("no reason", requeue=True)
    print("received two times")
    return "received two times"


@app.task
def charge(account, card):
    return f"charged {account}"


@app.task
def fetch_page(url):
    return f"<html>{url}</html>"


@app.task
def parse_page(page):
    return {"length": len(page)}


@app.task(ignore_result=True)
def store_page_info(info, url):
    mark("pages", f"{url} {info['length']}")


@app.task
def update_page_info_bad(url):
    page = fetch_page.delay(url).get()
    return page


@app.task
def update_page_info(url):
    chain = fetch_page.s(url) | parse_page.s() | store_page_info.s(url)
    return chain().id


@app.task(acks_late=True)
def slow(key, seconds):
    """Marks that it started, works for ``seconds``, then marks that it finished."""
    mark(f"{key}.started")
    time.sleep(seconds)
    mark(f"{key}.finished")
    return key


@app.task
def fail(message):
    raise RenderError(message)


@app.task(acks_late=True)
def crash(key):
    """A poison task: kills the process that runs it."""
    mark(key)
    os._exit(17)


@app.task(soft_time_limit=0.3)
def soft_limited(seconds):
    from canvas.exceptions import SoftTimeLimitExceeded

    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


@app.task(time_limit=0.5)
def hard_limited(seconds):
    time.sleep(seconds)
    return "finished"


@app.task
def unstorable(key):
    """Returns a value no serializer can encode; marks each run."""
    mark(key)
    return object()


@app.task
def big(key, size):
    """Returns ``size`` bytes of text; marks each run."""
    mark(key)
    return "x" * size


@app.task
def exits(key):
    """Ends its process, as a task calling sys.exit() would; marks each run."""
    import sys

    mark(key)
    sys.exit(3)
