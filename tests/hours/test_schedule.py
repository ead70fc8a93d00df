"""The schedule logic alone (adapter.hours), with a frozen clock: every question is asked
about an instant the test names, on both sides of each boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from adapter.hours import HoursError, iso_local, iso_utc, parse_hours

WEEKDAYS = {day: ["08:00-17:00"] for day in ("monday", "tuesday", "wednesday", "thursday",
                                             "friday")}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_open_and_closed_on_either_side_of_each_boundary():
    hours = parse_hours({"timezone": "Africa/Nairobi", **WEEKDAYS})  # UTC+3, no DST
    assert not hours.is_open(utc(2026, 12, 7, 4, 59, 59))  # Monday 07:59:59 in Nairobi
    assert hours.is_open(utc(2026, 12, 7, 5, 0))  # 08:00: open
    assert hours.is_open(utc(2026, 12, 7, 13, 59, 59))  # 16:59:59
    assert not hours.is_open(utc(2026, 12, 7, 14, 0))  # 17:00: closed (the end is out)
    # closed → open: the next opening is the next 08:00, local, as an aware datetime
    opening = hours.next_opening(utc(2026, 12, 7, 14, 0))
    assert opening.tzinfo is not None
    assert opening.astimezone(UTC) == utc(2026, 12, 8, 5, 0)
    assert (iso_utc(opening), iso_local(opening)) == ("2026-12-08T05:00:00Z",
                                                      "2026-12-08T08:00:00+03:00")
    # Friday evening: Monday morning (the weekend is absent: closed)
    assert hours.next_opening(utc(2026, 12, 11, 15, 0)).astimezone(UTC) == utc(2026, 12, 14, 5)
    # open now: the next opening is now
    assert hours.next_opening(utc(2026, 12, 7, 9, 0)) == utc(2026, 12, 7, 9, 0)


def test_several_ranges_a_day_and_one_past_midnight():
    hours = parse_hours({"timezone": "UTC", "monday": ["08:00-12:00", "14:00-18:00"],
                         "friday": ["20:00-02:00"]})
    assert hours.is_open(utc(2026, 12, 7, 11, 59)) and not hours.is_open(utc(2026, 12, 7, 12))
    assert hours.next_opening(utc(2026, 12, 7, 12, 30)) == utc(2026, 12, 7, 14)
    assert hours.is_open(utc(2026, 12, 11, 23, 0))  # Friday night
    assert hours.is_open(utc(2026, 12, 12, 1, 59))  # its tail, on Saturday
    assert not hours.is_open(utc(2026, 12, 12, 2, 0))
    assert not hours.is_open(utc(2026, 12, 11, 19, 59))
    assert parse_hours({"timezone": "UTC", "sunday": ["00:00-24:00"]}).is_open(
        utc(2026, 12, 13, 23, 59))


def test_a_closed_date_closes_a_weekly_opening_in_the_sites_own_date():
    hours = parse_hours({"timezone": "Africa/Nairobi", **WEEKDAYS,
                         "closed": ["2026-12-25", date(2026, 12, 28)]})  # TOML dates too
    christmas_morning = utc(2026, 12, 25, 6, 0)  # Friday 09:00 in Nairobi
    assert not hours.is_open(christmas_morning)
    assert hours.is_open(utc(2026, 12, 24, 6, 0))
    # Friday 25th and Monday 28th closed: Tuesday 29th at 08:00
    assert hours.next_opening(christmas_morning).astimezone(UTC) == utc(2026, 12, 29, 5)
    # 22:30 UTC on the 24th is already the 25th in Nairobi
    assert hours.next_opening(utc(2026, 12, 24, 22, 30)).date() == date(2026, 12, 29)


def test_a_week_with_nothing_open_has_no_next_opening():
    hours = parse_hours({"timezone": "Europe/London"})
    assert not hours.is_open(utc(2026, 12, 7, 12))
    assert hours.next_opening(utc(2026, 12, 7, 12)) is None
    assert iso_utc(None) is None and iso_local(None) is None


def test_the_opening_stays_at_eight_local_across_a_dst_change():
    """Europe/London springs forward on 29 March 2026 (01:00 UTC) and falls back on 25
    October: 08:00 stays 08:00 on the helpline's clocks, so it moves in UTC."""
    daily = {day: ["08:00-17:00"] for day in ("monday", "tuesday", "wednesday", "thursday",
                                              "friday", "saturday", "sunday")}
    hours = parse_hours({"timezone": "Europe/London", **daily})
    before = hours.next_opening(utc(2026, 3, 28, 18))  # Saturday evening, GMT
    after = hours.next_opening(utc(2026, 3, 29, 18))  # Sunday evening, BST
    assert before.astimezone(UTC) == utc(2026, 3, 29, 7)  # Sunday 08:00 BST
    assert after.astimezone(UTC) == utc(2026, 3, 30, 7)
    autumn = hours.next_opening(utc(2026, 10, 24, 18))  # Sunday 25 Oct: back to GMT
    assert autumn.astimezone(UTC) == utc(2026, 10, 25, 8)
    for opening in (before, after, autumn):
        assert (opening.hour, opening.minute) == (8, 0)
    assert iso_local(before) == "2026-03-29T08:00:00+01:00"
    assert iso_local(autumn) == "2026-10-25T08:00:00+00:00"
    # The hour the clocks skip: an opening at 01:30 on the change is at 02:00 BST
    skipped = parse_hours({"timezone": "Europe/London", "sunday": ["01:30-05:00"]})
    opening = skipped.next_opening(utc(2026, 3, 28, 12))
    assert opening.astimezone(UTC) == utc(2026, 3, 29, 1, 0)
    assert skipped.is_open(opening + timedelta(minutes=1))


def test_always_open():
    hours = parse_hours({"timezone": "UTC", "always_open": True, "closed": ["2026-12-25"]})
    assert hours.is_open(utc(2026, 12, 7, 3))
    assert not hours.is_open(utc(2026, 12, 25, 3))
    assert hours.next_opening(utc(2026, 12, 25, 3)) == utc(2026, 12, 26)


@pytest.mark.parametrize(("raw", "error"), [
    ({}, "hours.timezone: required"),
    ({"timezone": "Mars/Olympus"}, "hours.timezone: unknown time zone 'Mars/Olympus'"),
    ({"timezone": "UTC", "outside": "queue"}, "hours.outside: must be one of hold, close"),
    ({"timezone": "UTC", "monday": "08:00-17:00"}, "hours.monday: a list"),
    ({"timezone": "UTC", "monday": ["8-17"]}, "hours.monday: '8-17' is not a range"),
    ({"timezone": "UTC", "monday": ["08:00-08:00"]}, "opens and closes at the same time"),
    ({"timezone": "UTC", "monday": ["08:00-12:00", "11:00-13:00"]}, "hours.monday: ranges "
                                                                     "overlap"),
    ({"timezone": "UTC", "closed": ["25/12/2026"]}, "hours.closed: '25/12/2026' is not a date"),
    ({"timezone": "UTC", "mondays": []}, "hours.mondays: unknown key"),
    ({"timezone": "UTC", "always_open": True, "monday": []}, "hours.always_open:"),
])
def test_bad_values_are_refused_naming_the_key(raw, error):
    with pytest.raises(HoursError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_hours(raw)
