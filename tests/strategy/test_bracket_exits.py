"""A strategy's working stop loss and take profit are cancelled before an order changes the position they protect."""

from __future__ import annotations

from typing import Any

from tests.strategy.runner_fakes import KEY, D, FakeTrader, Harness, orders_published, run, targets
from trader.domain import Action, Contract, Order, OrderStatus


class BracketTrader(FakeTrader):
    """The fake trader service, with the stop loss / take profit children a bracket request gets."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def place_order(self, **request: Any) -> dict[str, Any]:
        self.calls.append(f"place {request['client_order_id']}")
        result = await super().place_order(**request)
        parent = result["order"]
        exit_action = Action.SELL if parent.action is Action.BUY else Action.BUY
        for tail in ("sl", "tp"):
            if f"{'stop_loss' if tail == 'sl' else 'take_profit'}_percent" in request:
                coid = f"{parent.client_order_id}.{tail}"
                self.book[coid] = Order(coid, Contract("AAPL"), exit_action, parent.quantity,
                                        order_ref=request["strategy"], status=OrderStatus.SUBMITTED)
        return result

    async def cancel_order(self, client_order_id: str) -> dict[str, Any]:
        self.calls.append(f"cancel {client_order_id}")
        self.book[client_order_id].status = OrderStatus.CANCELLED
        return await super().cancel_order(client_order_id)


def test_a_signal_that_closes_a_bracketed_position_cancels_its_stop_and_target_first() -> None:
    async def scenario() -> None:
        h = Harness(targets(1.0, 0.0, 1.0), sizing={"kind": "quantity", "value": 100}, stop_loss_percent=1,
                    take_profit_percent=2)
        h.trader = trader = BracketTrader()
        h.runner._call = trader
        trader.on_place = h.fill
        await h.start()
        for _ in range(3):
            await h.decide()
        opened, closed, again = (e["client_order_id"] for e in await orders_published(h, 3))
        # Left working, the stop (a SELL 100) would open a short once the signal's SELL has closed the long.
        assert trader.calls == [f"place {opened}", f"cancel {opened}.sl", f"cancel {opened}.tp", f"place {closed}",
                                f"place {again}"]
        assert trader.book[f"{again}.sl"].status is OrderStatus.SUBMITTED  # a new entry from flat: a new bracket
        assert h.runner.ledger.position(KEY) == D(100)
        await h.runner.end()

    run(scenario)
