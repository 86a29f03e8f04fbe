"""Holdings and the account: ``portfolio`` (with the money figures), ``positions`` and ``account``.

``portfolio`` shows the broker's positions with the money figures of
docs/ARCHITECTURE.md ("Money figures"), under the names and formats
``strategy list`` uses for a strategy's holdings, in its table and in JSON.
"""

from __future__ import annotations

import click

from trader.cli import money_tables
from trader.cli.context import CliContext, pass_cli
from trader.cli.options import ACCOUNT_OPTION

ACCOUNT_TAGS = (
    "NetLiquidation TotalCashValue UnrealizedPnL RealizedPnL GrossPositionValue BuyingPower"
)


def register(group: click.Group) -> None:
    """Add ``portfolio``, ``positions`` and ``account`` to the ``trader`` group."""
    for command in (portfolio, positions, account):
        group.add_command(command)


@click.command()
@ACCOUNT_OPTION
@pass_cli
def portfolio(cli: CliContext, account: str | None) -> None:
    """Show the positions with market value, unrealized and realized PnL, and the totals.

    \b
    Examples:
      trader portfolio
      trader portfolio --account DU7654321 --json
    JSON:
      [Holding]  (account, key, contract and the money figures under the
        names `strategy list` gives a strategy's holdings: quantity,
        avg_cost, market_price, market_value, realized_pnl, commission,
        unrealized_pnl, net_pnl, price_decimals)
    Exits: 4 an account the login does not manage, 7 trader_service not running
    """
    items = cli.call_trader("portfolio", account=account)
    if cli.json:
        cli.emit_json([money_tables.position_figures(p) for p in items])
        return
    cli.show(items, lambda rows: money_tables.positions_table(rows, market=True), "no positions")


@click.command()
@ACCOUNT_OPTION
@pass_cli
def positions(cli: CliContext, account: str | None) -> None:
    """Show the broker's positions: quantity and average cost.

    \b
    Examples:
      trader positions
      trader positions --account DU7654321 --json
    JSON:
      [Position]  (market_price, market_value and the PnL are null)
    Exits: 4 an account the login does not manage, 7 trader_service not running
    """
    items = cli.call_trader("positions", account=account)
    cli.show(items, lambda rows: money_tables.positions_table(rows, market=False), "no positions")


@click.command()
@click.option("--all", "all_tags", is_flag=True, help="Every value the broker reports.")
@ACCOUNT_OPTION
@pass_cli
def account(cli: CliContext, all_tags: bool, account: str | None) -> None:
    """Show the account's key values: net liquidation, cash, PnL, buying power.

    With one account managed, that one; with several, --account names one
    (default: the one the settings' ib.account names). An account the login
    does not manage is not_found (exit 4).

    \b
    Examples:
      trader account
      trader account --all --account DU7654321 --json
    JSON:
      {"account": string, "accounts": [string], "values": {tag: {currency:
        number | string}}}  (a number where the value is one)
    Exits: 3 several accounts and none named, 4 an account the login does not
      manage, 7 trader_service not running
    """
    result = cli.call_trader("account", account=account)
    values = result["values"]
    tags = sorted(values) if all_tags else [t for t in ACCOUNT_TAGS.split() if t in values]
    numbers = money_tables.account_numbers(values, tags)
    cli.show({"account": result["account"], "accounts": result.get("accounts", []), "values": numbers},
             lambda r: money_tables.account_table(r["account"], r["values"]))

