"""tws-sim's grown catalogue: hundreds of seeded instruments per exchange, the same on every run, the old ones intact.

configs/sim.yaml's ``generated`` rules add stocks on NASDAQ and NYSE, ETFs on
ARCA and FX pairs on IDEALPRO; its futures series cover CME, CBOT, NYMEX and
COMEX. The hand-written instruments and the series keep their conids (other
tests and saved state name them), no generated symbol shadows one in a search,
and a generated instrument costs the market's tick loop nothing until asked about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

from trader.sim.catalogue import Catalogue, load_sim_config
from trader.sim.config import SimConfig
from trader.sim.market import MarketGenerator
from trader.sim.universe_gen import GeneratedConfig

DAY = date(2026, 12, 7)
T0 = datetime(2026, 12, 7, 15, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
# The hand-written instruments' conids before the catalogue grew: IB's own, fixed.
KNOWN = {"AAPL": 265598, "MSFT": 272093, "NVDA": 4815747, "AMZN": 3691937, "TSLA": 76792991, "IBM": 8314,
         "SPY": 756733, "QQQ": 320227571, "IWM": 9579970, "BRK B": 72063691, "SPX": 416904, "NDX": 416843,
         "VIX": 13455763, "EUR.USD": 12087792, "GBP.USD": 12087797, "USD.JPY": 15016059, "AUD.USD": 14433401}

LISTING = """
import json, sys
from datetime import date
from trader.sim.catalogue import Catalogue, load_sim_config
cat = Catalogue.from_config(load_sim_config(), date(2026, 12, 7))
print(json.dumps(sorted([i.conid, i.contract.local_symbol, i.long_name, str(i.price)] for i in cat)))
"""


def without_generated(config: SimConfig) -> SimConfig:
    return config.model_copy(update={"generated": GeneratedConfig()})


def by_exchange(catalogue: Catalogue) -> Counter[str]:
    return Counter(i.contract.primary_exchange or i.contract.exchange for i in catalogue)


def test_hundreds_of_instruments_on_each_kind_of_exchange() -> None:
    catalogue = Catalogue.from_config(load_sim_config(), DAY)
    counts = by_exchange(catalogue)
    assert len(catalogue) >= 900, counts
    for exchange in ("NASDAQ", "NYSE", "ARCA"):
        assert counts[exchange] >= 150, counts
    assert counts["IDEALPRO"] >= 100, counts
    for exchange in ("CME", "CBOT", "NYMEX", "COMEX"):
        roots = {i.contract.symbol for i in catalogue if i.contract.exchange == exchange}
        assert counts[exchange] >= 9 and len(roots) >= 3, (exchange, counts[exchange], roots)
    symbols = Counter((i.contract.symbol, str(i.contract.sec_type)) for i in catalogue
                      if str(i.contract.sec_type) == "STK")
    assert max(symbols.values()) == 1  # a stock symbol names one stock: resolve stays unambiguous


def test_the_same_catalogue_on_every_run() -> None:
    runs = []
    for seed in ("1", "2"):  # two processes, two hash seeds: nothing depends on set order or the run
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-c", LISTING], env=env, cwd=REPO, capture_output=True, text=True,
                             check=True, timeout=120)
        runs.append(json.loads(out.stdout))
    assert runs[0] == runs[1] and len(runs[0]) >= 900


def test_the_hand_written_instruments_and_series_are_unchanged() -> None:
    config = load_sim_config()
    grown = {i.conid: i for i in Catalogue.from_config(config, DAY)}
    before = Catalogue.from_config(without_generated(config), DAY)
    for inst in before:  # every old instrument, with its conid, exactly as it was (and not generated)
        assert grown[inst.conid] == inst
    assert {i.contract.local_symbol or i.contract.symbol: i.conid for i in before
            if str(i.contract.sec_type) != "OPT" and (i.contract.local_symbol or i.contract.symbol) in KNOWN} == KNOWN
    made = [i for i in grown.values() if i.generated]
    assert len(made) == len(grown) - len(before) >= 700


def test_no_generated_symbol_shadows_a_hand_written_one_in_a_search() -> None:
    catalogue = Catalogue.from_config(load_sim_config(), DAY)
    assert [i.contract.symbol for i in catalogue.search("AAP")] == ["AAPL"]
    assert catalogue.search("MS")[0].conid == 272093
    assert catalogue.search("SPY")[0].conid == 756733
    generated = [i for i in catalogue if i.generated and str(i.contract.sec_type) == "STK"]
    one = generated[0]
    assert catalogue.search(one.contract.symbol)[0] is one  # and each generated one is found by its symbol


def test_a_generated_instrument_is_quoted_only_once_asked_about() -> None:
    config = load_sim_config()
    catalogue = Catalogue.from_config(config, DAY)
    base = Catalogue.from_config(without_generated(config), DAY)
    market = MarketGenerator(catalogue, 7, 20.0, T0)
    assert len(market.states()) == len(base)  # nothing generated walks yet
    one = next(i for i in catalogue if i.generated)
    state = market.state(one.conid)  # a client asked: it starts at its configured price
    assert state.last == one.price and len(market.states()) == len(base) + 1
    moved = {s.instrument.conid for n in range(50) for s in market.step(datetime.fromtimestamp(T0.timestamp() + n / 20, UTC))}
    assert one.conid in moved and len(moved) <= len(base) + 1
