"""The universe bootstrap against an in-process tws-sim through the real IbAdapter: its pace, prefixes and filters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tests.sim.simulator import running_sim, sim_config
from trader.brokers.ib.adapter import IbAdapter
from trader.config import IbSettings, TradingSettings
from trader.data.universe_bootstrap import ALPHABET, Bootstrap, BootstrapProgress
from trader.sim.catalogue import Catalogue
from trader.sim.config import SimConfig
from trader.sim.universe_gen import GeneratedConfig, StockRule


def on_sim(config: SimConfig, test: Callable[[IbAdapter, Catalogue], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running_sim(config) as sim:
            adapter = IbAdapter(IbSettings(port=sim.port, client_id=12), TradingSettings(ib_max_requests=0))
            adapter.start()
            try:
                assert await adapter.wait_connected(10)
                await test(adapter, Catalogue.from_config(config, datetime.now(UTC).date()))
            finally:
                await adapter.stop()

    asyncio.run(main())


def small(count: int) -> SimConfig:
    """The repository's catalogue with only ``count`` generated NYSE stocks (and no generated pairs)."""
    return sim_config().model_copy(update={"generated": GeneratedConfig(stocks=[StockRule(exchange="NYSE",
                                                                                         count=count, letters=3)])})


def test_the_searches_keep_their_pace() -> None:
    async def scenario(adapter: IbAdapter, catalogue: Catalogue) -> None:
        seen: list[BootstrapProgress] = []
        run = Bootstrap(adapter, ["NYSE"], pace=0.05, on_progress=lambda p: seen.append(p))
        started = time.monotonic()
        members = await run.run()
        elapsed = time.monotonic() - started
        assert run.progress.searched == len(ALPHABET)  # no answer full: no deeper prefix
        assert elapsed >= (len(ALPHABET) - 1) * 0.05
        nyse = {i.contract.key for i in catalogue if i.contract.primary_exchange == "NYSE"}
        assert {m.key for m in members} == nyse and len(nyse) == 12  # IBM, BRK B and the 10 generated
        assert seen and seen[-1].members == len(members)

    on_sim(small(10), scenario)


def test_a_full_answer_is_searched_deeper_and_only_the_types_asked_are_kept() -> None:
    async def scenario(adapter: IbAdapter, catalogue: Catalogue) -> None:
        run = Bootstrap(adapter, ["NYSE", "CME"], sec_types=["FUT"], pace=0)
        members = await run.run()
        assert run.progress.searched > len(ALPHABET)  # 400 three-letter symbols fill some first letters
        now = datetime.now(UTC)
        futures = {i.contract.key for i in catalogue if i.contract.exchange == "CME" and not i.expired(now)}
        assert {m.key for m in members} == futures and all(m.sec_type == "FUT" for m in members)
        stocks = await Bootstrap(adapter, ["NYSE"], pace=0).run()
        nyse = {i.contract.key for i in catalogue if i.contract.primary_exchange == "NYSE"}
        assert {m.key for m in stocks} == nyse and len(nyse) == 402

    on_sim(small(400), scenario)
