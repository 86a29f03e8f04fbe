"""A store replay's reqCurrentTime is the moment replayed, as IB's server clock was on that day, not the server's."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ib_async import IB

from tests.sim.conftest import ManualClock
from tests.sim.simulator import connect, running_sim, sim_config
from tests.sim.test_history_store import NOW, START, play, run, store  # noqa: F401 - store is the fixture
from trader.data.arctic import ArcticStore
from trader.sim.server import TwsSimServer


def test_the_current_time_of_a_store_replay_is_its_data_time(store: ArcticStore) -> None:  # noqa: F811
    async def scenario(server: TwsSimServer, ib: IB, clock: ManualClock) -> None:
        played = await play(server, clock, 30)
        now = await ib.reqCurrentTimeAsync()
        assert START < now <= played + timedelta(seconds=1)  # the replay's moment (whole seconds)
        assert abs(now - played) < timedelta(seconds=2)
        assert abs(now - NOW) > timedelta(days=200)  # not the server's clock

    run(store, scenario)


def test_the_current_time_without_a_store_replay_is_the_server_clock() -> None:
    async def main() -> None:
        async with running_sim(sim_config(), clock=ManualClock(NOW)) as server:
            ib = await connect(server, 1)
            try:
                assert await ib.reqCurrentTimeAsync() == NOW.replace(microsecond=0)
            finally:
                ib.disconnect()

    asyncio.run(main())
