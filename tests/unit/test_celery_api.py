"""Celery's API as a project calls it: current app and task, shared tasks, task classes and
their handlers, states, the exception tree, the task logger, ``solar`` and result URLs."""

from __future__ import annotations

import inspect
import logging
import weakref
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from canvas import Celery, Task, chord, current_app, current_task, group, shared_task, states
from canvas import exceptions as exc
from canvas.schedules import crontab, local_timezone, solar
from canvas.sun import event_time
from canvas.utils.log import get_task_logger


def _app(name: str = "api", **settings: Any) -> Celery:
    return Celery(name, broker="memory://", backend="memory://", **settings)


def test_current_app_follows_the_newest_app() -> None:
    first = _app("first")
    assert current_app.main == "first"
    assert current_app._get_current_object() is first
    _app("second")
    assert current_app.main == "second"


def test_current_task_is_the_running_task_and_falsy_outside() -> None:
    app = _app()
    seen: list[Any] = []

    @app.task
    def probe() -> None:
        seen.append(current_task.name)

    assert not current_task
    probe.apply()
    assert seen == [probe.name]


def test_a_shared_task_belongs_to_apps_made_before_and_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not into the other tests' apps: only this test's apps and shared tasks are seen.
    monkeypatch.setattr("canvas.app._shared_tasks", [])
    monkeypatch.setattr("canvas.app._apps", weakref.WeakSet())
    before = _app("before")

    @shared_task(name="shared.double")
    def double(x: int) -> int:
        return 2 * x

    after = _app("after")
    assert before.tasks["shared.double"] is double
    assert after.tasks["shared.double"] is double
    assert double.apply((4,)).get() == 8
    assert double.app is after  # the current app at the time of use


def test_class_attributes_of_a_base_are_options_and_arguments_override_them() -> None:
    app = _app()

    class Patient(app.Task):
        acks_late = True
        max_retries = 7
        rate_limit = "10/s"

    @app.task(base=Patient, max_retries=2)
    def work() -> None: ...

    assert isinstance(work, Patient)
    assert (work.acks_late, work.max_retries, work.rate_limit) == (True, 2, "10/s")
    assert work.app is app


def test_an_unknown_option_is_refused_naming_it() -> None:
    app = _app()
    with pytest.raises(TypeError, match="'retires'"):

        @app.task(retires=3)
        def work() -> None: ...


def test_handlers_run_with_celerys_arguments() -> None:
    app = _app()
    calls: list[tuple[Any, ...]] = []

    class Recorded(Task):
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(("before_start", args, kwargs))

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(("on_success", retval, args))

        def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            calls.append(("on_failure", repr(exc), einfo.type, "Traceback" in einfo.traceback))

        def after_return(self, status: str, retval: Any, *rest: Any) -> None:
            calls.append(("after_return", status))

    @app.task(base=Recorded)
    def div(x: int, y: int) -> float:
        return x / y

    div.apply((4, 2))
    div.apply((1, 0))
    assert calls == [
        ("before_start", [4, 2], {}),
        ("on_success", 2.0, [4, 2]),
        ("after_return", "SUCCESS"),
        ("before_start", [1, 0], {}),
        ("on_failure", "ZeroDivisionError('division by zero')", ZeroDivisionError, True),
        ("after_return", "FAILURE"),
    ]


def test_a_handler_that_raises_does_not_change_the_outcome(caplog: Any) -> None:
    app = _app()

    class Broken(Task):
        def on_success(self, *args: Any) -> None:
            raise RuntimeError("handler bug")

    @app.task(base=Broken)
    def one() -> int:
        return 1

    assert one.apply().get() == 1
    assert "handler on_success raised" in caplog.text


def test_on_replace_sees_the_replacement() -> None:
    app = _app()
    seen: list[Any] = []

    class Replacing(Task):
        def on_replace(self, sig: Any) -> None:
            seen.append(sig.task)

    @app.task
    def target() -> str:
        return "replaced"

    @app.task(base=Replacing, bind=True)
    def start(self: Task) -> None:
        self.replace(target.s())

    assert start.apply().get() == "replaced"
    assert seen == [target.name]


def test_a_class_based_task_is_registered_by_register_task() -> None:
    app = _app()

    class Multiply(Task):
        def run(self, x: int, y: int) -> int:
            return x * y

    task = app.register_task(Multiply())
    assert task.name.endswith(".Multiply")
    assert app.tasks[task.name] is task
    assert task.apply((6, 7)).get() == 42
    with pytest.raises(TypeError, match="no body"):
        Task()


def test_calling_with_the_wrong_arguments_is_a_type_error_at_delay_time() -> None:
    app = _app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True)
    def bound(self: Task, x: int) -> int:
        return x

    with pytest.raises(TypeError, match="wrong arguments"):
        add.delay(1)
    with pytest.raises(TypeError, match="wrong arguments"):
        bound.delay(1, 2)
    add.delay(1, 2)
    bound.delay(1)

    @app.task(typing=False)
    def loose(x: int) -> int:
        return x

    loose.delay()  # no check, as with Celery's typing=False


def _shapes() -> list[Any]:
    def plain(a, b, c=1): ...  # type: ignore[no-untyped-def]
    def star(a, *rest): ...  # type: ignore[no-untyped-def]
    def only(a, /, b=2): ...  # type: ignore[no-untyped-def]
    def needs_keyword(a, *, k): ...  # type: ignore[no-untyped-def]
    def keyword_default(a, *, k=1, **more): ...  # type: ignore[no-untyped-def]
    def nothing(): ...  # type: ignore[no-untyped-def]

    return [plain, star, only, needs_keyword, keyword_default, nothing]


@pytest.mark.parametrize("func", _shapes(), ids=lambda f: f.__name__)
def test_the_quick_positional_check_agrees_with_binding(func: Any) -> None:
    # The send path skips Signature.bind when the positional count alone decides: for every
    # count, a call it lets through must bind, and one that binds must pass the check.
    app = _app()
    task = app.task(name=f"shape.{func.__name__}")(func)
    for count in range(6):
        args = tuple(range(count))
        try:
            inspect.signature(func).bind(*args)
            binds = True
        except TypeError:
            binds = False
        try:
            task.check_arguments(args, {})
            passes = True
        except TypeError:
            passes = False
        assert passes == binds, (func.__name__, count)


def test_a_signature_s_arguments_are_checked_when_it_is_sent() -> None:
    # Celery sends a signature through its task's apply_async, which checks: so do the tasks
    # a canvas starts at once; a later chain step's first argument is not known yet.
    app = _app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    wrong = [
        lambda: add.s(1).delay(),
        lambda: add.s(1, 2, 3).apply_async(),
        lambda: (add.s(1) | add.s(2)).delay(),
        lambda: group(add.s(1, 2), add.s(1)).delay(),
        lambda: chord([add.s(1, 2), add.s(3)], tsum.s()).delay(),
    ]
    for send in wrong:
        with pytest.raises(TypeError, match=r"add\(\) called with the wrong arguments"):
            send()
    add.s(2).delay(3)  # partial arguments complete it
    add.si(1, 2).delay(5)  # immutable: the 5 is dropped
    (add.s(1, 1) | add.s(2)).delay()  # the second step gets the first one's result
    chord([add.s(1, 2)], tsum.s()).delay()
    app.signature("elsewhere.task", args=(1,)).delay()  # not known here: not checked


def test_the_task_logger_records_carry_the_task_id_and_name() -> None:
    app = _app()
    logger = get_task_logger("tests.celery_api")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:

        @app.task
        def talk() -> None:
            logger.warning("hello")

        result = talk.apply()
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = records
    assert (inside.task_id, inside.task_name) == (result.id, talk.name)  # type: ignore[attr-defined]
    assert (outside.task_id, outside.task_name) == ("???", "???")  # type: ignore[attr-defined]


def test_states_compare_by_precedence() -> None:
    assert states.state(states.PENDING) < states.state(states.SUCCESS)
    assert states.state("PROGRESS") > states.state(states.STARTED)
    assert not states.state("PROGRESS") > states.state(states.SUCCESS)
    assert states.precedence(states.SUCCESS) == 0
    assert states.precedence("PROGRESS") == states.precedence("ANOTHER")
    assert states.IGNORED == "IGNORED"


def test_the_exception_tree_has_celerys_shape() -> None:
    assert exc.CeleryError is exc.CanvasError
    for predicate in (exc.Retry, exc.Reject, exc.Ignore):
        assert issubclass(predicate, exc.TaskPredicate)
    for task_error in (exc.NotRegistered, exc.QueueNotFound, exc.ChordError, exc.TimeoutError):
        assert issubclass(task_error, exc.TaskError)
    assert issubclass(exc.NotRegistered, KeyError)
    assert issubclass(exc.BackendStoreError, exc.BackendError)
    assert issubclass(exc.WorkerShutdown, SystemExit)
    assert issubclass(exc.SecurityWarning, UserWarning)
    app = _app()

    @app.task
    def noop() -> None: ...

    assert noop.MaxRetriesExceededError is exc.MaxRetriesExceededError


def test_app_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(timezone="Europe/Paris")
    assert str(app.timezone) == "Europe/Paris"
    assert app.now().utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    monkeypatch.setenv("CANVAS_TEST_SETTINGS", "tests.unit.test_celery_api")
    assert app.config_from_envvar("CANVAS_TEST_SETTINGS")
    monkeypatch.delenv("CANVAS_TEST_SETTINGS")
    assert app.config_from_envvar("CANVAS_TEST_SETTINGS", silent=True) is False
    with pytest.raises(exc.ImproperlyConfigured, match="CANVAS_TEST_SETTINGS"):
        app.config_from_envvar("CANVAS_TEST_SETTINGS")
    other = Celery("other", set_as_current=False)
    other.set_current()
    assert current_app._get_current_object() is other
    with pytest.raises(ValueError, match="worker sub-command"):
        app.worker_main(["--loglevel=INFO"])


def test_enable_utc_false_puts_times_in_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a machine in Tokyo (UTC+9, no daylight saving)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    # Then as in Celery: no timezone means UTC, unless enable_utc=False picks the machine's zone
    assert str(_app().timezone) == "UTC"
    local = _app(enable_utc=False)
    assert str(local.timezone) == "Asia/Tokyo"
    assert local.now().utcoffset() == timedelta(hours=9)
    # And crontab fields are wall-clock times there: 07:00 in Tokyo is 22:00 UTC
    nightly = crontab(minute=0, hour=7, app=local)
    assert nightly.next_after(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 1, 22, 0, tzinfo=UTC
    )
    # A timezone given wins either way
    assert str(_app(enable_utc=False, timezone="Europe/Paris").timezone) == "Europe/Paris"


def test_a_tz_rule_that_names_no_zone_falls_back_to_the_system_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    assert isinstance(local_timezone(), ZoneInfo)  # /etc/localtime (or UTC), never an error


@pytest.mark.parametrize(
    ("configured", "used"),
    [
        ("db+sqlite:///results.db", "sqlite:///results.db"),
        ("db+postgresql://u@h/db", "postgresql://u@h/db"),
        ("cache+memory://", "memory://"),
        ("redis://h:6379/1", "redis://h:6379/1"),
    ],
)
def test_celerys_result_urls_are_understood(configured: str, used: str) -> None:
    assert Celery("urls", backend=configured, set_as_current=False).backend_url == used


def test_rpc_keeps_workflow_state_in_the_redis_broker_or_the_default_store() -> None:
    # Results travel as messages (tests/unit/test_rpc_backend.py); backend_url is the store of
    # workflow state: the Redis broker's database (every worker reaches it), else a local file
    redis_app = Celery("rpc", broker="redis://h:1/0", backend="rpc://", set_as_current=False)
    assert redis_app.backend_url == "redis://h:1/0"
    cluster = Celery("rpc", broker="redis+cluster://h:1/", backend="rpc://", set_as_current=False)
    assert cluster.backend_url == "redis+cluster://h:1/"
    local = Celery("rpc", broker="memory://", backend="rpc://", set_as_current=False)
    assert local.backend_url.startswith("sqlite:///")


def test_solar_events_match_published_times() -> None:
    # Given London on the 2024 summer solstice (published: sunrise 03:43, sunset 20:21 UTC)
    sunrise = event_time("sunrise", date(2024, 6, 21), 51.5074, -0.1278)
    sunset = event_time("sunset", date(2024, 6, 21), 51.5074, -0.1278)
    assert sunrise is not None and sunset is not None
    assert abs(sunrise - datetime(2024, 6, 21, 3, 43, tzinfo=UTC)) < timedelta(minutes=2)
    assert abs(sunset - datetime(2024, 6, 21, 20, 21, tzinfo=UTC)) < timedelta(minutes=2)
    # And no sunrise at Svalbard in the midnight sun
    assert event_time("sunrise", date(2024, 6, 21), 78.2, 15.6) is None


def test_solar_schedule_slots() -> None:
    sunset = solar("sunset", 51.5074, -0.1278)
    evening = datetime(2024, 6, 21, 21, 0, tzinfo=UTC)
    assert sunset.latest(evening).date() == date(2024, 6, 21)
    assert sunset.next_after(evening).date() == date(2024, 6, 22)
    with pytest.raises(ValueError, match="Did you mean 'sunset'"):
        solar("sunsett", 0, 0)
    with pytest.raises(ValueError, match="latitude"):
        solar("sunset", 91, 0)


def test_result_readers_without_a_worker() -> None:
    from canvas.exceptions import IncompleteStream
    from canvas.result import AsyncResult

    app = _app()
    handle = AsyncResult("never-sent", app=app)
    assert handle.task_id == "never-sent"
    assert handle.backend is app.backend
    assert not handle.exists()
    assert handle.children is None
    assert not handle.ignored
    with pytest.raises(IncompleteStream):
        list(handle.iterdeps())
    assert [n for _, n in handle.iterdeps(intermediate=True)] == [handle]
    with pytest.raises(KeyError, match="mine"):
        handle.throw(KeyError("mine"))


def test_then_calls_back_once_ready() -> None:
    import threading

    app = _app()

    @app.task
    def one() -> int:
        return 1

    done = threading.Event()
    seen: list[Any] = []
    result = one.apply()
    result.then(lambda r: (seen.append(r.get()), done.set())).join(10)
    assert done.is_set() and seen == [1]


def test_the_store_has_celerys_result_backend_methods() -> None:
    app = _app()
    backend = app.backend
    backend.ensure_chords_allowed()
    backend.mark_as_started("t1", pid=12)
    assert backend.get_state("t1") == "STARTED"
    assert backend.get_result("t1") == {"pid": 12}
    backend.mark_as_done("t1", 42)
    assert app.AsyncResult("t1").get(timeout=1) == 42
    backend.mark_as_failure("t2", ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        app.AsyncResult("t2").get(timeout=1)
    backend.mark_as_revoked("t3", reason="no longer needed")
    assert app.AsyncResult("t3").state == "REVOKED"
    backend.store_result("t4", {"progress": 50}, "PROGRESS")
    assert backend.get_task_meta("t4")["result"] == {"progress": 50}
    assert backend.get_task_meta("never")["status"] == "PENDING"
    backend.forget("t1")  # Celery's signature: one id
    assert backend.get_state("t1") == "PENDING" and backend.get_state("t4") == "PROGRESS"


def test_task_store_eager_result_writes_eager_results_to_the_store() -> None:
    app = _app(task_always_eager=True, task_store_eager_result=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(store_eager_result=False)
    def quiet() -> int:
        return 1

    result = add.delay(1, 2)
    assert app.backend.get_task_meta(result.id)["result"] == 3
    assert app.backend.get_task_meta(quiet.delay().id)["status"] == "PENDING"


def test_a_handler_given_as_an_option_is_a_method_and_methods_are_not_options() -> None:
    app = _app()
    seen: list[Any] = []

    def report(self: Task, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        seen.append((self.name, retval))

    @app.task(on_success=report)
    def one() -> int:
        return 1

    one.apply()
    assert seen == [(one.name, 1)]
    with pytest.raises(TypeError, match="'delay'"):

        @app.task(delay=3)
        def two() -> None: ...


def test_task_annotations_set_attributes_by_name_and_star() -> None:
    seen: list[str] = []

    def report(self: Task, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        seen.append(self.name)

    app = _app(
        task_annotations=[
            {"*": {"acks_late": True}},
            {"api.annotated": {"rate_limit": "10/s", "on_failure": report}},
        ]
    )

    @app.task(name="api.annotated")
    def annotated() -> None:
        raise ValueError("x")

    @app.task(name="api.other")
    def other() -> None: ...

    assert (annotated.rate_limit, annotated.acks_late) == ("10/s", True)
    assert (other.rate_limit, other.acks_late) == (None, True)
    annotated.apply()
    assert seen == ["api.annotated"]


def test_task_default_priority_and_store_errors_settings_are_read() -> None:
    from canvas.core import messages

    app = _app(task_default_priority=7)

    @app.task
    def plain() -> None: ...

    @app.task(priority=2)
    def own() -> None: ...

    assert messages.build(app, plain.name, "id-1", (), {}, {}).headers["priority"] == 7
    assert messages.build(app, own.name, "id-2", (), {}, {}).headers["priority"] == 2
    assert plain.store_errors_even_if_ignored is None  # the setting decides, as in Celery
