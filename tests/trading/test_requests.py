"""Order requests without I/O: parsing the place_order arguments, and the orders built from them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from trader.domain import Action, Contract, OrderType, TimeInForce
from trader.errors import ValidationError
from trader.strategy import StrategyConfig
from trader.strategy.sizing import order_for
from trader.trading.requests import Rounded, build_orders, parse_request, round_to_tick

AAPL = Contract("AAPL", conid=265598)
ES = Contract("ES", "FUT", exchange="CME", expiry="20261218", multiplier=Decimal(50), local_symbol="ESZ6",
              conid=637533641)


def request(**fields: Any) -> Any:
    return parse_request({"symbol": "AAPL", "action": "BUY", "quantity": 10, **fields})


def test_floats_become_exact_decimals_through_their_shortest_text() -> None:
    parsed = request(limit_price=0.1, stop_price=168.55, quantity=0.3)
    assert (parsed.limit_price, parsed.stop_price, parsed.quantity) == (
        Decimal("0.1"), Decimal("168.55"), Decimal("0.3"))


def test_spellings_of_sides_types_and_tifs_are_accepted() -> None:
    parsed = request(action="sell", order_type="stp lmt", limit_price=1, stop_price=2, tif="gtc")
    assert (parsed.action, parsed.order_type, parsed.tif) == (Action.SELL, OrderType.STP_LMT, TimeInForce.GTC)


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ({}, OrderType.MKT),
        ({"limit_price": 1}, OrderType.LMT),
        ({"stop_price": 1}, OrderType.STP),
        ({"limit_price": 1, "stop_price": 2}, OrderType.STP_LMT),
        ({"trail_percent": 1}, OrderType.TRAIL),
        ({"trail_amount": 1, "stop_price": 2}, OrderType.TRAIL),
    ],
)
def test_without_an_order_type_the_prices_imply_it(prices: dict[str, Any], expected: OrderType) -> None:
    assert request(**prices).order_type is expected


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"quantity": -5}, "quantity: Input should be greater than 0"),
        ({"quantity": 0}, "quantity: Input should be greater than 0"),
        ({"quantity": float("nan")}, "quantity: Input should be a finite number"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"action": "HOLD"}, "action: Input should be"),
        ({"amount": 100}, "exactly one of quantity and amount"),
        ({"quantity": None}, "exactly one of quantity and amount"),
        ({"stop_loss": 1, "stop_loss_percent": 1}, "stop_loss or stop_loss_percent"),
        ({"trail_percent": 100}, "trail_percent: Input should be less than 100"),
        ({"client_order_id": "has space"}, "client_order_id: String should match pattern"),
        ({"symbol": ""}, "symbol: String should have at least 1 character"),
    ],
)
def test_bad_requests_name_the_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match="invalid order") as info:
        request(**fields)
    assert named in str(info.value)


def es_orders(**fields: Any) -> Any:
    return build_orders(request(symbol="ES", **fields), ES, tick=Decimal("0.25"), min_size=Decimal(1),
                        reference_price=Decimal(5925))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"limit_price": "6000.1"}, "limit price 6000.1 is not a multiple of ES.FUT.202612's tick 0.25: use 6000.00 or 6000.25"),
        ({"stop_price": "5925.13"}, "stop price 5925.13 is not a multiple of ES.FUT.202612's tick 0.25: use 5925.00 or 5925.25"),
        ({"trail_amount": "1.1"}, "trail amount 1.1 is not a multiple of ES.FUT.202612's tick 0.25: use 1.00 or 1.25"),
        ({"stop_loss": "5900.1"}, "stop loss 5900.1 is not a multiple of ES.FUT.202612's tick 0.25: use 5900.00 or 5900.25"),
        ({"take_profit": "5950.3"}, "take profit 5950.3 is not a multiple of ES.FUT.202612's tick 0.25: use 5950.25 or 5950.50"),
        ({"limit_price": "0.1"}, "limit price 0.1 is not a multiple of ES.FUT.202612's tick 0.25: use 0.25,"),
    ],
)
def test_a_typed_price_off_the_tick_grid_is_refused_with_the_nearest_valid_prices(
        fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        es_orders(**fields)
    assert str(info.value).startswith(message) and "--round" in str(info.value)
    assert info.value.details["field"] == message.split(" ")[0] + "_" + message.split(" ")[1]


def test_an_off_tick_aapl_limit_names_both_neighbours() -> None:
    with pytest.raises(ValidationError, match=r"229.123 is not a multiple of AAPL.STK's tick 0.01: use 229.12 or 229.13"):
        build_orders(request(limit_price="229.123"), AAPL, tick=Decimal("0.01"), min_size=Decimal(1),
                     reference_price=None)


def test_prices_on_the_grid_go_as_typed_and_round_prices_takes_the_cautious_tick_and_says_so() -> None:
    built = es_orders(limit_price="5925.25", stop_loss="5900", take_profit="5950.5")
    assert [o.limit_price or o.stop_price for o in built.all] == [Decimal("5925.25"), Decimal(5900),
                                                                  Decimal("5950.5")]
    assert built.rounded == ()
    built = es_orders(client_order_id="r1", limit_price="6000.1", round_prices=True)
    assert built.entry.limit_price == Decimal("6000.00")
    assert built.rounded == (Rounded("r1", "limit_price", Decimal("6000.1"), Decimal("6000.00"), "down to tick 0.25"),)
    # a limit goes to the passive side, never the nearest: a buy never pays more than asked, a sell never takes less
    assert es_orders(limit_price="6000.2", round_prices=True).entry.limit_price == Decimal("6000.00")
    assert es_orders(action="SELL", limit_price="6000.1", round_prices=True).entry.limit_price == Decimal("6000.25")
    # a stop goes away from the market: a buy stop up, a sell stop down (it never triggers before the price asked)
    assert es_orders(stop_price="6000.1", round_prices=True).entry.stop_price == Decimal("6000.25")
    assert es_orders(action="SELL", stop_price="6000.2", round_prices=True).entry.stop_price == Decimal("6000.00")
    assert es_orders(trail_amount="2.1", round_prices=True).entry.trail_amount == Decimal("2.25")  # never closer
    # a buy's bracket: its stop-loss is a sell stop (down), its take-profit a sell limit (up)
    bracket = es_orders(limit_price="5925", stop_loss="5900.1", take_profit="5950.1", round_prices=True)
    assert [c.stop_price or c.limit_price for c in bracket.children] == [Decimal("5900.00"), Decimal("5950.25")]
    assert round_to_tick(Decimal("187.125"), Decimal("0.01")) == Decimal("187.12")  # ties to even
    with pytest.raises(ValidationError, match="below one tick"):
        round_to_tick(Decimal("0.001"), Decimal("0.01"))


def test_percent_bracket_prices_are_always_rounded_to_the_cautious_tick_and_reported() -> None:
    built = es_orders(client_order_id="p1", limit_price="5925", stop_loss_percent="0.3", take_profit_percent="0.5")
    sl, tp = built.children
    # 5925 x 0.997 = 5907.225 -> a sell stop goes down: 5907.00; 5925 x 1.005 = 5954.625 -> a sell limit up: 5954.75
    assert (sl.stop_price, tp.limit_price) == (Decimal("5907.00"), Decimal("5954.75"))
    assert [(r.client_order_id, r.field, r.asked, r.sent) for r in built.rounded] == [
        ("p1.sl", "stop_price", Decimal("5907.225"), Decimal("5907.00")),
        ("p1.tp", "limit_price", Decimal("5954.625"), Decimal("5954.75"))]
    assert built.rounded[0].how == "0.3% below 5925.00, down to tick 0.25"


def test_a_percent_bracket_price_already_on_the_grid_is_not_reported_as_rounded() -> None:
    # 5925 x 0.99 = 5865.75 and 5925 x 1.02 = 6043.50: both on the 0.25 grid, nothing was rounded
    built = es_orders(client_order_id="p2", limit_price="5925", stop_loss_percent="1", take_profit_percent="2")
    assert [c.stop_price or c.limit_price for c in built.children] == [Decimal("5865.75"), Decimal("6043.50")]
    assert built.rounded == ()


@pytest.mark.parametrize("fields", [{"limit_price": "1E+30"}, {"limit_price": "5E+26", "take_profit": "2E+27"}])
def test_a_price_beyond_the_decimal_context_is_a_validation_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        build_orders(request(action="SELL", **fields), AAPL, tick=Decimal("0.01"), min_size=Decimal(1),
                     reference_price=None)


def test_a_cash_amount_buys_whole_units_at_the_reference_price() -> None:
    amount = parse_request({"symbol": "ES", "action": "BUY", "amount": 700_000})
    built = build_orders(amount, ES, tick=Decimal("0.25"), min_size=Decimal(1), reference_price=Decimal(5925))
    assert built.entry.quantity == 2  # 700,000 / (5,925 x 50) = 2.36
    with pytest.raises(ValidationError, match="buys less than 1"):
        build_orders(parse_request({"symbol": "ES", "action": "BUY", "amount": 1000}), ES, tick=Decimal("0.25"),
                     min_size=Decimal(1), reference_price=Decimal(5925))
    with pytest.raises(ValidationError, match="no price to convert"):
        build_orders(amount, ES, tick=Decimal("0.25"), min_size=Decimal(1), reference_price=None)
    with pytest.raises(ValidationError, match="not a multiple"):
        build_orders(request(quantity=150), AAPL, tick=Decimal("0.01"), min_size=Decimal(100), reference_price=None)


def test_a_bracket_is_two_exits_in_one_oca_group_on_the_right_sides() -> None:
    parsed = request(client_order_id="b-1", stop_loss_percent=1, take_profit=200, strategy="momentum")
    assert parsed.has_bracket and not request().has_bracket
    built = build_orders(parsed, AAPL, tick=Decimal("0.01"), min_size=Decimal(1), reference_price=Decimal(190))
    sl, tp = built.children
    assert built.all == (built.entry, sl, tp)
    assert (sl.client_order_id, sl.action, sl.order_type, sl.stop_price) == (
        "b-1.sl", Action.SELL, OrderType.STP, Decimal("188.10"))
    assert (tp.client_order_id, tp.action, tp.order_type, tp.limit_price) == (
        "b-1.tp", Action.SELL, OrderType.LMT, Decimal("200.00"))
    assert sl.oca_group == tp.oca_group == "oca-b-1" and sl.parent_id == tp.parent_id == "b-1"
    assert sl.tif == tp.tif == TimeInForce.GTC and sl.order_ref == tp.order_ref == "momentum"
    with pytest.raises(ValidationError, match="not on the losing side"):
        build_orders(request(stop_loss=195), AAPL, tick=Decimal("0.01"), min_size=Decimal(1),
                     reference_price=Decimal(190))
    with pytest.raises(ValidationError, match="not on the winning side"):
        build_orders(request(action="SELL", take_profit=195), AAPL, tick=Decimal("0.01"), min_size=Decimal(1),
                     reference_price=Decimal(190))


def test_a_strategys_bracket_percentages_are_rounded_onto_the_grid_never_refused() -> None:
    # A strategy's order carries its config's stop-loss and take-profit percentages, never a typed price:
    # the prices they give are put on the tick grid here, explicitly, and reported.
    config = StrategyConfig.model_validate({"stop_loss_percent": "0.3", "take_profit_percent": "0.5"})
    trade = order_for(config, "momentum", "ES", current=Decimal(0), target=Decimal(2), coid="momentum.es.1")
    assert trade is not None
    built = build_orders(parse_request(trade.request), ES, tick=Decimal("0.25"), min_size=Decimal(1),
                         reference_price=Decimal("5925.25"))
    assert [o.stop_price or o.limit_price for o in built.children] == [Decimal("5907.25"), Decimal("5955.00")]
    assert all(p % Decimal("0.25") == 0 for p in (built.children[0].stop_price, built.children[1].limit_price))
    assert [r.client_order_id for r in built.rounded] == ["momentum.es.1.sl", "momentum.es.1.tp"]


def test_the_hints_are_declared_typed_on_the_methods_that_take_them() -> None:
    import inspect

    from services.trader_service import TraderService
    from trader.messaging.methods import MethodRegistry
    from trader.trading.requests import HINTS

    registry = MethodRegistry()
    for name in ("snapshot", "snapshots", "subscribe"):
        method = getattr(TraderService, name)
        assert set(HINTS) <= set(inspect.signature(method).parameters), name
        registry.register(name, method)
    registry.check("snapshot", None, "AAPL", expiry="20261218", strike=Decimal(230), right="C")
    for bad in ({"expiry": 20261218}, {"sec_type": 5}, {"right": 1}, {"strike": "x"}):
        with pytest.raises(ValidationError, match=f"bad argument '{next(iter(bad))}'"):
            registry.check("snapshot", None, "AAPL", **bad)
    with pytest.raises(ValidationError, match="unexpected keyword argument 'bogus'"):
        registry.check("subscribe", None, "AAPL", bogus="x")
    assert parse_request({"symbol": "AAPL", "action": "BUY", "quantity": 1, "strike": "230", "right": "C",
                          "expiry": "20261218"}).hints() == {
        "sec_type": None, "exchange": None, "currency": None, "expiry": "20261218", "strike": Decimal(230),
        "right": "C"}
