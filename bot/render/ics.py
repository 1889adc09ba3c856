"""iCalendar output: one event per session, with a stable UID and a rising SEQUENCE.

Written here line by line (RFC 5545: escaped TEXT, lines folded at 75 octets): a site of
1,000 sessions writes 1,000 calendar files, and a general library took most of that build.
The tests read every file back with the `icalendar` library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from bot.domain import SessionData

PRODID = "-//reading-group-bot//reading-group-bot//EN"
UID_DOMAIN = "reading-group-bot"  # when nothing names the group (Settings.uid_domain)


def session_uid(session_id: str, domain: str = UID_DOMAIN) -> str:
    """The calendar UID of a session: the same for every version of it, and `domain` (the
    group's site, or its sender's domain) keeps two groups' `week-1` apart in one calendar."""
    return f"{session_id}@{domain}"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"a naive datetime cannot go into a calendar: {value!r}")
    return value.astimezone(UTC).replace(microsecond=0)


def _description(session: SessionData) -> str:
    blocks: list[str] = []
    if session.speakers:
        names = [
            f"{s.name} ({s.affiliation})" if s.affiliation else s.name for s in session.speakers
        ]
        blocks.append("Speakers: " + ", ".join(names))
    if session.abstract.strip():
        blocks.append(session.abstract.strip())
    if session.papers:
        lines = [f"- {p.title}: {p.url}" if p.url else f"- {p.title}" for p in session.papers]
        blocks.append("Papers:\n" + "\n".join(lines))
    if session.meeting_url:
        blocks.append(f"Meeting link: {session.meeting_url}")
    if session.recording_url:
        blocks.append(f"Recording: {session.recording_url}")
    return "\n\n".join(blocks)


def _text(value: str) -> str:
    """A TEXT value escaped as RFC 5545 §3.3.11 says (line breaks as \\n)."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def _fold(line: str) -> bytes:
    """One content line, folded at 75 octets (RFC 5545 §3.1), never inside a UTF-8 character."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return data + b"\r\n"
    parts: list[bytes] = []
    start, limit = 0, 75
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte
            end -= 1
        parts.append(data[start:end])
        start, limit = end, 74  # a folded line starts with a space
    return b"\r\n ".join(parts) + b"\r\n"


def _stamp(value: datetime) -> str:
    return _utc(value).strftime("%Y%m%dT%H%M%SZ")


def _event(session: SessionData, now: datetime, domain: str) -> bytes:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{_text(session_uid(session.id, domain))}",
        f"SEQUENCE:{session.sequence}",
        f"DTSTAMP:{_stamp(now)}",
        f"DTSTART:{_stamp(session.starts_at)}",
        f"DTEND:{_stamp(session.ends_at)}",
        f"SUMMARY:{_text(session.title)}",
    ]
    description = _description(session)
    if description:
        lines.append(f"DESCRIPTION:{_text(description)}")
    if session.meeting_url:
        lines.append(f"URL:{session.meeting_url}")
        lines.append(f"LOCATION:{_text(session.meeting_url)}")
    lines.append(f"STATUS:{'CANCELLED' if session.cancelled else 'CONFIRMED'}")
    lines.append("END:VEVENT")
    return b"".join(_fold(line) for line in lines)


def _calendar(method: str, events: Sequence[bytes], name: str = "") -> bytes:
    head = [f"PRODID:{PRODID}", "VERSION:2.0", "CALSCALE:GREGORIAN", f"METHOD:{method}"]
    if name:
        head.append(f"X-WR-CALNAME:{_text(name)}")
    begin = b"".join(_fold(line) for line in ["BEGIN:VCALENDAR", *head])
    return begin + b"".join(events) + b"END:VCALENDAR\r\n"


def session_ics(
    session: SessionData, *, now: datetime, method: str = "PUBLISH", domain: str = UID_DOMAIN
) -> bytes:
    """A VCALENDAR holding the one event of `session` (for an email attachment)."""
    return _calendar(method, [_event(session, now, domain)])


def calendar_feed(
    sessions: Sequence[SessionData],
    *,
    now: datetime,
    name: str,
    domain: str = UID_DOMAIN,
    stamps: Mapping[str, datetime] | None = None,
) -> bytes:
    """A VCALENDAR feed with one event per session, named `name` for calendar apps.

    `stamps` (session id -> its last change) gives each event its DTSTAMP instead of `now`, so
    the same data always gives the same file (the website's calendar).
    """
    found = stamps or {}
    events = [_event(s, found.get(s.id, now), domain) for s in sessions]
    return _calendar("PUBLISH", events, name)
