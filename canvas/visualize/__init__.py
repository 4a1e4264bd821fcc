"""Pictures of workflows: DOT and SVG/PNG/PDF through Graphviz, and text trees for terminals.

    from canvas.visualize import render, to_dot, to_text
    render(chain_or_chord, "nightly.svg")              # a plan: compiled here, nothing is sent
    print(to_dot(app.workflow(result.id)))             # a run: coloured by state
    print(to_text(app.workflow(result.id)))            # the same as a tree, one line per node

Every function takes a signature/chain/group/chord (compiled on the spot), a compiled
``canvas.Workflow``, or ``app.workflow(id)`` (read from the result store when drawn). ``to_dot``
and ``to_text`` need no Graphviz program; ``render`` to SVG, PNG or PDF runs ``dot``.
"""

from __future__ import annotations

from canvas.visualize import live
from canvas.visualize.dot import (
    DIRECTIONS,
    FORMATS,
    STATE_COLORS,
    SUFFIXES,
    draw,
    format_for,
    render,
    to_dot,
)
from canvas.visualize.picture import COLLAPSE_OVER, Drawable, Picture, layout
from canvas.visualize.text import to_text

__all__ = [
    # writers
    "draw",
    "render",
    "to_dot",
    "to_text",
    # formats and options
    "COLLAPSE_OVER",
    "DIRECTIONS",
    "FORMATS",
    "STATE_COLORS",
    "SUFFIXES",
    "format_for",
    # the model the writers walk
    "Drawable",
    "Picture",
    "layout",
    # runs read from the result store
    "live",
]
