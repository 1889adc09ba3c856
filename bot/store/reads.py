"""Reads: the sessions a pass or a listing needs, with their ledger rows (Core only, no ORM)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from bot.domain import FINAL_STATES, TOLD_STATES, LedgerRow, Paper, SessionData, Speaker
from bot.store.ledger import load_rows
from bot.store.tables import deliveries, papers, sessions, speakers


def _children(conn: Connection, table: Any, ids: Sequence[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = defaultdict(list)
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        query = select(table).where(table.c.session_id.in_(chunk)).order_by(table.c.position)
        for row in conn.execute(query):
            found[row.session_id].append(row)
    return found


def _told_after(conn: Connection, moment: datetime) -> list[str]:
    """Sessions whose subscribers were told of a start after `moment` (a move needs a notice)."""
    d = deliveries.c
    query = select(d.session_id).where(d.status.in_(TOLD_STATES), d.occurrence >= moment).distinct()
    return list(conn.scalars(query))


def _owing_recording(conn: Connection, since: datetime, until: datetime, channels: int) -> set[str]:
    """Sessions started in [since, until) with a recording whose notices are not all settled."""
    d = deliveries.c
    settled = (
        select(func.count())
        .where(
            d.session_id == sessions.c.id,
            d.notice == "recording",
            d.occurrence == sessions.c.starts_at,
            d.status.in_(FINAL_STATES),
        )
        .scalar_subquery()
    )
    query = select(sessions.c.id).where(
        sessions.c.starts_at >= since,
        sessions.c.starts_at < until,
        sessions.c.recording_url.is_not(None),
        settled < channels,
    )
    return set(conn.scalars(query))


def load_sessions(
    conn: Connection,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    *,
    session_id: str | None = None,
    announced_after: datetime | None = None,
    recordings_from: datetime | None = None,
    recording_channels: int = 1,
) -> list[SessionData]:
    """Sessions starting in [start_from, start_to] (an indexed range), with speakers and papers.

    With `announced_after`, also every session whose subscribers were told of a start after that
    moment, wherever it starts now: a move or cancellation of it needs a notice.
    """
    query = select(sessions)
    if start_from is not None:
        query = query.where(sessions.c.starts_at >= start_from)
    if start_to is not None:
        query = query.where(sessions.c.starts_at <= start_to)
    if session_id is not None:
        query = query.where(sessions.c.id == session_id)
    rows = list(conn.execute(query))
    # Sessions outside the window that may still owe a change notice: read by separate, simple
    # indexed queries (one OR across them makes the engines scan the ledger).
    more = set(_told_after(conn, announced_after)) if announced_after is not None else set()
    if recordings_from is not None and start_from is not None:
        more |= _owing_recording(conn, recordings_from, start_from, recording_channels)
    more -= {r.id for r in rows}
    if session_id is not None:
        more &= {session_id}
    for start in range(0, len(more), 500):
        chunk = sorted(more)[start : start + 500]
        rows.extend(conn.execute(select(sessions).where(sessions.c.id.in_(chunk))))
    if not rows:
        return []
    rows.sort(key=lambda r: (r.starts_at, r.id))
    ids = [r.id for r in rows]
    by_speaker, by_paper = _children(conn, speakers, ids), _children(conn, papers, ids)
    return [
        SessionData(
            id=r.id,
            title=r.title,
            starts_at=r.starts_at,
            duration=timedelta(minutes=r.duration_minutes),
            timezone=r.timezone,
            speakers=tuple(
                Speaker(s.name, s.affiliation, s.x, s.bluesky, s.mastodon, s.url)
                for s in by_speaker.get(r.id, ())
            ),
            abstract=r.abstract,
            papers=tuple(Paper(p.title, p.url) for p in by_paper.get(r.id, ())),
            meeting_url=r.meeting_url,
            recording_url=r.recording_url,
            status=r.status,
            sequence=r.sequence,
            occurrence_since=r.occurrence_since,
            status_since=r.status_since,
            recording_since=r.recording_since,
        )
        for r in rows
    ]


def load_window(
    engine: Engine,
    start_from: datetime | None,
    start_to: datetime | None,
    *,
    session_id: str | None = None,
    announced_after: datetime | None = None,
    recordings_from: datetime | None = None,
    recording_channels: int = 1,
) -> tuple[list[SessionData], list[LedgerRow]]:
    """Sessions starting in [start_from, start_to], and all their ledger rows, in one snapshot."""
    with engine.connect() as conn:
        found = load_sessions(
            conn,
            start_from,
            start_to,
            session_id=session_id,
            announced_after=announced_after,
            recordings_from=recordings_from,
            recording_channels=recording_channels,
        )
        rows = load_rows(conn, [s.id for s in found]) if found else []
    return found, rows


def get_session(engine: Engine, session_id: str) -> SessionData | None:
    """One session by id, or None."""
    with engine.connect() as conn:
        found = load_sessions(conn, session_id=session_id)
    return found[0] if found else None
