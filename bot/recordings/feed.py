"""The channel's public Atom feed: fetched with a deadline, parsed strictly, or refused whole.

YouTube's feed (`feeds/videos.xml?channel_id=…`) needs no key and holds the newest 15 uploads.
It answers 404 or 500 now and then for a channel that exists: any status but 200, a timeout, a
body that is not a well-formed Atom feed is a FeedError ("try later"), never "no videos".
feedparser is only ever given bytes: given a URL it would fetch without a timeout.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bot.domain import Video
from bot.errors import BotError

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
DEADLINE = 20.0  # the whole fetch, however slowly the body trickles in
MAX_BYTES = 4 * 1024 * 1024  # 15 entries are ~40 KB
WATCH = "https://www.youtube.com/watch?v={id}"


class FeedError(BotError):
    """The feed could not be read; nothing was changed."""


def where(url: str) -> str:
    """The feed's address without its query (a proxy's key never reaches a log)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def fetch(url: str, *, deadline: float = DEADLINE) -> bytes:
    """The feed's body; FeedError with a one-line reason for anything but a timely 200."""
    import requests

    from bot.tls import certificate_failure, describe_certificate_failure, http_verify

    place = where(url)
    started = time.monotonic()
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
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise FeedError(f"{place} sent more than {MAX_BYTES // 1024 // 1024} MB")
                if time.monotonic() - started > deadline:
                    raise FeedError(f"{place} did not finish answering within {deadline:g}s")
            return bytes(body)
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
        link = str(entry.get("link") or "")
        url = link if urlsplit(link).scheme in ("http", "https") else WATCH.format(id=video_id)
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
