"""Jinja2 rendering of one delivery into a Message, with zone-correct times in the context."""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

import bot
from bot.config import Settings
from bot.domain import SPECIAL_NOTICES, GroupInfo, SessionData, Speaker
from bot.errors import TemplateProblem
from bot.notifiers.base import Attachment, Card, DeliveryKey, Message
from bot.render.ics import session_ics
from bot.render.timefmt import ZoneTime, humanize_until, when_line, zone_time, zone_times

# bot/_templates links to the top-level templates/ in a checkout and holds copies in a wheel.
BUILTIN_TEMPLATES = Path(bot.__file__).resolve().parent / "_templates"
# The charset is said: a client that follows the MIME default (US-ASCII) would garble a title.
ICS_CONTENT_TYPE = "text/calendar; charset=utf-8; method=PUBLISH"
# CHANNEL/NOTICE.PART.j2; folders starting with "_" hold shared macros, not messages, and
# site/ holds the website's pages (bot.site).
_TEMPLATE_NAME = re.compile(r"^(?!_|site/)[^/]+/[^/]+\.(?:subject|txt|html)\.j2$")
_BLANK_RUN = re.compile(r"\n{3,}")
_HANDLE_URL = re.compile(r"^https?://(?:www\.)?(?:x|twitter)\.com/@?([A-Za-z0-9_]+)/?$")


def template_search_path(settings: Settings) -> list[Path]:
    """The template folders, in order: `TEMPLATES_DIR` (when set), then the built-in ones."""
    return [*([settings.templates_dir] if settings.templates_dir else []), BUILTIN_TEMPLATES]


def template_candidates(channel: str, notice: str, part: str) -> list[str]:
    """The template names tried, in order, for one part of one notice on one channel."""
    return [
        f"{channel}/{notice}.{part}.j2",
        f"{channel}/default.{part}.j2",
        f"default/{notice}.{part}.j2",
        f"default/default.{part}.j2",
    ]


def join_and(items: Iterable[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    names = [str(item) for item in items if str(item)]
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _handle(speaker: Speaker, network: str) -> str | None:
    raw = getattr(speaker, network, None)
    if not raw:
        return None
    text = str(raw).strip()
    if network == "x":
        match = _HANDLE_URL.match(text)
        text = match.group(1) if match else text.lstrip("@")
        return f"@{text}" if text else None
    return text


def handles(speakers: Iterable[Speaker], network: str = "x") -> list[str]:
    """The speakers' handles on a network ("@name" on X), skipping speakers without one."""
    found = (_handle(s, network) for s in speakers)
    return [h for h in found if h]


def speaker_names(
    speakers: Iterable[Speaker], handle: str | None = None, affiliations: bool = False
) -> str:
    """ "A, B and C"; handle="x" adds "(@a)", affiliations=True adds "(University)"."""
    names: list[str] = []
    for speaker in speakers:
        extra = [
            *([speaker.affiliation] if affiliations and speaker.affiliation else []),
            *([tag] if handle and (tag := _handle(speaker, handle)) else []),
        ]
        names.append(f"{speaker.name} ({', '.join(extra)})" if extra else speaker.name)
    return join_and(names)


def tidy_text(text: str) -> str:
    """Trailing spaces dropped, runs of blank lines collapsed to one, ends stripped."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_RUN.sub("\n\n", "\n".join(lines))


def _session_context(session: SessionData) -> dict[str, Any]:
    values: dict[str, Any] = {f.name: getattr(session, f.name) for f in fields(session)}
    values.update(
        speakers=list(session.speakers),
        papers=list(session.papers),
        ends_at=session.ends_at,
        cancelled=session.cancelled,
        duration_minutes=int(session.duration.total_seconds() // 60),
    )
    return values


CARD_DESCRIPTION = 300  # characters of a link card's description (Bluesky shows about two lines)


def _card(session: SessionData, page_url: str | None, group_url: str) -> Card | None:
    """The session as a link card: its page (or the group's site), title and a short summary."""
    url = page_url or group_url
    if not url:
        return None
    parts = []
    if session.speakers:
        parts.append(f"{speaker_names(session.speakers)}.")
    if session.abstract.strip():
        parts.append(" ".join(session.abstract.split()))
    description = " ".join(parts)
    if len(description) > CARD_DESCRIPTION:  # a card's summary, marked as cut; never the post
        description = description[: CARD_DESCRIPTION - 1].rstrip() + "…"
    return Card(url=url, title=session.title, description=description, starts_at=session.starts_at)


def _where(exc: BaseException, roots: Sequence[Path]) -> str:
    """ "name, line N" of the innermost template frame in the traceback, if any."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.lineno:
        return f"{exc.name or exc.filename or '<template>'}, line {exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if not frames:
        return ""
    path = Path(frames[-1].filename).resolve()
    shown = path.as_posix()
    for root in roots:
        if path.is_relative_to(root.resolve()):
            shown = path.relative_to(root.resolve()).as_posix()
            break
    return f"{shown}, line {frames[-1].lineno}"


class _ChannelLoader(jinja2.PrefixLoader):
    """Each plugin's folder under its channel's name; a template keeps its full name
    (`webhook/announce.txt.j2`), so an error names it as it names the others."""

    def load(
        self,
        environment: jinja2.Environment,
        name: str,
        globals: MutableMapping[str, Any] | None = None,
    ) -> jinja2.Template:
        return jinja2.BaseLoader.load(self, environment, name, globals)


def channel_folders(channels: Iterable[str]) -> dict[str, Path]:
    """`{channel: folder}` for each channel whose notifier ships templates (`templates_dir`)."""
    from bot.notifiers import registry

    found: dict[str, Path] = {}
    for name in channels:
        try:
            root = registry.get(name).templates_dir
        except KeyError:  # an unknown or broken channel is reported by the configuration
            continue
        if root is not None and (Path(root) / name).is_dir():
            found[name] = Path(root) / name
    return found


class Renderer:
    """Renders messages from `TEMPLATES_DIR` first, then the built-in `templates/` folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The session file's `group:` block, when the dispatcher read one: its name and YouTube
        # link are used where GROUP_NAME and GROUP_YOUTUBE_URL are not set.
        self.group: GroupInfo | None = None
        self.zones = tuple(settings.display_timezones) or ("UTC",)
        self.search_path = template_search_path(settings)
        # Each plugin's own folder answers only for names under its channel: `NAME/...`.
        self.channel_folders = channel_folders(settings.channels)
        plugins = {n: jinja2.FileSystemLoader(p) for n, p in self.channel_folders.items()}
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [jinja2.FileSystemLoader(self.search_path), _ChannelLoader(plugins)]
            ),
            undefined=jinja2.StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        helpers: dict[str, Any] = {
            "in_zone": self.in_zone,
            "fmt_time": self.fmt_time,
            "fmt_date": self.fmt_date,
            "speaker_names": speaker_names,
            "handles": handles,
            "join_and": join_and,
        }
        self.env.globals.update(helpers)
        self.env.filters.update(helpers)

    # Helpers offered to templates -------------------------------------------------------------

    def in_zone(self, value: datetime, zone: str | None = None) -> ZoneTime:
        """`value` in `zone` (default: the reference zone) as a ZoneTime."""
        return zone_time(value, zone or self.zones[0])

    def fmt_time(self, value: datetime, zone: str | None = None) -> str:
        """ "10 AM EST": `value` in `zone` (default: the reference zone) with its abbreviation."""
        return self.in_zone(value, zone).label

    def fmt_date(self, value: datetime, zone: str | None = None, short: bool = False) -> str:
        """ "Monday, December 14, 2026" (or "Mon Dec 14" with short=True) in `zone`."""
        item = self.in_zone(value, zone)
        return item.short_date if short else item.date

    def page_url(self, session: SessionData) -> str | None:
        """The session's page on the group's website (SITE_URL), or None."""
        site = self.settings.site_url
        return f"{site}/sessions/{session.id}/" if site else None

    def meeting_note(self, session: SessionData) -> str:
        """Where the meeting link is, for a channel that does not carry it."""
        page = self.page_url(session)
        if "email" in self.settings.channels and self.settings.carries_meeting_link("email"):
            return "The meeting link is in the email to the list."
        if page and self.settings.site_meeting_link:
            return f"Meeting link: on {page}"
        if self.settings.group_url:
            return f"Ask the organisers for the meeting link ({self.settings.group_url})."
        return "Ask the organisers for the meeting link."

    # Templates --------------------------------------------------------------------------------

    def template_names(self) -> list[str]:
        """Every message template (CHANNEL/NOTICE.PART.j2) on the search path, sorted."""
        names = {
            path.relative_to(root).as_posix()
            for root in self.search_path
            if root.is_dir()
            for path in root.rglob("*.j2")
        }
        names.update(
            f"{channel}/{path.relative_to(folder).as_posix()}"
            for channel, folder in self.channel_folders.items()
            for path in folder.rglob("*.j2")
        )
        return sorted(n for n in names if _TEMPLATE_NAME.match(n))

    def template_path(self, name: str) -> Path | None:
        """The file that `name` resolves to (an override wins over the built-in one)."""
        found = next((root / name for root in self.search_path if (root / name).is_file()), None)
        channel, _, rest = name.partition("/")
        folder = self.channel_folders.get(channel)
        if found is None and folder is not None and (folder / rest).is_file():
            found = folder / rest
        return found

    def resolve(self, channel: str, notice: str, part: str) -> str:
        """The name of the template used for this part, or TemplateProblem when none exists."""
        for name in template_candidates(channel, notice, part):
            if self.template_path(name) is not None:
                return name
        tried = ", ".join(template_candidates(channel, notice, part))
        raise TemplateProblem(f"no template for {channel}/{notice} {part} (tried {tried})")

    def check_syntax(self) -> list[str]:
        """Compile every template; one problem line per template that does not compile."""
        problems: list[str] = []
        for name in self.template_names():
            try:
                self.env.get_template(name)
            except jinja2.TemplateError as exc:
                problems.append(self._problem(name, exc))
        return problems

    def _problem(self, name: str, exc: BaseException) -> str:
        what = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
        if not isinstance(exc, jinja2.TemplateError):
            what = f"{type(exc).__name__}: {what}"
        where = _where(exc, [*self.search_path, *(f.parent for f in self.channel_folders.values())])
        if not where:
            return f"{name}: {what}"
        if where.startswith(f"{name},"):
            return f"{where}: {what}"
        return f"{where}: {what} (rendering {name})"

    # Rendering --------------------------------------------------------------------------------

    def context(
        self,
        *,
        key: DeliveryKey,
        session: SessionData,
        notice: str,
        offset: timedelta | None,
        first: bool,
        now: datetime,
        previous: SessionData | None = None,
    ) -> dict[str, Any]:
        """The variables a template sees (README: "Template context")."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"now must be an aware datetime: {now!r}")
        times = zone_times(session.starts_at, self.zones)
        previous_times = zone_times(previous.starts_at, self.zones) if previous else None
        kind = notice if notice in SPECIAL_NOTICES else "reminder"
        shown = _session_context(session)
        meeting_note = None
        if session.meeting_url and not self.settings.carries_meeting_link(key.channel):
            shown["meeting_url"] = None  # a public post would invite intruders
            meeting_note = self.meeting_note(session)
        return {
            "session": shown,
            "page_url": self.page_url(session),
            "meeting_note": meeting_note,
            "notice": {
                "name": notice,
                "offset": offset,
                "kind": kind,
                "phrase": humanize_until(session.starts_at - now),
                "number": 1,
            },
            "channel": key.channel,
            "first": first,
            "now": now.astimezone(UTC),
            "group": {
                "name": self.settings.group_name or (self.group.name if self.group else None) or "",
                "url": self.settings.group_url,
                "youtube_url": self.settings.group_youtube_url
                or (self.group.links.youtube if self.group else None)
                or "",
            },
            "times": times,
            "when": when_line(times),
            "previous": _session_context(previous) if previous else None,
            "previous_times": previous_times,
            "previous_when": when_line(previous_times) if previous_times else None,
        }

    def render_part(self, channel: str, notice: str, part: str, context: dict[str, Any]) -> str:
        """Render one part through the fallback chain; any Jinja error becomes TemplateProblem."""
        name = self.resolve(channel, notice, part)
        try:
            return self.env.get_template(name).render(context)
        except Exception as exc:  # syntax, undefined, missing include, a filter that raised
            raise TemplateProblem(self._problem(name, exc)) from exc

    def render(
        self,
        *,
        key: DeliveryKey,
        session: SessionData,
        notice: str,
        offset: timedelta | None,
        first: bool,
        now: datetime,
        parts: Sequence[str],
        previous: SessionData | None = None,
        number: int = 1,
    ) -> Message:
        """Render every part of one delivery into a Message (email also gets the .ics file)."""
        context = self.context(
            key=key,
            session=session,
            notice=notice,
            offset=offset,
            first=first,
            now=now,
            previous=previous,
        )
        context["notice"]["number"] = number
        rendered = {part: self.render_part(key.channel, notice, part, context) for part in parts}
        subject = rendered.get("subject")
        html = rendered.get("html")
        attachments: tuple[Attachment, ...] = ()
        if key.channel == "email":
            ics = session_ics(session, now=now, method="PUBLISH", domain=self.settings.uid_domain)
            attachments = (Attachment("session.ics", ICS_CONTENT_TYPE, ics),)
        return Message(
            key=key,
            card=_card(session, context["page_url"], self.settings.group_url),
            text=tidy_text(rendered.get("txt", "")),
            subject=" ".join(subject.split()) if subject is not None else None,
            html=html.strip() + "\n" if html is not None else None,
            attachments=attachments,
        )
