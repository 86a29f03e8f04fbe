"""The sweep's parameter space: --param ranges and lists, checked against a strategy's Params."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trader.backtest.params import parse_space
from trader.errors import ValidationError


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fast: int = Field(3, ge=1)
    slow: int = Field(8, ge=2)
    entry: float = 0.002
    allow_short: bool = False
    mode: str = "close"

    @model_validator(mode="after")
    def _order(self) -> Params:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")
        return self


def test_ranges_lists_and_single_values() -> None:
    space = parse_space(["fast=2:20", "slow=10:100:5", "entry=0.001:0.005:0.001", "allow_short=true,false",
                         "mode=close,open"], Params)
    dims = {d.name: d for d in space.dimensions}
    assert dims["fast"].values == tuple(range(2, 21)) and dims["fast"].kind == "int"
    assert dims["slow"].values == tuple(range(10, 101, 5))
    assert dims["entry"].values == (0.001, 0.002, 0.003, 0.004, 0.005)  # exact, not 0.0030000000000000005
    assert dims["allow_short"].values == (True, False)
    assert dims["mode"].values == ("close", "open")
    assert space.size == 19 * 19 * 5 * 2 * 2
    assert parse_space(["fast=5"], Params).dimensions[0].values == (5,)
    assert parse_space(["slow=10:21:5"], Params).dimensions[0].values == (10, 15, 20)  # the high end is not on the step


def test_combinations_the_model_refuses_are_dropped_and_counted() -> None:
    space = parse_space(["fast=2:6", "slow=4:6"], Params)
    kept, dropped = space.valid_grid()
    assert kept == [{"fast": f, "slow": s} for f in range(2, 7) for s in range(4, 7) if f < s]
    assert len(kept) == 9 and dropped == 15 - 9
    assert "fast (6) must be less than slow (4)" in (space.check({"fast": 6, "slow": 4}) or "")


def test_the_strategy_config_params_are_under_every_combination() -> None:
    space = parse_space(["fast=2:10"], Params, {"slow": 5})
    kept, dropped = space.valid_grid()
    assert [c["fast"] for c in kept] == [2, 3, 4] and dropped == 6


@pytest.mark.parametrize(("spec", "message"), [
    ("nope=1:3", "has no parameter 'nope'"),
    ("fast=20:2", "fast=20:2: the range is empty"),
    ("fast=2:20:0", "the step must be positive"),
    ("fast=2:20:-1", "the step must be positive"),
    ("fast=2:20:x", "must be numbers"),
    ("fast=2:3:4:5", "LOW:HIGH or LOW:HIGH:STEP"),
    ("fast=0:5", "--param fast: the value 0 is refused"),
    ("fast=0.5:2", "--param fast: the value 0.5 is refused"),
    ("fast=true,false", "--param fast: the value True is refused"),
    ("fast", "expected NAME=LOW:HIGH"),
    ("fast=1,1", "listed twice"),
    ("entry=0:1:0.0000001", "use a larger step"),
])
def test_bad_specs_are_named(spec: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_space([spec], Params)
    assert spec.partition("=")[0] in str(caught.value)


def test_a_parameter_given_twice_and_no_parameter_at_all() -> None:
    with pytest.raises(ValidationError, match="fast: given twice"):
        parse_space(["fast=2:4", "fast=5:6"], Params)
    with pytest.raises(ValidationError, match="no parameter to sweep"):
        parse_space([], Params)
