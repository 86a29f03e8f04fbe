"""Service lifecycle: legal moves, idempotent repeats, illegal moves refused."""

from __future__ import annotations

import pytest

from trader.errors import Conflict
from trader.service.lifecycle import TRANSITIONS, Lifecycle, ServiceState


def test_a_normal_life() -> None:
    seen: list[ServiceState] = []
    life = Lifecycle("svc", lambda state, reason: seen.append(state))
    assert life.state is ServiceState.STARTING
    assert life.move(ServiceState.RUNNING)
    assert life.move(ServiceState.DEGRADED, "broker disconnected")
    assert life.reason == "broker disconnected"
    assert life.move(ServiceState.RUNNING)
    assert life.move(ServiceState.STOPPING)
    assert life.move(ServiceState.STOPPED)
    assert seen == [ServiceState.RUNNING, ServiceState.DEGRADED, ServiceState.RUNNING,
                    ServiceState.STOPPING, ServiceState.STOPPED]


def test_repeating_a_state_is_a_no_op() -> None:
    life = Lifecycle("svc")
    life.move(ServiceState.STOPPING)
    assert life.move(ServiceState.STOPPING) is False
    life.move(ServiceState.STOPPED)
    assert life.move(ServiceState.STOPPED) is False


@pytest.mark.parametrize("start", list(ServiceState))
def test_every_illegal_move_is_refused(start: ServiceState) -> None:
    for target in ServiceState:
        if target == start or target in TRANSITIONS[start]:
            continue
        life = Lifecycle("svc")
        life.state = start
        with pytest.raises(Conflict, match=f"{start.value} -> {target.value}"):
            life.move(target)


def test_stopped_is_final() -> None:
    assert TRANSITIONS[ServiceState.STOPPED] == frozenset()
