"""Order requests without I/O: parsing the place_order arguments, and the orders built from them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from trader.domain import Action, Contract, OrderType, TimeInForce
from trader.errors import ValidationError
from trader.trading.requests import build_orders, parse_request, round_to_tick

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


def test_prices_are_rounded_to_the_tick_a_limit_toward_the_caller() -> None:
    def entry(**fields: Any) -> Any:
        return build_orders(request(**fields), ES, tick=Decimal("0.25"), min_size=Decimal(1),
                            reference_price=None).entry

    # A limit never pays more, or takes less, than asked: a buy's goes down, a sell's up.
    assert entry(limit_price=5925.13).limit_price == Decimal("5925.00")
    assert entry(limit_price=5925.24).limit_price == Decimal("5925.00")
    assert entry(action="SELL", limit_price=5925.01).limit_price == Decimal("5925.25")
    assert entry(limit_price=5925.25).limit_price == Decimal("5925.25")  # on the grid already
    assert entry(stop_price=5925.13).stop_price == Decimal("5925.25")  # a stop: the nearest tick
    built = build_orders(request(limit_price=100.02, take_profit=110.017, stop_loss=95.013), AAPL,
                         tick=Decimal("0.01"), min_size=Decimal(1), reference_price=None)
    assert [o.limit_price or o.stop_price for o in built.all] == [Decimal("100.02"), Decimal("95.01"),
                                                                  Decimal("110.02")]  # the take profit sells: up
    assert round_to_tick(Decimal("187.125"), Decimal("0.01")) == Decimal("187.12")  # ties to even
    with pytest.raises(ValidationError, match="below one tick"):
        round_to_tick(Decimal("0.001"), Decimal("0.01"))


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
