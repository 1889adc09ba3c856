"""The website as the tests see it: a group of sessions of every kind, built, and parsed back.

    files = build_site(sample_data(), Settings(), NOW)
    page = parse(files["index.html"])          # html5lib, as a browser parses it
    for href in links(page): ...

Pages are parsed with html5lib (the HTML5 parsing algorithm, as browsers do), so markup that
slipped through would show up as the elements a browser would make of it.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import html5lib

from bot.domain import GroupInfo, GroupLinks, Organizer, Paper, SessionData, SiteData, Speaker

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
MEETING = "https://example.zoom.us/j/81234567890?pwd=secretpasscode"
GROUP = GroupInfo(
    name="Diffusion LLM Reading Group",
    about="Diffusion LLMs are faster, more controllable successors to traditional LLMs.\n\n"
    "Each session features an author-led presentation followed by Q&A.",
    organizers=(
        Organizer("Ada Example", "Ph.D. in machine learning.", "https://example.org/ada"),
        Organizer("Grace Example", "Works on fast generative models.", None, None),
    ),
    links=GroupLinks(
        email_list="https://groups.google.com/g/example",
        x="https://x.com/example",
        bluesky="https://bsky.app/profile/example.org",
        mastodon="https://mastodon.social/@example",
        youtube="https://www.youtube.com/@example",
    ),
)


def a_session(session_id: str, starts_at: datetime, **more: object) -> SessionData:
    """A session with speakers, papers, an abstract and a meeting link."""
    values: dict[str, object] = {
        "id": session_id,
        "title": f"Masked diffusion for code ({session_id})",
        "starts_at": starts_at,
        "timezone": "America/New_York",
        "speakers": (Speaker("Shansan Gong", "The University of Hong Kong"), Speaker("Ada Lee")),
        "abstract": "Diffusion language models generate text by denoising a whole sequence.\n\n"
        "A second paragraph with https://example.org/a-very-long-link-" + "x" * 80,
        "papers": (
            Paper("DiffuCoder", "https://arxiv.org/abs/2506.20639"),
            Paper("A paper without a link"),
        ),
        "meeting_url": MEETING,
        "occurrence_since": starts_at - 30 * D,
        "status_since": starts_at - 30 * D,
    }
    values.update(more)
    return SessionData(**values)  # type: ignore[arg-type]


def sample_data() -> SiteData:
    """Past (with and without a recording), cancelled, moved, ongoing and upcoming sessions."""
    sessions = [
        a_session("week-1", NOW - 60 * D, recording_url="https://www.youtube.com/watch?v=aaaa"),
        a_session("week-2", NOW - 30 * D),
        a_session("old-cancelled", NOW - 20 * D, status="cancelled"),
        a_session("ongoing", NOW - 30 * M, recording_url=None),
        a_session("next", NOW + 13 * D + 3 * H),
        a_session("moved", NOW + 20 * D),
        a_session("called-off", NOW + 27 * D, status="cancelled"),
        a_session("later", NOW + 120 * D, duration=timedelta(minutes=90)),
    ]
    sessions.sort(key=lambda s: (s.starts_at, s.id))
    changed = {
        s.id: min(s.starts_at - 10 * D, NOW - 2 * D) + timedelta(minutes=i)
        for i, s in enumerate(sessions)
    }
    return SiteData(
        sessions=tuple(sessions),
        group=GROUP,
        group_changed_at=NOW - 90 * D,
        changed_at=changed,
        created_at={sid: when - 30 * D for sid, when in changed.items()},
        moved=frozenset({"moved"}),
    )


def with_session(data: SiteData, session: SessionData, changed_at: datetime) -> SiteData:
    """`data` with one session replaced (or added), changed at `changed_at`."""
    kept = [s for s in data.sessions if s.id != session.id] + [session]
    kept.sort(key=lambda s: (s.starts_at, s.id))
    return replace(
        data, sessions=tuple(kept), changed_at={**data.changed_at, session.id: changed_at}
    )


def parse(html: bytes) -> ET.Element:
    """A page as a browser's parser makes it (html5lib), without namespaces in the tags."""
    return html5lib.parse(html, treebuilder="etree", namespaceHTMLElements=False)


def text(element: ET.Element | None) -> str:
    """The element's text, whitespace collapsed."""
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def has_class(element: ET.Element, name: str) -> bool:
    return name in (element.get("class") or "").split()


def by_class(root: ET.Element, name: str) -> Iterator[ET.Element]:
    """Every element with the class `name`."""
    return (e for e in root.iter() if has_class(e, name))


def one(root: ET.Element, name: str) -> ET.Element:
    """The one descendant element with the class `name`."""
    (found,) = list(by_class(root, name))
    return found


def html_pages(files: Mapping[str, bytes]) -> dict[str, ET.Element]:
    """Every HTML page of a built site, parsed."""
    return {path: parse(data) for path, data in files.items() if path.endswith(".html")}


def internal_target(page: str, href: str) -> str | None:
    """The site file a link from `page` leads to, or None for a link that leaves the site."""
    if not href or href.startswith(("#", "data:")) or "://" in href or ":" in href.split("/")[0]:
        return None
    path = href.split("#", 1)[0].split("?", 1)[0]
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    if path.endswith("/") or path in ("", "."):
        joined = posixpath.join(joined, "index.html") if joined != "." else "index.html"
    return joined


def links(page: ET.Element) -> Iterator[str]:
    """Every href and src on a page."""
    for element in page.iter():
        for name in ("href", "src"):
            value = element.get(name)
            if value is not None:
                yield value
