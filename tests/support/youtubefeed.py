"""A stand-in for YouTube's channel feed: a real HTTP server on 127.0.0.1 serving
`/feeds/videos.xml?channel_id=ID` in YouTube's own format, with faults set at run time.

The body is what youtube.com serves (Atom with the `yt:` and `media:` namespaces; per entry
`yt:videoId`, `yt:channelId`, `link rel=alternate` to the watch page, `published`, `updated` and
`media:group` with `media:title`, `media:content`, `media:thumbnail`, `media:description` and
`media:community`), holding the newest FEED_SIZE videos, newest first, as the real feed does.

    with FeedStandIn() as feed:              # or the `youtube_feed` fixture
        feed.add(FeedVideo("dQw4w9WgXcQ", "Title", published, description="session:s1"))
        env = {"YOUTUBE_CHANNEL_ID": CHANNEL_ID, "YOUTUBE_FEED_URL": feed.url}
        feed.set_fault("status", status=500)

Faults (the real feed's known failures: intermittent 404 and 500 for a channel that exists):
`ok`; `status` (any status, an HTML error page as YouTube sends); `hang` (the headers never come,
until `hang_seconds` or stop); `truncated` (200, the XML cut off mid-entry); `html` (200 and a
page that is not a feed, as a captive portal or consent wall answers); `trickle` (200 and the
feed one byte every 0.2 s: no single read ever times out).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

import pytest

from tests.support.standin import LoopbackServer

CHANNEL_ID = "UCq0VwLs1gJ8kE2vYpTn4RbA"  # 24 characters, as YouTube's
CHANNEL_NAME = "Diffusion LM Reading Group"
FEED_SIZE = 15
FAULTS = ("ok", "status", "hang", "truncated", "html", "trickle")


@dataclass(frozen=True)
class FeedVideo:
    """One upload as the feed lists it."""

    video_id: str
    title: str
    published: datetime
    description: str = ""
    updated: datetime | None = None
    views: int = 120

    @property
    def url(self) -> str:
        """The watch page the feed links to."""
        return f"https://www.youtube.com/watch?v={self.video_id}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def feed_xml(videos: list[FeedVideo], channel_id: str = CHANNEL_ID) -> bytes:
    """The feed document for `videos` (the newest FEED_SIZE of them, newest first)."""
    shown = sorted(videos, key=lambda v: v.published, reverse=True)[:FEED_SIZE]
    channel_url = f"https://www.youtube.com/channel/{channel_id}"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" '
        'xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">\n'
        f' <link rel="self" href="http://www.youtube.com/feeds/videos.xml?channel_id={channel_id}"/>\n'
        f" <id>yt:channel:{channel_id[2:]}</id>\n"
        f" <yt:channelId>{channel_id[2:]}</yt:channelId>\n"
        f" <title>{escape(CHANNEL_NAME)}</title>\n"
        f' <link rel="alternate" href="{channel_url}"/>\n'
        f" <author>\n  <name>{escape(CHANNEL_NAME)}</name>\n"
        f"  <uri>{channel_url}</uri>\n </author>\n"
        " <published>2024-09-02T18:11:41+00:00</published>\n"
    ]
    for v in shown:
        updated = v.updated or v.published
        parts.append(
            " <entry>\n"
            f"  <id>yt:video:{v.video_id}</id>\n"
            f"  <yt:videoId>{v.video_id}</yt:videoId>\n"
            f"  <yt:channelId>{channel_id}</yt:channelId>\n"
            f"  <title>{escape(v.title)}</title>\n"
            f'  <link rel="alternate" href="{v.url}"/>\n'
            f"  <author>\n   <name>{escape(CHANNEL_NAME)}</name>\n   <uri>{channel_url}</uri>\n"
            "  </author>\n"
            f"  <published>{_stamp(v.published)}</published>\n"
            f"  <updated>{_stamp(updated)}</updated>\n"
            "  <media:group>\n"
            f"   <media:title>{escape(v.title)}</media:title>\n"
            f"   <media:content url={quoteattr(f'https://www.youtube.com/v/{v.video_id}?version=3')}"
            ' type="application/x-shockwave-flash" width="640" height="390"/>\n'
            f'   <media:thumbnail url="https://i3.ytimg.com/vi/{v.video_id}/hqdefault.jpg"'
            ' width="480" height="360"/>\n'
            f"   <media:description>{escape(v.description)}</media:description>\n"
            "   <media:community>\n"
            '    <media:starRating count="4" average="5.00" min="1" max="5"/>\n'
            f'    <media:statistics views="{v.views}"/>\n'
            "   </media:community>\n"
            "  </media:group>\n"
            " </entry>\n"
        )
    parts.append("</feed>\n")
    return "".join(parts).encode("utf-8")


ERROR_PAGE = (
    b"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 404 (Not Found)!!1</title>"
    b"<p><b>404.</b> <ins>That\xe2\x80\x99s an error.</ins></html>"
)
CONSENT_PAGE = b"<!DOCTYPE html><html><head><title>Before you continue to YouTube</title></html>"


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    videos: list[FeedVideo] = field(default_factory=list)
    fault: str = "ok"
    status: int = 500
    hang_seconds: float | None = None
    times: int | None = None  # the fault answers this many requests, then `ok` again
    requests: list[dict[str, Any]] = field(default_factory=list)


class FeedStandIn(LoopbackServer):
    """The feed server: start it, point YOUTUBE_FEED_URL at `url`, add videos, set faults."""

    name = "the YouTube feed stand-in"

    def __init__(self, channel_id: str = CHANNEL_ID) -> None:
        self.channel_id = channel_id
        self._state = _State()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self._state, self.channel_id)

    @property
    def url(self) -> str:
        """The feed's address, as YOUTUBE_FEED_URL."""
        return f"{self.origin}/feeds/videos.xml?channel_id={self.channel_id}"

    def add(self, *videos: FeedVideo) -> None:
        """Upload videos (the feed shows the newest FEED_SIZE)."""
        with self._state.lock:
            self._state.videos.extend(videos)

    def replace(self, videos: list[FeedVideo]) -> None:
        """The channel's uploads, whole."""
        with self._state.lock:
            self._state.videos = list(videos)

    def set_fault(
        self,
        mode: str,
        *,
        status: int = 500,
        hang_seconds: float | None = None,
        times: int | None = None,
    ) -> None:
        """Answer the next requests (`times` of them, else all) with `mode`."""
        if mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}: one of {FAULTS}")
        with self._state.lock:
            self._state.fault, self._state.status = mode, status
            self._state.hang_seconds, self._state.times = hang_seconds, times

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request seen: path, query and the fault that answered it."""
        with self._state.lock:
            return list(self._state.requests)


def _handler(state: _State, channel_id: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with state.lock:
                fault = state.fault
                if state.times is not None:
                    state.times -= 1
                    if state.times <= 0:
                        state.fault, state.times = "ok", None
                state.requests.append({"path": parts.path, "query": query, "fault": fault})
                videos = list(state.videos)
                status, hang = state.status, state.hang_seconds
            if parts.path != "/feeds/videos.xml" or query.get("channel_id") != [channel_id]:
                self._send(404, ERROR_PAGE, "text/html; charset=utf-8")
                return
            if fault == "status":
                self._send(status, ERROR_PAGE, "text/html; charset=utf-8")
            elif fault == "hang":
                state.stopping.wait(hang)
                self.close_connection = True
            elif fault == "truncated":
                body = feed_xml(videos, channel_id)
                self._send(200, body[: len(body) * 2 // 3], "text/xml; charset=UTF-8")
            elif fault == "trickle":
                body = feed_xml(videos, channel_id)
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(len(body)):
                    if state.stopping.wait(0.2):
                        return
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
            elif fault == "html":
                self._send(200, CONSENT_PAGE, "text/html; charset=utf-8")
            else:
                self._send(200, feed_xml(videos, channel_id), "text/xml; charset=UTF-8")

    return Handler


@pytest.fixture
def youtube_feed() -> Iterator[FeedStandIn]:
    """A running feed stand-in, stopped after the test."""
    with FeedStandIn() as feed:
        yield feed
