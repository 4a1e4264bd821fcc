"""Every Celery setting is honoured, not needed (a line says why) or refused (an error says what
to use); misspellings get a "did you mean"; Celery's old upper-case names map with a warning."""

from __future__ import annotations

import pytest

from canvas import Celery
from canvas.celery_settings import CELERY_NAMES, NOT_NEEDED, OLD_NAMES, REFUSED, REFUSED_STORES
from canvas.config import DEFAULTS, check
from canvas.exceptions import CDeprecationWarning, ImproperlyConfigured


@pytest.mark.parametrize("name", sorted(CELERY_NAMES))
def test_each_celery_setting_has_a_place(name: str) -> None:
    assert (
        name in DEFAULTS
        or name in NOT_NEEDED
        or name in REFUSED
        or any(name.startswith(prefix) for prefix in REFUSED_STORES)
    ), f"{name}: honour it (DEFAULTS), or list it in NOT_NEEDED or REFUSED"


def test_not_needed_and_misspelt_settings_get_one_line_each() -> None:
    lines = check({**DEFAULTS, "broker_pool_limit": 10, "worker_prefetch_multiplyer": 2})
    assert lines == [
        "Setting broker_pool_limit is not needed by canvas and has no effect: "
        f"{NOT_NEEDED['broker_pool_limit']}.",
        "Unknown setting 'worker_prefetch_multiplyer': did you mean 'worker_prefetch_multiplier'?",
    ]


def test_refused_settings_stop_start_up_naming_what_to_use() -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        check({**DEFAULTS, "broker_host": "rabbit1", "s3_bucket": "results", "worker_direct": 1})
    text = str(raised.value)
    assert "broker_host: not supported; put the host in broker_url." in text
    assert "s3_bucket: canvas has no S3 result store" in text
    assert "worker_direct: not supported" in text
    # An unset refused setting loses nothing: it is not refused
    assert check({**DEFAULTS, "worker_direct": False}) == []


def test_result_serializer_is_explained_or_refused() -> None:
    # json (Celery's default) and msgpack: canvas's records hold what they hold, one line says so
    for value in ("json", "msgpack"):
        assert check({**DEFAULTS, "result_serializer": value}) == [
            "Setting result_serializer is not needed by canvas and has no effect: "
            f"{NOT_NEEDED['result_serializer']}."
        ]
    # pickle (or any other): results would not hold what the project returns, so it is refused
    with pytest.raises(ImproperlyConfigured, match="result_serializer='pickle': not supported"):
        check({**DEFAULTS, "result_serializer": "pickle"})


def test_the_app_refuses_at_finalize() -> None:
    app = Celery("refuse", broker="memory://", backend="memory://", set_as_current=False)
    app.conf.broker_vhost = "/prod"
    with pytest.raises(ImproperlyConfigured, match="broker_vhost: not supported"):
        app.finalize()


def test_old_upper_case_names_map_with_a_deprecation_warning() -> None:
    class Settings:
        BROKER_URL = "redis://broker:6379/0"
        CELERY_RESULT_BACKEND = "db+sqlite:///results.db"
        CELERYD_CONCURRENCY = 3
        SOME_CONSTANT = 1  # not a setting: left out

    app = Celery("old", set_as_current=False)
    with pytest.warns(CDeprecationWarning) as warned:
        app.config_from_object(Settings)
    assert sorted(str(w.message).split()[1] for w in warned) == [
        "BROKER_URL",
        "CELERYD_CONCURRENCY",
        "CELERY_RESULT_BACKEND",
    ]
    assert app.conf.broker_url == "redis://broker:6379/0"
    assert app.backend_url == "sqlite:///results.db"
    assert app.conf.worker_concurrency == 3
    assert "some_constant" not in app.conf
    assert OLD_NAMES["CELERYBEAT_SCHEDULE"] == "beat_schedule"
