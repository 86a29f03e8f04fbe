"""Answers to account and position requests: values, portfolio lines, summaries, positions.

:class:`AccountHandlers` answers reqPositions, reqAccountUpdates (one account at
a time, as IB), reqAccountUpdatesMulti and reqAccountSummary, and pushes the
values again when the world asks (:meth:`AccountHandlers.send_account`). An
account the login does not manage is refused as IB does (error 321).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trader.sim import encoders as enc
from trader.sim.client_requests import (
    AccountSummaryRequest,
    AccountUpdatesMultiRequest,
    AccountUpdatesRequest,
    Plain,
)
from trader.sim.msgids import ErrorCode

if TYPE_CHECKING:
    from trader.sim.account import Account
    from trader.sim.session import Session
    from trader.sim.world_api import World

__all__ = ["AccountHandlers"]


class AccountHandlers:
    """The account and position requests, answered from ``world``'s accounts."""

    world: World

    def positions(self, session: Session, request: Plain) -> None:
        for account in self.world.accounts.values():
            for holding in account.holdings.values():
                session.send(enc.position(account.id, holding.instrument, holding.quantity, holding.avg_cost))
        session.send(enc.position_end())
        session.positions = True

    def cancel_positions(self, session: Session, request: Plain) -> None:
        session.positions = False

    def updates_account(self, session: Session) -> Account:
        """Return the account whose updates ``session`` asked for (reqAccountUpdates: one at a time, as IB)."""
        return self.world.accounts.get(session.account_updates_of, self.world.account)

    def _unknown_account(self, session: Session, request_id: int, what: str, account: str) -> bool:
        """Send IB's refusal of an account the login does not manage; return whether it was one."""
        if not account or account == "All" or account in self.world.accounts:
            return False
        session.error(request_id, ErrorCode.VALIDATION_ERROR,
                      f"Error validating request:-'{what}' : cause - unknown account {account}")
        return True

    def send_account(self, session: Session, only: int | None = None) -> None:
        """Push account values and portfolio lines (one instrument's, with ``only``)."""
        world, account = self.world, self.updates_account(session)
        for tag, value, currency in account.values(world.mark, world.fx_rate):
            session.send(enc.account_value(tag, value, currency, account.id))
        for row in account.rows(world.mark):
            holding = row.holding
            if only is not None and holding.instrument.conid != only:
                continue
            session.send(enc.portfolio_value(holding.instrument, holding.quantity, row.market_price,
                                             row.market_value, holding.avg_cost, row.unrealized,
                                             holding.realized, account.id))
        session.send(enc.account_update_time(world.clock()))

    def account_updates(self, session: Session, request: AccountUpdatesRequest) -> None:
        if self._unknown_account(session, -1, "account updates", request.account):
            return
        account = self.world.accounts.get(request.account, self.world.account)
        session.account_updates, session.account_updates_of = request.subscribe, account.id
        if request.subscribe:
            self.send_account(session)
            session.send(enc.account_download_end(account.id))

    def account_updates_multi(self, session: Session, request: AccountUpdatesMultiRequest) -> None:
        world = self.world
        if self._unknown_account(session, request.req_id, "account updates multi", request.account):
            return
        chosen = world.accounts.get(request.account)
        for account in [chosen] if chosen is not None else world.accounts.values():
            for tag, value, currency in account.values(world.mark, world.fx_rate):
                session.send(enc.account_update_multi(request.req_id, account.id, request.model, tag, value,
                                                      currency))
        session.send(enc.account_update_multi_end(request.req_id))
        session.account_multi.add(request.req_id)

    def cancel_account_updates_multi(self, session: Session, request: Plain) -> None:
        session.account_multi.discard(request.req_id)

    def account_summary(self, session: Session, request: AccountSummaryRequest) -> None:
        world = self.world
        wanted = {t.strip() for t in request.tags.split(",") if t.strip()}
        everything = any(t.startswith("$LEDGER") for t in wanted)
        for account in world.accounts.values():  # the group "All": every account managed
            for tag, value, currency in account.values(world.mark, world.fx_rate):
                if tag in wanted or (everything and tag == "CashBalance"):
                    session.send(enc.account_summary(request.req_id, account.id, tag, value, currency))
        session.send(enc.account_summary_end(request.req_id))
        session.account_summaries.add(request.req_id)

    def cancel_account_summary(self, session: Session, request: Plain) -> None:
        session.account_summaries.discard(request.req_id)

