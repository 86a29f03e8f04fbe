"""A worker process killed (SIGKILL) mid-sweep costs its chunks only: they are re-run, the result is complete."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.backtest.sweep_given import SIDE_PLUGIN, path_bars, plugin
from trader.backtest import sweep
from trader.backtest.cluster import connect, worker_pids
from trader.backtest.params import parse_space


def _kill_a_busy_worker(client: Any, done: threading.Event, killed: list[int]) -> None:
    """Once a chunk has finished and another is running, SIGKILL the process of a worker running one."""
    pids = worker_pids(client)
    deadline = time.monotonic() + 60
    while not done.is_set() and time.monotonic() < deadline:
        finished = sum(1 for state in client.who_has().values() if state)  # results held for the client
        busy = [address for address, keys in client.processing().items()
                if any(str(key).startswith("sweep-chunk") for key in keys)]
        if finished >= 1 and busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(pids[busy[0]])
            return
        time.sleep(0.05)


@pytest.mark.timeout(300)
@pytest.mark.slow  # a minute on the shared machine: two cluster starts' imports and the killed worker's restart
def test_a_killed_worker_costs_only_its_chunks(tmp_path: Path) -> None:
    side = plugin(tmp_path, SIDE_PLUGIN, "side", config="params: {delay: 0.4}\n").strategy
    close = np.concatenate([np.linspace(100, 120, 100), np.linspace(120, 90, 100)])
    bars = {"AAPL": path_bars(close)}
    space = parse_space(["side=-1,0,1", "lag=0:5"], side.Params, side.config.params)  # 18 chunks of one
    with connect(workers=2) as client:
        calm = sweep.run(side, bars, space, client=client, memory_mb=0.001, progress=False, store=False)
        assert calm.chunks == 18 and calm.chunks_retried == 0
        done, killed = threading.Event(), []
        killer = threading.Thread(target=_kill_a_busy_worker, args=(client, done, killed), daemon=True)
        killer.start()
        try:
            hit = sweep.run(side, bars, space, client=client, memory_mb=0.001, progress=False, home=tmp_path)
        finally:
            done.set()
            killer.join(10)
        assert killed, "no worker was killed while chunks ran"
        assert killed[0] not in worker_pids(client).values()  # that process is gone (the nanny started another)
    assert hit.chunks_retried >= 1 and hit.chunks == 18
    pd.testing.assert_frame_equal(hit.table, calm.table)  # complete, and equal to the undisturbed run
    assert len(hit.table) == 18
    assert (hit.table["objective"].isna() == hit.table["side"].eq(0)).all()  # flat: no Sharpe; every other scored
    assert sweep.load(hit.path).chunks_retried == hit.chunks_retried


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_must_be_positive(workers: int) -> None:
    from trader.errors import ValidationError

    with pytest.raises(ValidationError, match="--workers must be at least 1"), connect(workers=workers):
        pass
