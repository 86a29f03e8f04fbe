"""The CLI does each thing one way: one error report, one JSON path, one figure per name, one declaration per option."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from pycron import runfiles
from tests.conftest import StackEnv
from trader.brokers.ib.parsing.values import decimal_from_text
from trader.cli import exits, kill_switch, money_tables, order_tables
from trader.cli.context import CliContext
from trader.cli.jobs import running_client
from trader.cli.main import TraderGroup, add_json_option, cli
from trader.cli.repl import Repl
from trader.domain import Action, Contract, Fill, Order, OrderStatus, Position, SecType
from trader.domain.figures import Figures
from trader.errors import Unavailable, ValidationError
from trader.strategy.ledger import Ledger

D = Decimal
AAPL = Contract("AAPL")
ES = Contract("ES", SecType.FUT, exchange="CME", expiry=date(2026, 12, 18), multiplier=D(50))
CLI_DIR = Path(__file__).resolve().parents[2] / "trader" / "cli"
OFF_TICK = ValidationError("limit 229.123 is off AAPL's tick grid (0.01)", nearest=[D("229.12"), D("229.13")])


def _group() -> click.Group:
    @click.group(cls=TraderGroup)
    def group() -> None:
        pass

    add_json_option(group)

    @group.command()
    def off_tick() -> None:
        raise OFF_TICK

    return group


def _error(stderr: str) -> dict[str, object]:
    return json.loads(stderr, parse_float=Decimal)["error"]


def test_a_json_error_carries_its_details_as_the_wire_does() -> None:
    result = CliRunner().invoke(_group(), ["off-tick", "--json"], obj=CliContext())
    assert result.exit_code == 3 and result.stderr.count("\n") == 1
    assert _error(result.stderr) == OFF_TICK.to_wire() == {
        "type": "ValidationError", "code": "invalid", "message": OFF_TICK.message,
        "details": {"nearest": [D("229.12"), D("229.13")]}}
    assert "details" not in _error(CliRunner().invoke(cli, ["--json", "nosuch"]).stderr)  # none: none shown


def test_the_repl_reports_an_error_as_trader_does_json_included(capsys: pytest.CaptureFixture[str]) -> None:
    shell = Repl(_group(), Console(file=io.StringIO()), global_args=["--json"])
    shell.run(["off-tick", "bogus"])
    first, second = capsys.readouterr().err.splitlines()
    assert _error(first) == OFF_TICK.to_wire()
    assert _error(second)["code"] == "usage" and shell.last_exit == 2
    assert exits.report(KeyboardInterrupt(), True) == 130 and exits.report(click.Abort(), False) == 1
    assert _error(capsys.readouterr().err.splitlines()[0]) == {
        "type": "Interrupted", "code": "interrupted", "message": "interrupted"}


def test_show_prints_json_or_the_table_or_what_stands_for_none(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    people = CliContext(console=Console(file=out, width=80))
    people.show([], lambda rows: "a table", "nothing here")
    people.show([1], lambda rows: f"{len(rows)} row")
    assert out.getvalue() == "nothing here\n1 row\n"
    CliContext(json=True).show({"price": D("229.12")}, lambda data: "never")
    assert capsys.readouterr().out == '{\n  "price": 229.12\n}\n'


def test_prices_in_the_order_tables_go_to_the_instruments_precision() -> None:
    order = Order("a1", AAPL, "BUY", D(91), "LMT", limit_price=D("231.31"), status=OrderStatus.FILLED,
                  filled_quantity=D(91), avg_fill_price=D("231.30021978021978"), created_at=datetime.now(UTC))
    fill = Fill("e1", "a1", AAPL, Action.BUY, D(91), D("231.3002197"), datetime.now(UTC), commission=D(1))
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(order_tables.orders_table([order]))
    console.print(order_tables.fills_table([fill]))
    text = console.export_text()
    assert "231.30021978021978" not in text and "231.3002197" not in text
    assert text.count("231.30") == 2 and "231.31" in text


def test_portfolio_json_has_the_figures_of_a_strategys_holdings_under_the_same_names() -> None:
    position = Position("DU123", ES, D(1), D("5921.045"), market_price=D("5918.75"), market_value=D("295937.5"),
                        unrealized_pnl=D("-114.75"))  # realized_pnl unset, as IB leaves it
    row = money_tables.position_figures(position)
    ledger = Ledger()
    ledger.apply("ES.FUT.202612", Fill("e1", "demo.1", ES, Action.BUY, D(1), D(5921), datetime.now(UTC),
                                       commission=D("2.25")))
    summary = ledger.summary()
    holding = summary["holdings"]["ES.FUT.202612"]
    assert set(holding) <= set(row) and {"account", "key"} <= set(row)
    assert (row["realized_pnl"], row["net_pnl"], row["commission"]) == (D(0), D("-114.75"), None)
    assert "net_pnl" in summary and "pnl" not in summary  # one name for net PnL, at the top as in each holding
    assert Figures.from_dict(holding) == ledger.figures("ES.FUT.202612")


def test_ibs_numeric_text_is_read_one_way() -> None:
    assert decimal_from_text(" 1234.56 ") == D("1234.56")
    for text in ("", "DU1234567", "nan", "inf", "1.7976931348623157E308", None):
        assert decimal_from_text(text) is None, text
    numbers = money_tables.account_numbers({"NetLiquidation": {"USD": "1000.50"}, "AccountType": {"": "INDIVIDUAL"}},
                                           ["NetLiquidation", "AccountType"])
    assert numbers == {"NetLiquidation": {"USD": D("1000.50")}, "AccountType": {"": "INDIVIDUAL"}}


def _options(command: click.Command, path: str = "trader") -> list[tuple[str, click.Option]]:
    found = [(path, p) for p in command.params if isinstance(p, click.Option)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _options(sub, f"{path} {name}")
    return found


@pytest.mark.parametrize("flag", ["--account", "--yes", "--round"])
def test_a_shared_option_means_the_same_on_every_command(flag: str) -> None:
    helps = {(p.help, p.is_flag, tuple(p.opts)) for _, p in _options(cli) if flag in p.opts}
    assert len(helps) == 1, helps


def test_the_cli_modules_stay_under_400_lines() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in CLI_DIR.glob("*.py")}
    assert {name for name, lines in sizes.items() if lines >= 400} == set(), sizes


def test_the_kill_switch_counts_its_orders_with_their_noun() -> None:
    one = kill_switch.cancel_lines({}, {"cancelled": 1, "orders": [{"client_order_id": "a1"}]})
    assert one[0] == "cancelled 1 of the platform's 1 open order"


def test_job_names_reads_the_token_once_through_running_client(stack_env: StackEnv) -> None:
    settings = CliContext().settings()
    with pytest.raises(Unavailable):
        running_client(settings, timeout=0.5)
    runfiles.token_path(settings).parent.mkdir(parents=True, exist_ok=True)
    runfiles.token_path(settings).write_text("t0ken")
    runfiles.token_path(settings).chmod(0o600)
    with running_client(settings, timeout=0.5) as client:
        assert client.timeout == 0.5
