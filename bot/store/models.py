"""SQLAlchemy 2 typed ORM models over the Core tables in bot.store.tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from bot.store import tables
from bot.store.tables import UTCDateTime

__all__ = [
    "Base",
    "Delivery",
    "Heartbeat",
    "Paper",
    "Session",
    "SessionChange",
    "Speaker",
    "UTCDateTime",
]


class Base(DeclarativeBase):
    """Declarative base sharing the Core metadata (what Alembic compares against)."""

    metadata = tables.metadata


class Session(Base):
    """One reading-group session; `starts_at` is the single stored instant all times derive from."""

    __table__ = tables.sessions

    id: Mapped[str]
    title: Mapped[str]
    starts_at: Mapped[datetime]
    timezone: Mapped[str | None]
    duration_minutes: Mapped[int]
    abstract: Mapped[str]
    meeting_url: Mapped[str | None]
    recording_url: Mapped[str | None]
    status: Mapped[str]
    sequence: Mapped[int]
    marks: Mapped[int]
    occurrence_since: Mapped[datetime]
    status_since: Mapped[datetime | None]
    recording_since: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    speakers: Mapped[list[Speaker]] = relationship(
        order_by="Speaker.position", cascade="all, delete-orphan", lazy="selectin"
    )
    papers: Mapped[list[Paper]] = relationship(
        order_by="Paper.position", cascade="all, delete-orphan", lazy="selectin"
    )


class Speaker(Base):
    """A presenter of a session, in the order given in the session file."""

    __table__ = tables.speakers

    id: Mapped[int]
    session_id: Mapped[str]
    position: Mapped[int]
    name: Mapped[str]
    affiliation: Mapped[str | None]
    x: Mapped[str | None]
    bluesky: Mapped[str | None]
    mastodon: Mapped[str | None]
    url: Mapped[str | None]


class Paper(Base):
    """A paper discussed in a session."""

    __table__ = tables.papers

    id: Mapped[int]
    session_id: Mapped[str]
    position: Mapped[int]
    title: Mapped[str]
    url: Mapped[str | None]


class Delivery(Base):
    """The ledger: one row per (session, notice, channel, occurrence) that was acted on."""

    __table__ = tables.deliveries

    id: Mapped[int]
    session_id: Mapped[str]
    notice: Mapped[str]
    channel: Mapped[str]
    occurrence: Mapped[datetime]
    change: Mapped[int]
    due_at: Mapped[datetime]
    deadline: Mapped[datetime]
    status: Mapped[str]
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime | None]
    token: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]
    first: Mapped[bool]
    was_uncertain: Mapped[bool]
    external_id: Mapped[str | None]
    reason: Mapped[str | None]
    text: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    mark: Mapped[int | None]
    reference: Mapped[str | None]
    referenced_at: Mapped[datetime | None]
    settle_after: Mapped[datetime | None]


class SessionChange(Base):
    """One recorded change to a session field."""

    __table__ = tables.session_changes

    id: Mapped[int]
    session_id: Mapped[str]
    changed_at: Mapped[datetime]
    field: Mapped[str]
    old_value: Mapped[str | None]
    new_value: Mapped[str | None]
    source: Mapped[str]


class Heartbeat(Base):
    """A worker's proof of life, read by `bot health`."""

    __table__ = tables.heartbeats

    worker_id: Mapped[str]
    host: Mapped[str]
    pid: Mapped[int]
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
    next_due_at: Mapped[datetime | None]
    stopping: Mapped[bool]
