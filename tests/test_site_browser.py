"""The website in a real browser (Debian's headless Chromium through Selenium), served over HTTP
on 127.0.0.1: it loads without console errors, adds the visitor's own time, never scrolls
sideways at a phone's 390 px, and leaves screenshots at 390 and 1280 px in build/screenshots/.

Skipped, saying why, where Chromium or its driver is missing; CI sets BOT_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from bot.config import Settings
from bot.domain import Paper, SessionData, Speaker
from bot.site.rebuild import build_into
from bot.sources.sessions_file import parse_session_file
from bot.store.db import ensure_schema, make_engine
from bot.store.imports import import_sessions
from tests.support.browser import Browser

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sessions.yaml"
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
FIRST = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)  # the example file's first session
# A meeting link as Zoom makes them: long, with no place to break (it must wrap, not widen).
LONG_URL = (
    "https://university-example.zoom.us/j/81234567890123?pwd=Q2hhbmdlTWVQbGVhc2VUaGlzSXNBVmVyeU"
    "xvbmdNZWV0aW5nUGFzc3dvcmRUaGF0R29lc09uQW5kT24"
)


def _png(size: int = 8) -> bytes:
    """A small grey square, as a PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x99" * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + (chunk(b"IEND", b""))
    )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example group's site (with two past sessions and a photo), at http://127.0.0.1:PORT/."""
    root = tmp_path_factory.mktemp("www")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    (root / "photo.png").write_bytes(_png())
    engine: Engine = make_engine(f"sqlite:///{root.parent}/site.db")
    ensure_schema(engine)
    found = parse_session_file(EXAMPLE.read_text(encoding="utf-8"), "sessions.yaml")
    assert found.group is not None
    first = found.sessions[0]
    past = [
        replace(
            first,
            id="block-diffusion",
            title="Block Diffusion: Interpolating Between Autoregressive and Diffusion Models",
            starts_at=FIRST - timedelta(days=28),
            speakers=(Speaker("Marianne Arriola", "Cornell Tech"),),
            papers=(Paper("Block Diffusion", "https://arxiv.org/abs/2503.09573"),),
            recording_url="https://www.youtube.com/watch?v=aaaaaaaaaaa",
        ),
        replace(
            first,
            id="simple-guidance",
            title="Simple Guidance Mechanisms for Discrete Diffusion Models",
            starts_at=FIRST - timedelta(days=14),
            speakers=(Speaker("Yair Schiff", "Cornell University"),),
            recording_url="https://www.youtube.com/watch?v=bbbbbbbbbbb",
        ),
    ]
    organizers = tuple(
        replace(o, photo=f"{base}/photo.png") if i == 0 else o
        for i, o in enumerate(found.group.organizers)
    )
    group = replace(found.group, organizers=organizers)
    upcoming = [replace(found.sessions[0], meeting_url=LONG_URL), *found.sessions[1:]]
    import_sessions(engine, [*past, *upcoming], now=NOW - timedelta(days=60), group=group)
    _add_videos(engine, past)
    settings = Settings(site_url="https://example.org/reading-group", site_meeting_link=True)
    site = root / "site"
    build_into(engine, settings, NOW, site)
    engine.dispose()
    try:
        yield f"{base}/site/"
    finally:
        server.shutdown()
        server.server_close()


def _add_videos(engine: Engine, past: list[SessionData]) -> None:
    """The channel's latest uploads, two of them the past sessions' recordings, one with a
    title no browser can break at a space (the front page's "Latest videos" must still fit)."""
    from bot.domain import RecordingMatch, Video
    from bot.store.db import write_transaction
    from bot.store.recordings import add_match, save_videos

    videos = [
        Video(s.recording_url.rsplit("=", 1)[1], f"{s.title} ({s.speakers[0].name})",
              s.recording_url, s.starts_at + timedelta(hours=3))
        for s in past
        if s.recording_url
    ] + [
        Video("ccccccccccc", "DiscreteDiffusionLanguageModelsATutorialRecordedLive" * 2,
              "https://www.youtube.com/watch?v=ccccccccccc", NOW - timedelta(hours=1)),
    ]  # fmt: skip
    with write_transaction(engine) as conn:
        save_videos(conn, videos, NOW - timedelta(days=1))
        for s, v in zip(past, videos, strict=False):
            add_match(conn, RecordingMatch(s.id, v.video_id, "certain", 100, "test", "applied",
                                           NOW, NOW, "operator", v.url))  # fmt: skip


def _set_zone(browser: Browser, zone: str) -> None:
    browser.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": zone})


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("page", ["", "sessions/", "sessions/diffucoder/"])
def test_the_site_loads_cleanly_and_never_scrolls_sideways(
    browser: Browser, served: str, page: str, width: int
) -> None:
    browser.console_errors()  # forget what earlier tests logged
    browser.open(served + page, width=width)
    assert browser.viewport_width() == width
    assert browser.console_errors() == []
    assert browser.scroll_width() <= width, f"{page or 'index'} is {browser.scroll_width()} px wide"
    images = browser.driver.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])"
    )
    assert all(alt and loaded for alt, loaded in images), images
    name = {"": "index", "sessions/": "sessions", "sessions/diffucoder/": "session"}[page]
    assert browser.screenshot(f"site-{name}-{width}").stat().st_size > 10_000


def test_the_front_page_lists_the_latest_videos_linking_their_sessions(
    browser: Browser, served: str
) -> None:
    browser.open(served, width=390)
    heading, links = browser.driver.execute_script(
        "const s = document.getElementById('recordings');"
        "return [s.querySelector('h2').textContent,"
        " Array.from(s.querySelectorAll('li a')).map(a => a.getAttribute('href'))];"
    )
    assert heading == "Latest videos"
    assert links == [
        "https://www.youtube.com/watch?v=ccccccccccc",  # newest first
        "https://www.youtube.com/watch?v=bbbbbbbbbbb",
        "sessions/simple-guidance/",
        "https://www.youtube.com/watch?v=aaaaaaaaaaa",
        "sessions/block-diffusion/",
    ]
    widest = browser.driver.execute_script(
        "return Math.max(...Array.from(document.querySelectorAll('#recordings li'))"
        ".map(li => li.scrollWidth + li.getBoundingClientRect().left));"
    )
    assert widest <= 390


def test_the_visitor_sees_the_time_in_their_own_zone(browser: Browser, served: str) -> None:
    _set_zone(browser, "Asia/Tokyo")
    try:
        browser.open(served, width=1280)
        shown = browser.text_of(".featured .yours")
        local = FIRST.astimezone(ZoneInfo("Asia/Tokyo"))
        hour = local.hour % 12 or 12
        expected = f"{local:%a}, {local:%b} {local.day}, {hour}:{local:%M} {local:%p}"
        assert shown.startswith(f"Your time (Asia/Tokyo): {expected}"), shown
        assert browser.text_of(".featured .when time") == "Mon Dec 14 · 10 AM EST / 4 PM CET"
        _set_zone(browser, "America/New_York")  # a zone the page shows already
        browser.open(served, width=1280)
        assert browser.text_of(".featured .yours") == ""  # hidden: nothing to add
        assert browser.console_errors() == []
    finally:
        _set_zone(browser, "")
