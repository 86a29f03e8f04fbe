"""IB parsing: every conversion between ib_async's types and the domain objects, pure and tested without I/O.

No I/O and no clock except ``now`` for a ticker that carries no time. Every
conversion the IB adapter makes is in this package: IB's spellings and floats
(:mod:`.values`), contracts and their details, positions and account values
(:mod:`.contracts`), orders with the ``orderRef`` that carries our client
order id, IB's reports of them and fills (:mod:`.orders`), tickers and bars
(:mod:`.market`). Callers use the names below: ``parsing.to_ib_order(...)``.
"""

from trader.brokers.ib.parsing.contracts import (
    from_ib_account_value,
    from_ib_contract,
    from_ib_contract_details,
    from_ib_portfolio_item,
    from_ib_position,
    gross_market_value,
    to_ib_contract,
    to_ib_query,
    tradable_ib_contract,
)
from trader.brokers.ib.parsing.market import (
    from_ib_bar,
    from_ib_bars_frame,
    ticker_quote,
    ticker_to_tick,
)
from trader.brokers.ib.parsing.orders import (
    broker_ref,
    client_order_id_of,
    from_ib_fill,
    from_ib_order,
    from_ib_order_state,
    order_report,
    order_update,
    parse_broker_ref,
    to_ib_order,
)
from trader.brokers.ib.parsing.values import decimal_from_float, order_status

__all__ = [
    "broker_ref",
    "client_order_id_of",
    "decimal_from_float",
    "from_ib_account_value",
    "from_ib_bar",
    "from_ib_bars_frame",
    "from_ib_contract",
    "from_ib_contract_details",
    "from_ib_fill",
    "from_ib_order",
    "from_ib_order_state",
    "from_ib_portfolio_item",
    "from_ib_position",
    "gross_market_value",
    "order_report",
    "order_status",
    "order_update",
    "parse_broker_ref",
    "ticker_quote",
    "ticker_to_tick",
    "to_ib_contract",
    "to_ib_order",
    "to_ib_query",
    "tradable_ib_contract",
]
