"""The channel's public Atom feed: fetched with a deadline, parsed strictly, or refused whole.

YouTube's feed (`feeds/videos.xml?channel_id=…`) needs no key and holds the newest 15 uploads.
It answers 404 or 500 now and then for a channel that exists: any status but 200, a timeout, a
body that is not a well-formed Atom feed is a FeedError ("try later"), never "no videos".
feedparser is only ever given bytes: given a URL it would fetch without a timeout.
"""

from __future__ import annotations

import calendar
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bot.domain import Video
from bot.errors import BotError
from bot.site.links import safe_href

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
DEADLINE = 20.0  # the whole fetch, however slowly the body trickles in
MAX_BYTES = 4 * 1024 * 1024  # 15 entries are ~40 KB
WATCH = "https://www.youtube.com/watch?v={id}"


class FeedError(BotError):
    """The feed could not be read; nothing was changed."""


def where(url: str) -> str:
    """The feed's scheme and host only: a proxy's key, in its path or query, never shows."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "YOUTUBE_FEED_URL"
    return f"{parts.scheme}://{host}{port}" if host else "YOUTUBE_FEED_URL"


def fetch(url: str, *, deadline: float = DEADLINE) -> bytes:
    """The feed's body; FeedError with a one-line reason for anything but a 200 within
    `deadline` seconds in all (a name lookup or a body that trickles in included: the request
    runs in a thread of its own)."""
    place = where(url)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["body"] = _get(url, place)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    # A daemon thread: when the time is up it is left to finish on its own (closing its
    # connection from here would wait for its read), and it never keeps a process alive.
    thread = threading.Thread(target=work, name="feed", daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive():
        raise FeedError(f"{place} did not finish answering within {deadline:g}s")
    if "error" in outcome:
        raise outcome["error"]
    body: bytes = outcome["body"]
    return body


def _get(url: str, place: str) -> bytes:
    import requests

    from bot.tls import certificate_failure, describe_certificate_failure, http_verify

    try:
        with requests.get(
            url,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            stream=True,
            verify=http_verify(),
            headers={"Accept": "application/atom+xml, application/xml;q=0.9, */*;q=0.1"},
        ) as response:
            if response.status_code != 200:
                reason = f" {response.reason}" if response.reason else ""
                raise FeedError(f"{place} answered {response.status_code}{reason}")
            body = bytearray()
            for chunk in response.iter_content(16 * 1024):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise FeedError(f"{place} sent more than {MAX_BYTES // 1024 // 1024} MB")
            return bytes(body)
    except requests.ConnectTimeout as exc:
        raise FeedError(f"could not connect to {place} within {CONNECT_TIMEOUT:g}s") from exc
    except requests.Timeout as exc:
        raise FeedError(f"{place} did not answer within {READ_TIMEOUT:g}s") from exc
    except requests.exceptions.SSLError as exc:
        bad = certificate_failure(exc)
        if bad is not None:
            raise FeedError(describe_certificate_failure(bad, "YOUTUBE_FEED_URL")) from exc
        raise FeedError(f"TLS with {place} failed ({type(exc).__name__})") from exc
    except requests.RequestException as exc:
        raise FeedError(f"could not read {place} ({type(exc).__name__})") from exc


def _instant(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def parse(body: bytes) -> list[Video]:
    """The videos of a feed body, newest first; FeedError when it is not a well-formed feed."""
    import feedparser

    result = feedparser.parse(body)  # bytes: feedparser never fetches anything
    problem = result.get("bozo_exception") if result.get("bozo") else None
    if problem is not None and not isinstance(problem, feedparser.CharacterEncodingOverride):
        line = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        raise FeedError(f"the feed is not well-formed XML ({line})")
    if not str(result.get("version", "")).startswith("atom"):
        raise FeedError("the answer is not an Atom feed")
    videos = []
    for entry in result.entries:
        video_id = str(entry.get("yt_videoid") or "").strip()
        published = _instant(entry.get("published_parsed"))
        if not video_id or published is None or len(video_id) > 40:
            continue  # not a video entry (or one without a date): nothing to match
        # Only a link a session's recording_url may hold; else YouTube's own watch page.
        url = safe_href(str(entry.get("link") or "")) or WATCH.format(id=video_id)
        videos.append(
            Video(
                video_id=video_id,
                title=" ".join(str(entry.get("title") or "").split()),
                url=url,
                published_at=published,
                updated_at=_instant(entry.get("updated_parsed")),
                description=str(entry.get("summary") or ""),
            )
        )
    videos.sort(key=lambda v: (v.published_at, v.video_id), reverse=True)
    return videos


def read(url: str) -> list[Video]:
    """Fetch and parse: the feed's videos, or FeedError."""
    return parse(fetch(url))
