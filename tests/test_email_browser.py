"""The HTML email in a real browser (Debian's headless Chromium): at a phone's 390 px and at
800 px, nothing scrolls sideways, long meeting links included (issue 8, item 6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from bot.domain import DeliveryKey, Paper, SessionData, Speaker
from bot.render.renderer import Renderer
from tests.support.browser import Browser

START = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)
LONG_MEETING = (
    "https://university-example.zoom.us/j/81234567890123?pwd=Q2hhbmdlTWVQbGVhc2VUaGlzSXNBVmVyeU"
    "xvbmdNZWV0aW5nUGFzc3dvcmRUaGF0R29lc09uQW5kT24&uname=Diffusion+LLM+Reading+Group"
)
SESSION = SessionData(
    id="diffucoder",
    title="DiffuCoder: Understanding and Improving Masked Diffusion Models for Code Generation",
    starts_at=START,
    timezone="America/New_York",
    speakers=(Speaker("Shansan Gong", "The University of Hong Kong"),),
    abstract="Diffusion language models (DLMs) generate text by denoising an entire sequence.",
    papers=(
        Paper("DiffuCoder", "https://arxiv.org/abs/2506.20639"),
        Paper("A paper with a long link", "https://example.org/" + "very-long-path-segment-" * 8),
    ),
    meeting_url=LONG_MEETING,
    recording_url="https://www.youtube.com/watch?v=" + "x" * 60,
)


def email_html(tmp_path: Path, notice: str, session: SessionData = SESSION) -> Path:
    renderer = Renderer(Settings(group_name="Diffusion LLM Reading Group"))
    message = renderer.render(
        key=DeliveryKey(session.id, notice, "email", session.starts_at),
        session=session,
        notice=notice,
        offset=timedelta(days=7) if notice == "announce" else None,
        first=True,
        now=session.starts_at - timedelta(days=7),
        parts=("subject", "txt", "html"),
        previous=replace(session, starts_at=START - timedelta(days=2)),
    )
    assert message.html is not None
    path = tmp_path / f"{notice}.html"
    path.write_text(message.html, encoding="utf-8")
    return path


@pytest.mark.parametrize("notice", ["announce", "rescheduled", "reinstated", "recording"])
@pytest.mark.parametrize("width", [390, 800])
def test_the_html_email_never_scrolls_sideways(
    browser: Browser, tmp_path: Path, notice: str, width: int
) -> None:
    browser.open(email_html(tmp_path, notice), width=width)
    assert browser.viewport_width() == width
    assert browser.scroll_width() <= width, f"{notice} is {browser.scroll_width()} px wide"
    browser.screenshot(f"email-{notice}-{width}")
