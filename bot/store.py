"""Reads: the sessions a pass or a listing needs, with their ledger rows (Core only, no ORM)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select

from bot.domain import Paper, SessionData, Speaker
from bot.ledger import load_rows
from bot.planner import LedgerRow
from bot.tables import deliveries, papers, sessions, speakers


def _children(conn: Connection, table: Any, ids: Sequence[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = defaultdict(list)
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        query = select(table).where(table.c.session_id.in_(chunk)).order_by(table.c.position)
        for row in conn.execute(query):
            found[row.session_id].append(row)
    return found


def load_sessions(
    conn: Connection,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    *,
    session_id: str | None = None,
    announced_after: datetime | None = None,
) -> list[SessionData]:
    """Sessions starting in [start_from, start_to] (an indexed range), with speakers and papers.

    With `announced_after`, also every session whose subscribers were told of a start after that
    moment, wherever it starts now: a move or cancellation of it needs a notice.
    """
    query = select(sessions).order_by(sessions.c.starts_at, sessions.c.id)
    in_window = []
    if start_from is not None:
        in_window.append(sessions.c.starts_at >= start_from)
    if start_to is not None:
        in_window.append(sessions.c.starts_at <= start_to)
    if announced_after is not None and in_window:
        d = deliveries.c
        told = select(d.session_id).where(d.occurrence >= announced_after, d.status == "sent")
        query = query.where(or_(and_(*in_window), sessions.c.id.in_(told)))
    elif in_window:
        query = query.where(*in_window)
    if session_id is not None:
        query = query.where(sessions.c.id == session_id)
    rows = conn.execute(query).all()
    if not rows:
        return []
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
) -> tuple[list[SessionData], list[LedgerRow]]:
    """Sessions starting in [start_from, start_to], and all their ledger rows, in one snapshot."""
    with engine.connect() as conn:
        found = load_sessions(
            conn, start_from, start_to, session_id=session_id, announced_after=announced_after
        )
        rows = load_rows(conn, [s.id for s in found]) if found else []
    return found, rows


def get_session(engine: Engine, session_id: str) -> SessionData | None:
    """One session by id, or None."""
    with engine.connect() as conn:
        found = load_sessions(conn, session_id=session_id)
    return found[0] if found else None
