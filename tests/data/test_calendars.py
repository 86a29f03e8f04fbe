"""Exchange calendars: which calendar an instrument follows, its sessions' hours, expected bars and gaps."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from trader.data import calendars
from trader.data.calendars import (
    Hours,
    calendar_for,
    calendar_for_key,
    expected_bar_starts,
    missing_sessions,
    trading_minutes,
)
from trader.errors import ValidationError

ET, CT = ZoneInfo("America/New_York"), ZoneInfo("America/Chicago")
STOCKS, FUTURES, FX = calendar_for("NASDAQ", "STK"), calendar_for("CME", "FUT"), calendar_for("IDEALPRO", "CASH")


def hours(cal: calendars.TradingCalendar, day: str, *, rth: bool = False, zone: ZoneInfo = ET) -> list[tuple[str, str]]:
    w = cal.windows(pd.Timestamp(day, tz="UTC"), pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1), use_rth=rth)
    out = []
    for label, o, c in zip(w.labels, w.opens.tolist(), w.closes.tolist(), strict=True):
        if label == pd.Timestamp(day):
            out.append((datetime.fromtimestamp(o, zone).strftime("%a %H:%M"),
                        datetime.fromtimestamp(c, zone).strftime("%a %H:%M")))
    return out


@pytest.mark.parametrize(("exchange", "sec_type", "code", "kind"), [
    ("NASDAQ", "STK", "XNYS", Hours.STOCK), ("NYSE", "STK", "XNYS", Hours.STOCK), ("ARCA", "STK", "XNYS", Hours.STOCK),
    ("SMART", "STK", "XNYS", Hours.STOCK), ("ISLAND", None, "XNYS", Hours.STOCK), ("CBOE", "IND", "XNYS", Hours.INDEX),
    ("CME", "FUT", "CMES", Hours.FUTURE), ("CBOT", None, "CMES", Hours.FUTURE), ("NYMEX", "FUT", "CMES", Hours.FUTURE),
    ("COMEX", "FUT", "CMES", Hours.FUTURE), ("GLOBEX", "FUT", "CMES", Hours.FUTURE),
    ("IDEALPRO", "CASH", "24/5", Hours.FX), (None, "CASH", "24/5", Hours.FX), (None, "FUT", "CMES", Hours.FUTURE),
])
def test_an_exchange_or_sec_type_names_its_calendar(exchange: str | None, sec_type: str | None, code: str,
                                                    kind: Hours) -> None:
    cal = calendar_for(exchange, sec_type)
    assert (cal.code, cal.hours) == (code, kind)


def test_keys_name_calendars_and_unknowns_are_refused() -> None:
    assert calendar_for_key("AAPL.STK") is STOCKS
    assert calendar_for_key("ES.FUT.202612") is FUTURES
    assert calendar_for_key("EUR.CASH.USD") is FX
    assert calendar_for_key("SPX.IND").hours is Hours.INDEX
    day = (pd.Timestamp("2026-11-24", tz=ET), pd.Timestamp("2026-11-25", tz=ET))
    assert list(trading_minutes("AAPL.STK", *day)) == list(trading_minutes("NASDAQ", *day))
    assert list(expected_bar_starts("ES.FUT.202612", "1h", *day)) == list(expected_bar_starts("CME", "1h", *day))
    with pytest.raises(ValidationError, match="no trading calendar"):
        calendar_for("MOON", None)
    with pytest.raises(ValidationError):
        calendar_for_key("NOT A KEY")


def test_stock_sessions_have_extended_hours_rth_and_early_closes() -> None:
    assert hours(STOCKS, "2026-11-24") == [("Tue 04:00", "Tue 20:00")]
    assert hours(STOCKS, "2026-11-24", rth=True) == [("Tue 09:30", "Tue 16:00")]
    assert hours(STOCKS, "2026-11-26") == []  # Thanksgiving
    assert hours(STOCKS, "2026-11-27", rth=True) == [("Fri 09:30", "Fri 13:00")]  # the early close
    assert hours(STOCKS, "2026-11-27") == [("Fri 04:00", "Fri 17:00")]
    assert hours(STOCKS, "2026-04-03") == [] and hours(STOCKS, "2026-11-28") == []  # Good Friday, a Saturday
    assert hours(STOCKS, "2026-03-09", rth=True) == [("Mon 09:30", "Mon 16:00")]  # the day after the DST change
    index = calendar_for("CBOE", "IND")
    assert hours(index, "2026-11-24") == [("Tue 09:30", "Tue 16:00")]  # an index has no extended hours


def test_futures_follow_the_globex_day_with_its_halt() -> None:
    assert hours(FUTURES, "2026-11-24", zone=CT) == [("Mon 17:00", "Tue 16:00")]
    assert hours(FUTURES, "2026-11-30", zone=CT) == [("Sun 17:00", "Mon 16:00")]  # the week opens on Sunday
    assert hours(FUTURES, "2026-11-26", zone=CT) == [("Wed 17:00", "Thu 12:00")]  # Thanksgiving: early close
    assert hours(FUTURES, "2026-11-24", rth=True, zone=CT) == [("Tue 08:30", "Tue 15:00")]
    assert hours(FUTURES, "2026-12-25", zone=CT) == [] and hours(FUTURES, "2026-04-03", zone=CT) == []
    halt = pd.Timestamp("2026-11-24 16:30", tz=CT)
    assert not FUTURES.is_open(halt) and FUTURES.is_open(halt + pd.Timedelta(hours=1))
    assert FUTURES.is_open(pd.Timestamp("2026-11-24 03:00", tz=CT))
    assert not FUTURES.is_open(pd.Timestamp("2026-11-24 03:00", tz=CT), use_rth=True)


def test_fx_trades_from_sunday_to_friday_five_pm_new_york() -> None:
    assert hours(FX, "2026-11-30") == [("Sun 17:00", "Mon 17:00")]
    assert hours(FX, "2026-11-27") == [("Thu 17:00", "Fri 17:00")]
    week = trading_minutes(FX, pd.Timestamp("2026-11-28", tz="UTC"), pd.Timestamp("2026-12-06", tz="UTC"))
    assert len(week) == 5 * 1440
    assert week[0] == pd.Timestamp("2026-11-29 17:00", tz=ET) and week[-1] == pd.Timestamp("2026-12-04 16:59", tz=ET)


def test_trading_minutes_count_each_session() -> None:
    day = (pd.Timestamp("2026-11-24", tz=ET), pd.Timestamp("2026-11-25", tz=ET))
    assert len(trading_minutes(STOCKS, *day)) == 16 * 60
    assert len(trading_minutes(STOCKS, *day, use_rth=True)) == 390
    friday = (pd.Timestamp("2026-11-27", tz=ET), pd.Timestamp("2026-11-28", tz=ET))
    assert len(trading_minutes(STOCKS, *friday, use_rth=True)) == 210
    globex = (pd.Timestamp("2026-11-23 17:00", tz=CT), pd.Timestamp("2026-11-24 17:00", tz=CT))
    assert len(trading_minutes(FUTURES, *globex)) == 23 * 60


def test_expected_bars_by_size() -> None:
    november = (pd.Timestamp("2026-11-01", tz="UTC"), pd.Timestamp("2026-12-01", tz="UTC"))
    daily = expected_bar_starts(STOCKS, "1d", *november)
    assert len(daily) == 20 and pd.Timestamp("2026-11-26", tz="UTC") not in daily  # 21 weekdays less Thanksgiving
    day = (pd.Timestamp("2026-11-24", tz=ET), pd.Timestamp("2026-11-25", tz=ET))
    hourly = expected_bar_starts(STOCKS, "1 hour", *day, use_rth=True)
    assert [t.tz_convert(ET).strftime("%H:%M") for t in hourly] == [  # UTC-aligned hours holding RTH minutes
        "09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"]
    assert len(expected_bar_starts(STOCKS, "5m", *day)) == 16 * 12
    with pytest.raises(ValidationError):
        expected_bar_starts(STOCKS, "1w", *november)


def rth_minutes(first: str, last: str) -> pd.DatetimeIndex:
    return trading_minutes(STOCKS, pd.Timestamp(first, tz=ET), pd.Timestamp(last, tz=ET), use_rth=True)


def test_missing_sessions_are_found_against_the_calendar() -> None:
    minutes = rth_minutes("2026-11-16", "2026-12-01")
    day = minutes.tz_convert(ET).date
    kept = minutes[(day != date(2026, 11, 18)) & ~((day == date(2026, 11, 20)) & (minutes.tz_convert(ET).hour >= 12))]
    gaps = missing_sessions(kept, STOCKS, "1m", use_rth=True)
    assert [(g.session, g.found) for g in gaps] == [(date(2026, 11, 18), 0)]  # not the weekend nor Thanksgiving
    assert gaps[0].first == pd.Timestamp("2026-11-18 09:30", tz=ET) and gaps[0].last == pd.Timestamp(
        "2026-11-18 15:59", tz=ET) and gaps[0].expected == 390
    partial = missing_sessions(kept, STOCKS, "1m", use_rth=True, partial=0.9)
    assert [(g.session, g.found) for g in partial] == [(date(2026, 11, 18), 0), (date(2026, 11, 20), 150)]
    assert partial[1].first == pd.Timestamp("2026-11-20 12:00", tz=ET)
    assert missing_sessions(minutes, STOCKS, "1m") == []  # complete RTH bars: no session is missing
    assert missing_sessions(pd.DatetimeIndex([], tz="UTC"), STOCKS, "1m") == []


def test_missing_daily_and_futures_sessions() -> None:
    sessions = expected_bar_starts(FUTURES, "1d", pd.Timestamp("2026-11-01", tz="UTC"),
                                   pd.Timestamp("2026-12-31", tz="UTC"))
    held = sessions.drop([pd.Timestamp("2026-12-01", tz="UTC"), pd.Timestamp("2026-12-02", tz="UTC")])
    assert [g.session for g in missing_sessions(held, FUTURES, "1d")] == [date(2026, 12, 1), date(2026, 12, 2)]
    hourly = expected_bar_starts(FUTURES, "1h", pd.Timestamp("2026-11-16", tz="UTC"),
                                 pd.Timestamp("2026-11-21", tz="UTC"))
    sunday_evening = (hourly >= pd.Timestamp("2026-11-17 23:00", tz="UTC")) & (
        hourly < pd.Timestamp("2026-11-18 22:00", tz="UTC"))
    gaps = missing_sessions(hourly[~sunday_evening], FUTURES, "1h")
    assert [(g.session, g.expected) for g in gaps] == [(date(2026, 11, 18), 23)]


def test_a_calendar_is_built_once_and_widened_for_old_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    import exchange_calendars

    built: list[tuple[str, object]] = []
    real = exchange_calendars.get_calendar

    def counted(name: str, **kwargs: object) -> object:
        built.append((name, kwargs.get("start")))
        return real(name, **kwargs)

    monkeypatch.setattr(exchange_calendars, "get_calendar", counted)
    monkeypatch.setattr(calendars, "_XCALS", {})
    calendars._schedule.cache_clear()
    for day in range(1, 28):
        STOCKS.windows(pd.Timestamp(f"2026-02-{day:02d}", tz="UTC"), pd.Timestamp(f"2026-02-{day:02d} 12:00", tz="UTC"))
        STOCKS.windows(pd.Timestamp(f"2025-{day % 12 + 1:02d}-03", tz="UTC"), pd.Timestamp("2026-01-01", tz="UTC"))
    assert built == [("XNYS", None)]  # once per process, whatever the ranges inside it
    assert hours(STOCKS, "2001-09-11") == []  # closed after the attacks: older than the default 20 years
    assert hours(STOCKS, "2001-09-17", rth=True) == [("Mon 09:30", "Mon 16:00")]
    assert [name for name, _ in built] == ["XNYS", "XNYS"] and built[1][1] is not None  # widened once
    calendars._schedule.cache_clear()
