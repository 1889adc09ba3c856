"""Reads: the sessions a pass or a listing needs, with their ledger rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession

from bot.domain import SessionData, session_data
from bot.ledger import load_rows
from bot.models import Session
from bot.planner import LedgerRow


def load_window(
    engine: Engine,
    start_from: datetime | None,
    start_to: datetime | None,
    *,
    session_id: str | None = None,
) -> tuple[list[SessionData], list[LedgerRow]]:
    """Sessions starting in [start_from, start_to] (by index), and all their ledger rows."""
    query = select(Session).order_by(Session.starts_at, Session.id)
    if start_from is not None:
        query = query.where(Session.starts_at >= start_from)
    if start_to is not None:
        query = query.where(Session.starts_at <= start_to)
    if session_id is not None:
        query = query.where(Session.id == session_id)
    with OrmSession(engine) as orm:
        sessions = [session_data(row) for row in orm.scalars(query)]
        if not sessions:
            return [], []
        rows = load_rows(orm.connection(), [s.id for s in sessions])
    return sessions, rows


def get_session(engine: Engine, session_id: str) -> SessionData | None:
    """One session by id, or None."""
    with OrmSession(engine) as orm:
        row = orm.get(Session, session_id)
        return session_data(row) if row is not None else None
