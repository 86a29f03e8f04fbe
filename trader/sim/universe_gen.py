"""Generated instruments: the hundreds of stocks, ETFs and FX pairs that make tws-sim's catalogue an exchange's size.

configs/sim.yaml's ``generated`` section asks for so many stocks per primary
exchange (NASDAQ, NYSE: stocks; ARCA: ETFs) and for the FX pairs of a list of
currencies on IDEALPRO. Names, prices and conids come from a seeded stream, so
every run of tws-sim lists the same instruments with the same conids (the
series' scheme, :func:`~trader.sim.series.contract_conid`). The hand-written
instruments stay as they are: a generated symbol never equals one, never
starts with the first two letters of one and never contains one (so a search
for ``AAP`` or ``MS`` still finds AAPL and MSFT first), and a generated conid
never collides with another.

A generated instrument is *not* quoted until someone asks about it (see
:class:`~trader.sim.market.MarketGenerator`): a catalogue of a thousand costs
the tick loop only what is watched.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field, field_validator

from trader.config import StrictModel
from trader.domain import SecType
from trader.sim.series import contract_conid

__all__ = ["GeneratedConfig", "StockRule", "generate"]

_NAMES = (
    "ACORN", "BEACON", "CEDAR", "DELTA", "EMBER", "FALCON", "GRANITE", "HARBOR", "IRONWOOD", "JUNIPER",
    "KESTREL", "LANTERN", "MERIDIAN", "NORTHWIND", "ORCHID", "PINNACLE", "QUARRY", "RIVERSIDE", "SUMMIT",
    "TIMBER", "UPLAND", "VERTEX", "WILLOW", "YARROW", "ZENITH", "BLUE RIDGE", "COPPER", "SILVER LAKE",
    "EVERGREEN", "HIGHLAND", "PRAIRIE", "COASTAL", "ATLAS", "CASCADE", "HORIZON", "LIBERTY", "PIONEER",
)
_TRADES = (
    "SYSTEMS", "HOLDINGS", "ENERGY", "BIOSCIENCES", "FOODS", "LOGISTICS", "SEMICONDUCTOR", "SOFTWARE",
    "FINANCIAL", "INDUSTRIES", "RETAIL", "THERAPEUTICS", "NETWORKS", "MATERIALS", "UTILITIES", "MEDIA",
)
_FORMS = ("INC", "CORP", "GROUP", "CO", "LTD", "PLC")
_THEMES = (
    "TOTAL MARKET", "DIVIDEND", "SMALL CAP", "MID CAP", "GROWTH", "VALUE", "TREASURY", "CORPORATE BOND",
    "EMERGING MARKETS", "TECHNOLOGY", "HEALTH CARE", "REAL ESTATE", "MOMENTUM", "LOW VOLATILITY", "GOLD MINERS",
)
_ISSUERS = ("ACORN", "BEACON", "CEDAR", "HARBOR", "MERIDIAN", "SUMMIT", "VERTEX", "ZENITH")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: The quote currency's price of one unit of each currency (USD per unit), for the pairs' starting prices.
_USD_VALUE = {
    "USD": 1.0, "EUR": 1.054, "GBP": 1.268, "JPY": 0.00648, "AUD": 0.651, "CAD": 0.716, "CHF": 1.128,
    "NZD": 0.592, "SEK": 0.0952, "NOK": 0.0921, "DKK": 0.1413, "HKD": 0.1285, "SGD": 0.742, "MXN": 0.0496,
    "ZAR": 0.0551, "CNH": 0.1378, "PLN": 0.2441, "CZK": 0.0419, "HUF": 0.00256, "TRY": 0.0289,
}


_MAJORS = frozenset({"USD", "EUR", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD"})


class StockRule(StrictModel):
    """So many generated stocks (or ETFs) with a primary listing on one exchange."""

    exchange: str = Field(description="the primary exchange (NASDAQ, NYSE, ARCA)")
    count: int = Field(ge=0, le=5000)
    letters: int = Field(4, ge=2, le=5, description="how long the tickers are")
    etf: bool = Field(False, description="exchange-traded funds rather than companies (their names and moves)")


class GeneratedConfig(StrictModel):
    """configs/sim.yaml's ``generated`` section: what to add to the hand-written catalogue."""

    seed: int = 17
    stocks: list[StockRule] = Field(default_factory=list)
    fx: list[str] = Field(default_factory=list, description="currencies: their pairs on IDEALPRO (one side a major)")

    @field_validator("fx")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c.upper() not in _USD_VALUE]
        if unknown:
            raise ValueError(f"no starting rate for {unknown}; known: {', '.join(sorted(_USD_VALUE))}")
        return [c.upper() for c in value]


def generate(config: GeneratedConfig, existing: Iterable[tuple[int, str, str, str]]) -> list[dict[str, object]]:
    """Return the generated instruments' entries (InstrumentConfig's fields), the same on every run.

    ``existing`` are the hand-written and series instruments as (conid,
    symbol, sec type, currency): none is repeated, shadowed or collided with.
    """
    taken = list(existing)
    conids = {conid for conid, *_ in taken}
    symbols = {symbol.upper() for _, symbol, *_ in taken}
    pairs = {(symbol.upper(), currency.upper()) for _, symbol, kind, currency in taken if kind == "CASH"}
    stock_symbols = {s for _, s, kind, _ in taken if kind in ("STK", "IND", "FUT", "OPT")}
    prefixes = {s[:2] for s in stock_symbols}
    out: list[dict[str, object]] = []
    for rule in config.stocks:
        rng = random.Random(f"tws-sim-universe:{config.seed}:{rule.exchange}")
        made = 0
        while made < rule.count:
            symbol = "".join(rng.choice(_LETTERS) for _ in range(rule.letters))
            if (symbol in symbols or symbol[:2] in prefixes or symbol in _USD_VALUE
                    or any(s in symbol for s in stock_symbols if len(s) >= 3)):
                continue
            conid = contract_conid(symbol, "STK", rule.exchange)
            if conid in conids:
                continue
            symbols.add(symbol)
            conids.add(conid)
            out.append(_stock(rng, symbol, conid, rule))
            made += 1
    out.extend(_fx_pairs(config.fx, pairs, conids))
    return out


def _stock(rng: random.Random, symbol: str, conid: int, rule: StockRule) -> dict[str, object]:
    if rule.etf:
        name = f"{rng.choice(_ISSUERS)} {rng.choice(_THEMES)} ETF"
        price, volatility = rng.uniform(20, 400), rng.uniform(0.08, 0.30)
    else:
        name = f"{rng.choice(_NAMES)} {rng.choice(_TRADES)} {rng.choice(_FORMS)}"
        price, volatility = rng.uniform(2, 600), rng.uniform(0.15, 0.80)
    return {
        "conid": conid, "symbol": symbol, "sec_type": SecType.STK, "primary_exchange": rule.exchange,
        "long_name": name, "price": Decimal(f"{price:.2f}"), "volatility": round(volatility, 2),
        "quote_size": rng.choice((100, 200, 300, 500)), "trade_size": 100, "time_zone": "US/Eastern",
    }


def _fx_pairs(currencies: list[str], taken: set[tuple[str, str]], conids: set[int]) -> list[dict[str, object]]:
    """Return the pairs of ``currencies`` (one side a major) not configured already, quoted the usual way round."""
    order = {c: i for i, c in enumerate(("EUR", "GBP", "AUD", "NZD", "USD", "CAD", "CHF"))}
    out: list[dict[str, object]] = []
    for i, one in enumerate(currencies):
        for other in currencies[i + 1:]:
            if one not in _MAJORS and other not in _MAJORS:
                continue  # IDEALPRO quotes a minor against the majors, not against another minor (no SEK.NOK)
            base, quote = sorted((one, other), key=lambda c: (order.get(c, len(order)), c))
            if (base, quote) in taken or (quote, base) in taken:
                continue
            conid = contract_conid(base, "CASH", quote)
            if conid in conids:
                continue
            conids.add(conid)
            rate = _USD_VALUE[base] / _USD_VALUE[quote]
            tick = Decimal("0.005") if rate > 20 else Decimal("0.00005")
            out.append({
                "conid": conid, "symbol": base, "sec_type": SecType.CASH, "exchange": "IDEALPRO", "currency": quote,
                "local_symbol": f"{base}.{quote}", "trading_class": f"{base}.{quote}",
                "long_name": f"{base} against {quote}", "tick_size": tick,
                "price": Decimal(rate).quantize(tick), "volatility": 0.09, "quote_size": 3000000,
                "trade_size": 100000, "min_size": Decimal(1),
            })
    return out
