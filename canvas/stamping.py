"""Stamping (Celery 5.3's API): custom headers put on every task of a canvas by a visitor.

``sig.stamp(visitor=None, append_stamps=False, **stamps)`` walks a canvas: each task signature,
and each callback and errback linked to one, asks the visitor for stamps (``on_signature``,
``on_callback``, ``on_errback``; a chain, group or chord first asks ``on_chain_start``,
``on_group_start`` or ``on_chord_header_start``/``on_chord_body`` for stamps its tasks share).
A signature keeps its stamps as options, listed by name in the option ``stamped_headers``; a
message carries them as the headers ``stamps`` (name -> value) and ``stamped_headers``, and a
running task reads them in ``self.request.stamps``.

Precedence when one name is stamped twice: the keywords given to ``stamp()`` win over the
visitor's stamps, which win over what the signature had; with ``append_stamps=True`` the values
are collected in a list instead.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

#: the option that names a signature's stamps
STAMPED_HEADERS = "stamped_headers"


class StampingVisitor(ABC):
    """Decides the stamps of each part of a canvas; only ``on_signature`` is required."""

    def on_group_start(self, group: Any, **headers: Any) -> dict[str, Any]:
        """Stamps shared by every task of ``group``."""
        return {}

    def on_group_end(self, group: Any, **headers: Any) -> None:  # noqa: B027 - optional hook
        """Called once every task of ``group`` is stamped."""

    def on_chain_start(self, chain: Any, **headers: Any) -> dict[str, Any]:
        """Stamps shared by every task of ``chain``."""
        return {}

    def on_chain_end(self, chain: Any, **headers: Any) -> None:  # noqa: B027 - optional hook
        """Called once every task of ``chain`` is stamped."""

    @abstractmethod
    def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
        """The stamps of one task signature."""

    def on_chord_header_start(self, sig: Any, **headers: Any) -> dict[str, Any]:
        """Stamps shared by the header of chord ``sig`` (by default: its group's)."""
        return self.on_group_start(sig.header, **headers)

    def on_chord_header_end(self, sig: Any, **headers: Any) -> None:
        """Called once the header of chord ``sig`` is stamped."""
        self.on_group_end(sig.header, **headers)

    def on_chord_body(self, sig: Any, **headers: Any) -> dict[str, Any]:
        """Stamps for the body of chord ``sig``."""
        return {}

    def on_callback(self, callback: Any, **headers: Any) -> dict[str, Any]:
        """Stamps for a ``link`` callback."""
        return {}

    def on_errback(self, errback: Any, **headers: Any) -> dict[str, Any]:
        """Stamps for a ``link_error`` errback."""
        return {}


def combine(
    given: Mapping[str, Any],
    visitor: Mapping[str, Any] | None,
    existing: Mapping[str, Any],
    append: bool,
) -> dict[str, Any]:
    """The stamps of one signature: ``given`` over ``visitor`` over ``existing``, or all of
    their values in a list when ``append``; ``stamped_headers`` lists every name."""
    names = _names(given)
    merged = {name: given[name] for name in names}
    for source in (visitor or {}, existing):
        source_names = _names(source)
        for name in source_names:
            value = source[name]
            if name not in merged:
                merged[name] = value
            elif append:
                merged[name] = [*_as_list(merged[name]), *_as_list(value)]
        names += [n for n in source_names if n not in names]
    merged[STAMPED_HEADERS] = names
    return merged


def stamps_of(options: Mapping[str, Any]) -> dict[str, Any]:
    """A signature's (or node's) stamps, by name, from its options."""
    return {name: options.get(name) for name in options.get(STAMPED_HEADERS) or ()}


def revoke_keys(stamps: Mapping[str, Any] | None) -> list[str]:
    """The revoke entries naming ``stamps`` (one per value of a stamp that has several): a task
    stamped with any of them is refused as revoked (``revoke_by_stamped_headers``)."""
    keys = []
    for name, value in (stamps or {}).items():
        for one in value if isinstance(value, list | tuple) else [value]:
            keys.append(f"stamp:{name}={json.dumps(one, sort_keys=True, default=repr)}")
    return keys


def _names(stamps: Mapping[str, Any]) -> list[str]:
    listed: Iterable[str] = stamps.get(STAMPED_HEADERS) or [
        key for key in stamps if key != STAMPED_HEADERS
    ]
    return [name for name in dict.fromkeys(listed) if name in stamps]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


__all__ = ["STAMPED_HEADERS", "StampingVisitor", "combine", "revoke_keys", "stamps_of"]
