"""Money tables: holdings with their money figures (``portfolio``, ``strategy list``) and the account's values.

One table of the money figures (docs/ARCHITECTURE.md, "Money figures")
serves the broker's portfolio and the strategies' holdings, with the same
columns, names and formats; :func:`position_figures` is a portfolio row as
``portfolio --json`` gives it, with the names a strategy's holdings use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from rich.table import Table
from rich.text import Text

from trader.cli.formats import money, num, price
from trader.cli.layout import Col, FitTable
from trader.domain import Position
from trader.domain.figures import MONEY_DECIMALS, Figures, price_decimals

#: The money figures' columns (docs/ARCHITECTURE.md, "Money figures") after the owner and the symbol: header,
#: the attribute of ``Figures`` each shows, and its priority (trader.cli.layout: 0 always shown, the highest
#: number left out first: value and commissions are derived or informational, realized goes last).
FIGURE_COLUMNS = (("qty", "quantity", 0), ("avg cost", "avg_cost", 0), ("price", "market_price", 0),
                  ("value", "market_value", 7), ("unrealized", "unrealized", 0), ("realized", "realized", 3),
                  ("net pnl", "net", 0), ("comm", "commission", 6))
_PRICES = frozenset({"avg_cost", "market_price"})


def figures_table(rows: Iterable[tuple[str, str, Figures, int]], owner: str, *, commissions: bool) -> FitTable:
    """Return holdings as (owner, symbol, figures, price decimals) rows, with the money totals in the footer.

    The one table of the money figures: ``portfolio`` (owner: the account)
    and ``strategy list`` (owner: the strategy) show the same columns, the
    same way. Prices and average costs go to the instrument's precision,
    money to cents. ``commissions`` adds the commissions column (a broker's
    portfolio does not give them per position). Narrow, value, then
    commissions, then the owner if all rows have the same, then realized are
    left out rather than every cell cut short.
    """
    rows = list(rows)
    figures = [spec for spec in FIGURE_COLUMNS if commissions or spec[1] != "commission"]

    def cell(f: Figures, name: str, decimals: int) -> Text | str:
        value = getattr(f, name)
        if name == "quantity":
            return num(value)
        if name in _PRICES:
            return price(value, decimals) if f.quantity or name == "market_price" else "-"
        return money(value)

    def total(name: str) -> Text | str:
        if not rows or name in _PRICES or name == "quantity":
            return ""
        amounts = [getattr(f, name) for _, _, f, _ in rows]
        return money(None if None in amounts else sum(amounts, Decimal(0)))

    single = len({who for who, *_ in rows}) <= 1
    columns = [Col(owner, 4 if single else 1), Col("symbol")]
    columns += [Col(header, priority, justify="right", footer=total(name)) for header, name, priority in figures]
    cells = [[who, symbol, *(cell(f, name, decimals) for _, name, _ in figures)] for who, symbol, f, decimals in rows]
    return FitTable(columns, cells, show_footer=bool(rows), label="total" if rows else "")


def positions_table(positions: list[Position], *, market: bool) -> FitTable:
    """Return a table of positions; with ``market``, the money figures (prices, values, PnL) with totals."""
    if market:
        return figures_table(((p.account, p.contract.key, Figures.of_position(p), price_decimals(p.contract))
                              for p in positions), "account", commissions=False)
    columns = [Col("account", 4), Col("symbol"), Col("qty", justify="right"), Col("avg cost", justify="right")]
    rows = [[p.account, p.contract.key, num(p.quantity), price(p.avg_cost, price_decimals(p.contract))]
            for p in positions]
    return FitTable(columns, rows)



def account_numbers(values: Mapping[str, Mapping[str, str]], tags: Iterable[str]) -> dict[str, dict[str, Decimal | str]]:
    """Return the account's values for ``tags`` by tag and currency: a Decimal where IB's text is a number, else the text."""
    # Imported here: the parsing package imports ib_async (a quarter second), which no other command needs.
    from trader.brokers.ib.parsing.values import decimal_from_text
    
    numbers: dict[str, dict[str, Decimal | str]] = {}
    for tag in tags:
        numbers[tag] = {}
        for currency, text in values.get(tag, {}).items():
            value = decimal_from_text(text)
            numbers[tag][currency] = text if value is None else value
    return numbers


def account_table(account: str | None, numbers: Mapping[str, Mapping[str, Decimal | str]]) -> Table:
    """Return the account's values (:func:`account_numbers`), one row per tag and currency."""
    table = Table(title=f"account {account or '?'}", title_justify="left")
    table.add_column("value")
    table.add_column("amount", justify="right")
    table.add_column("currency")
    for tag, amounts in numbers.items():
        for currency, value in sorted(amounts.items()):
            table.add_row(tag, money(value) if isinstance(value, Decimal) else value, currency or "-")
    return table


def strategy_holdings_table(strategies: Iterable[Mapping[str, Any]]) -> FitTable | None:
    """Return the strategies' holdings with their money figures (as ``portfolio`` shows them), or None if none."""
    rows = []
    for info in strategies:
        for key, h in (info.get("holdings") or {}).items():
            rows.append((info["name"], key, Figures.from_dict(h), int(h.get("price_decimals", MONEY_DECIMALS))))
    return figures_table(rows, "strategy", commissions=True) if rows else None


def position_figures(position: Position) -> dict[str, Any]:
    """Return a broker position as ``portfolio --json`` gives it: account, key, contract and its money figures.

    The figures carry the names of a strategy's holdings (``strategy list
    --json``): quantity, avg_cost, market_price, market_value, realized_pnl,
    commission (null: a broker's portfolio does not give it per position),
    unrealized_pnl, net_pnl, and price_decimals.
    """
    return {"account": position.account, "key": position.contract.key, "contract": position.contract,
            **Figures.of_position(position).to_dict(), "price_decimals": price_decimals(position.contract)}
