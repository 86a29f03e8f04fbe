"""``trader close``'s report of what it did: a position left without its stops is said loudly, a flat one plainly."""

from __future__ import annotations

import io
from decimal import Decimal

from rich.console import Console

from trader.cli.close import _plan_line, _show
from trader.cli.context import CliContext


def test_a_position_whose_stops_were_cancelled_and_not_closed_is_called_unprotected() -> None:
    out, err = io.StringIO(), io.StringIO()
    cli = CliContext(console=Console(file=out, width=80), err=Console(file=err, width=80))
    _show(cli, {"cancelled": [], "orders": [], "flat": [{"key": "MSFT.STK", "filled_while_cancelling": Decimal(-3)}],
                "errors": [{"key": "AAPL.STK", "error": {"type": "Unavailable", "code": "unavailable",
                                                         "message": "AAPL.STK: connection lost"}}],
                "unprotected": [{"key": "AAPL.STK", "cancelled": ["e.sl", "e.tp"]}]}, "account DU1")
    said = " ".join(err.getvalue().split())
    assert "WARNING: AAPL.STK is still open and its stop/take-profit orders (e.sl, e.tp) were cancelled: it is " \
           "UNPROTECTED" in said
    assert "MSFT.STK: flat once its working orders were answered (they filled -3): nothing sent" in \
           " ".join(out.getvalue().split())


def test_the_plan_line_says_why_a_strategys_close_is_capped() -> None:
    line = _plan_line({"key": "AAPL.STK", "held": Decimal(100), "action": "SELL", "quantity": Decimal(40),
                       "cancel": [], "note": "capped at the account's 40: more would open a position the other way"})
    assert line == ("AAPL.STK: held 100, SELL 40 MKT (capped at the account's 40: more would open a position the "
                    "other way)")
