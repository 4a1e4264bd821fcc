"""Settings: Celery's lowercase names, their defaults, and loading them from objects.

``app.conf`` reads like Celery's: attribute or item access, ``update()``,
``config_from_object(obj, namespace='CANVAS')`` for Django's settings (``CANVAS_BROKER_URL`` ->
``broker_url``; ``CELERY_`` works too). Unknown lowercase names are kept (extensions read them);
a misspelt name close to a known one is reported by ``Settings.unknown_names``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from canvas import signing
from canvas.celery_settings import CELERY_NAMES, NOT_NEEDED, REFUSED, REFUSED_STORES, new_name
from canvas.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # brokers and stores
    "broker_url": None,
    "broker_transport_options": {},
    "broker_connection_retry_on_startup": True,
    # RabbitMQ: a publish returns once the broker confirmed it ("off": Celery's default)
    "broker_confirm": True,
    "result_backend": None,
    "result_expires": 86400.0,
    # options the result store reads (Redis: prefix; Redis Cluster: replica_wait, seconds)
    "result_backend_transport_options": {},
    "result_extended": False,
    # a result larger than this (encoded) is stored as a FAILURE saying so (0: no limit)
    "result_max_payload_bytes": 8 * 1024 * 1024,
    # messages
    "task_serializer": "msgpack",
    "accept_content": ["msgpack", "json"],
    "task_max_payload_bytes": 8 * 1024 * 1024,
    # task behaviour
    "task_acks_late": False,
    "task_acks_on_failure_or_timeout": True,
    "task_track_started": False,
    "task_send_sent_event": False,
    "task_ignore_result": False,
    "task_store_errors_even_if_ignored": False,
    "task_default_queue": "canvas",
    # As in Celery: a worker started without -Q consumes every queue listed here.
    "task_queues": None,
    "task_create_missing_queues": True,
    # RabbitMQ: "quorum" declares replicated quorum queues (see docs/scaling.md)
    "task_default_queue_type": "classic",
    "task_default_priority": None,
    "task_routes": None,
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_store_eager_result": False,
    "task_time_limit": None,
    "task_default_rate_limit": None,
    "task_soft_time_limit": None,
    "task_annotations": None,
    "task_allow_join_result": False,
    # As in Celery: chord.link_error() reaches the header's tasks too only when this is set.
    "task_allow_error_cb_on_chord_header": False,
    # As in Celery: what a task sends (its chain's next step too) takes its priority.
    "task_inherit_parent_priority": False,
    # workers
    "worker_concurrency": None,
    # As in Celery: each pool process holds up to this many unacked messages (AMQP).
    "worker_prefetch_multiplier": 4,
    "worker_pool": "prefork",
    "worker_hijack_root_logger": True,
    "worker_log_format": None,
    "worker_task_log_format": None,
    # As in Celery: print() inside a task goes to the log, at this level.
    "worker_redirect_stdouts": True,
    "worker_redirect_stdouts_level": "WARNING",
    # a pool process is replaced after this many tasks / past this resident size (KiB)
    "worker_max_tasks_per_child": None,
    "worker_max_memory_per_child": None,
    "worker_max_deliveries": 3,
    # As in Celery: the class --autoscale uses (a subclass may change its target())
    "worker_autoscaler": "canvas.core.autoscale:Autoscaler",
    "worker_lease_seconds": 60.0,
    # As in Celery: no channel-wide prefetch where a worker consumes a quorum queue.
    "worker_detect_quorum_queues": True,
    # remote control and events (see canvas.control, canvas.events)
    "worker_send_task_events": False,
    "worker_enable_remote_control": True,
    "worker_state_db": None,
    "worker_revoke_expires": 10800.0,
    "control_exchange": "canvas",
    "event_exchange": "canvasev",
    # time: as in Celery, no timezone means UTC, or the machine's zone with enable_utc=False
    "timezone": None,
    "enable_utc": True,
    # beat
    "beat_schedule": {},
    "beat_scheduler": "canvas.beat.scheduler:Scheduler",
    "beat_schedule_filename": "canvasbeat-schedule",
    "beat_max_loop_interval": 300,
    "beat_lease_ttl": 10.0,
    "beat_schedule_store": None,
    # workflows
    "canvas_max_nodes": 250_000,
    "canvas_max_depth": 200,
    # security (see canvas.signing): signing is on when security_key is set; X.509 (Celery's
    # auth serializer) when security_certificate is set too, else HMAC
    "security_key": None,
    "security_key_password": None,
    "security_certificate": None,
    "security_cert_store": None,
    "security_digest": "sha256",
    # what encodes the bodies task_serializer='auth' signs (setup_security(serializer=...))
    "security_serializer": "json",
    "security_key_id": None,
    "security_keys": None,
    "security_encryption_key": None,
    "security_encryption_key_id": None,
    "security_encryption_keys": None,
    "security_max_age": 3600.0,
    "security_clock_skew": 60.0,
    "security_replay_cache": True,
    "broker_use_ssl": False,
    # embedded default
    "embedded_dir": ".canvas",
    "imports": (),
    "include": (),
}

#: the ``result_serializer`` values canvas's msgpack records stand in for (anything else: refused)
RESULT_SERIALIZERS = ("json", "msgpack")

# Celery's old uppercase names that Django projects still use, mapped to the new ones.
_OLD_NAMES = {
    "broker": "broker_url",
    "result_backend": "result_backend",
    "celery_result_backend": "result_backend",
    "always_eager": "task_always_eager",
    "task_eager_propagates_exceptions": "task_eager_propagates",
}


class Settings(MutableMapping[str, Any]):
    """The app's configuration: defaults overlaid by what the user set."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = {}
        for key, value in DEFAULTS.items():
            self._values[key] = _fresh(value)
        if initial:
            self.update(initial)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(_unknown_message(key)) from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        else:
            self._values[key] = value

    def unknown_names(self) -> list[str]:
        """Set names that are not settings but look like one (probably misspelt)."""
        return [
            k
            for k in self._values
            if k not in DEFAULTS and difflib.get_close_matches(k, DEFAULTS, n=1, cutoff=0.85)
        ]

    def load(self, source: Any, namespace: str | None = None) -> None:
        """Copy settings from a module, object, dict or dotted path; see ``config_from_object``."""
        if isinstance(source, str):
            module_name, _, attr = source.partition(":")
            source = importlib.import_module(module_name)
            if attr:  # "django.conf:settings", as Celery accepts
                source = getattr(source, attr)
        items = source.items() if isinstance(source, Mapping) else _public_attrs(source)
        prefixes = [f"{namespace}_"] if namespace else [""]
        for key, value in items:
            for prefix in prefixes:
                if prefix and not key.startswith(prefix):
                    continue
                name = key[len(prefix) :].lower()
                if not name or name.startswith("_"):
                    continue
                if not prefix and key != key.lower():
                    # Celery's old names (BROKER_URL) map, with a warning; a plain module's
                    # other UPPERCASE constants are not settings.
                    old = new_name(key)
                    if old is None and name not in DEFAULTS:
                        continue
                    name = old or name
                self._values[_OLD_NAMES.get(name, name)] = value


def load_class(spec: str | type, what: str, example: str) -> type:
    """``module:Class`` (or ``module.Class``) to a class, for settings and flags that name one;
    ``what`` names the setting in the error, ``example`` is a spec that works."""
    if isinstance(spec, type):
        return spec
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    try:
        found: Any = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # a module may fail its own way (Django not set up)
        raise ImproperlyConfigured(
            f"{what} {spec!r}: cannot load it ({exc}); give 'module:Class', e.g. {example!r}."
        ) from exc
    if not isinstance(found, type):
        raise ImproperlyConfigured(f"{what} {spec!r} is not a class")
    return found


def known_names() -> frozenset[str]:
    """Every lowercase setting name canvas knows: its own and Celery's."""
    return frozenset(DEFAULTS) | frozenset(NOT_NEEDED) | frozenset(REFUSED) | CELERY_NAMES


def check(conf: Mapping[str, Any]) -> list[str]:
    """Refuse what canvas cannot honour (``ImproperlyConfigured``, naming what to use) and
    return one line for each setting that is not needed or looks misspelt, to be logged."""
    lines: list[str] = []
    refused: list[str] = []
    known = known_names()
    for name in sorted(conf):
        if name in DEFAULTS or name.startswith("_"):
            continue
        if name in REFUSED:
            if not conf[name]:
                continue  # unset (None, False, empty): nothing is lost by ignoring it
            refused.append(f"{name}: not supported; {REFUSED[name]}.")
        elif any(name.startswith(prefix) for prefix in REFUSED_STORES):
            store = next(v for k, v in REFUSED_STORES.items() if name.startswith(k))
            refused.append(
                f"{name}: canvas has no {store} result store; set result_backend to a redis://, "
                "db+postgresql:// or db+sqlite:/// URL."
            )
        elif name in NOT_NEEDED:
            lines.append(
                f"Setting {name} is not needed by canvas and has no effect: {NOT_NEEDED[name]}."
            )
        elif name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            if close:
                lines.append(f"Unknown setting {name!r}: did you mean {close[0]!r}?")
    if str(conf.get("result_serializer") or "json").lower() not in RESULT_SERIALIZERS:
        refused.append(
            f"result_serializer={conf['result_serializer']!r}: not supported; results are "
            "canvas's own msgpack records, never pickle: return plain data (ids, not objects)."
        )
    if conf.get("task_create_missing_queues") is False:
        refused.append(
            "task_create_missing_queues=False: not supported; canvas declares every queue it "
            "sends to (list the queues in task_queues and route with task_routes)."
        )
    if refused:
        raise ImproperlyConfigured("Settings canvas cannot honour:\n  " + "\n  ".join(refused))
    signing.scheme(conf)  # a mixed or incomplete signing configuration stops start-up here
    return lines


def _public_attrs(obj: Any) -> Iterator[tuple[str, Any]]:
    for key in dir(obj):
        if not key.startswith("_"):
            yield key, getattr(obj, key)


def _fresh(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _unknown_message(key: str) -> str:
    close = difflib.get_close_matches(key, DEFAULTS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"No setting named {key!r}.{hint}"


def queue_options(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Transport options for RabbitMQ queue types from Celery's settings: the default type
    (``task_default_queue_type``), each ``task_queues`` entry's ``queue_arguments`` (kombu
    ``Queue`` objects or dicts with ``name``), and the quorum ``x-delivery-limit``
    (``worker_max_deliveries``). Empty when nothing asks for another queue type."""
    arguments: dict[str, dict[str, Any]] = {}
    for queue in conf.get("task_queues") or ():
        name = queue.get("name") if isinstance(queue, Mapping) else getattr(queue, "name", None)
        given = (
            queue.get("queue_arguments")
            if isinstance(queue, Mapping)
            else getattr(queue, "queue_arguments", None)
        )
        if name and given:
            arguments[str(name)] = dict(given)
    kind = str(conf.get("task_default_queue_type") or "classic")
    if kind not in ("classic", "quorum"):
        raise ImproperlyConfigured(
            f"task_default_queue_type must be 'classic' or 'quorum', not {kind!r}."
        )
    if kind == "classic" and not arguments:
        return {}
    return {
        "queue_type": kind,
        "queue_arguments": arguments,
        "delivery_limit": int(conf.get("worker_max_deliveries") or 0),
    }
