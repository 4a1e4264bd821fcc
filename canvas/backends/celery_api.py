"""Celery's result-backend methods, on every store: ``app.backend.mark_as_done(...)``.

Projects call these to write or read a task's state by hand (``store_result``, ``mark_as_*``,
``get_task_meta``, ``ensure_chords_allowed``). The records are the engine's own task metas: the
app that opens a store gives it ``records`` (``canvas.core.metas``), so the store stays ignorant
of the engine and writes exactly what a worker would.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from canvas import states
from canvas.exceptions import ImproperlyConfigured, TaskRevokedError


class CeleryResultAPI(ABC):
    """The methods of Celery's ``BaseBackend`` that projects call, over a store's primitives."""

    #: how task metas are made and encoded, given by the app that opened the store
    #: (``canvas.core.metas``: ``make_meta``, ``encode``, ``decode``, ``format_traceback``)
    records: Any = None

    @abstractmethod
    def store(self, task_id: str, status: str, meta: bytes) -> None:
        """Write one task's meta (the store's primitive)."""

    @abstractmethod
    def get(self, task_ids: Sequence[str]) -> list[bytes | None]:
        """Read task metas (the store's primitive)."""

    def _codec(self) -> Any:
        if self.records is None:
            raise ImproperlyConfigured(
                "This store was not opened by an app (use app.backend): it cannot write task "
                "records on its own."
            )
        return self.records

    def ensure_chords_allowed(self) -> None:  # noqa: B027 - allowed everywhere: nothing to check
        """Every canvas store joins chords (atomically, without polling)."""

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Write ``state`` with ``result`` (an exception for the failure states) for ``task_id``."""
        codec = self._codec()
        exc = result if isinstance(result, BaseException) else None
        if exc is not None and traceback is None and exc.__traceback__ is not None:
            traceback = codec.format_traceback(exc)
        meta = codec.make_meta(
            task_id,
            state,
            None if exc is not None else result,
            exc=exc,
            traceback=traceback,
            task=getattr(request, "task", None),
        )
        self.store(task_id, state, codec.encode(meta))
        return result

    def mark_as_started(self, task_id: str, **meta: Any) -> Any:
        return self.store_result(task_id, meta, states.STARTED)

    def mark_as_done(
        self,
        task_id: str,
        result: Any,
        request: Any = None,
        store_result: bool = True,
        state: str = states.SUCCESS,
    ) -> None:
        if store_result:
            self.store_result(task_id, result, state, request=request)

    def mark_as_failure(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        store_result: bool = True,
        call_errbacks: bool = True,
        state: str = states.FAILURE,
    ) -> None:
        if store_result:
            self.store_result(task_id, exc, state, traceback=traceback, request=request)

    def mark_as_retry(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        store_result: bool = True,
        state: str = states.RETRY,
    ) -> None:
        if store_result:
            self.store_result(task_id, exc, state, traceback=traceback, request=request)

    def mark_as_revoked(
        self,
        task_id: str,
        reason: str = "",
        request: Any = None,
        store_result: bool = True,
        state: str = states.REVOKED,
    ) -> None:
        if store_result:
            self.store_result(task_id, TaskRevokedError(reason), state, request=request)

    def get_task_meta(self, task_id: str, cache: bool = True) -> dict[str, Any]:
        """The stored meta (``status``, ``result``, ``traceback``, ...), PENDING when none."""
        meta = self._codec().decode(self.get([task_id])[0])
        return meta or {"task_id": task_id, "status": states.PENDING, "result": None}

    def get_state(self, task_id: str) -> str:
        return str(self.get_task_meta(task_id).get("status", states.PENDING))

    get_status = get_state

    def get_result(self, task_id: str) -> Any:
        return self.get_task_meta(task_id).get("result")

    def get_traceback(self, task_id: str) -> str | None:
        traceback: str | None = self.get_task_meta(task_id).get("traceback")
        return traceback
