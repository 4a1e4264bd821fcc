"""Choosing an implementation by URL scheme: one lookup for transports, stores and beat stores.

The order is the alias table, then (where a group is named) installed entry points, then a
dotted ``module:Class`` given as the scheme itself. An unknown scheme is an error that names the
closest known one.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from canvas.exceptions import ImproperlyConfigured


def lookup(
    scheme: str,
    aliases: Mapping[str, str],
    *,
    what: str,
    shown: str,
    group: str | None = None,
    otherwise: str = "",
) -> Any:
    """The object ``scheme`` names; ``what`` and ``shown`` word the error ("broker", the URL)."""
    target = aliases.get(scheme)
    installed = {}
    if target is None and group is not None:
        installed = {point.name: point for point in entry_points(group=group)}
        if scheme in installed:
            return installed[scheme].load()
    if target is None and ":" in scheme:
        target = scheme
    if target is None:
        names = sorted({*aliases, *installed})
        close = difflib.get_close_matches(scheme, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(names)
        raise ImproperlyConfigured(
            f"Unknown {what} scheme {scheme!r} in {shown!r}.{hint} Known schemes: {known}"
            f"{otherwise}."
        )
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
