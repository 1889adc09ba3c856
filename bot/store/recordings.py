"""The videos seen in the YouTube feed and the recording matches (SQL for `videos` and
`recording_matches`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime

from sqlalchemy import Connection, Select, insert, select, text, update

from bot.domain import RecordingMatch, Video
from bot.store.db import is_sqlite
from bot.store.tables import recording_matches, sessions, videos

LATEST_VIDEOS = 6  # on the website's front page


def lock_recordings(conn: Connection) -> None:
    """Order syncs and operator words on matches (SQLite's BEGIN IMMEDIATE already does)."""
    if not is_sqlite(conn):
        conn.execute(text("LOCK TABLE recording_matches IN SHARE ROW EXCLUSIVE MODE"))


_VIDEO_COLUMNS = [videos.c[f.name] for f in fields(Video)]


def load_videos(conn: Connection, limit: int | None = None) -> list[Video]:
    """Stored videos, newest first."""
    query = select(*_VIDEO_COLUMNS).order_by(videos.c.published_at.desc(), videos.c.video_id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [Video(**r._mapping) for r in conn.execute(query)]


def get_video(conn: Connection, video_id: str) -> Video | None:
    """One stored video, or None."""
    row = conn.execute(select(*_VIDEO_COLUMNS).where(videos.c.video_id == video_id)).first()
    return Video(**row._mapping) if row is not None else None


def merge_videos(stored: Sequence[Video], seen: Sequence[Video]) -> tuple[list[Video], list[str]]:
    """The stored videos updated by the ones just seen, newest first, and what that changes
    (`added ID` / `updated ID`): nothing when the same feed is read again."""
    by_id = {v.video_id: v for v in stored}
    changes = []
    for video in seen:
        old = by_id.get(video.video_id)
        if old is None:
            changes.append(f"added {video.video_id}")
        elif old != video:
            changes.append(f"updated {video.video_id}")
        by_id[video.video_id] = video
    merged = sorted(by_id.values(), key=lambda v: (v.published_at, v.video_id), reverse=True)
    return merged, changes


def save_videos(conn: Connection, seen: Sequence[Video], now: datetime) -> list[str]:
    """Insert new videos and update changed ones; the changes made (as merge_videos says)."""
    stored = {v.video_id: v for v in load_videos(conn)}
    fresh = [v for v in seen if v.video_id not in stored]
    changed = [v for v in seen if v.video_id in stored and stored[v.video_id] != v]
    changes = [
        f"{'added' if v in fresh else 'updated'} {v.video_id}"
        for v in seen
        if v in fresh or v in changed
    ]
    if fresh:
        conn.execute(insert(videos), [vars(v) | {"first_seen_at": now} for v in fresh])
    for video in changed:
        values = {k: v for k, v in vars(video).items() if k != "video_id"}
        conn.execute(update(videos).where(videos.c.video_id == video.video_id).values(values))
    return changes


def load_matches(conn: Connection, session_id: str | None = None) -> list[RecordingMatch]:
    """Every match (of one session), most recently found first."""
    m = recording_matches.c
    query = select(recording_matches).order_by(m.found_at.desc(), m.session_id, m.video_id)
    if session_id is not None:
        query = query.where(m.session_id == session_id)
    return [
        RecordingMatch(
            session_id=r.session_id,
            video_id=r.video_id,
            kind=r.kind,
            score=r.score,
            why=r.why,
            status=r.status,
            found_at=r.found_at,
            decided_at=r.decided_at,
            decided_by=r.decided_by,
            applied_url=r.applied_url,
        )
        for r in conn.execute(query)
    ]


def add_match(conn: Connection, match: RecordingMatch) -> None:
    """Store a new match (the caller holds lock_recordings and checked it is new)."""
    conn.execute(insert(recording_matches).values(vars(match)))


def set_match(
    conn: Connection,
    session_id: str,
    video_id: str,
    status: str,
    now: datetime,
    by: str,
    *,
    kind: str | None = None,
    score: int | None = None,
    why: str | None = None,
    only_from: str | None = None,
    applied_url: str | None = None,
) -> bool:
    """Give a stored match its new status (and, when found again, its new kind, score, why);
    with `only_from`, only a match in that status. True when it was changed."""
    m = recording_matches.c
    values: dict[str, object] = {"status": status, "decided_at": now, "decided_by": by}
    given = (("kind", kind), ("score", score), ("why", why), ("applied_url", applied_url))
    values |= {k: v for k, v in given if v is not None}
    query = update(recording_matches).where(m.session_id == session_id, m.video_id == video_id)
    if only_from is not None:
        query = query.where(m.status == only_from)
    return conn.execute(query.values(values)).rowcount == 1


def _current() -> Select[tuple[str, str, str]]:
    """(session, video, URL) of the applied matches whose URL is still the session's recording."""
    m, s = recording_matches.c, sessions.c
    return (
        select(m.session_id, m.video_id, s.recording_url)
        .join(sessions, s.id == m.session_id)
        .where(m.status == "applied", s.recording_url == m.applied_url)
    )


def sessions_linking(conn: Connection, url: str) -> list[str]:
    """The sessions whose recording_url is `url`."""
    return list(conn.scalars(select(sessions.c.id).where(sessions.c.recording_url == url)))


def get_match(conn: Connection, session_id: str, video_id: str) -> RecordingMatch | None:
    """One stored match, or None."""
    return next((m for m in load_matches(conn, session_id) if m.video_id == video_id), None)


def applied_recordings(conn: Connection, ids: Iterable[str] | None = None) -> dict[str, str]:
    """Sessions whose recording_url is still the video an applied match gave them: id -> URL."""
    query = _current()
    if ids is not None:
        query = query.where(recording_matches.c.session_id.in_(list(ids)))
    return {row.session_id: row.recording_url for row in conn.execute(query)}


def current_recordings(conn: Connection) -> set[tuple[str, str]]:
    """(session, video) of the applied matches whose video is still the session's recording."""
    return {(row.session_id, row.video_id) for row in conn.execute(_current())}


def video_sessions(conn: Connection) -> dict[str, str]:
    """Video id -> the session it is still the recording of."""
    return {video_id: session_id for session_id, video_id in current_recordings(conn)}
