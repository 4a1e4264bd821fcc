"""Task metas: how a result or an exception is written to the store and read back safely.

A meta is a msgpack dict (``status``, ``result``, ``traceback``, ``date_done``, ``task_id``,
``name``, ``worker``, ``retries``, ``runtime``, ``workflow``). Exceptions are stored by type name,
module and arguments. Reading never unpickles and never imports arbitrary modules: an exception is
rebuilt only when its class is an ``Exception`` subclass that is a builtin, a canvas exception, or
defined in a module that holds a registered task; anything else (``SystemExit`` too) becomes
``RemoteError`` with the type name and message.
"""

from __future__ import annotations

import builtins
import sys
import time
import traceback as tb_module
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from canvas import exceptions, states
from canvas.core.protocol import internal

if TYPE_CHECKING:
    from canvas.app import Canvas


def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    args = []
    for arg in exc.args:
        args.append(arg if isinstance(arg, str | int | float | bool | type(None)) else repr(arg))
    return {
        "exc_type": cls.__name__,
        "exc_qualname": cls.__qualname__,
        "exc_module": cls.__module__,
        "exc_message": args,
    }


def exception_from_dict(app: Canvas | None, data: Mapping[str, Any]) -> BaseException:
    """Rebuild a stored exception where its type is known to be safe, else ``RemoteError``."""
    name = str(data.get("exc_type", "Exception"))
    module = str(data.get("exc_module", "builtins"))
    args = data.get("exc_message") or []
    if not isinstance(args, list | tuple):
        args = [args]
    cls = _safe_exception_class(app, module, str(data.get("exc_qualname") or name))
    if cls is not None:
        try:
            return cls(*args)
        except Exception:
            pass
    message = " ".join(str(a) for a in args)
    return exceptions.RemoteError(name if module == "builtins" else f"{module}.{name}", message)


def _safe_exception_class(app: Canvas | None, module: str, qualname: str) -> type[Exception] | None:
    if module == "builtins":
        cls = getattr(builtins, qualname, None)
    elif module == "canvas.exceptions":
        cls = getattr(exceptions, qualname, None)
    else:
        allowed = app.task_modules() if app is not None else set()
        if module not in allowed or module not in sys.modules:
            return None
        cls = sys.modules[module]
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
    # Only Exception subclasses: a stored SystemExit or KeyboardInterrupt (forged, or raised by
    # a task) would escape every ``except Exception`` around ``get()``; it reads as RemoteError.
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls
    return None


def make_meta(
    task_id: str,
    status: str,
    result: Any = None,
    *,
    exc: BaseException | None = None,
    traceback: str | None = None,
    task: str | None = None,
    worker: str | None = None,
    retries: int = 0,
    runtime: float | None = None,
    workflow: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "task_id": task_id,
        "status": status,
        "result": exception_to_dict(exc) if exc is not None else result,
        "traceback": traceback,
        "date_done": time.time() if status in states.READY_STATES else None,
        "name": task,
        "worker": worker,
        "retries": retries,
        "runtime": runtime,
        "workflow": workflow,
    }
    if extra:
        meta.update(extra)
    return meta


def format_traceback(exc: BaseException) -> str:
    return "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))


def encode(meta: Mapping[str, Any]) -> bytes:
    return internal.dumps(dict(meta))


def decode(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    meta = internal.loads(data)
    return meta if isinstance(meta, dict) else None


def store(app: Canvas, task_id: str, status: str, result: Any, task: str | None = None) -> None:
    """Write a meta for ``task_id`` (``update_state`` and simple writes)."""
    meta = make_meta(task_id, status, result, task=task)
    app.backend.store(task_id, status, encode(meta))
