"""Tables that fit the terminal: columns with a priority, dropped least important first, ids abbreviated.

A :class:`FitTable` is laid out when rich renders it, for the width it is
given (a terminal of 80 columns, a test's ``Console(width=60)``, a ``Live``
display). Each :class:`Col` has a priority: 0 is essential and always shown
whole (for an order: time, symbol, side, quantity, type, price, status);
among the others the highest number goes first, and those up to ``VALUED``
only once a compact style (no vertical rules) did not make room. A column
that may be abbreviated (an order id) is cut in its middle down to
``min_width`` before it would be dropped. What is left when only essentials remain is rich's
ordinary squeezing, which folds the widest cells rather than hiding a column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

ELLIPSIS = "…"
WRAP_FLOOR = 16  # the least width a wrappable column is folded to (a reason in lines of a few words)
ESSENTIAL = 0
VALUED = 5  # a column of priority 1-5 is worth a compact style: the table goes compact before it goes
# The styles tried in turn once no optional column is left: rich's boxed table; no vertical rules or
# edges, two cells between columns; then one cell. Each with the width it adds to its n columns'
# own, as (per column, once): tests/cli/test_tables.py checks them against rich's measurement.
STYLES: tuple[dict[str, Any], ...] = (
    {},
    {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "collapse_padding": True},
    {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "padding": 0},
)
FRAME = ((3, 1), (2, -2), (1, -1))


@dataclass(frozen=True)
class Col:
    """A column: its header, how important it is (0: essential), alignment and the abbreviation floor."""

    name: str
    priority: int = ESSENTIAL
    justify: str = "left"
    min_width: int | None = None  # set: cells may be abbreviated in the middle down to this width
    wrap: bool = False
    footer: RenderableType = ""


def abbreviate(text: str, width: int) -> str:
    """Return ``text`` cut in its middle to ``width`` cells (``3f9a…be01``); unchanged if it fits.

    A leading indent (a bracket leg's, under its parent) goes first.
    """
    if len(text) <= width:
        return text
    text = text.lstrip()
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + ELLIPSIS + text[len(text) - tail :]


def _plain(cell: RenderableType) -> str:
    return cell.plain if isinstance(cell, Text) else cell if isinstance(cell, str) else ""


def _cell_width(cell: RenderableType) -> int:
    return max((cell_len(line) for line in _plain(cell).splitlines()), default=0)


class FitTable:
    """A rich renderable: a table whose columns are chosen for the width it is rendered at."""

    def __init__(self, columns: Sequence[Col], rows: Sequence[Sequence[RenderableType]], *,
                 label: str = "", **table: Any) -> None:
        self.columns = list(columns)
        self.rows = [list(row) for row in rows]
        self.label = label  # the footer line's name ("total"), in the first column shown
        self.table = table  # Table's own arguments: title, show_footer, show_header...
        self._naturals: list[int] | None = None

    def fitted(self, width: int) -> Table:
        """Return the table laid out for ``width`` cells: the least important columns left out first.

        Columns of priority above ``VALUED`` go first, in rich's boxed style;
        then the table drops its vertical rules and edges (two cells between
        columns instead of three, then one); then the valued columns go, an
        abbreviable one cut in its middle before it goes; past that, rich
        wraps the wrappable cells (a time, a price) at their spaces.
        """
        shown = list(range(len(self.columns)))
        cut: dict[int, int] = {}
        style = 0
        while self.width(shown, cut, style) > width:
            optional = [i for i in shown if self.columns[i].priority != ESSENTIAL]
            lavish = [i for i in optional if self.columns[i].priority > VALUED]
            if not lavish and style < len(STYLES) - 1:
                style += 1
                continue
            if not optional:
                break
            victim = max(lavish or optional, key=lambda i: (self.columns[i].priority, i))
            floor = self.columns[victim].min_width
            if floor is not None and victim not in cut and self._natural(victim) > floor:
                cut[victim] = floor
                if self.width(shown, cut, style) <= width:
                    break
            shown.remove(victim)
            cut.pop(victim, None)
        return self._build(shown, cut, style)

    def width(self, shown: list[int], cut: dict[int, int], style: int) -> int:
        """Return the cells the table takes with columns ``shown``, ``cut`` ones abbreviated, in ``style``."""
        if not shown:
            return 0
        widths = [max(cut.get(i, self._least(i)), cell_len(self.columns[i].name)) for i in shown]
        widths[0] = max(widths[0], cell_len(self.label))
        per_column, once = FRAME[style]
        return sum(widths) + per_column * len(widths) + once

    def _least(self, index: int) -> int:
        """Return the cells column ``index`` needs: its widest cell, or a wrappable one's longest word.

        A wrappable column (a reason, a list of instruments) folds at its
        spaces, so the table keeps it, folded, rather than leaving it out;
        rich gives it the room that is left.
        """
        if not self.columns[index].wrap:
            return self._natural(index)
        words = [word for row in self.rows for word in _plain(row[index]).split()]
        return min(self._natural(index), max([WRAP_FLOOR, *(cell_len(w) for w in words)]))

    def _natural(self, index: int) -> int:
        if self._naturals is None:
            self._naturals = [
                max([cell_len(c.name), _cell_width(c.footer), *(_cell_width(r[i]) for r in self.rows)])
                for i, c in enumerate(self.columns)
            ]
        return self._naturals[index]

    def _build(self, shown: list[int], cut: dict[int, int], style: int = 0) -> Table:
        table = Table(title_justify="default", **STYLES[style], **self.table)
        for n, i in enumerate(shown):
            column = self.columns[i]
            footer = column.footer or (self.label if n == 0 else "")
            table.add_column(column.name, justify=column.justify, no_wrap=not column.wrap,  # type: ignore[arg-type]
                             footer=footer)
        for row in self.rows:
            table.add_row(*(self._cell(row[i], cut.get(i)) for i in shown))
        return table

    @staticmethod
    def _cell(cell: RenderableType, width: int | None) -> RenderableType:
        if width is None or not isinstance(cell, (str, Text)):
            return cell
        if isinstance(cell, Text):
            short = abbreviate(cell.plain, width)
            return cell if short == cell.plain else Text(short, style=cell.style)
        return abbreviate(cell, width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Render the table laid out for the width rich offers."""
        yield self.fitted(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        """Measure the table as laid out for the width rich offers."""
        return Measurement.get(console, options, self.fitted(options.max_width))
