"""Schedule stores: where beat keeps each entry's last-run slot across restarts.

A restart then neither re-fires a slot nor skips one.

Chosen by URL (``--store`` or ``beat_schedule_store``), else a file (``-s`` or
``beat_schedule_filename``):

* a path, or ``file:///abs/path`` – a small JSON file, replaced atomically on every write (a
  temporary file, ``fsync``, ``os.replace``), so a crash leaves the old or the new file whole;
* ``sqlite:///path``, ``postgresql://...`` and other SQLAlchemy URLs – one table,
  ``canvas_beat_last_run``, shared by every beat that points at it;
* ``memory://`` – this process only, for tests;
* any other scheme from the ``canvas.stores`` entry-point group, or a ``module:Class`` path.

A store keeps aware UTC datetimes and knows nothing of schedules; a subclass fills ``load`` and
``save`` (and ``close`` if it holds connections).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from canvas.exceptions import ImproperlyConfigured
from canvas.registry import lookup

logger = logging.getLogger("canvas.beat")

__all__ = [
    "STORE_ALIASES",
    "FileStore",
    "MemoryStore",
    "SQLStore",
    "Store",
    "create",
    "redact",
    "resolve",
]

STORE_ALIASES: dict[str, str] = {
    "file": "canvas.beat.stores:FileStore",
    "memory": "canvas.beat.stores:MemoryStore",
    "sqlite": "canvas.beat.stores:SQLStore",
    "postgresql": "canvas.beat.stores:SQLStore",
    "postgres": "canvas.beat.stores:SQLStore",
    "postgresql+psycopg": "canvas.beat.stores:SQLStore",
    "mysql": "canvas.beat.stores:SQLStore",
    "mysql+pymysql": "canvas.beat.stores:SQLStore",
}
_DOTTED = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class Store(ABC):
    """Last-run slots by entry name."""

    def __init__(self, url: str) -> None:
        self.url = url

    @abstractmethod
    def load(self) -> dict[str, datetime]:
        """Every entry's last-run slot; empty for a new store."""

    @abstractmethod
    def save(self, last_run: Mapping[str, datetime]) -> None:
        """Record these entries' slots (others are left as they are), durably, before returning."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact(self.url)}>"


def redact(url: str) -> str:
    """``url`` fit for logs: the password, if any, replaced by ``***``."""
    parts = urlsplit(url) if "://" in url else None
    if parts is None or parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _encode(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def _decode(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class MemoryStore(Store):
    """A dict on the instance: for tests and for beats that may forget on restart."""

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        self._lock = threading.Lock()
        self._data: dict[str, datetime] = {}

    def load(self) -> dict[str, datetime]:
        with self._lock:
            return dict(self._data)

    def save(self, last_run: Mapping[str, datetime]) -> None:
        with self._lock:
            self._data.update(last_run)


class FileStore(Store):
    """A JSON file: ``{"version": 1, "last_run_at": {name: ISO-8601 UTC}}``.

    The whole file is rewritten on each save: it holds one line per entry, and a rewrite through
    ``os.replace`` is what makes the write atomic.
    """

    VERSION = 1

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = Path(_path_of(url))
        self._lock = threading.Lock()
        self._data: dict[str, datetime] | None = None

    def load(self) -> dict[str, datetime]:
        with self._lock:
            return dict(self._read())

    def _read(self) -> dict[str, datetime]:
        if self._data is not None:
            return self._data
        self._data = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._data
        try:
            document = json.loads(raw)
            if document.get("version") != self.VERSION:
                raise ValueError(f"unknown version {document.get('version')!r}")
            self._data = {str(k): _decode(v) for k, v in document["last_run_at"].items()}
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Celery's shelve files and torn copies land here: starting afresh costs at most
            # one slot per entry, refusing to start would cost every slot until someone looks.
            logger.warning(
                "Schedule file %s is not a canvas schedule (%s); starting with an empty one.",
                self.path,
                exc,
            )
        return self._data

    def save(self, last_run: Mapping[str, datetime]) -> None:
        with self._lock:
            data = self._read()
            data.update(last_run)
            document = {
                "version": self.VERSION,
                "last_run_at": {name: _encode(when) for name, when in sorted(data.items())},
            }
            _write_atomically(self.path, json.dumps(document, indent=1).encode() + b"\n")


def _write_atomically(path: Path, content: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _path_of(url: str) -> str:
    if "://" not in url:
        return url
    parts = urlsplit(url)
    return unquote(parts.netloc + parts.path)


class SQLStore(Store):
    """One SQLAlchemy table, ``canvas_beat_last_run(name, last_run_at)``; created if missing.

    ``postgresql://`` URLs use psycopg 3, the driver canvas installs. Timestamps are stored as
    epoch seconds so every database compares them the same way.
    """

    TABLE = "canvas_beat_last_run"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        import sqlalchemy as sa  # heavy (~15 MB): only SQL schedule stores load it

        self._sa = sa
        metadata = sa.MetaData()
        self.table = sa.Table(
            self.TABLE,
            metadata,
            sa.Column("name", sa.String(255), primary_key=True),
            sa.Column("last_run_at", sa.Double, nullable=False),
        )
        self.engine = sa.create_engine(_sqlalchemy_url(url), pool_pre_ping=True)
        metadata.create_all(self.engine, checkfirst=True)

    def load(self) -> dict[str, datetime]:
        with self.engine.connect() as conn:
            rows = conn.execute(self._sa.select(self.table.c.name, self.table.c.last_run_at))
            return {name: datetime.fromtimestamp(stamp, UTC) for name, stamp in rows}

    def save(self, last_run: Mapping[str, datetime]) -> None:
        sa, table = self._sa, self.table
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    for name, when in last_run.items():
                        stamp = when.timestamp()
                        update = table.update().where(table.c.name == name)
                        if conn.execute(update.values(last_run_at=stamp)).rowcount == 0:
                            conn.execute(table.insert().values(name=name, last_run_at=stamp))
                return
            except sa.exc.IntegrityError:
                # Another beat inserted the same name first; the update will find it now.
                if attempt == 2:
                    raise

    def close(self) -> None:
        self.engine.dispose()


def _sqlalchemy_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg{sep}{rest}"
    return url


def resolve(url: str) -> type[Store]:
    """The store class for ``url``: the alias table, then entry points, then ``module:Class``."""
    if "://" in url:
        scheme = url.split("://", 1)[0]
    else:
        scheme = url if _DOTTED.fullmatch(url) else "file"
    try:
        found: Any = lookup(
            scheme,
            STORE_ALIASES,
            what="schedule store",
            shown=redact(url),
            group="canvas.stores",
            otherwise="; or give a file path",
        )
    except (ImportError, AttributeError) as exc:
        target = STORE_ALIASES.get(scheme, scheme)
        raise ImproperlyConfigured(f"Schedule store {target!r} for {redact(url)!r}: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, Store)):
        target = STORE_ALIASES.get(scheme, scheme)
        raise ImproperlyConfigured(f"Schedule store {target!r} is not a canvas.beat.stores.Store")
    return found


def create(url: str) -> Store:
    return resolve(url)(url)
