"""The website as a pure function: (sessions, group, settings, now) -> {relative path: bytes}.

Nothing here reads the clock or the database: `bot site build`, the worker and the commands that
change sessions load a SiteData (bot.store.site) and pass `now`. The same data and `now` give
byte-identical files: no build time appears anywhere, every list is sorted, every calendar stamp
and feed date is the moment the session last changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jinja2

from bot.config import Settings
from bot.domain import SiteData
from bot.errors import TemplateProblem
from bot.render.ics import calendar_feed, session_ics
from bot.render.renderer import _where, join_and, template_search_path
from bot.site.links import safe_href, tag_id, webcal
from bot.site.views import (
    EPOCH,
    Link,
    Person,
    SessionView,
    ViewMaker,
    city,
    group_links,
    group_name,
    iso_z,
    organizers,
    paragraphs,
)

CALENDAR_HISTORY = timedelta(days=90)  # calendar.ics holds what `bot ics` holds
LATEST = 6  # past sessions on the front page
UPCOMING = 10  # upcoming sessions on the front page, after the next one
RECORDINGS = 6
VIDEOS = 6  # the group's latest YouTube videos (SPEC §10), when the feed is read


@dataclass(frozen=True)
class VideoView:
    """One of the group's latest videos, as the front page lists it."""

    title: str
    url: str
    published: str  # ISO 8601, Z
    date: str  # the day it came out, in the reference zone
    session_path: str | None  # the page of the session it is the recording of


STATIC = ("style.css", "site.js")  # copied as they are from templates/site/


@dataclass(frozen=True)
class Site:
    """What every page knows about the group and the site."""

    name: str
    description: str  # one line, for <meta name="description">
    about: list[str]
    organizers: list[Person]
    links: list[Link]  # email list and accounts, in a fixed order
    youtube: str | None
    site_url: str | None  # absolute base, no trailing slash
    calendar_url: str | None  # absolute, with SITE_URL
    webcal_url: str | None
    feed_url: str | None
    zones: list[str]  # the display zones (the visitor's own is added when it is none of them)
    zone_names: str  # "New York and Paris"


def site_environment(settings: Settings) -> jinja2.Environment:
    """Jinja2 over `TEMPLATES_DIR` then the built-in templates; HTML and XML autoescaped."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_search_path(settings)),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith((".html.j2", ".xml.j2"))),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # one build: no file is looked at twice
    )


def _problem(settings: Settings, name: str, exc: BaseException) -> TemplateProblem:
    what = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
    if not isinstance(exc, jinja2.TemplateError):
        what = f"{type(exc).__name__}: {what}"
    where = _where(exc, template_search_path(settings)) or name
    return TemplateProblem(f"{where}: {what}")


def site_template_problems(settings: Settings) -> list[str]:
    """Every website template (site/*.j2 on the search path) that does not compile."""
    env = site_environment(settings)
    names = sorted(
        {
            f"site/{path.name}"
            for root in template_search_path(settings)
            if (root / "site").is_dir()
            for path in (root / "site").glob("*.j2")
        }
    )
    problems = []
    for name in names:
        try:
            env.get_template(name)
        except jinja2.TemplateError as exc:
            problems.append(str(_problem(settings, name, exc)))
    return problems


class _Pages:
    """Renders one template after another with the build's shared context."""

    def __init__(self, settings: Settings, shared: dict[str, Any]) -> None:
        self.settings = settings
        self.env = site_environment(settings)
        self.shared = shared

    def render(self, name: str, **context: Any) -> bytes:
        try:
            text = self.env.get_template(name).render(self.shared | context)
        except Exception as exc:  # syntax, an undefined name, a missing include, a bad filter
            raise _problem(self.settings, name, exc) from exc
        return text.encode("utf-8")

    def static(self, name: str) -> bytes:
        loader = self.env.loader
        assert loader is not None
        try:
            source, _, _ = loader.get_source(self.env, f"site/{name}")
        except jinja2.TemplateNotFound as exc:
            raise TemplateProblem(f"site/{name}: not found in the template folders") from exc
        return source.encode("utf-8")


def _site(data: SiteData, settings: Settings) -> Site:
    base = settings.site_url or None
    calendar_url = f"{base}/calendar.ics" if base else None
    youtube = safe_href(settings.group_youtube_url or data.group.links.youtube)
    name = group_name(settings, data.group)
    about = paragraphs(data.group.about)
    return Site(
        name=name,
        description=" ".join(about[0].split()) if about else f"The sessions of {name}.",
        about=about,
        organizers=organizers(data.group),
        links=group_links(settings, data.group),
        youtube=youtube,
        site_url=base,
        calendar_url=calendar_url,
        webcal_url=webcal(calendar_url) if calendar_url else None,
        feed_url=f"{base}/feed.xml" if base else None,
        zones=list(settings.display_timezones),
        zone_names=join_and(city(zone) for zone in settings.display_timezones),
    )


def build_site(data: SiteData, settings: Settings, now: datetime) -> dict[str, bytes]:
    """Every file of the website, by path relative to its root (sorted)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime: {now!r}")
    maker = ViewMaker(data, settings, now)
    views = [maker.view(s) for s in data.sessions]
    upcoming = [v for v in views if not v.past]
    past = [v for v in reversed(views) if v.past]
    featured = next((v for v in upcoming if not v.cancelled), None)
    site = _site(data, settings)
    pages = _Pages(settings, {"site": site})
    files: dict[str, bytes] = {
        "index.html": pages.render(
            "site/index.html.j2",
            root="",
            canonical=f"{site.site_url}/" if site.site_url else None,
            featured=featured,
            upcoming=[v for v in upcoming if v is not featured][:UPCOMING],
            more_upcoming=max(0, len(upcoming) - (featured is not None) - UPCOMING),
            latest=[v for v in past if not v.cancelled][:LATEST],
            recordings=[v for v in past if v.recording_url][:RECORDINGS],
            videos=_videos(data, settings),
            total=len(views),
        ),
        "sessions/index.html": pages.render(
            "site/sessions.html.j2",
            root="../",
            canonical=f"{site.site_url}/sessions/" if site.site_url else None,
            upcoming=upcoming,
            past=past,
        ),
        "feed.xml": _feed(pages, data, views, site, settings),
        "calendar.ics": _calendar(data, maker, settings, now),
    }
    domain = settings.uid_domain
    for s, v in zip(data.sessions, views, strict=True):
        files[f"{v.path}index.html"] = pages.render(
            "site/session.html.j2", root="../../", canonical=v.page_url, s=v
        )
        files[v.ics_path] = session_ics(v.session, now=maker.changed_at(s), domain=domain)
    for name in STATIC:
        files[name] = pages.static(name)
    return dict(sorted(files.items()))


def _videos(data: SiteData, settings: Settings) -> list[VideoView]:
    known = {s.id for s in data.sessions}
    shown = []
    for video in data.videos[:VIDEOS]:
        url = safe_href(video.url)
        if url is None:
            continue
        session = data.video_sessions.get(video.video_id)
        local = video.published_at.astimezone(settings.reference_zone)
        shown.append(
            VideoView(
                title=video.title or video.video_id,
                url=url,
                published=iso_z(video.published_at),
                date=f"{local:%B} {local.day}, {local.year}",
                session_path=f"sessions/{session}/" if session in known else None,
            )
        )
    return shown


def _feed(
    pages: _Pages, data: SiteData, views: list[SessionView], site: Site, settings: Settings
) -> bytes:
    entries = sorted(views, key=lambda v: (v.changed, v.id), reverse=True)
    stamps = [v.changed for v in views]
    if data.group_changed_at is not None:
        stamps.append(iso_z(data.group_changed_at))
    return pages.render(
        "site/feed.xml.j2",
        feed_id=f"{site.site_url}/" if site.site_url else tag_id(settings.uid_domain, "feed"),
        updated=max(stamps, default=iso_z(EPOCH)),
        entries=entries,
    )


def _calendar(data: SiteData, maker: ViewMaker, settings: Settings, now: datetime) -> bytes:
    since = now - CALENDAR_HISTORY
    window = [maker.public(s) for s in data.sessions if s.starts_at >= since]
    stamps: Mapping[str, datetime] = {s.id: maker.changed_at(s) for s in window}
    return calendar_feed(
        window, now=EPOCH, name=maker.name, domain=settings.uid_domain, stamps=stamps
    )
