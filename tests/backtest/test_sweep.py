"""Sweeps on a real 2-process Dask LocalCluster: chunking, the three methods, constraints, storage, bad input."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.backtest.sweep_given import RAISING_PLUGIN, ma_crossover, plugin, random_bars
from trader.backtest import sweep
from trader.backtest.chunks import SweepPayload, evaluate
from trader.backtest.cluster import connect
from trader.backtest.params import parse_space
from trader.errors import NotFound, Unavailable, ValidationError
from trader.strategy.sizing import SignalError

SPEC = ["fast=2:6", "slow=4:12:4", "allow_short=true,false"]  # 30 combinations, 6 refused (fast >= slow)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with connect(workers=2) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    return {"AAPL": random_bars(1500)}


def _grid(client: Any, bars: dict[str, pd.DataFrame], tmp_path: Path, **kwargs: Any) -> sweep.SweepResult:
    strategy = ma_crossover().strategy
    space = parse_space(SPEC, strategy.Params, strategy.config.params)
    return sweep.run(strategy, bars, space, client=client, home=tmp_path, progress=False, **kwargs)


def test_grid_in_chunks_equals_one_evaluation_of_every_combination(client: Any, bars: dict[str, pd.DataFrame],
                                                                   tmp_path: Path) -> None:
    # a budget of one column per chunk: 24 chunks over two workers
    chunked = _grid(client, bars, tmp_path, memory_mb=0.01)
    assert chunked.chunks == 24 and chunked.dropped == 6
    assert len(chunked.table) == 30
    refused = chunked.table[chunked.table["note"].str.startswith("invalid")]
    assert len(refused) == 6 and (refused["fast"] >= refused["slow"]).all() and refused["objective"].isna().all()
    strategy = ma_crossover().strategy
    space = parse_space(SPEC, strategy.Params, strategy.config.params)
    combos, _ = space.valid_grid()
    whole = evaluate(SweepPayload.of(strategy, bars, strategy.config.backtest, "sharpe"), combos)
    whole.index = pd.MultiIndex.from_frame(pd.DataFrame(combos))
    got = chunked.table.dropna(subset=["objective"]).set_index(["fast", "slow", "allow_short"])
    pd.testing.assert_frame_equal(got[whole.columns].sort_index(), whole.sort_index(), check_dtype=False,
                                  rtol=1e-9)  # numpy sums a column of 24 and a column of one in another order
    assert chunked.table["objective"].iloc[0] == pytest.approx(whole["objective"].max(), rel=1e-12)  # best first
    assert chunked.best == dict(zip(["fast", "slow", "allow_short"], got["objective"].idxmax(), strict=True))
    roomy = _grid(client, bars, tmp_path, memory_mb=64)  # memory for every column in one chunk
    assert roomy.chunks == 4  # yet 2 chunks per worker: 24 combinations in chunks of 6
    pd.testing.assert_frame_equal(roomy.table, chunked.table, rtol=1e-9)


@pytest.mark.parametrize("method", ["random", "genetic"])
def test_random_and_genetic_are_seeded(client: Any, bars: dict[str, pd.DataFrame], tmp_path: Path,
                                       method: str) -> None:
    first = _grid(client, bars, tmp_path, method=method, trials=16, seed=7, population=8, memory_mb=0.05)
    again = _grid(client, bars, tmp_path, method=method, trials=16, seed=7, population=8, memory_mb=0.05)
    other = _grid(client, bars, tmp_path, method=method, trials=16, seed=8, population=8, memory_mb=0.05)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert not first.table[["fast", "slow", "allow_short"]].equals(other.table[["fast", "slow", "allow_short"]])
    assert len(first.table) == 16 and first.trials == 16  # asked again until 16 distinct combinations
    assert first.table["fast"].isin(range(2, 7)).all() and first.table["slow"].isin([4, 8, 12]).all()
    assert first.method == method and first.table["objective"].notna().any()


@pytest.mark.parametrize("method", ["random", "genetic"])
def test_more_trials_than_the_space_has_give_every_combination_once(client: Any, bars: dict[str, pd.DataFrame],
                                                                    tmp_path: Path, method: str) -> None:
    found = _grid(client, bars, tmp_path, method=method, trials=40, population=8, memory_mb=0.05)
    assert found.trials == 40 and not found.table.duplicated(["fast", "slow", "allow_short"]).any()
    if method == "random":  # asked until the space ran out
        assert len(found.table) == 30 and found.dropped == 6
    else:  # NSGA-II converges and repeats itself: it stops after 10 x 40 asks with what it found
        assert 16 < len(found.table) <= 30


def test_a_space_the_params_refuse_entirely_is_an_error_and_nothing_is_stored(
        client: Any, bars: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    strategy = ma_crossover().strategy
    space = parse_space(["fast=20:22"], strategy.Params, {**strategy.config.params, "slow": 8})
    with pytest.raises(ValidationError, match=r"every combination refused \(3 of 3\): .*fast.*slow"):
        sweep.run(strategy, bars, space, client=client, home=tmp_path, progress=False)
    assert not (tmp_path / "data").exists()


def test_constraints_mark_rows_and_keep_their_metrics(client: Any, bars: dict[str, pd.DataFrame],
                                                      tmp_path: Path) -> None:
    free = _grid(client, bars, tmp_path)
    evaluated = free.table.dropna(subset=["objective"])
    limit = float(evaluated["trades"].median())
    bound = _grid(client, bars, tmp_path, constraints=[f"trades>={limit:g}", "max_drawdown<=0.5"])
    broken = bound.table[bound.table["note"].str.startswith("breaks")]
    assert len(broken) == int((evaluated["trades"] < limit).sum()) > 0
    assert broken["objective"].isna().all() and broken["trades"].notna().all()
    assert (broken["note"] == f"breaks trades>={limit:g}").all()
    kept = bound.table.dropna(subset=["objective"])
    assert (kept["trades"] >= limit).all() and bound.table["objective"].iloc[0] == kept["objective"].max()
    assert bound.constraints == [f"trades>={limit:g}", "max_drawdown<=0.5"]
    with pytest.raises(ValidationError, match="unknown metric 'profit'"):
        _grid(client, bars, tmp_path, constraints=["profit>1"])
    with pytest.raises(ValidationError, match="expected METRIC OP NUMBER"):
        _grid(client, bars, tmp_path, constraints=["trades => 3"])


def test_a_sweep_is_stored_and_loaded_without_recomputing(client: Any, bars: dict[str, pd.DataFrame],
                                                          tmp_path: Path) -> None:
    result = _grid(client, bars, tmp_path, objective="total_return")
    assert result.path is not None and result.path.parent == tmp_path / "data" / "research" / "sweeps"
    assert [p.name for p in result.path.parent.iterdir()] == [result.path.name]  # no partial file left
    loaded = sweep.load(result.path.stem, home=tmp_path)
    pd.testing.assert_frame_equal(loaded.table, result.table)
    assert (loaded.strategy, loaded.method, loaded.objective, loaded.space, loaded.dropped) == \
        ("ma_crossover", "grid", "total_return", result.space, 6)
    assert sweep.load(result.path).chunks == result.chunks
    with pytest.raises(NotFound, match="no stored sweep 'nope'"):
        sweep.load("nope", home=tmp_path)


def test_a_scheduler_that_does_not_answer_is_named_quickly_and_nothing_is_written(
        bars: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    strategy = ma_crossover().strategy
    space = parse_space(SPEC, strategy.Params, strategy.config.params)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=f"no Dask scheduler answers at tcp://127.0.0.1:{port}"):
        sweep.run(strategy, bars, space, scheduler=f"tcp://127.0.0.1:{port}", home=tmp_path, progress=False)
    # the connect gives up after 3 s; the rest is slack for importing distributed on a busy machine
    assert time.monotonic() - started < 30
    assert not (tmp_path / "data").exists()


def test_bad_input_fails_before_and_during_the_sweep(client: Any, bars: dict[str, pd.DataFrame],
                                                     tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown objective 'profit'"):
        _grid(client, bars, tmp_path, objective="profit")
    with pytest.raises(ValidationError, match="unknown method 'annealing'"):
        _grid(client, bars, tmp_path, method="annealing")
    boom = plugin(tmp_path, RAISING_PLUGIN, "boom").strategy
    space = parse_space(["fast=2:4"], boom.Params)
    with pytest.raises(SignalError, match="strategy boom: signals raised RuntimeError for AAPL: boom at fast 3"):
        sweep.run(boom, bars, space, client=client, home=tmp_path, progress=False, memory_mb=0.01)
    assert not (tmp_path / "data").exists()  # a failed sweep writes nothing


def test_the_objective_direction_and_the_progress_bar(client: Any, bars: dict[str, pd.DataFrame], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    result = _grid(client, bars, tmp_path, objective="max_drawdown", store=False)
    drawdowns = result.table["objective"].dropna().to_numpy()
    assert np.all(np.diff(drawdowns) >= 0)  # a drawdown is minimised: the smallest first
    strategy = ma_crossover().strategy
    space = parse_space(SPEC, strategy.Params, strategy.config.params)
    sweep.run(strategy, bars, space, client=client, store=False, progress=True, memory_mb=0.01)
    err = capsys.readouterr().err
    assert "30/30" in err and "24 chunks" in err
