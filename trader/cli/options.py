"""The options the commands share: exact numbers, moments, a symbol's hints, an order's options, --round, --account, --yes.

A command declares an option here once, with one help text, and every
command that takes it uses the same declaration: ``--account`` means the
same on ``trade``, ``close``, ``portfolio`` and ``account``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click

HINTS = ("sec_type", "exchange", "currency", "expiry", "strike", "right")


class DecimalType(click.ParamType):
    """A command-line number read as an exact Decimal (``0.1`` stays ``0.1``)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return ``value`` as a finite Decimal, or fail as a usage error."""
        try:
            result = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not a number", param, ctx)
        if not result.is_finite():
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return result


DECIMAL = DecimalType()


class Moment(click.ParamType):
    """A date or a time, ISO 8601 (``2026-03-02``, ``2026-03-02T14:30``); UTC unless it names its zone.

    Read by :func:`trader.data.frames.utc`, as the store reads times: every history
    command accepts the same text and refuses the rest as a usage error (exit 2).
    """

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return ``value`` as an aware UTC datetime, or fail as a usage error."""
        if isinstance(value, datetime):
            return value
        from trader.data.frames import utc  # pandas: imported when a command takes a moment only

        try:
            return utc(str(value).strip()).to_pydatetime()
        except (ValueError, TypeError, OverflowError):
            self.fail(f"{value!r} is not a date or time (2026-03-02, 2026-03-02T14:30, 2026-03-02T09:30-05:00)",
                      param, ctx)


MOMENT = Moment()


def _options(specs: list[tuple[str, ...]], **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """Return a decorator adding one option per ``(flags..., help)`` spec, with ``kwargs`` each."""

    def decorate(fn: Callable[..., Any]) -> Any:
        for *flags, help_text in reversed(specs):
            fn = click.option(*flags, help=help_text, **kwargs)(fn)
        return fn

    return decorate


#: The account an order or a close goes to, or whose holdings or values are shown.
ACCOUNT_OPTION = click.option(
    "--account", default=None,
    help="The account, when the login manages several (default: the settings' ib.account; for a listing: every one).")
#: No confirmation on a live account.
YES_OPTION = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a live account.")
ROUND_OPTION = click.option(
    "--round", "round_prices", is_flag=True,
    help="Put a price off the tick grid on the cautious tick: a limit toward the passive side (buy down, "
         "sell up), a stop away from the market (buy up, sell down) (default: refuse it, naming both).")

_hint_texts = _options(
    [
        ("--sec-type", "STK, FUT, OPT, CASH, IND or CMDTY."),
        ("--exchange", "Exchange (SMART, CME, IDEALPRO...)."),
        ("--currency", "Currency of the contract."),
        ("--expiry", ("Expiry of an option (YYYYMMDD, or YYYYMM: any day of that month) or a "
                      "future's contract month (YYYYMM).")),
    ]
)
_RIGHT = click.Choice(["C", "P", "CALL", "PUT"], case_sensitive=False)


def hint_options(fn: Callable[..., Any]) -> Any:
    """Add the options that narrow a symbol: sec type, exchange, currency, expiry; an option's strike, right."""
    fn = click.option("--right", type=_RIGHT, help="Option right: C (call) or P (put); makes SYMBOL an option.")(fn)
    fn = click.option("--strike", type=DECIMAL, help="Option strike; makes SYMBOL an option.")(fn)
    return _hint_texts(fn)


def hints(options: dict[str, Any]) -> dict[str, Any]:
    """Return the symbol hints among ``options`` that were given (a right as ``C`` or ``P``)."""
    given = {k: options[k] for k in HINTS if options.get(k) is not None and options.get(k) != ""}
    if "right" in given:
        given["right"] = given["right"].upper()[:1]
    return given


_size_and_prices = _options(
    [
        ("--quantity", "-q", "Units (shares, contracts) to trade."),
        ("--amount", "Cash to trade instead of a quantity."),
        ("--limit", "limit_price", "Limit price (LMT; with --stop: STP_LMT)."),
        ("--stop", "stop_price", "Stop price (STP; with a trail: its trigger)."),
        ("--trail-amount", "Trailing stop distance in price (TRAIL)."),
        ("--trail-percent", "Trailing stop distance in percent (TRAIL)."),
        ("--stop-loss", "Bracket: stop-loss price."),
        ("--stop-loss-percent", "Bracket: stop loss this many percent away."),
        ("--take-profit", "Bracket: take-profit price."),
        ("--take-profit-percent", "Bracket: take profit this many percent away."),
    ],
    type=DECIMAL,
)


def order_options(fn: Callable[..., Any]) -> Any:
    """Add the options of an order: size, prices, bracket, time in force, id, strategy, account, hints."""
    tif = click.Choice(["DAY", "GTC", "IOC", "FOK"], case_sensitive=False)
    for option in (
        YES_OPTION,
        click.option("--what-if", is_flag=True,
                     help="Ask the broker what the order would cost (commission, margin) and the risk gate "
                          "whether it passes; nothing is sent."),
        ROUND_OPTION,
        hint_options,
        click.option("--strategy", default="manual", show_default=True, help="Who places it."),
        ACCOUNT_OPTION,
        click.option("--id", "client_order_id", help="Client order id (default: a new one)."),
        click.option("--outside-rth", is_flag=True, help="May fill outside regular hours."),
        click.option("--tif", type=tif, default="DAY", show_default=True, help="Time in force."),
        _size_and_prices,
    ):
        fn = option(fn)
    return fn
