"""With SITE_URL set, the email and the X posts link each session's page on the website (the
page that `bot site build` writes at that address), and still fit their limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import Reminder, Settings
from bot.domain import DeliveryKey, SessionData, SiteData
from bot.render.renderer import Renderer
from bot.render.textlimits import x_weighted_length
from bot.site.build import build_site
from bot.sources.sessions_file import parse_session_file
from tests.support.site import parse

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sessions.yaml"
SITE_URL = "https://example.org/reading-group"
NOTICES = {
    "announce": timedelta(days=7),
    "reminder": timedelta(days=1),
    "starting": timedelta(hours=1),
    "rescheduled": None,
    "reinstated": None,
}


def sessions() -> list[SessionData]:
    return parse_session_file(EXAMPLE.read_text(encoding="utf-8"), "sessions.yaml").sessions


def render(settings: Settings, session: SessionData, notice: str, channel: str):  # type: ignore[no-untyped-def]
    offset = NOTICES[notice]
    return Renderer(settings).render(
        key=DeliveryKey(session.id, notice, channel, session.starts_at),
        session=session,
        notice=notice,
        offset=offset,
        first=True,
        now=session.starts_at - (offset or timedelta(days=2)),
        parts=("subject", "txt", "html") if channel == "email" else ("txt",),
        previous=replace(session, starts_at=session.starts_at - timedelta(days=1)),
    )


@pytest.mark.parametrize("notice", ["announce", "reminder", "starting", "rescheduled"])
def test_the_email_links_the_sessions_page(notice: str) -> None:
    session = sessions()[0]
    page = f"{SITE_URL}/sessions/{session.id}/"
    message = render(Settings(channels=("email",), site_url=SITE_URL), session, notice, "email")
    assert f"Details: {page}" in message.text
    assert message.html is not None
    assert [a.get("href") for a in parse(message.html.encode()).iter("a")].count(page) == 1
    plain = render(Settings(channels=("email",)), session, notice, "email")
    assert "/sessions/" not in plain.text and "Details:" not in plain.text


@pytest.mark.parametrize("notice", list(NOTICES))
def test_x_posts_link_the_sessions_page_and_fit_280(notice: str) -> None:
    settings = Settings(channels=("x",), site_url=SITE_URL)
    for session in sessions():
        text = render(settings, session, notice, "x").text
        assert text.count(f"More: {SITE_URL}/sessions/{session.id}/") == 1, text
        assert x_weighted_length(text) <= 280, (session.id, notice, text)


def test_a_note_that_already_points_to_the_page_is_not_repeated() -> None:
    settings = Settings(
        channels=("x", "email"),
        site_url=SITE_URL,
        site_meeting_link=True,
        meeting_link_channels=(),
    )
    session = replace(sessions()[0], meeting_url="https://example.zoom.us/j/1")
    x = render(settings, session, "announce", "x").text
    page = f"{SITE_URL}/sessions/{session.id}/"
    assert x.count(page) == 1 and f"Meeting link: on {page}" in x


def test_the_page_a_post_links_is_one_the_site_has() -> None:
    settings = Settings(channels=("x",), site_url=SITE_URL)
    found = sessions()
    files = build_site(SiteData(sessions=tuple(found)), settings, datetime(2026, 12, 1, tzinfo=UTC))
    for session in found:
        text = render(settings, session, "announce", "x").text
        url = text.split("More: ", 1)[1].split()[0]
        assert url.startswith(f"{SITE_URL}/")
        path = url.removeprefix(f"{SITE_URL}/") + "index.html"
        assert path in files


def test_messages_take_the_groups_name_from_the_group_block_when_group_name_is_unset(
    tmp_path: Path,
) -> None:
    """The session file's `group:` block names the group in every message (nothing typed
    twice); GROUP_NAME and GROUP_YOUTUBE_URL, when set, still win."""
    from bot.dispatch import Dispatcher
    from bot.store.db import ensure_schema, make_engine
    from bot.store.imports import import_sessions
    from bot.testing import FrozenClock, RecordingNotifier

    found = parse_session_file(EXAMPLE.read_text(encoding="utf-8"), "sessions.yaml")
    assert found.group is not None and found.group.name and found.group.links.youtube
    first = found.sessions[0]
    for name, (group_name, expected) in {
        "block": ("", found.group.name),
        "variable": ("Set By Hand RG", "Set By Hand RG"),
    }.items():
        engine = make_engine(f"sqlite:///{tmp_path}/{name}.db")
        ensure_schema(engine)
        import_sessions(
            engine, found.sessions, now=first.starts_at - timedelta(days=30), group=found.group
        )
        settings = Settings(
            channels=("email",),
            recording_channels=(),
            reminders=(Reminder("reminder", timedelta(days=1), ("email",)),),
            group_name=group_name,
        )
        notifier = RecordingNotifier()  # the email's texts, handed to a fake at the boundary
        clock = FrozenClock(first.starts_at - timedelta(hours=23))
        Dispatcher(engine, settings, clock, {"email": notifier}).run_pass()
        [message] = [m for m in notifier.sent if m.key.session_id == first.id]
        assert expected in message.text
        assert f"Recordings of all sessions: {found.group.links.youtube}" in message.text
        engine.dispose()
