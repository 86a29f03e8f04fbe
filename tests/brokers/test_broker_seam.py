"""The broker seam: IbAdapter (and the tests' in-memory broker) are Brokers, member by member and signature by
signature; the factory picks the one the settings name; IB's reports reach the streams as domain objects."""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any

import ib_async
import pytest

from tests.trading.broker_double import BrokerDouble
from trader.brokers.base import Broker
from trader.brokers.factory import BROKERS, create_broker
from trader.brokers.ib.adapter import IbAdapter
from trader.config import IbSettings, Settings, TradingSettings
from trader.domain import AccountValue, Contract, Position
from trader.errors import ConfigError

AAPL = ib_async.Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ")
FOP = ib_async.Contract(secType="FOP", conId=1, symbol="ES", currency="USD")


def protocol_members() -> dict[str, Any]:
    members = {name: value for name, value in vars(Broker).items()
               if not name.startswith("_") and (callable(value) or isinstance(value, property))}
    members.update({name: None for name in Broker.__annotations__})
    return members


def assert_is_a_broker(broker: object) -> None:
    assert isinstance(broker, Broker)
    members = protocol_members()
    assert {"place_orders", "cancel_all_orders", "open_orders", "completed_orders", "executions", "history",
            "contract_details", "quote", "order_updates", "fills", "connection", "what_if"} <= set(members)
    for name, wanted in members.items():
        assert hasattr(broker, name), name
        if wanted is None or isinstance(wanted, property):
            assert isinstance(getattr(type(broker), name, None), property) or name in vars(broker), name
            continue
        have = getattr(type(broker), name)
        assert inspect.iscoroutinefunction(have) == inspect.iscoroutinefunction(wanted), name
        params = [(p.name, p.kind, p.default) for p in inspect.signature(have).parameters.values()]
        assert params == [(p.name, p.kind, p.default) for p in inspect.signature(wanted).parameters.values()], name


def test_the_ib_adapter_is_a_broker() -> None:
    assert_is_a_broker(IbAdapter(IbSettings(), TradingSettings()))


def test_the_tests_broker_double_is_a_broker() -> None:
    assert_is_a_broker(BrokerDouble())


def test_the_factory_makes_the_broker_the_settings_name() -> None:
    assert set(BROKERS) == {"ib"}
    assert isinstance(create_broker(Settings()), IbAdapter)  # broker: ib, the default
    with pytest.raises(ConfigError, match="unknown broker 'alpaca' \\(one of ib\\)"):
        create_broker(Settings(broker="alpaca"))


def test_ib_reports_reach_the_streams_and_queries_as_domain_objects() -> None:
    adapter = IbAdapter(IbSettings(), TradingSettings())  # never connected: IB's reports are fed as the decoder would
    wrapper = adapter.ib.wrapper
    positions: list[Position] = []
    portfolio: list[Position] = []
    values: list[AccountValue] = []
    adapter.position_updates.subscribe(positions.append)
    adapter.portfolio_updates.subscribe(portfolio.append)
    adapter.account_updates.subscribe(values.append)
    wrapper.position("DU1", AAPL, 100.0, 150.0)
    wrapper.position("DU1", FOP, 1.0, 10.0)  # an instrument the domain does not model: not on the stream
    wrapper.updatePortfolio(AAPL, 100.0, 151.0, 15100.0, 150.0, 100.0, 5.5, "DU1")
    wrapper.updateAccountValue("NetLiquidation", "100000.00", "USD", "DU1")
    aapl = Contract("AAPL", primary_exchange="NASDAQ", conid=265598)
    assert positions == [Position("DU1", aapl, Decimal(100), Decimal(150))]
    assert adapter.positions() == positions  # the FOP is logged and left out
    assert portfolio == adapter.portfolio() == [Position("DU1", aapl, Decimal(100), Decimal(150),
                                                         market_price=Decimal(151), market_value=Decimal(15100),
                                                         unrealized_pnl=Decimal(100), realized_pnl=Decimal("5.5"))]
    assert values == adapter.account_values() == [AccountValue("DU1", "NetLiquidation", "100000.00", "USD")]


def test_the_gross_market_value_counts_the_holdings_the_domain_cannot_model(caplog: pytest.LogCaptureFixture) -> None:
    adapter = IbAdapter(IbSettings(), TradingSettings())  # never connected: IB's reports are fed as the decoder would
    wrapper = adapter.ib.wrapper
    wrapper.updatePortfolio(AAPL, 100.0, 151.0, 15100.0, 150.0, 100.0, 5.5, "DU1")
    wrapper.updatePortfolio(FOP, -2.0, 40.0, -4000.0, 45.0, 1000.0, 0.0, "DU1")  # a short option on a future
    with caplog.at_level("WARNING", logger="trader.brokers.ib.adapter"):
        for _ in range(5):  # the risk gate recomputes at every portfolio report
            assert [p.contract.symbol for p in adapter.portfolio()] == ["AAPL"]
            assert adapter.gross_market_value() == Decimal(19100)
    assert len([r for r in caplog.records if "portfolio item skipped" in r.getMessage()]) == 1, "once per conid"
