"""Celery-style projects (``tests/migration/<name>/``) run unchanged but for their imports.

Each starts a real worker in a subprocess, as the project's docs say, on this session's Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.migration import Project
from tests.support.workers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    proj = Project(request.param, tmp_path)
    try:
        yield proj
    finally:
        proj.close()


@pytest.mark.parametrize("project", ["first_steps"], indirect=True)
def test_first_steps(project: Project) -> None:
    # Given the tutorial's tasks.py and `celery -A tasks worker --loglevel=INFO`
    project.worker("tasks")
    tasks = project.load("tasks")
    # When the tutorial calls the task
    result = tasks.add.delay(4, 4)
    # Then the result comes back as the tutorial shows
    assert result.get(timeout=20) == 8
    assert result.successful()
    assert result.ready()


@pytest.mark.parametrize("project", ["app_script"], indirect=True)
def test_a_module_that_starts_its_own_worker(project: Project) -> None:
    # Given `python app.py`, whose __main__ calls app.worker_main(['worker', ...])
    worker = project.start("app.py")
    app = project.load("app")
    # Then the worker it started runs the module's tasks
    assert app.add.delay(2, 3).get(timeout=20) == 5
    assert "app.add" in worker.output()  # the [tasks] list of the banner


@pytest.mark.parametrize("project", ["task_classes"], indirect=True)
def test_task_classes_and_their_handlers_run_in_the_worker(project: Project) -> None:
    worker = project.worker("tasks", "-P", "solo")
    tasks = project.load("tasks")

    # A success: before_start, the body (with current_task), on_success, after_return
    ok = tasks.add.delay(2, 3)
    assert ok.get(timeout=20) == 5
    # A failure: on_failure with an einfo, then after_return FAILURE
    failed = tasks.fail.delay("boom")
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=20)
    # A retry: on_retry, then success on the second run
    assert tasks.flaky.delay().get(timeout=20) == 1
    # A class-based task and a shared task
    assert tasks.multiply.delay(6, 7).get(timeout=20) == 42
    assert tasks.shout.delay("hi").get(timeout=20) == "HI"

    def logged(line: str) -> bool:
        return line in worker.output()

    for line in [
        f"before_start {ok.id} [2, 3] {{}}",
        "adding 2 + 3 in tasks.add",
        f"on_success 5 {ok.id} [2, 3] {{}}",
        f"after_return SUCCESS 5 {ok.id}",
        f"on_failure ValueError('boom') {failed.id} ['boom'] ValueError",
        f"after_return FAILURE ValueError('boom') {failed.id}",
        "on_retry KeyError('first try')",
    ]:
        wait_for(lambda line=line: logged(line), 10, f"the worker to log {line!r}")
    # The task logger's records carry the task's name and id (worker_task_log_format)
    assert f"tasks.add[{ok.id}]: adding 2 + 3" in worker.output()
    # And a failing task's log line carries its traceback, as Celery logs it
    assert "Traceback (most recent call last)" in worker.output()


@pytest.mark.parametrize("project", ["task_options"], indirect=True)
def test_task_options(project: Project) -> None:
    project.worker("tasks", "-P", "threads", "-c", "2")
    tasks = project.load("tasks")

    # rate_limit="5/s": six calls sent at once start at least 0.2 s apart (per worker)...
    limited = [tasks.limited.delay(i) for i in range(6)]
    free = [tasks.free.delay(i) for i in range(6)]
    starts = sorted(r.get(timeout=30) for r in limited)
    assert starts[-1] - starts[0] >= 0.9
    # ...while an unlimited task is not held back by them
    assert max(r.get(timeout=30) for r in free) < starts[-1]

    # expires as a class attribute: a call that waits behind a slow one past it is revoked
    blocker = [tasks.slow.delay(), tasks.slow.delay()]
    late = [tasks.perishable.delay(), tasks.perishable.s().delay()]  # a task, a signature
    assert [r.get(timeout=30) for r in blocker] == ["slow", "slow"]
    for handle in late:
        with pytest.raises(Exception, match="expired|revoked"):
            handle.get(timeout=30)
        assert handle.state == "REVOKED"

    # acks_on_failure_or_timeout=False (with acks_late): the failed call's message is
    # dead-lettered rather than acked
    kept = tasks.keep_on_failure.delay()
    with pytest.raises(ValueError):
        kept.get(timeout=30)
    dlq = f"{tasks.app.conf.task_default_queue}.dlq"
    wait_for(lambda: tasks.app.transport.size(dlq) == 1, 10, "the failed message in the DLQ")

    # shadow_name: the worker's log lines show the shadow name
    shadowed = tasks.report.s("weekly").delay()
    assert shadowed.get(timeout=30) == "weekly"
    wait_for(
        lambda: f"Task report:weekly[{shadowed.id}] succeeded" in project.logs(),
        10,
        "the shadow name in the log",
    )


@pytest.mark.parametrize("project", ["result_handles"], indirect=True)
def test_tasks_that_return_result_handles(project: Project) -> None:
    from canvas.result import GroupResult, ResultBase, result_from_tuple

    project.worker("tasks", "-P", "threads", "-c", "4")
    tasks = project.load("tasks")
    result = tasks.A.delay(5)
    # The returned group is stored as its id tuple, once (no serializer error, no re-runs)
    returned = result_from_tuple(result.get(timeout=30), tasks.app)
    assert isinstance(returned, GroupResult)
    assert len(returned) == 5
    # collect() follows what each task sent, to the leaves
    values = [v for _, v in result.collect(timeout=30) if not isinstance(v, ResultBase | list)]
    assert sorted(values) == [0, 1, 4, 9, 16]
    # and children lists what A sent: its group
    assert [child.id for child in result.children or []] == [returned.id]
    project_log = project.logs()
    assert project_log.count(f"Task tasks.A[{result.id}] received") == 1


def test_worker_flags_and_settings(tmp_path: Path) -> None:
    project = Project(
        "worker_options",
        tmp_path,
        task_queues=["canvas-main", "hipri"],
        task_default_queue="canvas-main",
        worker_prefetch_multiplyer=2,  # misspelt on purpose: the worker says so
        broker_pool_limit=10,  # not needed by canvas: the worker says so
    )
    try:
        worker = project.worker(
            "tasks",
            "-P",
            "prefork",
            "--autoscale=1,1",
            "--max-tasks-per-child=2",
            "--soft-time-limit=1",
            "-O",
            "fair",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        )
        tasks = project.load("tasks")
        # The banner lists the app's tasks and both queues of task_queues
        out = worker.output()
        assert "[tasks]" in out and "  . tasks.chatty" in out
        assert ".> canvas-main" in out and ".> hipri" in out
        # did you mean / not needed: one line each at start-up
        assert "did you mean 'worker_prefetch_multiplier'?" in out
        assert "Setting broker_pool_limit is not needed" in out
        # --max-tasks-per-child=2 with one process: the third call runs in a new process
        pids = [tasks.pid.delay().get(timeout=30) for _ in range(3)]
        assert pids[0] == pids[1] != pids[2]
        # a worker without -Q consumes every queue of task_queues
        assert tasks.urgent.delay().get(timeout=30) == "urgent"
        # --soft-time-limit reaches the task
        assert tasks.overtime.delay().get(timeout=30) == "cleaned up"
        # print() goes through the log (worker_redirect_stdouts)
        assert tasks.chatty.delay("hello").get(timeout=30) == "hello"
        wait_for(
            lambda: "WARNING/ForkPoolWorker-1] chatty says hello" in worker.output(),
            10,
            "print() in the log",
        )
    finally:
        project.close()


def test_a_setting_canvas_cannot_honour_stops_the_worker_with_one_clear_line(
    tmp_path: Path,
) -> None:
    project = Project("first_steps", tmp_path, cassandra_servers=["db1"])
    try:
        stderr = project.refused_start("tasks")
        assert "cassandra_servers: canvas has no Cassandra result store" in stderr
    finally:
        project.close()


@pytest.mark.parametrize("project", ["next_steps"], indirect=True)
def test_next_steps_proj_package(project: Project) -> None:
    from canvas import chain, chord, group

    # Given `celery -A proj worker -l INFO` on the guide's proj/ package
    project.worker("proj")
    tasks = project.load("proj.tasks")
    # Then the guide's calls work
    assert tasks.add.delay(2, 2).get(timeout=20) == 4
    assert tasks.add.apply_async((2, 2), countdown=1).get(timeout=20) == 4
    assert group(tasks.add.s(i, i) for i in range(10))().get(timeout=20) == [
        0,
        2,
        4,
        6,
        8,
        10,
        12,
        14,
        16,
        18,
    ]
    assert chain(tasks.add.s(4, 4) | tasks.mul.s(8))().get(timeout=20) == 64
    assert chord((tasks.add.s(i, i) for i in range(10)), tasks.xsum.s())().get(timeout=20) == 90
    assert (tasks.add.s(4, 4) | tasks.mul.s(8)).delay().get(timeout=20) == 64


@pytest.mark.parametrize("project", ["periodic"], indirect=True)
def test_periodic_tasks_from_on_after_configure(project: Project) -> None:
    # Given `celery -A tasks worker` and `celery -A tasks beat`
    worker = project.worker("tasks")
    project.start(
        "-m", "canvas.cli.main", "-A", "tasks", "beat", "-l", "INFO", ready="is now the leader"
    )
    # Then the entry added in on_after_configure runs, again and again
    wait_for(
        lambda: worker.output().count("Task tasks.test[") >= 4,
        30,
        "the periodic task to run twice",
    )
    assert "hello" in worker.output()  # print() reached the worker's log


CLIENT = """
from demoapp.models import Widget
from demoapp.tasks import add, count_widgets, rename_widget
from proj.celery import debug_task

w = Widget.objects.create(name="first")
print("RESULT add", add.delay(2, 3).get(timeout=30))
print("RESULT count", count_widgets.delay().get(timeout=30))
rename_widget.delay(w.id, "renamed").get(timeout=30)
w.refresh_from_db()
print("RESULT name", w.name)
debug_task.delay()
"""


def test_a_django_project_as_celerys_django_guide_lays_it_out(tmp_path: Path) -> None:
    import subprocess
    import sys
    import uuid

    from tests.support.servers import REDIS_URL

    project = Project("django_site", tmp_path)
    project.env.update(DEMO_BROKER_URL=REDIS_URL, DEMO_QUEUE=f"django-{uuid.uuid4().hex[:8]}")
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            cwd=project.dir,
            env=project.env,
            check=True,
            timeout=120,
        )
        # Given `celery -A proj worker -l INFO` in the Django project's directory
        worker = project.worker("proj")
        # When Django code calls the shared tasks (manage.py shell, as a view would)
        run = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", CLIENT],
            cwd=project.dir,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        # Then the shared tasks ran on the worker, against the same database
        printed = [
            line.split()[1:] for line in run.stdout.splitlines() if line.startswith("RESULT")
        ]
        assert printed == [["add", "5"], ["count", "1"], ["name", "renamed"]]
        wait_for(lambda: "Request: " in worker.output(), 10, "debug_task's print in the log")
    finally:
        project.close()


def test_detach_runs_the_worker_in_the_background_with_pid_and_log_files(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    project = Project("first_steps", tmp_path)
    pidfile, logfile = project.dir / "w.pid", project.dir / "w.log"
    try:
        # Given `celery -A tasks worker --detach --pidfile=... --logfile=...`
        run = subprocess.run(
            [
                sys.executable,
                *("-m", "canvas.cli.main", "-A", "tasks", "worker", "--detach", "-l", "INFO"),
                f"--pidfile={pidfile}",
                f"--logfile={logfile}",
            ],
            cwd=project.dir,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # Then the command returns at once, and the worker runs on in the background
        assert run.returncode == 0, run.stderr
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "pid"))
        wait_for(lambda: logfile.exists() and " ready." in logfile.read_text(), 30, "ready")
        tasks = project.load("tasks")
        assert tasks.add.delay(1, 1).get(timeout=30) == 2
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pidfile.exists(), 30, "the worker to stop and remove its pid file")
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        project.close()


def test_a_worker_whose_broker_is_down_says_so_once_per_attempt(tmp_path: Path) -> None:
    import subprocess
    import sys

    # Given a broker URL where nothing listens
    project = Project("first_steps", tmp_path, broker_url="redis://127.0.0.1:9/0")
    try:
        log = project.dir / "down.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "canvas.cli.main", "-A", "tasks", "worker", "-P", "solo"],
                cwd=project.dir,
                env=project.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            # Then it says so once per attempt, with the wait before the next
            wait_for(
                lambda: log.read_text().count("Cannot connect to the broker at") >= 2,
                30,
                "two attempts",
            )
        finally:
            proc.terminate()
            proc.wait(10)
        text = log.read_text()
        assert "Trying again in 0.5 s (attempt 1)" in text
        assert " ready." not in text and "Traceback" not in text
        # And with broker_connection_retry_on_startup=False it gives up at once
        (project.dir / "celeryconfig.py").write_text(
            (project.dir / "celeryconfig.py").read_text()
            + "broker_connection_retry_on_startup = False\n"
        )
        run = subprocess.run(
            [sys.executable, "-m", "canvas.cli.main", "-A", "tasks", "worker", "-P", "solo"],
            cwd=project.dir,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 1
        assert "Cannot connect to the broker at redis://127.0.0.1:9/0" in run.stderr
    finally:
        project.close()


def test_a_queue_celery_declared_on_rabbitmq_is_adopted(tmp_path: Path) -> None:
    import uuid

    from tests.support.servers import AMQP_URL, REDIS_URL, amqp_connection, require_service

    require_service("RabbitMQ", AMQP_URL)
    queue = f"celery-declared-{uuid.uuid4().hex[:8]}"
    # Given the queue as Celery declares it: durable, no dead-letter or priority arguments
    conn = amqp_connection()
    channel = conn.channel()
    channel.queue_declare(queue=queue, durable=True, auto_delete=False)
    project = Project(
        "rabbit", tmp_path, broker_url=AMQP_URL, result_backend=REDIS_URL, task_default_queue=queue
    )
    try:
        # When a canvas worker starts on it
        worker = project.worker("tasks", "-P", "solo")
        tasks = project.load("tasks")
        # Then it works with the queue as it is, says so once, and dead-letters to <queue>.dlq
        assert tasks.add.delay(2, 3).get(timeout=30) == 5
        tasks.refuse.delay()
        wait_for(
            lambda: channel.queue_declare(queue=f"{queue}.dlq", passive=True).message_count == 1,
            30,
            "the rejected message in the dead-letter queue",
        )
        assert worker.output().count(f"RabbitMQ already has queue '{queue}'") == 1
    finally:
        project.close()
        for name in (queue, f"{queue}.dlq"):
            channel.queue_delete(name)
        conn.close()


def _signing_project(tmp_path: Path) -> Project:
    """The signing guide's project, with a key and self-signed certificate made now."""
    from tests.support.certificates import (
        make_certificate,
        make_key,
        write_certificate,
        write_key,
    )

    ssl = tmp_path / "ssl"
    ssl.mkdir()
    key = make_key()
    write_key(ssl / "worker.key", key)
    write_certificate(ssl / "worker.pem", make_certificate(key, "canvas signing worker"))
    return Project(
        "signing",
        tmp_path,
        security_key=str(ssl / "worker.key"),
        security_certificate=str(ssl / "worker.pem"),
        security_cert_store=str(ssl / "*.pem"),
        security_digest="sha256",
    )


def test_message_signing_as_celerys_security_guide_sets_it_up(tmp_path: Path) -> None:

    from canvas import Canvas
    from canvas.security import unwrap
    from canvas.transports.base import REASON_HEADER, OutgoingMessage
    from tests.support.certificates import (
        make_certificate,
        make_key,
        write_certificate,
        write_key,
    )
    from tests.support.servers import REDIS_URL

    project = _signing_project(tmp_path)
    ssl = tmp_path / "ssl"
    try:
        # Given `celery -A tasks worker` on the guide's app (auth serializer, setup_security())
        worker = project.worker("tasks", "-P", "solo")
        tasks = project.load("tasks")
        queue = tasks.app.conf.task_default_queue
        raw = unwrap(tasks.app.transport)
        dlq = raw.dead_letters(queue)

        # A signed call runs; so do a countdown (parked in the store) and a chain
        assert tasks.add.delay(2, 2).get(timeout=30) == 4
        assert tasks.add.apply_async((1, 2), countdown=1).get(timeout=30) == 3
        assert (tasks.add.s(1, 1) | tasks.add.s(3)).delay().get(timeout=30) == 5

        # An unsigned one (an app without the settings, on the same queue) does not run
        plain = Canvas("tasks", broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
        unsigned = plain.send_task("tasks.add", (1, 1), queue=queue)

        # A signed one whose arguments were changed on the way does not run
        held = f"{queue}-held"  # no worker reads it: the signed message waits there
        original = tasks.add.apply_async((3, 4), queue=held)
        captured = raw.consumer([held]).get(10)
        assert captured is not None and b"[[3,4],{}]" in captured.body
        tampered = captured.body.replace(b"[[3,4],{}]", b"[[9,9],{}]")
        raw.publish([OutgoingMessage(queue, tampered, captured.headers, captured.content_type)])
        captured.ack()

        # One signed with a key whose certificate the worker's store does not hold does not run
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        stranger_key = make_key()
        write_key(elsewhere / "stranger.key", stranger_key)
        write_certificate(elsewhere / "stranger.pem", make_certificate(stranger_key, "stranger"))
        stranger = Canvas(
            "tasks",
            broker=REDIS_URL,
            backend=REDIS_URL,
            set_as_current=False,
            task_serializer="auth",
            accept_content=["auth"],
            security_key=str(elsewhere / "stranger.key"),
            security_certificate=str(elsewhere / "stranger.pem"),
            security_cert_store=str(elsewhere / "*.pem"),
        )
        unknown = stranger.send_task("tasks.add", (5, 5), queue=queue)

        # Then each of the three is dead-lettered with its reason, and none ran
        wait_for(lambda: raw.size(dlq) >= 3, 30, "three refused messages in the DLQ")
        reasons = {}
        dead = raw.consumer([dlq], prefetch=10)
        while (letter := dead.get(1)) is not None:
            reasons[letter.headers["id"]] = letter.headers[REASON_HEADER]
            letter.ack()
        dead.close()
        assert reasons[unsigned.id].startswith("security: unsigned message")
        assert reasons[original.id].startswith("security: bad signature")
        assert reasons[unknown.id].startswith("security: unknown certificate 'stranger ")
        for refused in (unsigned, original, unknown):
            assert tasks.app.AsyncResult(refused.id).state == "PENDING"
            assert f"Refused message {refused.id}" in worker.output()
        # And the worker runs on
        assert tasks.add.delay(20, 22).get(timeout=30) == 42
        for app in (plain, stranger):
            app.close()

        # A worker whose store holds an expired certificate does not start, and says which
        old_key = make_key()
        write_certificate(ssl / "old.pem", make_certificate(old_key, "old", valid_days=-1))
        stderr = project.refused_start("tasks")
        assert "security_cert_store: certificate 'old " in stderr and "expired on" in stderr
    finally:
        project.close()
