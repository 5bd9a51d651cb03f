"""Service hours as a pure function of an injected local time (no clock is read)."""

from __future__ import annotations

import datetime as dt

import pytest

from gridlib.daemons.node.service_hours import Phase, ServiceHours, parse_clock_time

SERVING, STOPPED, ENDED = Phase.SERVING, Phase.STOPPED, Phase.ENDED


def at(hhmm: str) -> dt.datetime:
    return dt.datetime(2026, 11, 26) + dt.timedelta(seconds=parse_clock_time(hhmm))


def phases(hours: ServiceHours, times: list[str]) -> list[Phase]:
    return [hours.phase(at(t)) for t in times]


def test_no_options_means_no_service_hours() -> None:
    assert ServiceHours.from_options() is None


def test_a_day_window_with_stop_and_end() -> None:
    hours = ServiceHours.from_options("08:00", "17:00", "18:00")
    assert hours is not None
    assert phases(hours, ["07:59", "08:00", "12:00", "16:59", "17:00", "17:59", "18:00", "23:59",
                          "00:00"]) == [ENDED, SERVING, SERVING, SERVING, STOPPED, STOPPED, ENDED,
                                        ENDED, ENDED]


def test_a_night_window_wraps_midnight() -> None:
    hours = ServiceHours.from_options("19:00", "", "07:00")
    assert hours is not None
    assert phases(hours, ["18:59", "19:00", "23:59", "00:00", "06:59", "07:00", "12:00"]) == [
        ENDED, SERVING, SERVING, SERVING, SERVING, ENDED, ENDED]


def test_stop_and_end_may_wrap_separately() -> None:
    hours = ServiceHours.from_options("20:00", "23:30", "01:00")
    assert hours is not None
    assert phases(hours, ["20:00", "23:29", "23:30", "00:30", "01:00", "19:59"]) == [
        SERVING, SERVING, STOPPED, STOPPED, ENDED, ENDED]


def test_stop_without_end_stays_stopped_until_the_next_start() -> None:
    hours = ServiceHours.from_options("08:00", "17:00")
    assert hours is not None
    assert phases(hours, ["08:00", "16:59", "17:00", "03:00", "07:59"]) == [
        SERVING, SERVING, STOPPED, STOPPED, STOPPED]


def test_seconds_count_at_the_boundary() -> None:
    hours = ServiceHours.from_options("08:00", "17:00")
    assert hours is not None
    assert hours.phase(dt.time(16, 59, 59)) is SERVING
    assert hours.phase(dt.time(17, 0, 0)) is STOPPED


@pytest.mark.parametrize(("start", "stop", "end", "message"), [
    ("08:00", "", "", "needs --service-stop or --service-end"),
    ("", "17:00", "", "need --service-start"),
    ("", "", "18:00", "need --service-start"),
    ("8am", "17:00", "", "--service-start: '8am' is not a time of day"),
    ("08:00", "24:00", "", "--service-stop: '24:00' is not a time of day"),
    ("08:00", "08:60", "", "not a time of day"),
    ("08:00", "08:00", "", "same time as --service-start"),
    ("08:00", "", "08:00", "same time as --service-start"),
    ("08:00", "18:00", "17:00", "must come before --service-end"),
    ("08:00", "17:00", "17:00", "must come before --service-end"),
    ("20:00", "02:00", "23:00", "must come before --service-end"),
])
def test_bad_windows_say_which_option_is_wrong(start: str, stop: str, end: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ServiceHours.from_options(start, stop, end)


def test_describe_and_parse() -> None:
    hours = ServiceHours.from_options("8:05", "", "17:30")
    assert hours is not None
    assert hours.describe() == "start=08:05 end=17:30" and hours.next_start() == "08:05"
    assert parse_clock_time("23:59:59") == 86399
