"""Links the website hands out: "add to calendar" URLs, calendar subscriptions, safe hrefs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, urlencode, urlsplit

GOOGLE_CALENDAR = "https://calendar.google.com/calendar/render"
OUTLOOK_CALENDAR = "https://outlook.live.com/calendar/0/action/compose"


@lru_cache(maxsize=4096)
def safe_href(url: str | None) -> str | None:
    """`url` when it is an http(s) URL with a host, else None: data never becomes a live link
    to `javascript:` or anything else, whatever reached the database."""
    if not url:
        return None
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if any(c.isspace() or not c.isprintable() for c in text):
        return None
    return text


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def google_calendar(
    title: str, start: datetime, end: datetime, details: str, location: str | None
) -> str:
    """A Google Calendar "add event" link, filled in."""
    query = {
        "action": "TEMPLATE",
        "text": title,
        "dates": f"{_stamp(start)}/{_stamp(end)}",
        "details": details,
        **({"location": location} if location else {}),
    }
    return f"{GOOGLE_CALENDAR}?{urlencode(query, quote_via=quote)}"


def outlook_calendar(
    title: str, start: datetime, end: datetime, details: str, location: str | None
) -> str:
    """An Outlook (outlook.com) "new event" link, filled in."""
    query = {
        "path": "/calendar/action/compose",
        "rru": "addevent",
        "subject": title,
        "startdt": _iso(start),
        "enddt": _iso(end),
        "body": details,
        **({"location": location} if location else {}),
    }
    return f"{OUTLOOK_CALENDAR}?{urlencode(query, quote_via=quote)}"


def webcal(url: str) -> str | None:
    """The `webcal://` form of an http(s) calendar URL (calendar apps subscribe to it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    return "webcal://" + url.split("://", 1)[1]


def tag_id(domain: str, what: str) -> str:
    """A stable `urn:uuid:` id for a feed or entry when the site has no public address."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'reading-group-bot:{domain}:{what}')}"
