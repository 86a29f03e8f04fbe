"""Strategy states: where a strategy is in its life, and the moves allowed between them.

INSTALLED (loaded, not started), WAITING_HISTORY (subscribed, warming up
from the trader service's history and live bars, or waiting for a trader
service that restarted), RUNNING (trading at each closed bar), DEGRADED
(running, but its instruments send no ticks: it trades nothing), DISABLED,
ERROR (an exception or a broken target: the reason and traceback are in its
log; ``enable`` starts it again, through DISABLED). The moves between them
are those of :data:`TRANSITIONS`; any other raises Conflict
(trader.service.lifecycle.check_move). :class:`StrategyMoves` makes them:
the runner's (trader.strategy.runner) moves, published as
``strategy.<name>.state``, and the states a trader service away
(:meth:`StrategyMoves.wait_for_trader`) or instruments without ticks
(:meth:`StrategyMoves.starve`, :meth:`StrategyMoves.fed`) put a strategy in.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from trader.service.lifecycle import check_move

__all__ = ["TRANSITIONS", "StrategyMoves", "StrategyState"]


class StrategyState(enum.StrEnum):
    """Where a strategy is in its life; published as ``strategy.<name>.state``."""

    INSTALLED = "INSTALLED"
    WAITING_HISTORY = "WAITING_HISTORY"
    RUNNING = "RUNNING"
    DEGRADED = "DEGRADED"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


_S = StrategyState
#: The legal moves (a move to the current state, with a new reason, is always allowed). Enabling a
#: failed strategy goes through DISABLED (``end`` first), so ERROR leads only there.
TRANSITIONS: dict[StrategyState, frozenset[StrategyState]] = {
    _S.INSTALLED: frozenset({_S.WAITING_HISTORY, _S.DISABLED}),
    _S.WAITING_HISTORY: frozenset({_S.RUNNING, _S.DISABLED, _S.ERROR}),
    _S.RUNNING: frozenset({_S.WAITING_HISTORY, _S.DEGRADED, _S.DISABLED, _S.ERROR}),  # waiting: trader restarted
    _S.DEGRADED: frozenset({_S.RUNNING, _S.WAITING_HISTORY, _S.DISABLED, _S.ERROR}),  # degraded: no ticks
    _S.DISABLED: frozenset({_S.WAITING_HISTORY}),
    _S.ERROR: frozenset({_S.DISABLED}),
}


class StrategyMoves:
    """A runner's moves between states (a mixin of :class:`~trader.strategy.runner.StrategyRunner`)."""

    name: str
    state: StrategyState
    reason: str
    logger: logging.Logger
    waiting_for_trader: bool
    starved: str | None
    _reason_fed: str

    def publish(self, event: str, payload: Any) -> None:
        raise NotImplementedError  # the runner's

    @property
    def active(self) -> bool:
        """Return whether the strategy is started: waiting, running or degraded."""
        return self.state in (StrategyState.WAITING_HISTORY, StrategyState.RUNNING, StrategyState.DEGRADED)

    def move(self, state: StrategyState, reason: str = "") -> None:
        """Move to ``state`` with ``reason``, log and publish it; raise Conflict if ``TRANSITIONS`` forbids it."""
        if state == self.state and reason == self.reason:
            return
        check_move(f"strategy {self.name}", TRANSITIONS, self.state, state)
        self.state, self.reason = state, reason
        level = logging.ERROR if state is StrategyState.ERROR else logging.INFO
        self.logger.log(level, "%s%s", state.value, f": {reason}" if reason else "")
        self.publish("state", {"state": state.value, "reason": reason})

    def wait_for_trader(self, reason: str) -> None:
        """Trade nothing until :meth:`trader_back`: WAITING_HISTORY with ``reason`` (bars still fill the window).

        For a trader service that restarted: it streams nothing for the strategy,
        and its book may differ, until the strategy has subscribed and resynced again.
        """
        self.waiting_for_trader = True
        self.move(StrategyState.WAITING_HISTORY, reason)

    def starve(self, reason: str) -> None:
        """Say the strategy's instruments send no ticks: RUNNING becomes DEGRADED, a waiting one adds ``reason``."""
        if self.state is StrategyState.WAITING_HISTORY:
            if self.starved is None or self.reason != f"{self._reason_fed}; {self.starved}":
                self._reason_fed = self.reason
            self.starved = reason
            self.move(StrategyState.WAITING_HISTORY, f"{self._reason_fed}; {reason}")
        elif self.state in (StrategyState.RUNNING, StrategyState.DEGRADED):
            self.starved = reason
            self.move(StrategyState.DEGRADED, reason)

    def fed(self) -> None:
        """End :meth:`starve`: ticks flow again (DEGRADED to RUNNING, a waiting one's reason as it was)."""
        if self.starved is None:
            return
        starved, self.starved = self.starved, None
        if self.state is StrategyState.DEGRADED:
            self.move(StrategyState.RUNNING, "ticks flowing again")
        elif self.state is StrategyState.WAITING_HISTORY and self.reason == f"{self._reason_fed}; {starved}":
            self.move(StrategyState.WAITING_HISTORY, self._reason_fed)
