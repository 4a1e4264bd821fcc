"""The application object, tasks, settings, routing, protocol and result decoding (no network)."""

from __future__ import annotations

import datetime as dt
import decimal
import types
import uuid

import pytest

import canvas
from canvas import Canvas, states
from canvas.core import messages, metas, protocol
from canvas.exceptions import (
    ContentDisallowed,
    ImproperlyConfigured,
    NotRegistered,
    PayloadTooLarge,
    RemoteError,
)
from canvas.request import Request, reset_request, set_request
from canvas.result import AsyncResult, allow_join_result


@pytest.fixture
def app() -> Canvas:
    return Canvas("t", broker="memory://", backend="memory://")


def test_public_api_is_what_all_says() -> None:
    exported = {name for name in dir(canvas) if not name.startswith("_")}
    modules = {name for name in exported if isinstance(getattr(canvas, name), types.ModuleType)}
    assert set(canvas.__all__) == exported - modules - {"annotations"}


def test_task_decorator_forms_and_names(app: Canvas) -> None:
    @app.task
    def add(x, y):
        return x + y

    @app.task(name="custom.name", bind=True, max_retries=2)
    def bound(self, x):
        return (self.name, x)

    assert add.name.endswith(".add") and add(2, 3) == 5
    assert bound(1) == ("custom.name", 1)
    assert app.tasks["custom.name"] is bound


def test_unknown_task_option_is_an_error_naming_it(app: Canvas) -> None:
    with pytest.raises(TypeError, match="'retries_max'"):

        @app.task(retries_max=3)
        def nope() -> None: ...


def test_unknown_apply_async_option_is_an_error(app: Canvas) -> None:
    @app.task
    def add(x, y):
        return x + y

    with pytest.raises(TypeError, match="'countdwn'"):
        add.apply_async((1, 2), countdwn=3)


def test_missing_task_names_itself(app: Canvas) -> None:
    with pytest.raises(NotRegistered, match="'proj.missing'"):
        app.tasks["proj.missing"]


def test_settings_from_object_and_namespace(app: Canvas) -> None:
    source = types.SimpleNamespace(
        CANVAS_BROKER_URL="redis://x:6379/1", CANVAS_TASK_ACKS_LATE=True, OTHER=1
    )
    app.config_from_object(source, namespace="CANVAS")
    assert app.conf.broker_url == "redis://x:6379/1"
    assert app.conf["task_acks_late"] is True
    with pytest.raises(AttributeError, match="Did you mean 'task_acks_late'"):
        _ = app.conf.task_ack_late


def test_unknown_broker_scheme_suggests_the_closest(app: Canvas) -> None:
    app.conf.broker_url = "rediss2://localhost"
    app.close()
    with pytest.raises(ImproperlyConfigured, match="Did you mean"):
        _ = app.transport


def test_routes_by_name_glob_and_task_queue(app: Canvas) -> None:
    @app.task(queue="special")
    def special() -> None: ...

    app.conf.task_routes = {"feeds.*": {"queue": "feeds"}, "mail.send": "mail"}
    assert messages.route(app, "feeds.fetch", {}) == "feeds"
    assert messages.route(app, "mail.send", {}) == "mail"
    assert messages.route(app, special.name, {}) == "special"
    assert messages.route(app, "other", {}) == "canvas"
    assert messages.route(app, "feeds.fetch", {"queue": "explicit"}) == "explicit"


def test_message_carries_headers_and_refuses_oversized_payloads(app: Canvas) -> None:
    now = 1_000_000.0
    message = messages.build(
        app, "t.add", "id-1", (1, 2), {"k": 3}, {"countdown": 10, "expires": 60}, now=now
    )
    assert message.headers["eta"] == now + 10 and message.headers["expires"] == now + 60
    assert protocol.decode_body(
        message.body, message.content_type, frozenset({protocol.MSGPACK})
    ) == (
        [1, 2],
        {"k": 3},
    )
    app.conf.task_max_payload_bytes = 100
    with pytest.raises(PayloadTooLarge, match="task_max_payload_bytes=100"):
        messages.build(app, "t.add", "id-2", ("x" * 200,), {}, {})


def test_msgpack_round_trips_rich_values() -> None:
    value = {
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "day": dt.date(2026, 1, 2),
        "amount": decimal.Decimal("1.10"),
        "uid": uuid.UUID(int=7),
        "gap": dt.timedelta(seconds=90),
        "raw": b"\x00\x01",
    }
    assert protocol.internal.loads(protocol.internal.dumps(value)) == value


def test_pickle_is_refused_unless_accepted() -> None:
    body = protocol.SERIALIZERS["pickle"].dumps([[1], {}])
    accept = protocol.accepted_content_types(["msgpack", "json"])
    with pytest.raises(ContentDisallowed):
        protocol.decode_body(body, protocol.PICKLE, accept)
    allowed = protocol.accepted_content_types(["pickle"])
    assert protocol.decode_body(body, protocol.PICKLE, allowed) == ([1], {})


def test_exceptions_are_rebuilt_only_when_safe(app: Canvas) -> None:
    stored = metas.exception_to_dict(KeyError("k"))
    assert isinstance(metas.exception_from_dict(app, stored), KeyError)
    foreign = {"exc_type": "Evil", "exc_module": "os", "exc_message": ["rm -rf"]}
    rebuilt = metas.exception_from_dict(app, foreign)
    assert isinstance(rebuilt, RemoteError) and rebuilt.exc_type == "os.Evil"


def test_result_reads_the_store(app: Canvas) -> None:
    meta = metas.make_meta("r1", states.SUCCESS, [1, 2])
    app.backend.store("r1", states.SUCCESS, metas.encode(meta))
    result = app.AsyncResult("r1")
    assert result.get(timeout=1) == [1, 2] and result.successful() and result.ready()
    assert app.AsyncResult("nothing").state == states.PENDING


def test_get_inside_a_task_raises_unless_allowed(app: Canvas) -> None:
    app.backend.store("r2", states.SUCCESS, metas.encode(metas.make_meta("r2", states.SUCCESS, 5)))
    token = set_request(Request(id="outer", called_directly=False))
    try:
        with pytest.raises(RuntimeError, match="Never call result.get"):
            AsyncResult("r2", app=app).get(timeout=1)
        with allow_join_result():
            assert AsyncResult("r2", app=app).get(timeout=1) == 5
    finally:
        reset_request(token)


def test_add_periodic_task_stores_a_beat_entry(app: Canvas) -> None:
    @app.task
    def test(arg):
        return arg

    name = app.add_periodic_task(10.0, test.s("hello"), name="add every 10")
    entry = app.conf.beat_schedule[name]
    assert entry["schedule"] == 10.0 and entry["task"].args == ("hello",)


def test_always_eager_runs_in_process(app: Canvas) -> None:
    app.conf.task_always_eager = True

    @app.task
    def add(x, y):
        return x + y

    assert add.delay(2, 2).get() == 4
    assert (add.s(1, 1) | add.s(3)).delay().get() == 5
