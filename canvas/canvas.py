"""Celery's ``celery.canvas`` import path: ``from canvas.canvas import chain, group, ...``.

The names live in ``canvas.signature``, ``canvas.primitives`` and ``canvas.stamping``; this module
gathers them where a Celery project imports them from. ``_chain`` and ``_chord`` are Celery's
class names (``isinstance(x, _chain)`` is true of every chain here).
"""

from __future__ import annotations

from canvas.maps import chunks, xmap, xstarmap
from canvas.primitives import chain, chord, group
from canvas.signature import Signature, maybe_signature, signature, subtask
from canvas.stamping import StampingVisitor

_chain = chain
_chord = chord
maybe_subtask = maybe_signature

__all__ = [
    "Signature",
    "StampingVisitor",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "maybe_subtask",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
