"""The message protocol: how a task call becomes bytes on a queue and back.

A message is a body plus flat headers. The body is ``[args, kwargs]`` encoded by the task
serializer (msgpack by default, JSON available, pickle only when listed in ``accept_content``).
Headers carry everything the worker needs before decoding the body:

=============  ==============================================================================
``task``       registered task name
``id``         task id (also the node id inside a workflow)
``root_id``    id of the first task of the workflow; ``parent_id`` the task that sent this one
``workflow``   workflow id when the call is a node of a stored workflow, else absent
``eta``        epoch seconds before which the call must not run
``expires``    epoch seconds after which the call is REVOKED instead of run
``retries``    how many times the call was retried
``argsrepr``   what logs and events show instead of the real args (``kwargsrepr`` likewise)
``reply_to``   the caller's reply queue when results come back as messages (``rpc://``)
=============  ==============================================================================

Message size depends on the node's own arguments only, never on the size of its workflow.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import pickle
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgpack

from canvas.exceptions import ContentDisallowed, ImproperlyConfigured

MSGPACK = "application/x-msgpack"
JSON = "application/json"
PICKLE = "application/x-python-serialize"

_EXT_DATETIME, _EXT_DATE, _EXT_TIME, _EXT_DECIMAL, _EXT_UUID, _EXT_TIMEDELTA = range(1, 7)


class Serializer(Protocol):
    """A pair of functions between Python values and bytes."""

    content_type: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _msgpack_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, value.isoformat().encode())
    if isinstance(value, dt.date):
        return msgpack.ExtType(_EXT_DATE, value.isoformat().encode())
    if isinstance(value, dt.time):
        return msgpack.ExtType(_EXT_TIME, value.isoformat().encode())
    if isinstance(value, decimal.Decimal):
        return msgpack.ExtType(_EXT_DECIMAL, str(value).encode())
    if isinstance(value, uuid.UUID):
        return msgpack.ExtType(_EXT_UUID, value.bytes)
    if isinstance(value, dt.timedelta):
        return msgpack.ExtType(_EXT_TIMEDELTA, str(value.total_seconds()).encode())
    if isinstance(value, set | frozenset):
        return list(value)
    if hasattr(value, "to_dict") and hasattr(value, "subtask_type"):  # a Signature
        return value.to_dict()
    raise TypeError(
        f"Object of type {type(value).__name__} is not serializable with msgpack; pass plain "
        "data (ids, not model objects) or choose another task_serializer."
    )


def _msgpack_ext(code: int, data: bytes) -> Any:
    if code == _EXT_DATETIME:
        return dt.datetime.fromisoformat(data.decode())
    if code == _EXT_DATE:
        return dt.date.fromisoformat(data.decode())
    if code == _EXT_TIME:
        return dt.time.fromisoformat(data.decode())
    if code == _EXT_DECIMAL:
        return decimal.Decimal(data.decode())
    if code == _EXT_UUID:
        return uuid.UUID(bytes=data)
    if code == _EXT_TIMEDELTA:
        return dt.timedelta(seconds=float(data.decode()))
    return msgpack.ExtType(code, data)


class MsgpackSerializer:
    content_type = MSGPACK

    def dumps(self, value: Any) -> bytes:
        data: bytes = msgpack.packb(value, default=_msgpack_default, use_bin_type=True)
        return data

    def loads(self, data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=_msgpack_ext, raw=False, strict_map_key=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "to_dict") and hasattr(value, "subtask_type"):
        return value.to_dict()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class JSONSerializer:
    content_type = JSON

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, default=_json_default, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class PickleSerializer:
    content_type = PICKLE

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


SERIALIZERS: dict[str, Serializer] = {
    "msgpack": MsgpackSerializer(),
    "json": JSONSerializer(),
    "pickle": PickleSerializer(),
}
_BY_CONTENT_TYPE = {s.content_type: name for name, s in SERIALIZERS.items()}

#: the serializer for internal records (workflow specs, result metas): never pickle
internal = SERIALIZERS["msgpack"]


def serializer(name: str) -> Serializer:
    try:
        return SERIALIZERS[name]
    except KeyError:
        known = ", ".join(SERIALIZERS)
        raise ImproperlyConfigured(f"Unknown serializer {name!r}; known: {known}.") from None


def accepted_content_types(accept: Iterable[str]) -> frozenset[str]:
    """``accept_content`` may name serializers (``'json'``) or content types."""
    types = set()
    for item in accept:
        if item in SERIALIZERS:
            types.add(SERIALIZERS[item].content_type)
        elif item in _BY_CONTENT_TYPE:
            types.add(item)
        else:
            raise ImproperlyConfigured(f"accept_content names unknown serializer {item!r}.")
    return frozenset(types)


def encode_body(args: Any, kwargs: Mapping[str, Any], name: str = "msgpack") -> tuple[bytes, str]:
    """Serialize a call's arguments; a clear TypeError names what could not be encoded."""
    chosen = serializer(name)
    return chosen.dumps([list(args), dict(kwargs)]), chosen.content_type


def decode_body(
    body: bytes, content_type: str, accept: frozenset[str]
) -> tuple[list[Any], dict[str, Any]]:
    """The ``(args, kwargs)`` of a message, refusing content types not accepted."""
    if content_type not in accept:
        raise ContentDisallowed(
            f"Refusing message with content type {content_type!r}; accepted: {sorted(accept)}."
        )
    name = _BY_CONTENT_TYPE[content_type]
    payload = SERIALIZERS[name].loads(body)
    if (
        not isinstance(payload, list | tuple)
        or len(payload) < 2
        or not isinstance(payload[0], list | tuple)
        or not isinstance(payload[1], dict)
    ):
        raise ValueError("Message body is not [args, kwargs].")
    return list(payload[0]), dict(payload[1])


def to_epoch(value: Any, now: float) -> float | None:
    """Seconds since the epoch for an ``eta``/``expires`` given as datetime, seconds or None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return float(value.timestamp())
    if isinstance(value, dt.timedelta):
        return now + value.total_seconds()
    if isinstance(value, int | float):
        return now + float(value)
    raise TypeError(f"Expected a datetime, timedelta or seconds, got {type(value).__name__}")
