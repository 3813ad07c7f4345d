"""The parts of the HTML report that stages contribute: sections with inlined plots, and printed tables.

A stage's ``report()`` hook returns :class:`Section` objects built from what its run left behind; the
application puts them on one self-contained page. Plots are matplotlib PNGs inlined as base64, so the page
opens anywhere with no network.
"""

from __future__ import annotations

import base64
import io as stdio

import msgspec

COLORS = {"kept": "#2e7d32", "dropped": "#ef6c00", "quarantined": "#c62828"}


class Section(msgspec.Struct):
    title: str
    note: str
    images: list[str] = []  # base64 PNGs
    table: list[list[str]] = []  # a header row, then rows (cells are HTML)


class ResultTable(msgspec.Struct):
    """A table printed after a run (the command line renders it)."""

    title: str
    columns: list[str]
    rows: list[list[str]]


def figure(width: float = 8, height: float = 3.6, rows: int = 1, cols: int = 1):
    """A figure and its axes (an array of them for a grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=(width, height), dpi=100, squeeze=rows * cols == 1)


def png(fig) -> str:
    """The figure as a base64 PNG, closed afterwards."""
    import matplotlib.pyplot as plt

    buf = stdio.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()
