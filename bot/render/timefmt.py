"""Zone-correct display values, all derived from one aware instant (pure functions, no clock)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_NUMERIC = re.compile(r"^[+-][0-9]{2}(?::?[0-9]{2})?$")  # tzdata's "-03", "+0545"
# English names, independent of the process locale (strftime's %A/%B follow setlocale).
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class ZoneTime:
    """One instant as seen in one display zone, with ready-made strings."""

    zone: str  # IANA name, e.g. "America/New_York"
    abbr: str  # valid on that date: "EST"/"EDT", "CET"/"CEST"; a numeric one as "UTC+3"
    local: datetime  # aware, in `zone`
    weekday: str  # "Monday"
    date: str  # "Monday, December 14, 2026"
    short_date: str  # "Mon Dec 14"
    time: str  # "10:00 AM"
    short_time: str  # "10 AM", or "10:30 AM" when minutes are not 0
    label: str  # "10 AM EST"
    iso: str  # "2026-12-14T10:00:00-05:00"

    def __str__(self) -> str:
        return self.label


def _require_aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"a naive datetime cannot be shown in a time zone: {instant!r}")
    return instant


def _clock(local: datetime, *, short: bool) -> str:
    hour = local.hour % 12 or 12
    half = "AM" if local.hour < 12 else "PM"
    if short and local.minute == 0:
        return f"{hour} {half}"
    return f"{hour}:{local.minute:02d} {half}"


def utc_offset_label(offset: timedelta) -> str:
    """ "UTC−3", "UTC+5:45", "UTC" for no offset (the minus sign is U+2212)."""
    minutes = round(offset.total_seconds() / 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "\u2212"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _abbreviation(local: datetime) -> str:
    """The zone's abbreviation on that date ("EST", "CEST"); a numeric one ("-03") as UTC−3."""
    name = local.tzname() or ""
    if name and not _NUMERIC.match(name):
        return name
    offset = local.utcoffset()
    return utc_offset_label(offset if offset is not None else timedelta(0))


def zone_time(instant: datetime, zone: str) -> ZoneTime:
    """The display values of an aware instant in one IANA zone."""
    local = _require_aware(instant).astimezone(ZoneInfo(zone))
    weekday = _WEEKDAYS[local.weekday()]
    month = _MONTHS[local.month - 1]
    short_time = _clock(local, short=True)
    abbr = _abbreviation(local)
    return ZoneTime(
        zone=zone,
        abbr=abbr,
        local=local,
        weekday=weekday,
        date=f"{weekday}, {month} {local.day}, {local.year}",
        short_date=f"{weekday[:3]} {month[:3]} {local.day}",
        time=_clock(local, short=False),
        short_time=short_time,
        label=f"{short_time} {abbr}",
        iso=local.isoformat(),
    )


def zone_times(instant: datetime, zones: Sequence[str]) -> list[ZoneTime]:
    """The instant in each display zone, in order (the first is the reference zone)."""
    return [zone_time(instant, zone) for zone in zones]


def when_line(times: Sequence[ZoneTime]) -> str:
    """A line like "Mon Dec 14 · 10 AM EST / 4 PM CET", naming a date that differs."""
    if not times:
        return ""
    reference = times[0]
    labels: list[str] = []
    for item in times:
        if item.local.date() != reference.local.date():
            label = f"{item.short_date}, {item.label}"
        else:
            label = item.label
        if label not in labels:  # two zones with the same clock and abbreviation add nothing
            labels.append(label)
    return f"{reference.short_date} · {' / '.join(labels)}"


def summary(instant: datetime, zones: Sequence[str]) -> str:
    """The one-line summary of an instant in the display zones."""
    return when_line(zone_times(instant, zones))


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def humanize_until(delta: timedelta) -> str:
    """A phrase like "in 1 day", "in 1 hour 30 minutes", "in 20 minutes" or "now" (rounded)."""
    minutes = round(delta.total_seconds() / 60)
    if minutes <= 0:
        return "now"
    if minutes < 50:
        return f"in {_plural(minutes, 'minute')}"
    if minutes < 22 * 60:  # to the nearest 5 minutes, so a send a moment late still says "1 hour"
        hours, rest = divmod(5 * round(minutes / 5), 60)
        parts = ([_plural(hours, "hour")] if hours else []) + (
            [_plural(rest, "minute")] if rest else []
        )
        return "in " + " ".join(parts)
    hours = round(minutes / 60)
    days, rest = divmod(hours, 24)
    if days >= 2:
        return f"in {_plural(round(hours / 24), 'day')}"
    parts = ([_plural(days, "day")] if days else []) + ([_plural(rest, "hour")] if rest else [])
    return "in " + " ".join(parts)


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 time with an offset or Z (as `--now` takes) into an aware UTC datetime."""
    raw = text.strip()
    if raw[-1:] == "z":
        raw = raw[:-1] + "Z"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"not an ISO 8601 time with offset or Z (e.g. 2026-03-16T14:00:00Z): {text!r}"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"an offset or Z is required (e.g. 2026-03-16T10:00:00-04:00): {text!r}")
    return value.astimezone(UTC)
