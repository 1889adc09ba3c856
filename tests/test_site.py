"""The website built from the sessions (SPEC §9), parsed back: pages, links, times in every
zone, the Atom feed, the calendars, schema.org data, and hostile data that must stay text."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import feedparser
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from icalendar import Calendar

from bot.config import Settings
from bot.domain import Paper, SessionData, SiteData, Speaker
from bot.render.ics import session_ics
from bot.site.build import CALENDAR_HISTORY, build_site
from bot.site.views import next_change
from tests.support.site import (
    MEETING,
    NOW,
    D,
    H,
    M,
    a_session,
    by_class,
    has_class,
    html_pages,
    internal_target,
    links,
    one,
    parse,
    sample_data,
    text,
    with_session,
)

SITE_URL = "https://example.org/reading-group"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip


def settings(**changes: object) -> Settings:
    values: dict[str, object] = {"site_url": SITE_URL, "group_name": ""}
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return build_site(sample_data(), settings(), NOW)


# ---------------------------------------------------------------- pages and links


def test_every_session_has_its_page_and_its_calendar_file(files: dict[str, bytes]) -> None:
    data = sample_data()
    for s in data.sessions:
        assert f"sessions/{s.id}/index.html" in files
        assert f"sessions/{s.id}/session.ics" in files
        page = parse(files[f"sessions/{s.id}/index.html"])
        assert text(page.find(".//h1")).startswith(s.title)
    expected = {"index.html", "sessions/index.html", "feed.xml", "calendar.ics", "style.css"}
    assert expected | {"site.js"} <= set(files)
    listing = parse(files["sessions/index.html"])
    assert sorted(e.get("data-session") for e in by_class(listing, "session")) == sorted(
        s.id for s in data.sessions
    )


def test_every_link_between_pages_resolves_to_a_file(files: dict[str, bytes]) -> None:
    pages = html_pages(files)
    checked = 0
    for path, page in pages.items():
        ids = {e.get("id") for e in page.iter() if e.get("id")}
        for href in links(page):
            if href.startswith("#"):
                assert href[1:] in ids, (path, href)
                continue
            target = internal_target(path, href)
            if target is None:
                assert href.startswith(("https://", "http://", "webcal://", "data:")), href
                continue
            assert target in files, (path, href, target)
            checked += 1
    assert checked > 8 * len(pages)  # navigation, sessions, calendars, stylesheet, script


def test_links_use_the_session_pages_that_posts_link_to(files: dict[str, bytes]) -> None:
    feed = feedparser.parse(files["feed.xml"])
    assert {e.link for e in feed.entries} == {
        f"{SITE_URL}/sessions/{s.id}/" for s in sample_data().sessions
    }
    page = parse(files["sessions/next/index.html"])
    canonical = [e.get("href") for e in page.iter("link") if e.get("rel") == "canonical"]
    assert canonical == [f"{SITE_URL}/sessions/next/"]


def test_the_front_page_follows_the_seed_site(files: dict[str, bytes]) -> None:
    page = parse(files["index.html"])
    headings = [text(h) for h in page.iter("h2")]
    assert headings == [
        "About the reading group",
        "Organizers",
        "Upcoming session",
        "After that",
        "Latest sessions",
        "Recordings",
        "Stay updated",
    ]
    featured = one(page, "featured")
    # The ongoing session is the one people can still join: it is the next session.
    assert featured.get("data-session") == "ongoing"
    assert "Happening now" in text(featured)
    assert [text(h) for h in featured.iter("h4")] == ["Papers", "Abstract"]
    after = [
        e.get("data-session") for e in by_class(page.find(".//section[@id='upcoming']"), "session")
    ]
    assert after == ["next", "moved", "called-off", "later"]
    latest = [
        e.get("data-session") for e in by_class(page.find(".//section[@id='latest']"), "session")
    ]
    assert latest == ["week-2", "week-1"]  # newest first; the cancelled one is not a past session
    recordings = page.find(".//section[@id='recordings']")
    assert [a.get("href") for a in recordings.iter("a")] == [
        "https://www.youtube.com/watch?v=aaaa",
        "https://www.youtube.com/@example",
    ]
    subscribe = [a.get("href") for a in page.find(".//section[@id='stay-updated']").iter("a")]
    assert subscribe == [
        "https://groups.google.com/g/example",
        "https://x.com/example",
        "https://bsky.app/profile/example.org",
        "https://mastodon.social/@example",
        "https://www.youtube.com/@example",
        "calendar.ics",
        "webcal://example.org/reading-group/calendar.ics",
        "feed.xml",
    ]


def test_a_cancelled_session_is_marked_and_offers_no_calendar(files: dict[str, bytes]) -> None:
    page = parse(files["sessions/called-off/index.html"])
    assert "Cancelled" in text(one(page, "badge"))
    assert "will not take place" in text(one(page, "notice-cancelled"))
    assert not list(by_class(page, "add-to-calendar"))
    listing = parse(files["sessions/index.html"])
    item = next(e for e in by_class(listing, "session") if e.get("data-session") == "called-off")
    assert has_class(item, "is-cancelled") and "Cancelled" in text(item)
    (event,) = Calendar.from_ical(files["sessions/called-off/session.ics"]).walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED"


def test_a_moved_session_shows_its_new_time_only() -> None:
    data = sample_data()
    old = next(s for s in data.sessions if s.id == "moved")
    new_start = old.starts_at + 2 * D + 90 * M
    data = with_session(data, replace(old, starts_at=new_start), NOW - D)
    files = build_site(data, settings(), NOW)
    old_forms = [old.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "Mon Dec 21", "December 21"]
    for path in ("sessions/moved/index.html", "index.html", "sessions/index.html"):
        body = files[path].decode()
        assert new_start.strftime("%Y-%m-%dT%H:%M:%SZ") in body
        for form in old_forms:
            assert form not in body, (path, form)
    page = parse(files["sessions/moved/index.html"])
    assert text(one(page, "badge")) == "New time"


def test_the_meeting_link_shows_only_with_site_meeting_link_on() -> None:
    off = build_site(sample_data(), settings(), NOW)
    for path, data in off.items():
        assert b"example.zoom.us" not in data, path
    on = build_site(sample_data(), settings(site_meeting_link=True), NOW)
    page = parse(on["sessions/next/index.html"])
    assert [a.get("href") for a in one(page, "meeting").iter("a")] == [MEETING]
    past = parse(on["sessions/week-1/index.html"])
    assert not list(by_class(past, "meeting"))  # nothing to join any more
    (event,) = Calendar.from_ical(on["sessions/next/session.ics"]).walk("VEVENT")
    assert str(event["URL"]) == MEETING


def test_add_to_calendar_links_carry_the_stored_instant(files: dict[str, bytes]) -> None:
    s = next(s for s in sample_data().sessions if s.id == "next")
    page = parse(files["sessions/next/index.html"])
    anchors = list(one(page, "add-to-calendar").iter("a"))
    assert [text(a) for a in anchors] == ["Calendar file (.ics)", "Google Calendar", "Outlook"]
    assert internal_target("sessions/next/index.html", anchors[0].get("href", "")) == (
        "sessions/next/session.ics"
    )
    google = parse_qs(urlsplit(anchors[1].get("href", "")).query)
    stamp = "%Y%m%dT%H%M%SZ"
    expected = f"{s.starts_at.strftime(stamp)}/{s.ends_at.strftime(stamp)}"
    assert google["dates"] == [expected]
    assert google["text"] == [s.title]
    outlook = parse_qs(urlsplit(anchors[2].get("href", "")).query)
    assert outlook["startdt"] == [s.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert outlook["enddt"] == [s.ends_at.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert f"{SITE_URL}/sessions/next/" in outlook["body"][0]


# ---------------------------------------------------------------- times in every zone


def _abbreviation(local: datetime) -> str:
    name = local.tzname() or ""
    if re.fullmatch(r"[+-]\d\d(\d\d)?", name):
        offset = local.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "\u2212"
        hours, rest = divmod(abs(minutes), 60)
        return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
    return name


def _clock(local: datetime) -> str:
    hour = local.hour % 12 or 12
    suffix = "AM" if local.hour < 12 else "PM"
    return f"{hour} {suffix}" if local.minute == 0 else f"{hour}:{local.minute:02d} {suffix}"


def _expected(start: datetime, zones: tuple[str, ...]) -> tuple[str, list[str], str]:
    """The date heading, the zone labels and the time line's date, worked out here alone."""
    first = start.astimezone(ZoneInfo(zones[0]))
    heading = f"{WEEKDAYS[first.weekday()]}, {MONTHS[first.month - 1]} {first.day}, {first.year}"
    short = f"{WEEKDAYS[first.weekday()][:3]} {MONTHS[first.month - 1][:3]} {first.day}"
    labels = []
    for zone in zones:
        local = start.astimezone(ZoneInfo(zone))
        label = f"{_clock(local)} {_abbreviation(local)}"
        if local.date() != first.date():
            day = f"{WEEKDAYS[local.weekday()][:3]} {MONTHS[local.month - 1][:3]} {local.day}"
            label = f"{day}, {label}"
        labels.append(label)
    return heading, labels, short


def _many_sessions() -> list[SessionData]:
    """Two years of weekly sessions at changing hours, and every day of the weeks when only one
    side of the Atlantic has changed its clocks (March and October-November), at odd minutes."""
    starts = [
        datetime(2026, 1, 5, 13, 0, tzinfo=UTC) + timedelta(days=7 * i, hours=i % 11)
        for i in range(104)
    ]
    for first, last in (
        (datetime(2026, 3, 7), datetime(2026, 3, 30)),
        (datetime(2026, 10, 24), datetime(2026, 11, 2)),
    ):
        day = first
        while day <= last:
            starts.append(day.replace(hour=14, minute=30, tzinfo=UTC))
            starts.append(day.replace(hour=23, minute=45, tzinfo=UTC))  # the next day in Europe
            day += D
    return [
        a_session(f"s{i:03d}", start, status="cancelled" if i % 17 == 0 else "scheduled")
        for i, start in enumerate(sorted(starts))
    ]


@pytest.mark.parametrize(
    "zones",
    [
        ("America/New_York", "Europe/Paris"),
        ("Europe/London", "America/Los_Angeles", "Asia/Tokyo"),
        ("Asia/Kolkata", "America/Sao_Paulo", "Asia/Kathmandu", "Australia/Sydney"),
    ],
)
def test_the_date_heading_and_time_line_agree_with_the_instant_in_every_zone(
    zones: tuple[str, ...],
) -> None:
    sessions = _many_sessions()
    data = SiteData(sessions=tuple(sessions), changed_at={s.id: NOW for s in sessions})
    now = datetime(2026, 6, 1, tzinfo=UTC)
    files = build_site(data, settings(display_timezones=zones), now)
    stored = {s.id: s.starts_at for s in sessions}
    seen = 0
    for path, page in html_pages(files).items():
        for item in by_class(page, "session"):
            start = stored[item.get("data-session", "")]
            iso = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            heading_text, labels, short = _expected(start, zones)
            heading = one(item, "date-heading").find("time")
            when = one(item, "when").find("time")
            assert heading is not None and when is not None
            assert heading.get("datetime") == when.get("datetime") == iso, path
            assert text(heading) == heading_text, (path, iso)
            line = text(when)
            assert line.startswith(f"{short} · "), (path, line)
            shown = line.split(" · ", 1)[1].split(" / ")
            assert shown == list(dict.fromkeys(labels)), (path, line, labels)
            for row in item.iter("tr"):  # the per-zone table of a session's page
                local = start.astimezone(ZoneInfo(row.get("data-zone", "")))
                cell = row.find("td/time")
                assert cell is not None
                assert datetime.fromisoformat(cell.get("datetime", "")) == start
                assert text(cell).startswith(f"{WEEKDAYS[local.weekday()]}, ")
                assert text(cell).endswith(f" {_abbreviation(local)}")
            seen += 1
    assert seen > 2 * len(sessions)  # its page, the list of all sessions, the front page


def test_a_session_in_the_five_hour_week_says_edt_and_cet() -> None:
    s = a_session("gap", datetime(2027, 3, 15, 14, 0, tzinfo=UTC))
    files = build_site(SiteData(sessions=(s,)), settings(), datetime(2027, 3, 1, tzinfo=UTC))
    page = parse(files["sessions/gap/index.html"])
    assert text(one(page, "when").find("time")) == "Mon Mar 15 · 10 AM EDT / 3 PM CET"
    assert text(one(page, "date-heading")) == "Monday, March 15, 2027"


def test_next_change_is_the_first_start_end_or_calendar_exit_after_now() -> None:
    data = sample_data()
    ongoing = next(s for s in data.sessions if s.id == "ongoing")
    assert next_change(data, NOW, CALENDAR_HISTORY) == ongoing.ends_at
    last = data.sessions[-1]
    assert next_change(data, last.starts_at + CALENDAR_HISTORY, CALENDAR_HISTORY) is None


# ---------------------------------------------------------------- feed


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
ATOM = "{http://www.w3.org/2005/Atom}"


def _atom_problems(xml: bytes) -> list[str]:
    """What RFC 4287 requires of a feed and its entries (sections 4.1.1, 4.1.2, 4.2, 3.3)."""
    import lxml.etree as etree

    root = etree.fromstring(xml)
    problems: list[str] = []
    if root.tag != f"{ATOM}feed":
        return [f"root is {root.tag}"]

    def check(element: etree._Element, where: str, required: tuple[str, ...]) -> None:
        for name in required:
            if len(element.findall(f"{ATOM}{name}")) != 1:
                problems.append(f"{where}: needs exactly one atom:{name}")
        for name in ("published", "updated"):
            for stamp in element.findall(f"{ATOM}{name}"):
                if not RFC3339.fullmatch(stamp.text or ""):
                    problems.append(f"{where}: {name} is not an RFC 3339 date ({stamp.text})")
        for ident in element.findall(f"{ATOM}id"):
            if not re.match(r"[a-z][a-z0-9+.-]*:", ident.text or ""):
                problems.append(f"{where}: id is not an absolute IRI ({ident.text})")
        for link in element.findall(f"{ATOM}link"):
            if not link.get("href"):
                problems.append(f"{where}: a link without href")
        for construct in ("title", "summary", "subtitle", "content"):
            for node in element.findall(f"{ATOM}{construct}"):
                if node.get("type", "text") not in ("text", "html", "xhtml"):
                    problems.append(f"{where}: {construct} type {node.get('type')}")
                if len(node) and node.get("type", "text") == "text":
                    problems.append(f"{where}: {construct} of type text holds elements")

    check(root, "feed", ("id", "title", "updated"))
    has_author = bool(root.findall(f"{ATOM}author/{ATOM}name"))
    ids = []
    for index, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"entry {index}"
        check(entry, where, ("id", "title", "updated"))
        if not has_author and not entry.findall(f"{ATOM}author"):
            problems.append(f"{where}: no author, and the feed has none")
        alternate = [
            link
            for link in entry.findall(f"{ATOM}link")
            if link.get("rel", "alternate") == "alternate"
        ]
        if not entry.findall(f"{ATOM}content") and not alternate:
            problems.append(f"{where}: neither content nor an alternate link")
        ids.append(entry.findtext(f"{ATOM}id"))
    if len(ids) != len(set(ids)):
        problems.append("two entries share an id")
    return problems


def test_the_feed_validates_as_atom_and_parses_with_feedparser(files: dict[str, bytes]) -> None:
    assert _atom_problems(files["feed.xml"]) == []
    feed = feedparser.parse(files["feed.xml"])
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Diffusion LLM Reading Group"
    assert feed.feed.id == f"{SITE_URL}/"
    assert len(feed.entries) == len(sample_data().sessions)


def test_feed_entries_keep_their_ids_and_are_updated_at_the_sessions_last_change() -> None:
    data = sample_data()
    first = feedparser.parse(build_site(data, settings(), NOW)["feed.xml"])
    later = feedparser.parse(build_site(data, settings(), NOW + 5 * M)["feed.xml"])
    assert [e.id for e in first.entries] == [e.id for e in later.entries]
    expected = {f"{SITE_URL}/sessions/{sid}/": when for sid, when in data.changed_at.items()}
    for entry in first.entries:
        assert datetime.fromisoformat(entry.updated) == expected[entry.id]
    assert datetime.fromisoformat(first.feed.updated) == max(data.changed_at.values())

    moved = next(s for s in data.sessions if s.id == "next")
    edited = with_session(data, replace(moved, title="A new title"), NOW + H)
    again = feedparser.parse(build_site(edited, settings(), NOW + 2 * H)["feed.xml"])
    by_id = {e.id: e for e in again.entries}
    assert {e.id for e in again.entries} == {e.id for e in first.entries}
    assert datetime.fromisoformat(by_id[f"{SITE_URL}/sessions/next/"].updated) == NOW + H
    assert datetime.fromisoformat(again.feed.updated) == NOW + H
    unchanged = [e for e in again.entries if e.id != f"{SITE_URL}/sessions/next/"]
    assert all(datetime.fromisoformat(e.updated) < NOW for e in unchanged)


def test_without_site_url_the_feed_ids_are_stable_urns() -> None:
    plain = settings(site_url="")
    a = feedparser.parse(build_site(sample_data(), plain, NOW)["feed.xml"])
    b = feedparser.parse(build_site(sample_data(), plain, NOW + 30 * D)["feed.xml"])
    assert all(e.id.startswith("urn:uuid:") for e in a.entries)
    assert [e.id for e in a.entries] == [e.id for e in b.entries]
    assert _atom_problems(build_site(sample_data(), plain, NOW)["feed.xml"]) == []


# ---------------------------------------------------------------- calendars, schema.org


def test_the_calendar_files_parse_and_hold_the_stored_instants(files: dict[str, bytes]) -> None:
    data = sample_data()
    for s in data.sessions:
        calendar = Calendar.from_ical(files[f"sessions/{s.id}/session.ics"])
        (event,) = calendar.walk("VEVENT")
        assert event.decoded("DTSTART") == s.starts_at
        assert event.decoded("DTEND") == s.ends_at
        assert str(event["UID"]) == f"{s.id}@example.org"
        assert event.decoded("DTSTAMP") == data.changed_at[s.id].replace(microsecond=0)
    feed = Calendar.from_ical(files["calendar.ics"])
    uids = sorted(str(e["UID"]) for e in feed.walk("VEVENT"))
    window = [s for s in data.sessions if s.starts_at >= NOW - CALENDAR_HISTORY]
    assert uids == sorted(f"{s.id}@example.org" for s in window)
    assert str(feed["X-WR-CALNAME"]) == "Diffusion LLM Reading Group"


def _json_ld(page: bytes) -> list[dict[str, object]]:
    root = parse(page)
    scripts = [s for s in root.iter("script") if s.get("type") == "application/ld+json"]
    return [json.loads(s.text or "") for s in scripts]


def test_schema_org_events_carry_the_stored_instant_and_status(files: dict[str, bytes]) -> None:
    statuses = {
        "moved": "https://schema.org/EventRescheduled",
        "called-off": "https://schema.org/EventCancelled",
        "old-cancelled": "https://schema.org/EventCancelled",
    }
    for s in sample_data().sessions:
        (event,) = _json_ld(files[f"sessions/{s.id}/index.html"])
        assert event["@type"] == "Event"
        assert event["startDate"] == s.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert datetime.fromisoformat(str(event["startDate"])) == s.starts_at
        assert event["eventStatus"] == statuses.get(s.id, "https://schema.org/EventScheduled")
        assert event["url"] == f"{SITE_URL}/sessions/{s.id}/"
        assert event["location"] == {"@type": "VirtualLocation", "url": event["url"]}
    front = _json_ld(files["index.html"])
    assert [e["identifier"] for e in front] == ["ongoing", "next", "moved", "called-off", "later"]


# ---------------------------------------------------------------- determinism


def test_building_twice_gives_identical_bytes_and_no_build_time(files: dict[str, bytes]) -> None:
    again = build_site(sample_data(), settings(), NOW)
    assert again == files
    # Five minutes later nothing starts or ends: not one byte may change.
    assert build_site(sample_data(), settings(), NOW + 5 * M) == files
    assert list(files) == sorted(files)
    stamp = NOW.strftime("%Y%m%dT%H%M")
    for path, data in files.items():
        assert stamp.encode() not in data and NOW.isoformat().encode() not in data, path


def test_time_changes_the_site_only_where_a_session_starts_or_ends() -> None:
    data = sample_data()
    ongoing = next(s for s in data.sessions if s.id == "ongoing")
    before = build_site(data, settings(), ongoing.ends_at - M)
    after = build_site(data, settings(), ongoing.ends_at)
    changed = sorted(path for path in before if before[path] != after[path])
    assert changed == ["index.html", "sessions/index.html", "sessions/ongoing/index.html"]


# ---------------------------------------------------------------- hostile data


HOSTILE_TITLE = '<script>alert("title")</script> & "quotes" </script><!--'
HOSTILE_ABSTRACT = "<img src=x onerror=alert(1)>\n\n<b>bold</b> <a href='javascript:alert(2)'>x</a>"


def test_hostile_data_stays_text() -> None:
    evil = a_session(
        "evil",
        NOW + 3 * D,
        title=HOSTILE_TITLE,
        abstract=HOSTILE_ABSTRACT,
        speakers=(Speaker('Eve <i onmouseover="x()">', url="javascript:alert(3)"),),
        papers=(Paper("<svg onload=alert(4)>", "javascript:alert(5)"),),
        recording_url="javascript:alert(6)",
        meeting_url="javascript:alert(7)",
    )
    past = replace(evil, id="evil-past", starts_at=NOW - 3 * D)
    data = SiteData(sessions=(past, evil), changed_at={"evil": NOW, "evil-past": NOW})
    files = build_site(data, settings(site_meeting_link=True), NOW)
    for path, page in html_pages(files).items():
        for element in page.iter():
            assert element.tag not in ("img", "b", "i", "svg", "iframe", "object"), (
                path,
                element.tag,
            )
            for name, value in element.attrib.items():
                assert not name.startswith("on"), (path, element.tag, name)
                assert not value.strip().lower().startswith("javascript:"), (path, name, value)
            if element.tag == "script":
                assert element.get("src", "").endswith("site.js") or element.get("type") == (
                    "application/ld+json"
                ), (path, element.attrib)
    page = parse(files["sessions/evil/index.html"])
    assert text(page.find(".//h1")).startswith(HOSTILE_TITLE)
    assert "<img src=x onerror=alert(1)>" in text(one(page, "abstract"))
    (event,) = _json_ld(files["sessions/evil/index.html"])
    assert event["name"] == HOSTILE_TITLE
    assert "recordedIn" not in event  # a javascript: recording is no recording
    feed = feedparser.parse(files["feed.xml"])
    assert not feed.bozo
    assert {e.title for e in feed.entries} == {HOSTILE_TITLE}


# ---------------------------------------------------------------- accessibility


def test_headings_are_in_order_and_images_have_alt_text(files: dict[str, bytes]) -> None:
    for path, page in html_pages(files).items():
        levels = [int(e.tag[1]) for e in page.iter() if re.fullmatch(r"h[1-6]", str(e.tag))]
        assert levels[0] == 1 and levels.count(1) == 1, (path, levels)
        for before, after in pairwise(levels):
            assert after <= before + 1, (path, levels)
        assert page.find("head/title") is not None and text(page.find("head/title")), path
        assert page.get("lang") == "en"
        for image in page.iter("img"):
            assert (image.get("alt") or "").strip(), (path, image.attrib)


def test_organizer_photos_have_their_names_as_alt_text() -> None:
    data = sample_data()
    photo = replace(data.group.organizers[0], photo="https://example.org/ada.jpg")
    group = replace(data.group, organizers=(photo, data.group.organizers[1]))
    page = parse(build_site(replace(data, group=group), settings(), NOW)["index.html"])
    assert [(i.get("src"), i.get("alt")) for i in page.iter("img")] == [
        ("https://example.org/ada.jpg", "Ada Example")
    ]


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_colour_pair_meets_wcag_aa_contrast_in_light_and_dark(
    files: dict[str, bytes],
) -> None:
    css = files["style.css"].decode()
    light = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", css.split("@media")[0]))
    dark_block = css.split("prefers-color-scheme: dark")[1].split("}\n}")[0]
    dark = light | dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", dark_block))
    pairs = [("text", "bg"), ("muted", "bg"), ("link", "bg"), ("text", "panel"),
             ("muted", "panel"), ("link", "panel"), ("badge-text", "badge-bg"),
             ("cancel-text", "cancel-bg")]  # fmt: skip
    for scheme in (light, dark):
        for fg, bg in pairs:
            assert _contrast(scheme[fg], scheme[bg]) >= 4.5, (fg, bg, scheme[fg], scheme[bg])


# ---------------------------------------------------------------- templates


def test_templates_dir_overrides_one_site_template_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "style.css").write_text("body { color: #000000; }\n", encoding="utf-8")
    files = build_site(sample_data(), settings(templates_dir=tmp_path), NOW)
    assert files["style.css"] == b"body { color: #000000; }\n"
    assert b"About the reading group" in files["index.html"]


def test_a_broken_site_template_is_named_with_its_line(tmp_path: Path) -> None:
    from bot.errors import TemplateProblem

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html.j2").write_text("<p>\n{{ nothing_here }}\n", encoding="utf-8")
    with pytest.raises(
        TemplateProblem, match=r"site/index\.html\.j2, line 2: 'nothing_here' is undefined"
    ):
        build_site(sample_data(), settings(templates_dir=tmp_path), NOW)


def test_check_names_a_site_template_that_does_not_compile(tmp_path: Path) -> None:
    """`bot check` compiles the website's templates when SITE_DIR is set (a rebuild would fail on
    them and keep the previous site): one line naming the file and line."""
    from tests.support.cli import BotCli

    mine = tmp_path / "templates" / "site"
    mine.mkdir(parents=True)
    (mine / "session.html.j2").write_text("<p>\n{% if %}\n", encoding="utf-8")
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "TEMPLATES_DIR": str(tmp_path / "templates"),
    }
    bot = BotCli(tmp_path, env)
    code, out, _ = bot("check", env={"SITE_DIR": str(tmp_path / "www")})
    assert code == 1
    [line] = out.splitlines()
    assert line.startswith("templates: ") and "site/session.html.j2, line 2" in line
    code, out, _ = bot("check")  # no website to build: its templates are not its business
    assert (code, out.strip()) == (0, "ok")


def test_calendar_window_is_the_one_of_bot_ics() -> None:
    from bot.cli.data import ICS_HISTORY

    assert CALENDAR_HISTORY == ICS_HISTORY


def test_relative_links_work_from_any_folder(files: dict[str, bytes]) -> None:
    for path, page in html_pages(files).items():
        depth = path.count("/")
        for href in links(page):
            assert not href.startswith("/"), (path, href)  # a site under /group/ still works
            if internal_target(path, href) is not None and href.startswith("../"):
                assert posixpath.normpath(href).count("..") <= depth, (path, href)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        build_site(sample_data(), settings(), datetime(2026, 12, 1))


def test_the_group_name_comes_from_group_name_first() -> None:
    files = build_site(sample_data(), settings(group_name="Env Name"), NOW)
    assert text(parse(files["index.html"]).find(".//h1")) == "Env Name"
    plain = build_site(
        replace(sample_data(), group=replace(sample_data().group, name=None)), settings(), NOW
    )
    assert text(parse(plain["index.html"]).find(".//h1")) == "Reading group"


def test_an_empty_database_still_gives_a_site() -> None:
    files = build_site(SiteData(), settings(), NOW)
    assert "No session is planned yet." in text(parse(files["index.html"]))
    assert _atom_problems(files["feed.xml"]) == []
    assert feedparser.parse(files["feed.xml"]).feed.updated == "1970-01-01T00:00:00Z"


def test_times_in_the_page_are_utc_instants(files: dict[str, bytes]) -> None:
    page = parse(files["index.html"])
    stamps = [t.get("datetime", "") for t in page.iter("time")]
    assert stamps and all(s.endswith("Z") for s in stamps)
    assert all(datetime.fromisoformat(s).tzinfo == UTC for s in stamps)


TEXTS = st.text(
    st.characters(exclude_categories=["Cs", "Cc"], include_characters="\n"), max_size=300
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(title=TEXTS.filter(str.strip), abstract=TEXTS, name=st.text(min_size=1, max_size=12))
def test_calendar_text_is_escaped_and_folded_so_icalendar_reads_it_back(
    title: str, abstract: str, name: str
) -> None:
    s = a_session("any", NOW, title=title, abstract=abstract, speakers=(Speaker(name),), papers=())
    data = session_ics(s, now=NOW, domain="example.org")
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    (event,) = Calendar.from_ical(data).walk("VEVENT")
    assert str(event["SUMMARY"]) == title
    assert abstract.strip() in str(event["DESCRIPTION"])
    assert event.decoded("DTSTART") == NOW
