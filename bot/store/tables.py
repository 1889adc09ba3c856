"""The schema as SQLAlchemy Core tables: the hot path (a cron pass) needs no ORM import."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Stores an aware datetime as naive UTC; gives it back aware, in UTC, on every engine."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime given to the database: {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text, e.g. from a hand-written query
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


sessions = Table(
    "sessions",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("title", Text, nullable=False),
    Column("starts_at", UTCDateTime, nullable=False, index=True),
    Column("timezone", String(64)),
    Column("duration_minutes", Integer, nullable=False, default=60),
    Column("abstract", Text, nullable=False, default=""),
    Column("meeting_url", Text),
    Column("recording_url", Text),
    Column("status", String(16), nullable=False, default="scheduled"),
    # Rises with every change (the iCalendar SEQUENCE); a `sending` mark checks it is unchanged.
    Column("sequence", Integer, nullable=False, default=0),
    # How many `sending` marks the session's deliveries were granted: the database's order of
    # what its channels were told (taken under the session's row lock, never from a clock).
    Column("marks", Integer, nullable=False, default=0, server_default="0"),
    # When `starts_at` took its current value: a reminder due before that is history, not missed.
    Column("occurrence_since", UTCDateTime, nullable=False),
    # When `status` and `recording_url` took their current values (cancelled / recording notices).
    Column("status_since", UTCDateTime),
    Column("recording_since", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Every change to a session, with its time: why a rescheduled or cancelled notice exists.
session_changes = Table(
    "session_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(80), nullable=False, index=True),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("field", String(40), nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("source", String(40), nullable=False),  # import | set | cancel | prune
)

speakers = Table(
    "speakers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "session_id",
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("position", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("affiliation", Text),
    Column("x", Text),
    Column("bluesky", Text),
    Column("mastodon", Text),
    Column("url", Text),
)

papers = Table(
    "papers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "session_id",
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("position", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("url", Text),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(80), nullable=False, index=True),
    Column("notice", String(40), nullable=False),
    Column("channel", String(40), nullable=False),
    Column("occurrence", UTCDateTime, nullable=False),
    # Change notices: the session's version (sequence) whose state the notice describes, so
    # every change is a delivery of its own. 0 for reminders and recordings.
    Column("change", Integer, nullable=False, default=0, server_default="0"),
    Column("due_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    # pending | claimed | sending | sent | retrying | failed | skipped | missed | uncertain
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("token", String(32)),
    Column("lease_expires_at", UTCDateTime),
    Column("first", Boolean, nullable=False, default=False),
    # Set once the delivery was `uncertain`: a later "duplicate content" proves it went out.
    Column("was_uncertain", Boolean, nullable=False, default=False),
    Column("external_id", Text),
    Column("reason", Text),
    Column("text", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    # Set with each `sending` mark: sessions.marks after the increment.
    Column("mark", Integer),
    # Self-settling (SPEC §6 rule 5a): what the channel can look the post up by (a Bluesky record
    # key, a Mastodon Idempotency-Key, a Slack metadata id), minted with the first `sending`
    # mark and reused on every attempt; when it was minted; when an `uncertain` delivery is next
    # asked about (NULL: never again, an operator settles it).
    Column("reference", String(200)),
    Column("referenced_at", UTCDateTime),
    Column("settle_after", UTCDateTime),
    UniqueConstraint(
        "session_id", "notice", "channel", "occurrence", "change", name="uq_delivery_key"
    ),
    Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    Index("ix_deliveries_status_lease", "status", "lease_expires_at"),
    Index("ix_deliveries_status_occurrence", "status", "occurrence"),
    Index("ix_deliveries_status_settle", "status", "settle_after"),
)

# What a channel keeps between processes (a Bluesky session's tokens, resolved DIDs): one row
# per channel and name, so a cron pass with nothing due never logs in.
channel_state = Table(
    "channel_state",
    metadata,
    Column("channel", String(40), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The `group:` block of the session file, the content of the group's website (SPEC §9): one row
# (id 1), its organizers in order, and when the block last changed (the feed's `updated`).
group_profile = Table(
    "group_profile",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("about", Text, nullable=False, default=""),
    # The group's addresses, one column per `group.links` key (bot.domain.GROUP_LINKS).
    Column("email_list", Text),
    Column("x", Text),
    Column("bluesky", Text),
    Column("mastodon", Text),
    Column("youtube", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

group_organizers = Table(
    "group_organizers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("position", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("bio", Text),
    Column("url", Text),
    Column("photo", Text),
)

# The group's YouTube uploads seen in its feed (SPEC §10): kept after they leave the feed's newest
# 15, so a session whose recording is uploaded late, or a sync that was down, still finds it.
videos = Table(
    "videos",
    metadata,
    Column("video_id", String(40), primary_key=True),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("published_at", UTCDateTime, nullable=False, index=True),
    Column("updated_at", UTCDateTime),
    Column("description", Text, nullable=False, default=""),
    Column("first_seen_at", UTCDateTime, nullable=False),
)

# Videos proposed as sessions' recordings, and the operator's (or RECORDINGS_AUTO's) word on them.
recording_matches = Table(
    "recording_matches",
    metadata,
    Column("session_id", String(80), primary_key=True),
    Column("video_id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),  # certain | probable
    Column("score", Integer, nullable=False),  # rounded token_set_ratio; 100 when certain
    Column("why", Text, nullable=False),
    Column("status", String(16), nullable=False),  # waiting | applied | rejected | closed
    Column("found_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("decided_by", Text),  # auto | operator | why it was closed
    # The URL an applied match gave the session: still its recording while they are equal (the
    # feed may change a video's link; an organiser's edit changes the session's).
    Column("applied_url", Text),
    Index("ix_recording_matches_status", "status"),
)

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("worker_id", String(120), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("beat_at", UTCDateTime, nullable=False, index=True),
    Column("next_due_at", UTCDateTime),
    Column("stopping", Boolean, nullable=False, default=False),
)
