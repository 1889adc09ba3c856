"""What the website's templates see: each session and the group, prepared once per build."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import Settings
from bot.domain import GROUP_LINKS, GroupInfo, SessionData, SiteData
from bot.render.renderer import speaker_names
from bot.render.timefmt import ZoneTime, when_line, zone_times
from bot.site.links import google_calendar, outlook_calendar, safe_href, tag_id

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LINK_LABELS = {
    "email_list": "Email list",
    "x": "X (Twitter)",
    "bluesky": "Bluesky",
    "mastodon": "Mastodon",
    "youtube": "YouTube",
}
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SCHEMA = "https://schema.org/"


def iso_z(value: datetime) -> str:
    """ "2026-12-14T15:00:00Z": the form of every `<time datetime>` and feed date."""
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def paragraphs(text: str | None) -> list[str]:
    """Text split at blank lines; single line breaks stay (the stylesheet keeps them)."""
    return [p.strip() for p in _PARAGRAPH_BREAK.split(text or "") if p.strip()]


def city(zone: str) -> str:
    """ "New York" for America/New_York: how a zone is named to a reader."""
    return zone.rsplit("/", 1)[-1].replace("_", " ")


@dataclass(frozen=True)
class Person:
    """A speaker or organizer as shown: links only when they are http(s)."""

    name: str
    affiliation: str | None = None
    url: str | None = None
    bio: list[str] | None = None
    photo: str | None = None


@dataclass(frozen=True)
class Link:
    """A labelled http(s) link."""

    label: str
    url: str


@dataclass(frozen=True)
class ZoneRow:
    """One display zone's view of a session's start."""

    city: str
    zone: str
    date: str
    time: str
    abbr: str
    iso: str  # the instant, for <time datetime> (…Z, as every time on the site)


@dataclass(frozen=True)
class SessionView:
    """One session as every page, the feed and the calendars show it."""

    id: str
    title: str
    path: str  # "sessions/ID/", relative to the site's root
    ics_path: str  # "sessions/ID/session.ics"
    page_url: str | None  # absolute, with SITE_URL
    entry_id: str  # the Atom entry id: the page's URL, or a stable urn:uuid
    start: str  # iso_z of the one stored instant
    end: str
    date_heading: str  # the reference zone's date: "Monday, December 14, 2026"
    when: str  # "Mon Dec 14 · 10 AM EST / 4 PM CET"
    zones: list[ZoneRow]
    duration_minutes: int
    speakers: list[Person]
    speaker_line: str
    abstract: list[str]
    summary: str  # the abstract on one line
    papers: list[Link]
    meeting_url: str | None  # only with SITE_MEETING_LINK=on, for a session still ahead
    recording_url: str | None
    cancelled: bool
    moved: bool  # a start changed after it was announced (still ahead)
    past: bool
    ongoing: bool
    calendar: list[Link]  # Google and Outlook "add to calendar" (none once past or cancelled)
    json_ld: str  # schema.org Event, safe inside <script>
    changed: str  # iso_z of its last change (the feed's `updated`)
    created: str
    session: SessionData  # the session as published (meeting link removed where not shown)

    @property
    def status_label(self) -> str:
        """What the badge says, or ""."""
        if self.cancelled:
            return "Cancelled"
        if self.ongoing:
            return "Happening now"
        if self.moved and not self.past:
            return "New time"
        return ""


def script_json(value: object) -> str:
    """JSON that cannot end a <script> element or open a comment in it."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def group_name(settings: Settings, group: GroupInfo) -> str:
    """GROUP_NAME when set, else the group block's name, else a plain "Reading group"."""
    return settings.group_name or group.name or "Reading group"


def group_links(settings: Settings, group: GroupInfo) -> list[Link]:
    """The group's addresses in a fixed order (GROUP_YOUTUBE_URL when the block names none)."""
    found = []
    for key in GROUP_LINKS:
        url = getattr(group.links, key)
        if key == "youtube":
            url = settings.group_youtube_url or url
        href = safe_href(url)
        if href:
            found.append(Link(LINK_LABELS[key], href))
    return found


def organizers(group: GroupInfo) -> list[Person]:
    """The organizers as shown."""
    return [
        Person(o.name, url=safe_href(o.url), bio=paragraphs(o.bio), photo=safe_href(o.photo))
        for o in group.organizers
    ]


class ViewMaker:
    """Turns stored sessions into SessionViews for one build (settings and `now` fixed)."""

    def __init__(self, data: SiteData, settings: Settings, now: datetime) -> None:
        self.data = data
        self.settings = settings
        self.now = now
        self.zones = tuple(settings.display_timezones) or ("UTC",)
        self.domain = settings.uid_domain
        self.name = group_name(settings, data.group)
        self.site_url = settings.site_url

    def changed_at(self, s: SessionData) -> datetime:
        """The session's last change (stored; else the newest of its `*_since` stamps)."""
        found = self.data.changed_at.get(s.id)
        if found is not None:
            return found
        stamps = [t for t in (s.occurrence_since, s.status_since, s.recording_since) if t]
        return max(stamps, default=EPOCH)

    def public(self, s: SessionData) -> SessionData:
        """The session as the public site may show it: no meeting link unless SITE_MEETING_LINK."""
        return s if self.settings.site_meeting_link else replace(s, meeting_url=None)

    def view(self, s: SessionData) -> SessionView:
        """The view of one session."""
        times = zone_times(s.starts_at, self.zones)
        past = s.ends_at <= self.now
        ongoing = s.starts_at <= self.now < s.ends_at and not s.cancelled
        shown = self.public(s)
        meeting = safe_href(shown.meeting_url) if not past and not s.cancelled else None
        path = f"sessions/{s.id}/"
        page_url = f"{self.site_url}/{path}" if self.site_url else None
        speakers = [
            Person(sp.name, affiliation=sp.affiliation, url=safe_href(sp.url)) for sp in s.speakers
        ]
        papers = [Link(p.title, safe_href(p.url) or "") for p in s.papers]
        changed = self.changed_at(s)
        created = self.data.created_at.get(s.id) or min(changed, s.occurrence_since or changed)
        moved = s.id in self.data.moved and not s.cancelled
        return SessionView(
            id=s.id,
            title=s.title,
            path=path,
            ics_path=f"{path}session.ics",
            page_url=page_url,
            entry_id=page_url or tag_id(self.domain, f"sessions/{s.id}"),
            start=iso_z(s.starts_at),
            end=iso_z(s.ends_at),
            date_heading=times[0].date,
            when=when_line(times),
            zones=[_zone_row(t) for t in times],
            duration_minutes=int(s.duration.total_seconds() // 60),
            speakers=speakers,
            speaker_line=speaker_names(s.speakers, affiliations=True),
            abstract=paragraphs(s.abstract),
            summary=" ".join(s.abstract.split()),
            papers=papers,
            meeting_url=meeting,
            recording_url=safe_href(s.recording_url),
            cancelled=s.cancelled,
            moved=moved,
            past=past,
            ongoing=ongoing,
            calendar=[] if past or s.cancelled else self._calendar(s, page_url, meeting),
            json_ld=script_json(self._event(s, page_url, meeting, moved)),
            changed=iso_z(changed),
            created=iso_z(min(created, changed)),
            session=shown,
        )

    def _calendar(self, s: SessionData, page_url: str | None, meeting: str | None) -> list[Link]:
        lines = [f"{speaker_names(s.speakers, affiliations=True)} will present."] * bool(s.speakers)
        lines += [f"Meeting link: {meeting}"] * bool(meeting)
        lines += [f"Details: {page_url}"] * bool(page_url)
        details = "\n\n".join(lines)
        where = meeting or page_url
        return [
            Link(
                "Google Calendar", google_calendar(s.title, s.starts_at, s.ends_at, details, where)
            ),
            Link("Outlook", outlook_calendar(s.title, s.starts_at, s.ends_at, details, where)),
        ]

    def _event(
        self, s: SessionData, page_url: str | None, meeting: str | None, moved: bool
    ) -> dict[str, Any]:
        status = (
            "EventCancelled" if s.cancelled else "EventRescheduled" if moved else "EventScheduled"
        )
        event: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "Event",
            "identifier": s.id,
            "name": s.title,
            "startDate": iso_z(s.starts_at),
            "endDate": iso_z(s.ends_at),
            "eventStatus": _SCHEMA + status,
            "eventAttendanceMode": _SCHEMA + "OnlineEventAttendanceMode",
            "organizer": {"@type": "Organization", "name": self.name},
        }
        organizer_url = safe_href(self.site_url or self.settings.group_url)
        if organizer_url:
            event["organizer"]["url"] = organizer_url
        location = meeting or page_url
        if location:
            event["location"] = {"@type": "VirtualLocation", "url": location}
        if page_url:
            event["url"] = page_url
        if s.abstract.strip():
            event["description"] = " ".join(s.abstract.split())
        if s.speakers:
            event["performer"] = [_person(sp.name, sp.affiliation) for sp in s.speakers]
        if s.papers:
            event["about"] = [
                {"@type": "ScholarlyArticle", "name": p.title}
                | ({"url": href} if (href := safe_href(p.url)) else {})
                for p in s.papers
            ]
        recording = safe_href(s.recording_url)
        if recording:
            event["recordedIn"] = {"@type": "VideoObject", "name": s.title, "url": recording}
        return event


def _person(name: str, affiliation: str | None) -> dict[str, Any]:
    person: dict[str, Any] = {"@type": "Person", "name": name}
    if affiliation:
        person["affiliation"] = {"@type": "Organization", "name": affiliation}
    return person


def _zone_row(t: ZoneTime) -> ZoneRow:
    return ZoneRow(
        city=city(t.zone), zone=t.zone, date=t.date, time=t.time, abbr=t.abbr, iso=iso_z(t.local)
    )


def next_change(data: SiteData, now: datetime, history: timedelta) -> datetime | None:
    """The first moment after `now` at which the same data gives a different site: a session
    starts or ends, or leaves the calendar's window of `history`."""
    moments = (
        moment
        for s in data.sessions
        for moment in (s.starts_at, s.ends_at, s.starts_at + history)
        if moment > now
    )
    return min(moments, default=None)
