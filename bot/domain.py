"""The domain's plain, frozen types: sessions, delivery keys, ledger rows and planned notices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal


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


@dataclass(frozen=True)
class Organizer:
    """A person who runs the group, shown on its website."""

    name: str
    bio: str | None = None
    url: str | None = None
    photo: str | None = None


# Where people follow the group, in the order the website lists them (the `group.links` keys).
GROUP_LINKS = ("email_list", "x", "bluesky", "mastodon", "youtube")


@dataclass(frozen=True)
class GroupLinks:
    """The group's own addresses: its email list and its accounts."""

    email_list: str | None = None
    x: str | None = None
    bluesky: str | None = None
    mastodon: str | None = None
    youtube: str | None = None


@dataclass(frozen=True)
class GroupInfo:
    """The `group:` block of a session file: the content of the group's website (SPEC §9)."""

    name: str | None = None
    about: str = ""
    organizers: tuple[Organizer, ...] = ()
    links: GroupLinks = GroupLinks()


@dataclass(frozen=True)
class SiteData:
    """Everything the group's website shows, read from the database in one snapshot."""

    sessions: tuple[SessionData, ...] = ()  # by start, then id
    group: GroupInfo = GroupInfo()
    group_changed_at: datetime | None = None
    changed_at: Mapping[str, datetime] = field(default_factory=dict)  # id -> its last change
    created_at: Mapping[str, datetime] = field(default_factory=dict)  # id -> when it was added
    moved: frozenset[str] = frozenset()  # ids whose start was changed after they were added
    videos: tuple[Video, ...] = ()  # the group's latest YouTube videos, newest first
    video_sessions: Mapping[str, str] = field(default_factory=dict)  # video id -> session id


@dataclass(frozen=True)
class Video:
    """One upload of the group's YouTube channel, as its public feed describes it (SPEC §10)."""

    video_id: str
    title: str
    url: str  # the watch page
    published_at: datetime  # aware, UTC
    updated_at: datetime | None = None
    description: str = ""


# What a recording match is now: waiting for the operator's word (or for RECORDINGS_AUTO),
# applied (the session's recording_url came from it), rejected (never proposed again), replaced
# (applied, then the URL was changed or cleared by hand: never applied again by the feed), or
# closed (no longer proposed: the session got its recording another way).
MATCH_STATES = ("waiting", "applied", "rejected", "replaced", "closed")


@dataclass(frozen=True)
class RecordingMatch:
    """A video proposed as a session's recording, and what became of it."""

    session_id: str
    video_id: str
    kind: str  # certain | probable
    score: int  # 100 when certain; else rapidfuzz's token_set_ratio, rounded
    why: str
    status: str = "waiting"
    found_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None  # auto | operator | the reason a match was closed
    applied_url: str | None = None  # the recording_url it gave the session


# Notices that announce a change of a session's state rather than remind of it (SPEC §6 rule 6).
CHANGE_KINDS = frozenset({"rescheduled", "cancelled", "reinstated"})
# Notices that are not reminders: change notices and the recording notice.
SPECIAL_NOTICES = CHANGE_KINDS | {"recording"}

# Ledger states. `pending` and `retrying` rows still want sending; `claimed` and `sending` are in
# flight under a lease; the rest are final until an operator acts.
OPEN_STATES = frozenset({"pending", "retrying"})
FINAL_STATES = frozenset({"sent", "failed", "skipped", "missed", "uncertain"})
# A message in one of these states may have reached the channel's subscribers: it counts in what
# the channel was told (a redundant correction is better than a missed one).
TOLD_STATES = frozenset({"sent", "uncertain", "sending"})


@dataclass(frozen=True)
class DeliveryKey:
    """What makes a delivery unique: one notice, for one occurrence, on one channel.

    `change` names the change a change notice announces: the session's version (`sequence`)
    whose state it describes, so an earlier change, sent or dropped, can never block a later
    one. It is 0 for reminders and recordings.
    """

    session_id: str
    notice: str
    channel: str
    occurrence: datetime  # the session's start, aware, UTC
    change: int = 0

    def message_id(self, domain: str = "reading-group-bot") -> str:
        """A stable RFC 5322 Message-ID for this delivery, the same on every attempt."""
        stamp = self.occurrence.strftime("%Y%m%dT%H%MZ")
        suffix = f".c{self.change}" if self.change else ""
        return f"<{self.session_id}.{self.notice}.{stamp}{suffix}.{self.channel}@{domain}>"

    @property
    def describes_cancelled(self) -> bool:
        """True when this message tells subscribers the session is cancelled."""
        return self.notice == "cancelled"


@dataclass(frozen=True)
class LedgerRow:
    """The planner's view of one ledger row."""

    id: int
    key: DeliveryKey
    status: str
    due_at: datetime
    deadline: datetime
    next_attempt_at: datetime | None = None
    attempts: int = 0
    reason: str | None = None
    external_id: str | None = None
    text: str | None = None
    was_uncertain: bool = False
    sent_at: datetime | None = None
    mark: int | None = None  # the database's order of `sending` marks within the session
    reference: str | None = None  # what the channel can find the post by (rule 5a)
    referenced_at: datetime | None = None
    settle_after: datetime | None = None

    @property
    def told(self) -> bool:
        """True when this message may have reached the channel's subscribers."""
        return self.status in TOLD_STATES

    @property
    def is_reminder(self) -> bool:
        """True for a REMINDERS notice (not a change notice or a recording)."""
        return self.key.notice not in SPECIAL_NOTICES


Action = Literal["send", "skip", "miss", "wait", "done"]


@dataclass(frozen=True)
class Notice:
    """One notice for one session occurrence on one channel, and what to do about it now."""

    key: DeliveryKey
    offset: timedelta | None
    due_at: datetime
    deadline: datetime
    action: Action
    first: bool = False
    reason: str | None = None
    row: LedgerRow | None = None
    previous: datetime | None = None  # change notices: the start the channel was told before
    thread: tuple[str, ...] = ()  # change notices: external ids of what went out on the channel
    number: int = 1  # change notices: 2 for the second change announced on the channel, …
    basis: int = 0  # change notices: the mark of the last message the channel was told

    @property
    def state(self) -> str:
        """The state `plan` shows: the ledger's, or `planned` for what has no final row yet."""
        if self.action == "skip":
            return "skipped"
        if self.action == "miss":
            return "missed"
        if self.row is not None and self.row.status not in ("pending", "claimed"):
            return self.row.status
        return "planned"
