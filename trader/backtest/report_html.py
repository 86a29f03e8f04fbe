"""The HTML page of a research report: sections of charts, tables and notes, one self-contained file.

Every report (tear sheet, sweep, walk-forward) is a :class:`Page` of
:class:`Block` s rendered by :func:`render` and written by :func:`write_atomic`.
Plotly's JavaScript is inlined once, in the page's head, and every chart is a
``<div>`` drawn by it: the file opens offline, from a mail attachment or a
laptop on a train, with no CDN. The chart divs carry no script of their own
beyond plotly's ``newPlot`` call, so the page's only script source is inline.

The file is written to a temporary sibling and renamed over the target
(``os.replace``, atomic on one filesystem): a reader sees the old report or
the new one, never half of one, and a failure leaves the old one in place.
"""

from __future__ import annotations

import html
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["Block", "Page", "format_value", "render", "table_html", "write_atomic"]

log = logging.getLogger(__name__)

# Plotly's own config for every chart: no logo link, no "edit in chart studio" (a network call).
_CONFIG = {"displaylogo": False, "responsive": True, "showLink": False, "showSendToCloud": False}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2433;
       background: #f6f7f9; }
header { background: #1d2433; color: #f6f7f9; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; font-weight: 600; }
header .sub { color: #b8c0cc; font-size: 13px; }
main { padding: 8px 32px 32px 32px; max-width: 1400px; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 6px; margin: 16px 0;
          padding: 12px 16px; }
section h2 { font-size: 16px; margin: 0 0 8px 0; font-weight: 600; }
p.note { color: #6a737d; font-style: italic; margin: 4px 0; }
table.grid { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
table.grid th, table.grid td { padding: 3px 10px; border-bottom: 1px solid #eaecef; text-align: left; }
table.grid th { background: #f0f2f5; font-weight: 600; }
table.grid .n { text-align: right; }
table.kv td { padding: 2px 14px 2px 0; font-size: 13px; vertical-align: top; }
table.kv td:first-child { color: #6a737d; }
.cols { column-width: 360px; column-gap: 32px; }
footer { color: #6a737d; font-size: 12px; padding: 0 32px 24px 32px; }
"""


@dataclass(frozen=True, slots=True)
class Block:
    """One section of a page: a chart, a table (HTML made by :func:`table_html`) or a note, or several."""

    title: str
    figure: go.Figure | None = None
    table: str | None = None
    note: str | None = None
    columns: bool = False  # flow a long table into newspaper columns


@dataclass(slots=True)
class Page:
    """A whole report: its title, the header's key/value lines and the sections in order."""

    title: str
    subtitle: str
    header: dict[str, str]
    blocks: list[Block] = field(default_factory=list)

    @property
    def charts(self) -> int:
        """Return how many charts the page draws."""
        return sum(block.figure is not None for block in self.blocks)


def format_value(value: Any) -> str:
    """Return ``value`` as table text: numbers to 4 significant digits (thousands grouped), NaN as "n/a"."""
    if value is None:
        return "n/a"
    if value is pd.NaT:
        return "open"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:,f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, pd.Timestamp | datetime):
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dict):
        return ", ".join(f"{key}={format_value(item)}" for key, item in value.items())
    if hasattr(value, "item"):  # numpy scalars
        return format_value(value.item())
    return str(value)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | Decimal | np.number) and not isinstance(value, bool | np.bool_)


def table_html(frame: pd.DataFrame, *, index: bool = False, numeric: tuple[str, ...] = ()) -> str:
    """Return ``frame`` as an escaped HTML table, each cell through :func:`format_value`, numbers right-aligned.

    A column is right-aligned when all its values are numbers, or when it is
    named in ``numeric`` (numbers already made text).
    """
    shown = frame.reset_index() if index else frame
    align = [' class="n"' if name in numeric or (len(shown) > 0 and all(_numeric(value) for value in shown[name]))
             else "" for name in shown.columns]
    head = "".join(f"<th{cls}>{html.escape(str(name))}</th>" for name, cls in zip(shown.columns, align, strict=True))
    rows = []
    for values in shown.itertuples(index=False, name=None):
        cells = "".join(f"<td{cls}>{html.escape(format_value(value))}</td>"
                        for value, cls in zip(values, align, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _header_html(header: dict[str, str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>"
                   for key, value in header.items())
    return f'<table class="kv">{rows}</table>'


def _figure_html(figure: go.Figure, number: int) -> str:
    import plotly.io as pio

    return pio.to_html(figure, full_html=False, include_plotlyjs=False, include_mathjax=False,
                       config=_CONFIG, div_id=f"chart-{number}", validate=False)


def _block_html(block: Block, number: int) -> str:
    parts = [f"<h2>{html.escape(block.title)}</h2>"]
    if block.note:
        parts.append(f'<p class="note">{html.escape(block.note)}</p>')
    if block.figure is not None:
        parts.append(_figure_html(block.figure, number))
    if block.table is not None:
        parts.append(f'<div class="cols">{block.table}</div>' if block.columns else block.table)
    return f"<section>{''.join(parts)}</section>"


def render(page: Page) -> str:
    """Return the page as one self-contained HTML document, plotly.js inlined once in its head."""
    from plotly.offline import get_plotlyjs

    sections = []
    charts = 0
    for block in page.blocks:
        sections.append(_block_html(block, charts))
        charts += block.figure is not None
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(page.title)}</title>",
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f'<header><h1>{html.escape(page.title)}</h1><div class="sub">{html.escape(page.subtitle)}</div></header>',
        "<main>",
        f"<section>{_header_html(page.header)}</section>",
        *sections,
        "</main>",
        f"<footer>Generated {html.escape(generated)} by trader.backtest.report; {charts} charts.</footer>",
        "</body></html>",
    ])


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling and ``os.replace``; return ``path``.

    The parent directory is created if missing. On any failure the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False) as handle:
            temporary = Path(handle.name)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(0o644)  # a report is for reading: not mkstemp's owner-only mode
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise
    log.info("wrote report %s (%d bytes)", path, len(text))
    return path
