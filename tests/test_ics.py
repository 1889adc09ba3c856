"""iCalendar output, checked by parsing it back with icalendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from bot.domain import Paper, SessionData, Speaker
from bot.render.ics import calendar_feed, session_ics, session_uid

TITLE = "DiffuCoder: Understanding and Improving Masked Diffusion Models for Code Generation"

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _session(**changes: Any) -> SessionData:
    values: dict[str, Any] = {
        "id": "diffucoder",
        "title": TITLE,
        "starts_at": datetime(2026, 3, 16, 14, 0, tzinfo=UTC),
        "duration": timedelta(minutes=90),
        "speakers": (Speaker("Shansan Gong", "The University of Hong Kong"),),
        "abstract": "Diffusion language models (DLMs) generate text by denoising a sequence.",
        "papers": (Paper("DiffuCoder", "https://arxiv.org/abs/2506.20639"),),
        "meeting_url": "https://example.zoom.us/j/123",
        "sequence": 2,
    }
    values.update(changes)
    return SessionData(**values)


def _events(data: bytes) -> tuple[Calendar, list[Any]]:
    calendar = Calendar.from_ical(data)
    return calendar, list(calendar.walk("VEVENT"))


def test_uid_is_stable_per_session() -> None:
    assert session_uid("diffucoder") == "diffucoder@reading-group-bot"
    assert session_uid("diffucoder") == session_uid("diffucoder")
    assert session_uid("other") != session_uid("diffucoder")


def test_session_ics_has_one_complete_event() -> None:
    session = _session()
    calendar, events = _events(session_ics(session, now=NOW))
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert "reading-group-bot" in str(calendar["PRODID"])
    assert len(events) == 1
    event = events[0]
    assert str(event["UID"]) == "diffucoder@reading-group-bot"
    assert int(event["SEQUENCE"]) == 2
    assert event.decoded("DTSTAMP") == NOW
    assert event.decoded("DTSTART") == session.starts_at
    assert event.decoded("DTEND") == session.starts_at + timedelta(minutes=90)
    assert str(event["SUMMARY"]) == session.title
    description = str(event["DESCRIPTION"])
    assert "Shansan Gong (The University of Hong Kong)" in description
    assert "denoising a sequence" in description
    assert "https://arxiv.org/abs/2506.20639" in description
    assert "https://example.zoom.us/j/123" in description
    assert str(event["URL"]) == "https://example.zoom.us/j/123"
    assert str(event["LOCATION"]) == "https://example.zoom.us/j/123"
    assert str(event["STATUS"]) == "CONFIRMED"


def test_times_are_written_in_utc_whatever_zone_they_come_in() -> None:
    local = datetime(2026, 3, 16, 10, 0, tzinfo=ZoneInfo("America/New_York"))
    data = session_ics(_session(starts_at=local), now=NOW.astimezone(ZoneInfo("Asia/Tokyo")))
    assert b"DTSTART:20260316T140000Z" in data
    assert b"DTEND:20260316T153000Z" in data
    assert b"DTSTAMP:20260301T120000Z" in data


def test_cancelled_session_is_marked_cancelled() -> None:
    _, events = _events(session_ics(_session(status="cancelled"), now=NOW))
    assert str(events[0]["STATUS"]) == "CANCELLED"


def test_a_time_change_keeps_the_uid_and_raises_the_sequence() -> None:
    before = _session(sequence=0)
    after = _session(sequence=1, starts_at=before.starts_at + timedelta(days=7))
    _, old = _events(session_ics(before, now=NOW))
    _, new = _events(session_ics(after, now=NOW))
    assert str(old[0]["UID"]) == str(new[0]["UID"])
    assert int(new[0]["SEQUENCE"]) > int(old[0]["SEQUENCE"])


def test_method_can_be_chosen() -> None:
    calendar, _ = _events(session_ics(_session(), now=NOW, method="REQUEST"))
    assert str(calendar["METHOD"]) == "REQUEST"


def test_session_without_link_has_no_url_or_location() -> None:
    _, events = _events(session_ics(_session(meeting_url=None, speakers=(), papers=()), now=NOW))
    assert "URL" not in events[0]
    assert "LOCATION" not in events[0]


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        session_ics(_session(), now=datetime(2026, 3, 1, 12, 0))


def test_feed_has_one_event_per_session_with_the_same_uids() -> None:
    sessions = [_session(), _session(id="llada", title="LLaDA", sequence=0)]
    data = calendar_feed(sessions, now=NOW, name="Diffusion LLM Reading Group")
    calendar, events = _events(data)
    assert str(calendar["X-WR-CALNAME"]) == "Diffusion LLM Reading Group"
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert [str(e["UID"]) for e in events] == [session_uid("diffucoder"), session_uid("llada")]
    _, single = _events(session_ics(sessions[1], now=NOW))
    assert str(single[0]["UID"]) == str(events[1]["UID"])


def test_empty_feed_is_still_a_calendar() -> None:
    calendar, events = _events(calendar_feed([], now=NOW, name="Group"))
    assert events == []
    assert str(calendar["VERSION"]) == "2.0"
