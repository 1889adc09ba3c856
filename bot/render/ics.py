"""iCalendar output: one event per session, with a stable UID and a rising SEQUENCE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from icalendar import Calendar, Event

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


def _event(session: SessionData, now: datetime, domain: str) -> Event:
    event = Event()
    event.add("uid", session_uid(session.id, domain))
    event.add("sequence", session.sequence)
    event.add("dtstamp", _utc(now))
    event.add("dtstart", _utc(session.starts_at))
    event.add("dtend", _utc(session.ends_at))
    event.add("summary", session.title)
    description = _description(session)
    if description:
        event.add("description", description)
    if session.meeting_url:
        event.add("url", session.meeting_url)
        event.add("location", session.meeting_url)
    event.add("status", "CANCELLED" if session.cancelled else "CONFIRMED")
    return event


def _calendar(method: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    return calendar


def session_ics(
    session: SessionData, *, now: datetime, method: str = "PUBLISH", domain: str = UID_DOMAIN
) -> bytes:
    """A VCALENDAR holding the one event of `session` (for an email attachment)."""
    calendar = _calendar(method)
    calendar.add_component(_event(session, now, domain))
    return bytes(calendar.to_ical())


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
    calendar = _calendar("PUBLISH")
    if name:
        calendar.add("x-wr-calname", name)
    for session in sessions:
        stamp = (stamps or {}).get(session.id, now)
        calendar.add_component(_event(session, stamp, domain))
    return bytes(calendar.to_ical())
