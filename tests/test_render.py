"""The Jinja2 renderer and the built-in templates."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from bot.config import Settings
from bot.domain import Paper, SessionData, Speaker
from bot.errors import TemplateProblem
from bot.notifiers.base import DeliveryKey, Message
from bot.render.ics import session_uid
from bot.render.renderer import BUILTIN_TEMPLATES, Renderer, handles, speaker_names, tidy_text

DIFFUCODER = "DiffuCoder: Understanding and Improving Masked Diffusion Models for Code Generation"
OFFSETS = {
    "announce": timedelta(days=7),
    "reminder": timedelta(days=1),
    "starting": timedelta(hours=1),
}
NOTICES = (
    "announce",
    "reminder",
    "starting",
    "rescheduled",
    "cancelled",
    "reinstated",
    "recording",
    "weekly",
)
CHANNELS = ("email", "x", "console", "bluesky", "mastodon", "slack", "discord", "telegram")
EMAIL_PARTS = ("subject", "txt", "html")


def _session(**changes: Any) -> SessionData:
    values: dict[str, Any] = {
        "id": "diffucoder",
        "title": DIFFUCODER,
        "starts_at": datetime(2025, 12, 15, 10, 0, tzinfo=ZoneInfo("America/New_York")),
        "speakers": (Speaker("Shansan Gong", "The University of Hong Kong", x="@shansangong"),),
        "abstract": "Diffusion language models (DLMs) generate text by denoising a sequence.",
        "papers": (
            Paper("DiffuCoder", "https://arxiv.org/abs/2506.20639"),
            Paper("DiffuLLaMA", "https://arxiv.org/abs/2410.17891"),
        ),
        "meeting_url": "https://example.zoom.us/j/123",
        "recording_url": "https://www.youtube.com/watch?v=abcdefghijk",
        "sequence": 3,
    }
    values.update(changes)
    values["starts_at"] = values["starts_at"].astimezone(UTC)
    return SessionData(**values)


def _settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "group_name": "Diffusion LLM Reading Group",
        "group_url": "https://example.org/dllm",
        "group_youtube_url": "https://www.youtube.com/@dllm",
    }
    values.update(changes)
    return Settings(**values)


def _render(
    renderer: Renderer,
    session: SessionData,
    notice: str = "announce",
    channel: str = "email",
    *,
    first: bool = False,
    previous: SessionData | None = None,
    now: datetime | None = None,
) -> Message:
    offset = OFFSETS.get(notice)
    when = now or session.starts_at - (offset or timedelta(days=2))
    return renderer.render(
        key=DeliveryKey(session.id, notice, channel, session.starts_at),
        session=session,
        notice=notice,
        offset=offset,
        first=first,
        now=when,
        parts=EMAIL_PARTS if channel == "email" else ("txt",),
        previous=previous,
    )


def _override(tmp_path: Path, files: dict[str, str]) -> Renderer:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Renderer(_settings(templates_dir=tmp_path))


def _x_length(text: str) -> int:
    """X's weighted length: bot.render.textlimits when present, else the published rule."""
    try:
        from bot.render.textlimits import x_weighted_length  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        return int(x_weighted_length(text))
    text = re.sub(r"https?://\S+", "u" * 23, unicodedata.normalize("NFC", text))
    light = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
    return sum(1 if any(a <= ord(c) <= b for a, b in light) else 2 for c in text)


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(_settings())


# Times -----------------------------------------------------------------------------------------


def test_gap_week_session_shows_edt_and_cet_everywhere(renderer: Renderer) -> None:
    session = _session(starts_at=datetime(2026, 3, 16, 10, 0, tzinfo=ZoneInfo("America/New_York")))
    email = _render(renderer, session)
    assert "Mon Mar 16 · 10 AM EDT / 3 PM CET" in (email.subject or "")
    assert "Time: Mon Mar 16 · 10 AM EDT / 3 PM CET" in email.text
    assert "Monday, March 16, 2026" in email.text
    assert "10 AM EDT / 3 PM CET" in (email.html or "")
    assert "Mon Mar 16 · 10 AM EDT / 3 PM CET" in _render(renderer, session, channel="x").text


def test_seed_session_heading_and_time_line_name_the_same_day(renderer: Renderer) -> None:
    text = _render(renderer, _session()).text
    assert "Upcoming session · Monday, December 15, 2025" in text
    assert "Time: Mon Dec 15 · 10 AM EST / 4 PM CET" in text
    assert "December 22" not in text


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)),
    zones=st.permutations(["America/New_York", "Europe/Paris", "Asia/Tokyo", "Pacific/Auckland"]),
)
def test_heading_date_and_time_line_always_agree(start: datetime, zones: list[str]) -> None:
    instant = start.replace(tzinfo=UTC)
    renderer = Renderer(_settings(display_timezones=tuple(zones[:2])))
    text = _render(renderer, _session(starts_at=instant), channel="console").text
    local = instant.astimezone(ZoneInfo(zones[0]))
    heading = re.search(r"Upcoming session · (\w+), (\w+) (\d+), (\d{4})", text)
    line = re.search(r"Time: (\w{3}) (\w{3}) (\d+) · ", text)
    assert heading is not None and line is not None
    assert heading.groups() == (
        local.strftime("%A"),
        local.strftime("%B"),
        str(local.day),
        str(local.year),
    )
    assert line.groups() == (local.strftime("%a"), local.strftime("%b"), str(local.day))


def test_far_zone_after_midnight_gets_its_own_date(tmp_path: Path) -> None:
    renderer = Renderer(_settings(display_timezones=("America/New_York", "Asia/Tokyo")))
    late = _session(starts_at=datetime(2026, 12, 14, 20, 0, tzinfo=ZoneInfo("America/New_York")))
    assert "Mon Dec 14 · 8 PM EST / Tue Dec 15, 10 AM JST" in _render(renderer, late).text


def test_helpers_show_any_instant_in_any_zone(tmp_path: Path) -> None:
    renderer = _override(
        tmp_path,
        {
            "console/default.txt.j2": (
                "{{ fmt_date(session.starts_at) }}|{{ fmt_time(session.ends_at, 'Asia/Tokyo') }}|"
                "{{ session.starts_at | fmt_date('Europe/Paris', short=True) }}|"
                "{{ in_zone(session.starts_at, 'Europe/Paris').abbr }}|{{ times[1].label }}|"
                "{{ session.duration_minutes }}"
            )
        },
    )
    text = _render(renderer, _session(), channel="console").text
    assert text == "Monday, December 15, 2025|1 AM JST|Mon Dec 15|CET|4 PM CET|60"


def test_notice_phrase_follows_the_time_left(renderer: Renderer) -> None:
    session = _session()
    assert _render(renderer, session, "reminder").text.startswith(
        "Reminder: this session starts in 1 day."
    )
    late = session.starts_at - timedelta(minutes=20)
    assert "starts in 20 minutes" in _render(renderer, session, "starting", now=late).text


# Errors ----------------------------------------------------------------------------------------


def test_undefined_variable_names_the_template_file_and_line(tmp_path: Path) -> None:
    renderer = _override(tmp_path, {"console/default.txt.j2": "Hello\n{{ session.titel }}\n"})
    with pytest.raises(TemplateProblem) as info:
        _render(renderer, _session(), channel="console")
    message = str(info.value)
    assert "console/default.txt.j2, line 2" in message
    assert "titel" in message


def test_syntax_error_names_the_template_file_and_line(tmp_path: Path) -> None:
    renderer = _override(tmp_path, {"x/announce.txt.j2": "one\ntwo\n{% if %}\n"})
    with pytest.raises(TemplateProblem, match=r"x/announce\.txt\.j2, line 3"):
        _render(renderer, _session(), channel="x")
    problems = renderer.check_syntax()
    assert len(problems) == 1
    assert problems[0].startswith("x/announce.txt.j2, line 3:")


def test_exception_in_a_helper_becomes_a_template_problem(tmp_path: Path) -> None:
    renderer = _override(
        tmp_path, {"console/default.txt.j2": "{{ fmt_time(session.starts_at, 'Mars/Olympus') }}"}
    )
    with pytest.raises(TemplateProblem, match=r"console/default\.txt\.j2, line 1: .*Mars/Olympus"):
        _render(renderer, _session(), channel="console")


def test_error_inside_shared_macros_names_both_files(tmp_path: Path) -> None:
    renderer = _override(
        tmp_path,
        {
            "_lib/mine.j2": "{% macro boom() %}\n{{ session.nope }}\n{% endmacro %}\n",
            "console/default.txt.j2": '{% import "_lib/mine.j2" as m with context %}{{ m.boom() }}',
        },
    )
    with pytest.raises(TemplateProblem) as info:
        _render(renderer, _session(), channel="console")
    assert "_lib/mine.j2, line 2" in str(info.value)
    assert "rendering console/default.txt.j2" in str(info.value)


def test_missing_include_names_the_including_template(tmp_path: Path) -> None:
    renderer = _override(tmp_path, {"x/announce.txt.j2": '{% include "x/nope.j2" %}'})
    with pytest.raises(TemplateProblem, match=r"x/announce\.txt\.j2, line 1: .*x/nope\.j2"):
        _render(renderer, _session(), channel="x")


def test_missing_part_lists_every_name_tried(renderer: Renderer) -> None:
    session = _session()
    with pytest.raises(TemplateProblem, match=r"tried slack/announce\.subject\.j2.*default/def"):
        renderer.render(
            key=DeliveryKey(session.id, "announce", "slack", session.starts_at),
            session=session,
            notice="announce",
            offset=None,
            first=False,
            now=session.starts_at,
            parts=("subject",),
        )


# Escaping, overrides, fallbacks ----------------------------------------------------------------


def test_html_is_autoescaped_and_text_is_not(renderer: Renderer) -> None:
    message = _render(renderer, _session(title="<script>alert(1)</script> & more"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in (message.html or "")
    assert "<script>" not in (message.html or "")
    assert "<script>alert(1)</script> & more" in message.text
    assert "<script>alert(1)</script> & more" in (message.subject or "")


def test_templates_dir_overrides_one_file_and_keeps_the_rest(tmp_path: Path) -> None:
    renderer = _override(tmp_path, {"email/announce.subject.j2": "Custom: {{ session.id }}"})
    message = _render(renderer, _session())
    assert message.subject == "Custom: diffucoder"
    assert "Time: Mon Dec 15 · 10 AM EST / 4 PM CET" in message.text
    assert DIFFUCODER in (message.html or "")
    assert (
        renderer.template_path("email/announce.subject.j2")
        == tmp_path / "email/announce.subject.j2"
    )
    assert (
        renderer.template_path("email/announce.txt.j2")
        == BUILTIN_TEMPLATES / "email/announce.txt.j2"
    )


def test_fallback_chain_order(tmp_path: Path) -> None:
    renderer = _override(
        tmp_path,
        {
            "matrix/default.txt.j2": "matrix default",
            "default/announce.txt.j2": "default announce",
        },
    )
    session = _session()
    # "matrix" and "zulip": plugin channels without built-in templates.
    assert _render(renderer, session, "announce", "matrix").text == "matrix default"
    assert _render(renderer, session, "announce", "zulip").text == "default announce"
    plugin = _render(renderer, session, "reminder", "zulip").text
    assert plugin.startswith(f"Reminder, in 1 day: {DIFFUCODER}")
    assert renderer.resolve("email", "announce", "txt") == "email/announce.txt.j2"
    assert renderer.resolve("email", "cancelled", "txt") == "email/default.txt.j2"
    assert renderer.resolve("zulip", "starting", "txt") == "default/default.txt.j2"


def test_subject_is_collapsed_to_one_line(tmp_path: Path) -> None:
    renderer = _override(tmp_path, {"email/announce.subject.j2": "\n  A\n\n  B  \n"})
    assert _render(renderer, _session()).subject == "A B"


def test_tidy_text_collapses_blank_runs_and_trailing_spaces() -> None:
    assert tidy_text("\n\n a  \n\n\n\nb \n\n") == "a\n\nb"


def test_template_names_list_message_templates_only(tmp_path: Path) -> None:
    renderer = _override(tmp_path, {"slack/default.txt.j2": "x", "_lib/extra.j2": "y"})
    names = renderer.template_names()
    assert "slack/default.txt.j2" in names
    assert "email/announce.html.j2" in names
    assert "default/default.txt.j2" in names
    assert not any(n.startswith("_") for n in names)
    assert Renderer(_settings()).check_syntax() == []


# What the built-in templates say ---------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("notice", NOTICES)
@pytest.mark.parametrize("first", [False, True])
def test_every_builtin_template_renders(
    renderer: Renderer, channel: str, notice: str, first: bool
) -> None:
    session = _session(status="cancelled") if notice == "cancelled" else _session()
    previous = _session(starts_at=session.starts_at - timedelta(days=7), sequence=2)
    message = _render(renderer, session, notice, channel, first=first, previous=previous)
    assert DIFFUCODER in message.text
    assert "Mon Dec 15 · 10 AM EST / 4 PM CET" in message.text or notice == "recording"
    assert "None" not in message.text
    if channel == "email":
        assert message.subject and "\n" not in message.subject
        assert message.html and DIFFUCODER in message.html
    else:
        assert message.subject is None and message.html is None and message.attachments == ()


@pytest.mark.parametrize("notice", ["reminder", "starting"])
@pytest.mark.parametrize("channel", ["email", "console"])
def test_first_notice_carries_the_full_details(
    renderer: Renderer, notice: str, channel: str
) -> None:
    full = _render(renderer, _session(), notice, channel, first=True)
    short = _render(renderer, _session(), notice, channel, first=False)
    assert "denoising a sequence" in full.text
    assert "https://arxiv.org/abs/2506.20639" in full.text
    if channel == "email":
        assert "denoising a sequence" in (full.html or "")
        assert "denoising a sequence" not in short.text
        assert "https://arxiv.org/abs/2506.20639" not in short.text
        assert "denoising a sequence" not in (short.html or "")
    assert "https://example.zoom.us/j/123" in short.text


def test_first_reminder_on_x_presents_the_speakers(renderer: Renderer) -> None:
    full = _render(renderer, _session(), "reminder", "x", first=True).text
    short = _render(renderer, _session(), "reminder", "x", first=False).text
    assert "Shansan Gong (@shansangong) will present." in full
    assert "will present" not in short
    assert "@shansangong" in short


def test_announcement_email_follows_the_seed_site(renderer: Renderer) -> None:
    message = _render(renderer, _session())
    text = message.text
    for expected in (
        DIFFUCODER,
        "Shansan Gong (The University of Hong Kong) will present",
        "Time: Mon Dec 15 · 10 AM EST / 4 PM CET",
        "Meeting link: https://example.zoom.us/j/123",
        "DiffuCoder: https://arxiv.org/abs/2506.20639",
        "Abstract:",
        "Diffusion LLM Reading Group",
        "https://www.youtube.com/@dllm",
    ):
        assert expected in text
    assert message.subject == (
        f"[Diffusion LLM Reading Group] {DIFFUCODER} — Mon Dec 15 · 10 AM EST / 4 PM CET"
    )


def test_email_carries_a_parsable_calendar_with_uid_and_sequence(renderer: Renderer) -> None:
    message = _render(renderer, _session(sequence=3))
    assert message.subject and message.text and message.html
    (attachment,) = message.attachments
    assert attachment.filename == "session.ics"
    assert attachment.content_type == "text/calendar; charset=utf-8; method=PUBLISH"
    (event,) = Calendar.from_ical(attachment.data).walk("VEVENT")
    assert str(event["UID"]) == session_uid("diffucoder", "example.org")  # GROUP_URL's host
    assert int(str(event["SEQUENCE"])) == 3
    assert event.decoded("DTSTART") == _session().starts_at


def test_rescheduled_shows_old_and_new_time(renderer: Renderer) -> None:
    new = _session(starts_at=datetime(2026, 3, 16, 10, 0, tzinfo=ZoneInfo("America/New_York")))
    old = _session(starts_at=datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("America/New_York")))
    for channel in ("email", "x", "console"):
        text = _render(renderer, new, "rescheduled", channel, previous=old).text
        assert "Mon Mar 2 · 10 AM EST / 4 PM CET" in text
        assert "Mon Mar 16 · 10 AM EDT / 3 PM CET" in text


def test_cancelled_notice_drops_the_meeting_link(renderer: Renderer) -> None:
    message = _render(renderer, _session(status="cancelled"), "cancelled")
    assert "Cancelled" in (message.subject or "")
    assert "zoom.us" not in message.text
    assert "zoom.us" not in (message.html or "")


def test_recording_notice_links_the_recording(renderer: Renderer) -> None:
    for channel in ("email", "x", "console", "bluesky"):
        text = _render(renderer, _session(), "recording", channel).text
        assert "https://www.youtube.com/watch?v=abcdefghijk" in text


TWO_SPEAKERS = (
    Speaker("Shansan Gong", "The University of Hong Kong", x="@shansangong"),
    Speaker("Justin Deschenaux", "EPFL", x="https://x.com/jdeschena"),
)


@pytest.mark.parametrize("speakers", [TWO_SPEAKERS[:1], TWO_SPEAKERS], ids=["one", "two"])
@pytest.mark.parametrize("notice", NOTICES)
@pytest.mark.parametrize("first", [False, True])
def test_x_posts_fit_in_280(
    renderer: Renderer, speakers: tuple[Speaker, ...], notice: str, first: bool
) -> None:
    session = _session(title=DIFFUCODER + " (v2)", speakers=speakers)
    previous = _session(starts_at=session.starts_at - timedelta(days=7))
    text = _render(renderer, session, notice, "x", first=first, previous=previous).text
    assert text
    assert _x_length(text) <= 280, (text, _x_length(text))
    assert "denoising" not in text


def test_x_announcement_of_the_diffucoder_session(renderer: Renderer) -> None:
    text = _render(renderer, _session(), "announce", "x").text
    assert DIFFUCODER in text
    assert "Shansan Gong (@shansangong)" in text
    assert "https://example.zoom.us/j/123" in text
    assert _x_length(text) <= 280


def test_no_template_contains_a_hand_typed_date_or_time() -> None:
    months = "January|February|March|April|June|July|August|September|October|November|December"
    days = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Mon|Tue|Wed|Thu|Fri|Sat|Sun"
    typed: Callable[[str], list[str]] = re.compile(
        rf"\b(?:{months}|{days}|Jan|Feb|Mar|Apr|Aug|Sep|Oct|Nov|Dec|EST|EDT|CET|CEST|ET|PT)\b"
        r"|\b\d{1,2}(?::\d{2})?\s?(?:AM|PM|am|pm)\b|\b\d{4}-\d{2}-\d{2}\b"
    ).findall
    for path in BUILTIN_TEMPLATES.rglob("*.j2"):
        assert typed(path.read_text(encoding="utf-8")) == [], path


# Helpers ---------------------------------------------------------------------------------------


def test_speaker_names_joins_with_and() -> None:
    people = [Speaker("A"), Speaker("B", "Uni"), Speaker("C", x="c")]
    assert speaker_names([]) == ""
    assert speaker_names(people[:1]) == "A"
    assert speaker_names(people[:2]) == "A and B"
    assert speaker_names(people) == "A, B and C"
    assert speaker_names(people, handle="x", affiliations=True) == "A, B (Uni) and C (@c)"


def test_handles_normalise_x_names_and_urls() -> None:
    people = [
        Speaker("A", x="@a"),
        Speaker("B", x="b"),
        Speaker("C", x="https://twitter.com/c_c/"),
        Speaker("D"),
    ]
    assert handles(people) == ["@a", "@b", "@c_c"]
    assert handles([Speaker("E", bluesky="e.bsky.social")], "bluesky") == ["e.bsky.social"]


def test_naive_now_is_refused(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="aware"):
        _render(renderer, _session(), now=datetime(2025, 12, 8, 15, 0))


@pytest.mark.parametrize(
    ("env", "domain"),
    [
        (
            {"SITE_URL": "https://dllm.example.net/rg", "GROUP_URL": "https://example.org"},
            "dllm.example.net",
        ),
        ({"GROUP_URL": "https://Example.ORG/dllm"}, "example.org"),
        (
            {
                "CHANNELS": "email",
                "SMTP_HOST": "127.0.0.1",
                "EMAIL_FROM": "Reading Group <bot@lists.cs.example.edu>",
                "EMAIL_TO": "list@example.edu",
            },
            "lists.cs.example.edu",
        ),
        ({}, "reading-group-bot"),
    ],
)
def test_calendar_uids_name_the_group(env: dict[str, str], domain: str) -> None:
    from bot.config import load_settings

    settings = load_settings(env)
    assert settings.uid_domain == domain
    message = _render(Renderer(settings), _session())
    (event,) = Calendar.from_ical(message.attachments[0].data).walk("VEVENT")
    assert str(event["UID"]) == f"diffucoder@{domain}"


# The meeting link policy (MEETING_LINK_CHANNELS) and link cards ---------------------------------

ZOOM = "https://example.zoom.us/j/123"


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("notice", ["announce", "reminder", "starting", "rescheduled"])
def test_a_channel_left_out_of_meeting_link_channels_says_where_the_link_is(
    channel: str, notice: str
) -> None:
    settings = _settings(channels=CHANNELS, meeting_link_channels=("email",))
    session = _session()
    previous = _session(starts_at=session.starts_at - timedelta(days=7), sequence=2)
    message = _render(Renderer(settings), session, notice, channel, previous=previous)
    parts = [message.text, message.html or "", message.subject or ""]
    if channel == "email":
        assert ZOOM in message.text and message.html and ZOOM in message.html
    else:
        assert not any(ZOOM in part for part in parts)
        if notice != "announce" or channel in ("email", "console"):
            assert "meeting link is in the email" in message.text


def test_without_the_email_channel_the_note_points_at_the_site_when_it_shows_the_link() -> None:
    settings = _settings(
        channels=("x",),
        meeting_link_channels=(),
        site_url="https://example.org/dllm",
        site_meeting_link=True,
    )
    message = _render(Renderer(settings), _session(), "reminder", "x")
    assert ZOOM not in message.text
    assert "https://example.org/dllm/sessions/diffucoder/" in message.text


def test_by_default_every_channel_carries_the_meeting_link(renderer: Renderer) -> None:
    for channel in CHANNELS:
        assert ZOOM in _render(renderer, _session(), "reminder", channel).text, channel


def test_meeting_link_channels_must_be_configured_channels() -> None:
    from bot.config import load_settings
    from bot.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings({"CHANNELS": "console", "MEETING_LINK_CHANNELS": "console,email"})
    assert caught.value.problems == ["MEETING_LINK_CHANNELS: channel not in CHANNELS (email)"]
    empty = load_settings({"CHANNELS": "console", "MEETING_LINK_CHANNELS": ""})
    assert empty.meeting_link_channels == () and not empty.carries_meeting_link("console")
    assert load_settings({"CHANNELS": "console"}).carries_meeting_link("console")


def test_the_link_card_is_the_session_page_when_site_url_is_set() -> None:
    renderer = Renderer(_settings(site_url="https://example.org/dllm"))
    card = _render(renderer, _session(), "announce", "bluesky").card
    assert card is not None
    assert card.url == "https://example.org/dllm/sessions/diffucoder/"
    assert card.title == DIFFUCODER and card.starts_at == _session().starts_at
    assert card.description.startswith("Shansan Gong. Diffusion language models")


def test_without_a_site_the_card_is_the_group_page_and_without_either_there_is_none() -> None:
    card = _render(Renderer(_settings()), _session(), "announce", "bluesky").card
    assert card is not None and card.url == "https://example.org/dllm"
    bare = Renderer(Settings())
    assert _render(bare, _session(), "announce", "bluesky").card is None


def test_a_long_abstract_is_cut_in_the_card_only_and_says_so() -> None:
    abstract = "word " * 200
    message = _render(Renderer(_settings()), _session(abstract=abstract), "announce", "email")
    assert message.card is not None
    assert len(message.card.description) <= 300 and message.card.description.endswith("…")
    assert abstract.strip() in " ".join(message.text.split())  # the email keeps all of it
