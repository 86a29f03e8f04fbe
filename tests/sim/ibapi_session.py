"""A scripted session of the official IB Python client (``ibapi``) against a TWS, reported as JSON.

Run it with one ibapi on the path and nothing of this repository::

    PYTHONPATH=.venv/ibapi-10 python -S tests/sim/ibapi_session.py --port 7497

(``--max-version N`` makes the client offer at most server version N.) It
imports only ``ibapi`` and the standard library, so the same file drives the
old 9.81 client and a current 10.x one (both install the module ``ibapi``, so
each lives in its own directory; ``install.sh`` puts them there).

Every message the client receives is checked against what the client's own
decoder consumed: the decoder is swapped, after the handshake, for a subclass
whose ``interpret`` hands each message handler a counting iterator over the
message's fields. A handler that runs out of fields (StopIteration, ibapi's
"no more fields" BadMessage, a number that does not parse) is reported as
``missing``; one that returns with fields still unread as ``leftover``.
Messages that ibapi maps straight onto a wrapper method are checked the way
ibapi itself checks them (field count against the method's signature), except
that a mismatch, which ibapi only logs and drops, is reported.

The session: connect; reqContractDetails; reqMatchingSymbols; reqMktData until
bid, ask, last and its time (all in the first reply) and a few more ticks
arrive; reqHistoricalData; placeOrder a MKT (until Filled with its
execDetails and commission report) and a LMT far from the market (until
Submitted); reqPositions; reqAccountUpdates; reqOpenOrders;
reqExecutions; reqCompletedOrders; cancelOrder of the LMT; disconnect. The
JSON on stdout says what arrived; the caller asserts on it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import threading
import time
import traceback
from typing import Any

import ibapi
import ibapi.client
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.decoder import Decoder
from ibapi.execution import ExecutionFilter
from ibapi.message import IN
from ibapi.order import Order
from ibapi.wrapper import EWrapper

IBAPI_10 = "msgId" in inspect.signature(Decoder.interpret).parameters
MESSAGE_NAMES = {value: name for name, value in vars(IN).items() if name.isupper() and isinstance(value, int)}
TIMEOUT = 10.0


class CountingFields:
    """An iterator over a message's fields that counts how many were read."""

    __slots__ = ("_it", "used")

    def __init__(self, fields: tuple[bytes, ...]) -> None:
        self._it = iter(fields)
        self.used = 0

    def __iter__(self) -> CountingFields:
        return self

    def __next__(self) -> bytes:
        value = next(self._it)
        self.used += 1
        return value


class CheckedDecoder(Decoder):
    """ibapi's decoder, with every incoming message's field count checked against what it consumed."""

    def __init__(self, wrapper: EWrapper, server_version: int) -> None:
        super().__init__(wrapper, server_version)
        self.counts: dict[int, int] = {}
        self.problems: list[dict[str, Any]] = []

    def interpret(self, fields: tuple[bytes, ...], msgId: int | None = None) -> None:  # ibapi's parameter name
        if msgId is None:  # 9.x: the message id is the first field and the handlers skip it
            if not fields:
                return
            msg_id, ignored = int(fields[0]), 2  # the id and the message version
        else:  # 10.x: the id has been taken off
            if msgId == 0:
                return
            msg_id, ignored = msgId, 1  # the message version
        self.counts[msg_id] = self.counts.get(msg_id, 0) + 1
        info = self.msgId2handleInfo.get(msg_id)
        if info is None:
            self._problem(msg_id, "unknown", fields, 0, "ibapi has no handler for this message id")
            return
        if info.wrapperMeth is not None:
            expected = ignored + len(info.wrapperParams) - 1
            if len(fields) != expected:
                kind = "missing" if len(fields) < expected else "leftover"
                self._problem(msg_id, kind, fields, expected, f"{info.wrapperMeth.__name__} takes {expected} fields")
            self._dispatch(fields, msgId)
            return
        counter = CountingFields(fields)
        try:
            info.processMeth(self, counter)
        except Exception as exc:  # the point of the check: report it and keep decoding
            kind = "missing" if counter.used >= len(fields) else "error"
            self._problem(msg_id, kind, fields, counter.used, f"{type(exc).__name__}: {exc}")
            return
        if counter.used != len(fields):
            self._problem(msg_id, "leftover", fields, counter.used, f"{len(fields) - counter.used} field(s) unread")

    def _dispatch(self, fields: tuple[bytes, ...], msg_id: int | None) -> None:
        try:
            if msg_id is None:
                super().interpret(fields)
            else:
                super().interpret(fields, msg_id)
        except Exception as exc:  # reported like a decoding failure, and decoding goes on
            self._problem(int(fields[0]) if msg_id is None else msg_id, "error", fields, 0,
                          f"{type(exc).__name__}: {exc}")

    def _problem(self, msg_id: int, kind: str, fields: tuple[bytes, ...], consumed: int, detail: str) -> None:
        self.problems.append({
            "message": MESSAGE_NAMES.get(msg_id, str(msg_id)),
            "kind": kind,
            "fields": len(fields),
            "consumed": consumed,
            "detail": detail,
            "payload": [f.decode(errors="backslashreplace") for f in fields][:200],
        })


class SessionApp(EWrapper, EClient):
    """The client and its wrapper: callbacks record what arrived under one condition variable."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.cond = threading.Condition()
        self.next_id: int | None = None
        self.accounts: list[str] = []
        self.errors: list[list[Any]] = []
        self.contracts: dict[int, list[dict[str, Any]]] = {}
        self.ends: set[tuple[str, int]] = set()
        self.symbols: list[dict[str, Any]] = []
        self.ticks: list[tuple[str, int, float]] = []
        self.data_types: list[int] = []
        self.bars: list[dict[str, Any]] = []
        self.statuses: dict[int, list[dict[str, Any]]] = {}
        self.open_orders: dict[int, list[dict[str, Any]]] = {}
        self.executions: dict[int, list[dict[str, Any]]] = {}
        self.commissions: list[dict[str, Any]] = []
        self.positions: list[dict[str, Any]] = []
        self.account_values: list[list[str]] = []
        self.portfolio: list[dict[str, Any]] = []
        self.account_times: list[str] = []
        self.completed: list[dict[str, Any]] = []
        self.order_ids: dict[str, int] = {}
        self.negotiated: int | None = None

    def record(self, action: Any) -> None:
        with self.cond:
            action()
            self.cond.notify_all()

    def wait(self, what: str, predicate: Any, timeout: float = TIMEOUT) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise TimeoutError(f"{what}: nothing within {timeout}s")

    def ended(self, name: str, req_id: int = 0) -> bool:
        return (name, req_id) in self.ends

    def _end(self, name: str, req_id: int = 0) -> None:
        self.record(lambda: self.ends.add((name, req_id)))

    # -- connection ---------------------------------------------------------------
    def nextValidId(self, orderId: int) -> None:
        self.record(lambda: setattr(self, "next_id", orderId))

    def managedAccounts(self, accountsList: str) -> None:
        self.record(lambda: self.accounts.extend(a for a in accountsList.split(",") if a))

    def error(self, reqId: int, *args: Any) -> None:
        # 9.x: (code, text); 10.x: (time, code, text[, advancedOrderRejectJson])
        code, text = (args[1], args[2]) if IBAPI_10 else (args[0], args[1])
        self.record(lambda: self.errors.append([reqId, int(code), str(text)]))

    # -- contracts ------------------------------------------------------------------
    def contractDetails(self, reqId: int, contractDetails: Any) -> None:
        c = contractDetails.contract
        row = {"conId": c.conId, "symbol": c.symbol, "secType": c.secType, "minTick": contractDetails.minTick,
               "longName": contractDetails.longName, "primaryExchange": c.primaryExchange}
        self.record(lambda: self.contracts.setdefault(reqId, []).append(row))

    def contractDetailsEnd(self, reqId: int) -> None:
        self._end("contractDetails", reqId)

    def symbolSamples(self, reqId: int, contractDescriptions: Any) -> None:
        rows = [{"conId": d.contract.conId, "symbol": d.contract.symbol, "derivatives": list(d.derivativeSecTypes)}
                for d in contractDescriptions]
        self.record(lambda: (self.symbols.extend(rows), self.ends.add(("symbolSamples", reqId))))

    # -- market data ------------------------------------------------------------------
    def marketDataType(self, reqId: int, marketDataType: int) -> None:
        self.record(lambda: self.data_types.append(marketDataType))

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:
        self.record(lambda: self.ticks.append(("price", int(tickType), float(price))))

    def tickSize(self, reqId: int, tickType: int, size: Any) -> None:
        self.record(lambda: self.ticks.append(("size", int(tickType), float(size))))

    def tickString(self, reqId: int, tickType: int, value: str) -> None:
        self.record(lambda: self.ticks.append(("string", int(tickType), float(value or 0))))

    def historicalData(self, reqId: int, bar: Any) -> None:
        row = {"date": bar.date, "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close,
               "volume": float(bar.volume)}
        self.record(lambda: self.bars.append(row))

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:
        self._end("historicalData", reqId)

    # -- orders -----------------------------------------------------------------------
    def orderStatus(self, orderId: int, status: str, filled: Any, remaining: Any, avgFillPrice: float,
                    permId: int, parentId: int, lastFillPrice: float, clientId: int, whyHeld: str,
                    mktCapPrice: float) -> None:
        row = {"status": status, "filled": float(filled), "remaining": float(remaining),
               "avgFillPrice": avgFillPrice, "permId": permId, "clientId": clientId}
        self.record(lambda: self.statuses.setdefault(orderId, []).append(row))

    def openOrder(self, orderId: int, contract: Any, order: Any, orderState: Any) -> None:
        row = {"conId": contract.conId, "action": order.action, "orderType": order.orderType,
               "totalQuantity": float(order.totalQuantity), "lmtPrice": order.lmtPrice, "permId": order.permId,
               "status": orderState.status}
        self.record(lambda: self.open_orders.setdefault(orderId, []).append(row))

    def openOrderEnd(self) -> None:
        self._end("openOrder")

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:
        row = {"orderId": execution.orderId, "execId": execution.execId, "side": execution.side,
               "shares": float(execution.shares), "price": execution.price, "permId": execution.permId,
               "conId": contract.conId}
        self.record(lambda: self.executions.setdefault(reqId, []).append(row))

    def execDetailsEnd(self, reqId: int) -> None:
        self._end("execDetails", reqId)

    def commissionReport(self, commissionReport: Any) -> None:  # ibapi 9.x
        self._commission(commissionReport, "commission")

    def commissionAndFeesReport(self, commissionAndFeesReport: Any) -> None:  # ibapi 10.x
        self._commission(commissionAndFeesReport, "commissionAndFees")

    def _commission(self, report: Any, attribute: str) -> None:
        row = {"execId": report.execId, "commission": getattr(report, attribute), "currency": report.currency}
        self.record(lambda: self.commissions.append(row))

    def completedOrder(self, contract: Any, order: Any, orderState: Any) -> None:
        row = {"conId": contract.conId, "permId": order.permId, "status": orderState.status,
               "orderType": order.orderType}
        self.record(lambda: self.completed.append(row))

    def completedOrdersEnd(self) -> None:
        self._end("completedOrders")

    # -- account ----------------------------------------------------------------------
    def position(self, account: str, contract: Any, position: Any, avgCost: float) -> None:
        row = {"account": account, "conId": contract.conId, "position": float(position), "avgCost": avgCost}
        self.record(lambda: self.positions.append(row))

    def positionEnd(self) -> None:
        self._end("position")

    def updateAccountValue(self, key: str, val: str, currency: str, accountName: str) -> None:
        self.record(lambda: self.account_values.append([key, val, currency, accountName]))

    def updatePortfolio(self, contract: Any, position: Any, marketPrice: float, marketValue: float,
                        averageCost: float, unrealizedPNL: float, realizedPNL: float, accountName: str) -> None:
        row = {"conId": contract.conId, "position": float(position), "marketPrice": marketPrice,
               "averageCost": averageCost, "account": accountName}
        self.record(lambda: self.portfolio.append(row))

    def updateAccountTime(self, timeStamp: str) -> None:
        self.record(lambda: self.account_times.append(timeStamp))

    def accountDownloadEnd(self, accountName: str) -> None:
        self._end("accountDownload")


def aapl(con_id: int = 0) -> Contract:
    contract = Contract()
    contract.symbol, contract.secType, contract.exchange, contract.currency = "AAPL", "STK", "SMART", "USD"
    contract.conId = con_id
    return contract


def order(action: str, quantity: int, order_type: str, limit: float | None = None) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, quantity, order_type
    if limit is not None:
        o.lmtPrice = limit
    o.eTradeOnly = o.firmQuoteOnly = False  # 9.81's defaults, which a current TWS refuses
    return o


def run_session(app: SessionApp, host: str, port: int, client_id: int, steps: list[str]) -> None:
    """Drive the scripted session; each step appends its name to ``steps`` once done."""
    app.connect(host, port, client_id)
    if not app.isConnected():
        raise ConnectionError(f"could not connect to {host}:{port}")
    # The reader thread only queues frames; run() decodes them with app.decoder.
    app.negotiated = app.serverVersion()
    app.decoder = CheckedDecoder(app.wrapper, app.negotiated)
    threading.Thread(target=app.run, name="ibapi-run", daemon=True).start()
    app.wait("nextValidId and managedAccounts", lambda: app.next_id is not None and app.accounts)
    steps.append("connect")

    app.reqContractDetails(1, aapl())
    app.wait("contractDetailsEnd", lambda: app.ended("contractDetails", 1))
    con_id = app.contracts[1][0]["conId"]
    contract = aapl(con_id)
    steps.append("reqContractDetails")

    app.reqMatchingSymbols(2, "AAP")
    app.wait("symbolSamples", lambda: app.ended("symbolSamples", 2))
    steps.append("reqMatchingSymbols")

    app.reqMktData(3, contract, "", False, False, [])

    def quoted() -> bool:  # the first reply carries them all: TWS sends the whole quote on subscribing
        prices = {t for kind, t, _ in app.ticks if kind == "price"}
        strings = {t for kind, t, _ in app.ticks if kind == "string"}
        return {1, 2, 4} <= prices and 45 in strings and len(app.ticks) >= 12

    app.wait("bid, ask, last, its time and 12 ticks", quoted)
    app.cancelMktData(3)
    bid = max(price for kind, t, price in app.ticks if kind == "price" and t == 1)
    steps.append("reqMktData")

    app.reqHistoricalData(4, contract, "", "3600 S", "1 min", "MIDPOINT", 0, 1, False, [])
    app.wait("historicalDataEnd", lambda: app.ended("historicalData", 4))
    steps.append("reqHistoricalData")

    mkt_id = app.next_id
    assert mkt_id is not None
    app.placeOrder(mkt_id, contract, order("BUY", 10, "MKT"))

    def mkt_done() -> bool:
        statuses = app.statuses.get(mkt_id, [])
        exec_ids = {e["execId"] for e in app.executions.get(-1, []) if e["orderId"] == mkt_id}
        reported = {c["execId"] for c in app.commissions}
        return bool(statuses and statuses[-1]["status"] == "Filled" and exec_ids and exec_ids <= reported)

    app.wait("MKT order Filled with its fills and commissions", mkt_done)
    steps.append("placeOrder MKT")

    lmt_id = mkt_id + 1
    app.order_ids = {"mkt": mkt_id, "lmt": lmt_id}
    app.placeOrder(lmt_id, contract, order("BUY", 10, "LMT", round(bid - 20, 2)))
    app.wait("LMT order Submitted", lambda: any(s["status"] == "Submitted" for s in app.statuses.get(lmt_id, [])))
    steps.append("placeOrder LMT")

    app.reqPositions()
    app.wait("positionEnd", lambda: app.ended("position"))
    app.cancelPositions()
    steps.append("reqPositions")

    account = app.accounts[0]
    app.reqAccountUpdates(True, account)
    app.wait("accountDownloadEnd", lambda: app.ended("accountDownload") and app.portfolio)
    app.reqAccountUpdates(False, account)
    steps.append("reqAccountUpdates")

    with app.cond:
        app.ends.discard(("openOrder", 0))
    app.reqOpenOrders()
    app.wait("openOrderEnd", lambda: app.ended("openOrder"))
    steps.append("reqOpenOrders")

    app.reqExecutions(5, ExecutionFilter())
    app.wait("execDetailsEnd", lambda: app.ended("execDetails", 5))
    steps.append("reqExecutions")

    app.reqCompletedOrders(False)
    app.wait("completedOrdersEnd", lambda: app.ended("completedOrders"))
    steps.append("reqCompletedOrders")

    if IBAPI_10:
        from ibapi.order_cancel import OrderCancel

        app.cancelOrder(lmt_id, OrderCancel())
    else:
        app.cancelOrder(lmt_id)
    app.wait("LMT order Cancelled", lambda: app.statuses[lmt_id][-1]["status"] == "Cancelled"
             and any(e[0] == lmt_id and e[1] == 202 for e in app.errors))
    steps.append("cancelOrder")

    time.sleep(0.2)  # let anything still in flight arrive and be decoded
    app.disconnect()
    steps.append("disconnect")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", type=int, default=7)
    parser.add_argument("--max-version", type=int, default=None,
                        help="offer at most this server version (to exercise the server's older layouts)")
    args = parser.parse_args(argv)
    if args.max_version is not None:
        ibapi.client.MAX_CLIENT_VER = args.max_version  # the handshake reads this module global

    app = SessionApp()
    steps: list[str] = []
    failure = None
    try:
        run_session(app, args.host, args.port, args.client_id, steps)
    except Exception as exc:  # the report says where the session stopped
        failure = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        if app.isConnected():
            app.disconnect()
    decoder = app.decoder if isinstance(app.decoder, CheckedDecoder) else None
    counts = decoder.counts if decoder else {}
    with app.cond:
        report = {
            "ibapi_version": getattr(ibapi, "__version__", None) or ibapi.get_version_string(),
            "ibapi_file": ibapi.__file__,
            "client_versions": [ibapi.client.MIN_CLIENT_VER, ibapi.client.MAX_CLIENT_VER],
            "server_version": app.negotiated,
            "steps": steps,
            "failure": failure,
            "messages": {MESSAGE_NAMES.get(k, str(k)): v for k, v in sorted(counts.items())},
            "message_ids": {str(k): v for k, v in sorted(counts.items())},
            "problems": decoder.problems if decoder else [],
            "errors": app.errors,
            "contracts": app.contracts.get(1, []),
            "symbols": app.symbols,
            "ticks": len(app.ticks),
            "tick_types": sorted({f"{kind}:{t}" for kind, t, _ in app.ticks}),
            "prices_positive": all(p > 0 for kind, _, p in app.ticks if kind == "price"),
            "market_data_types": app.data_types,
            "bars": len(app.bars),
            "last_bar": app.bars[-1] if app.bars else None,
            "statuses": {str(k): v for k, v in app.statuses.items()},
            "open_orders": {str(k): v for k, v in app.open_orders.items()},
            "executions": {str(k): v for k, v in app.executions.items()},
            "commissions": app.commissions,
            "positions": app.positions,
            "portfolio": app.portfolio,
            "account_values": len(app.account_values),
            "account_times": app.account_times,
            "completed": app.completed,
            "order_ids": app.order_ids,
        }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
