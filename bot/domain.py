"""Plain, frozen views of sessions: what the planner, renderer and calendar code work on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Speaker:
    """A presenter."""

    name: str
    affiliation: str | None = None
    x: str | None = None
    bluesky: str | None = None
    mastodon: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Paper:
    """A paper discussed in a session."""

    title: str
    url: str | None = None


@dataclass(frozen=True)
class SessionData:
    """One session as stored; every time shown anywhere is derived from `starts_at` (aware, UTC)."""

    id: str
    title: str
    starts_at: datetime
    duration: timedelta = timedelta(minutes=60)
    timezone: str | None = None
    speakers: tuple[Speaker, ...] = ()
    abstract: str = ""
    papers: tuple[Paper, ...] = ()
    meeting_url: str | None = None
    recording_url: str | None = None
    status: str = "scheduled"
    sequence: int = 0
    occurrence_since: datetime | None = None  # when starts_at took its current value
    status_since: datetime | None = None  # when status took its current value
    recording_since: datetime | None = None  # when recording_url took its current value

    @property
    def ends_at(self) -> datetime:
        """The end instant (UTC)."""
        return self.starts_at + self.duration

    @property
    def cancelled(self) -> bool:
        """True when the session is called off."""
        return self.status == "cancelled"
