"""Zone-correct display values: abbreviations and clocks across DST, dates across midnight."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.render.timefmt import (
    humanize_until,
    parse_instant,
    summary,
    utc_offset_label,
    when_line,
    zone_time,
    zone_times,
)

NY = ZoneInfo("America/New_York")
ZONES = ("America/New_York", "Europe/Paris")


def ny(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A New York wall-clock time as an aware UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=NY).astimezone(UTC)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_zone_time_gives_every_display_string() -> None:
    item = zone_time(ny(2026, 12, 14), "America/New_York")
    assert item.zone == "America/New_York"
    assert item.abbr == "EST"
    assert item.local == datetime(2026, 12, 14, 10, 0, tzinfo=NY)
    assert item.weekday == "Monday"
    assert item.date == "Monday, December 14, 2026"
    assert item.short_date == "Mon Dec 14"
    assert item.time == "10:00 AM"
    assert item.short_time == "10 AM"
    assert item.label == "10 AM EST"
    assert item.iso == "2026-12-14T10:00:00-05:00"
    assert str(item) == "10 AM EST"


@pytest.mark.parametrize(
    ("hour", "minute", "time", "short"),
    [
        (0, 0, "12:00 AM", "12 AM"),
        (0, 5, "12:05 AM", "12:05 AM"),
        (9, 30, "9:30 AM", "9:30 AM"),
        (12, 0, "12:00 PM", "12 PM"),
        (13, 45, "1:45 PM", "1:45 PM"),
        (23, 0, "11:00 PM", "11 PM"),
    ],
)
def test_twelve_hour_clock_keeps_minutes_only_when_not_zero(
    hour: int, minute: int, time: str, short: str
) -> None:
    item = zone_time(ny(2026, 6, 1, hour, minute), "America/New_York")
    assert (item.time, item.short_time) == (time, short)


def test_new_york_abbreviation_changes_on_2026_03_08() -> None:
    before = zone_time(datetime(2026, 3, 8, 6, 30, tzinfo=UTC), "America/New_York")
    after = zone_time(datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "America/New_York")
    assert (before.label, before.short_date) == ("1:30 AM EST", "Sun Mar 8")
    assert (after.label, after.short_date) == ("3:30 AM EDT", "Sun Mar 8")
    assert zone_time(ny(2026, 3, 7), "America/New_York").abbr == "EST"
    assert zone_time(ny(2026, 3, 9), "America/New_York").abbr == "EDT"


@pytest.mark.parametrize(
    "day",
    _days(date(2026, 3, 8), date(2026, 3, 28)) + _days(date(2026, 10, 25), date(2026, 10, 31)),
)
def test_new_york_and_paris_are_five_hours_apart_while_only_one_side_changed(day: date) -> None:
    times = zone_times(ny(day.year, day.month, day.day), ZONES)
    assert [t.label for t in times] == ["10 AM EDT", "3 PM CET"]


@pytest.mark.parametrize(
    ("day", "labels"),
    [
        (date(2026, 3, 7), ["10 AM EST", "4 PM CET"]),
        (date(2026, 3, 29), ["10 AM EDT", "4 PM CEST"]),
        (date(2026, 7, 1), ["10 AM EDT", "4 PM CEST"]),
        (date(2026, 10, 24), ["10 AM EDT", "4 PM CEST"]),
        (date(2026, 11, 2), ["10 AM EST", "4 PM CET"]),
        (date(2026, 12, 14), ["10 AM EST", "4 PM CET"]),
    ],
)
def test_new_york_and_paris_are_six_hours_apart_otherwise(day: date, labels: list[str]) -> None:
    times = zone_times(ny(day.year, day.month, day.day), ZONES)
    assert [t.label for t in times] == labels


def test_session_in_the_gap_week_shows_edt_and_cet() -> None:
    assert summary(ny(2026, 3, 16), ZONES) == "Mon Mar 16 · 10 AM EDT / 3 PM CET"


def test_seed_site_session_reads_as_the_site_meant_it() -> None:
    assert summary(ny(2025, 12, 15), ZONES) == "Mon Dec 15 · 10 AM EST / 4 PM CET"


def test_far_zone_past_midnight_names_its_own_date() -> None:
    line = summary(ny(2026, 12, 14, 20), ("America/New_York", "Europe/Paris", "Asia/Tokyo"))
    assert line == "Mon Dec 14 · 8 PM EST / Tue Dec 15, 2 AM CET / Tue Dec 15, 10 AM JST"


def test_reference_zone_ahead_names_the_earlier_date_of_the_others() -> None:
    instant = datetime(2026, 12, 15, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo"))
    line = summary(instant, ("Asia/Tokyo", "America/Los_Angeles"))
    assert line == "Tue Dec 15 · 12:30 AM JST / Mon Dec 14, 7:30 AM PST"


def test_zone_without_letters_is_shown_as_a_utc_offset() -> None:
    assert zone_time(ny(2026, 12, 14), "Asia/Dubai").label == "7 PM UTC+4"
    assert zone_time(ny(2026, 12, 14), "America/Sao_Paulo").label == "12 PM UTC−3"


def test_half_hour_zone_shows_minutes() -> None:
    assert zone_time(ny(2026, 12, 14), "Asia/Kolkata").label == "8:30 PM IST"


def test_identical_zones_are_not_repeated_in_the_line() -> None:
    line = summary(ny(2026, 12, 14), ("America/New_York", "Europe/Paris", "Europe/Berlin"))
    assert line == "Mon Dec 14 · 10 AM EST / 4 PM CET"


def test_when_line_of_nothing_is_empty() -> None:
    assert when_line([]) == ""


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        zone_time(datetime(2026, 12, 14, 10, 0), "America/New_York")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-16T14:00:00Z", datetime(2026, 3, 16, 14, 0, tzinfo=UTC)),
        ("2026-03-16T14:00:00z", datetime(2026, 3, 16, 14, 0, tzinfo=UTC)),
        ("2026-03-16T10:00:00-04:00", datetime(2026, 3, 16, 14, 0, tzinfo=UTC)),
        ("2026-03-16 15:00+01:00", datetime(2026, 3, 16, 14, 0, tzinfo=UTC)),
        (" 2026-03-16T14:00Z ", datetime(2026, 3, 16, 14, 0, tzinfo=UTC)),
    ],
)
def test_parse_instant_accepts_offset_or_z_and_returns_utc(text: str, expected: datetime) -> None:
    value = parse_instant(text)
    assert value == expected
    assert value.utcoffset() == timedelta(0)
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2026-03-16T14:00:00", "2026-03-16", "tomorrow", "", "2026-13-01T00:00Z"]
)
def test_parse_instant_refuses_anything_without_an_offset(text: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(text)


@pytest.mark.parametrize(
    ("delta", "phrase"),
    [
        (timedelta(0), "now"),
        (timedelta(minutes=-5), "now"),
        (timedelta(seconds=20), "now"),
        (timedelta(minutes=1), "in 1 minute"),
        (timedelta(minutes=20), "in 20 minutes"),
        (timedelta(minutes=52), "in 50 minutes"),
        (timedelta(minutes=59, seconds=1), "in 1 hour"),
        (timedelta(hours=1), "in 1 hour"),
        (timedelta(minutes=90), "in 1 hour 30 minutes"),
        (timedelta(hours=12), "in 12 hours"),
        (timedelta(hours=23, minutes=59), "in 1 day"),
        (timedelta(days=1), "in 1 day"),
        (timedelta(days=1, hours=12), "in 1 day 12 hours"),
        (timedelta(days=7), "in 7 days"),
        (timedelta(days=6, hours=23, minutes=58), "in 7 days"),
    ],
)
def test_humanize_until_rounds_to_what_a_reader_expects(delta: timedelta, phrase: str) -> None:
    assert humanize_until(delta) == phrase


NUMERIC_ZONES = ("America/Sao_Paulo", "Asia/Kathmandu", "Asia/Tehran", "Atlantic/Azores")


def test_numeric_abbreviations_are_shown_as_utc_offsets() -> None:
    moment = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)
    labels = [zone_time(moment, zone).label for zone in NUMERIC_ZONES]
    assert labels == ["12 PM UTC−3", "8:45 PM UTC+5:45", "6:30 PM UTC+3:30", "2 PM UTC−1"]
    summer = zone_time(moment.replace(month=7), "Atlantic/Azores")
    assert summer.label == "3 PM UTC"  # +00 in summer
    assert "−" in labels[0] and "-" not in labels[0]  # U+2212, as SPEC §8 writes it


ORACLE_ZONES = (
    "America/New_York",
    "Europe/Paris",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/St_Johns",
    *NUMERIC_ZONES,
)


@pytest.mark.skipif(shutil.which("date") is None, reason="GNU date is not installed")
def test_local_times_and_abbreviations_agree_with_gnu_date() -> None:
    """602 random instants in 14 zones, each checked against GNU `date` (an independent reader
    of the zone database)."""
    rng = random.Random(20261201)
    first, last = datetime(2025, 1, 1, tzinfo=UTC), datetime(2029, 12, 31, tzinfo=UTC)
    span = int((last - first).total_seconds())
    for zone in ORACLE_ZONES:
        instants = [first + timedelta(seconds=rng.randrange(span)) for _ in range(43)]
        out = subprocess.run(
            ["date", "-f", "-", "+%Y-%m-%d %H:%M %a %Z %z"],
            input="".join(f"@{int(t.timestamp())}\n" for t in instants),
            env={"TZ": zone, "LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        for instant, line in zip(instants, out, strict=True):
            day, clock, weekday, abbr, offset = line.split()
            shown = zone_time(instant, zone)
            assert shown.local.strftime("%Y-%m-%d %H:%M") == f"{day} {clock}", (zone, instant)
            assert shown.weekday.startswith(weekday), (zone, instant)
            if abbr[0] in "+-":  # numeric: ours says UTC±H[:MM] for the same offset
                sign, hours, minutes = offset[0], int(offset[1:3]), int(offset[3:5])
                value = (hours * 60 + minutes) * (-1 if sign == "-" else 1)
                assert shown.abbr == utc_offset_label(timedelta(minutes=value)), (zone, line)
            else:
                assert shown.abbr == abbr, (zone, instant, line)
