"""Builders for test data, written through the real models into a real database."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session as OrmSession

from bot.store import tables
from bot.store.models import Delivery, Paper, Session, Speaker


def add_session(
    engine: Engine,
    session_id: str,
    starts_at: datetime,
    *,
    since: datetime | None = None,
    title: str | None = None,
    status: str = "scheduled",
) -> None:
    """Insert one session (in the database since `since`, default 30 days before it starts)."""
    since = since or starts_at - timedelta(days=30)
    with OrmSession(engine) as orm, orm.begin():
        orm.add(
            Session(
                id=session_id,
                title=title or f"Session {session_id}: masked diffusion for code",
                starts_at=starts_at,
                timezone="America/New_York",
                duration_minutes=60,
                abstract="Diffusion language models generate text by denoising a sequence.",
                meeting_url="https://example.zoom.us/j/123",
                recording_url=None,
                status=status,
                sequence=0,
                occurrence_since=since,
                created_at=since,
                updated_at=since,
                speakers=[Speaker(position=0, name="Shansan Gong", affiliation="HKU", x="@gong")],
                papers=[
                    Paper(position=0, title="DiffuCoder", url="https://arxiv.org/abs/2506.20639")
                ],
            )
        )


def add_sessions(
    engine: Engine,
    starts: Mapping[str, datetime],
    since: datetime,
    title: Callable[[str], str],
) -> None:
    """Insert many sessions (id → start) in one transaction, each known since `since`."""
    rows = [
        {
            "id": sid,
            "title": title(sid),
            "starts_at": start,
            "timezone": "America/New_York",
            "duration_minutes": 60,
            "abstract": "Diffusion language models denoise a whole sequence.",
            "meeting_url": "https://example.zoom.us/j/123",
            "recording_url": None,
            "status": "scheduled",
            "sequence": 0,
            "occurrence_since": since,
            "created_at": since,
            "updated_at": since,
        }
        for sid, start in starts.items()
    ]
    speakers = [{"session_id": sid, "position": 0, "name": "Shansan Gong"} for sid in starts]
    papers = [
        {
            "session_id": sid,
            "position": 0,
            "title": "DiffuCoder",
            "url": "https://arxiv.org/abs/2506.20639",
        }
        for sid in starts
    ]
    with engine.begin() as conn:
        conn.execute(insert(tables.sessions), rows)
        conn.execute(insert(tables.speakers), speakers)
        conn.execute(insert(tables.papers), papers)


def deliveries(engine: Engine) -> list[Delivery]:
    """Every ledger row, detached, in id order."""
    with OrmSession(engine, expire_on_commit=False) as orm:
        return list(orm.scalars(select(Delivery).order_by(Delivery.id)))


def statuses(engine: Engine) -> dict[tuple[str, str, str], str]:
    """(session, notice, channel) → status, for every ledger row."""
    return {(d.session_id, d.notice, d.channel): d.status for d in deliveries(engine)}
