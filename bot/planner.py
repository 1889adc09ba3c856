"""What is due at `now`: a pure function of (sessions, ledger rows, settings, now).

Rules (SPEC §6): a reminder with offset O is due at start − O and may go out until the start
(offset 0: until 10 minutes after). When several reminders of a session are due and unsent on one
channel, only the nearest (smallest offset) goes out and the others are skipped as superseded.
Unsent past its deadline, a reminder is `missed` if the session (at this start time) was already in
the database when it fell due; otherwise it is quiet history and never planned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bot.config import Settings
from bot.domain import SessionData
from bot.notifiers.base import DeliveryKey

ZERO_OFFSET_GRACE = timedelta(minutes=10)
HISTORY = timedelta(days=7)  # how far back a pass still reports `missed`, and `plan` shows
LOOKAHEAD = timedelta(days=1)  # sessions read beyond the longest offset, to know the next wake

# Ledger states. `pending` and `retrying` rows still want sending; `claimed` and `sending` are in
# flight under a lease; the rest are final until an operator acts.
OPEN_STATES = frozenset({"pending", "retrying"})
FINAL_STATES = frozenset({"sent", "failed", "skipped", "missed", "uncertain"})

# `rearm`: a rescheduled notice's row belongs to an earlier move to the same time; it is reset
# to pending so this move gets its own notice.
Action = Literal["send", "skip", "miss", "wait", "done", "rearm"]


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

    @property
    def when(self) -> datetime:
        """When it went out (or, lacking that, when it was due): orders a channel's history."""
        return self.sent_at or self.due_at


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
    previous: datetime | None = None  # rescheduled: the start subscribers were told before
    thread: tuple[str, ...] = ()  # change notices: external ids of what went out on the channel
    number: int = 1  # rescheduled: 2 for the second move announced on this channel, and so on

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


def deadline_for(starts_at: datetime, offset: timedelta) -> datetime:
    """The last moment a reminder with `offset` may go out."""
    return starts_at + ZERO_OFFSET_GRACE if offset == timedelta(0) else starts_at


def session_window(settings: Settings, now: datetime) -> tuple[datetime, datetime]:
    """The range of start times whose reminders can be due, or recently missed, at `now`."""
    longest = max((r.offset for r in settings.reminders), default=timedelta(0))
    return now - HISTORY, now + longest + LOOKAHEAD


def recordings_since(settings: Settings, now: datetime) -> datetime | None:
    """Sessions with a recording that started after this may still owe a `recording` notice."""
    return now - settings.recording_window if settings.recording_channels else None


def _index(rows: Iterable[LedgerRow]) -> dict[DeliveryKey, LedgerRow]:
    return {row.key: row for row in rows}


def _sent_channels(rows: Iterable[LedgerRow]) -> set[tuple[str, str]]:
    return {(r.key.session_id, r.key.channel) for r in rows if r.status == "sent"}


def plan(
    sessions: Sequence[SessionData],
    rows: Sequence[LedgerRow],
    settings: Settings,
    now: datetime,
    *,
    channels: Sequence[str] | None = None,
) -> list[Notice]:
    """Every notice of `sessions` on the configured channels, with the action due at `now`."""
    from bot.changes import change_notices

    ledger = _index(rows)
    sent = _sent_channels(rows)
    wanted = set(channels) if channels else None
    history = _history(rows)
    notices: list[Notice] = []
    for session in sessions:
        changes, cutoffs = change_notices(session, history, ledger, settings, now, wanted)
        notices.extend(changes)
        if session.cancelled:
            continue
        per_channel: dict[str, list[tuple[timedelta, DeliveryKey]]] = defaultdict(list)
        for reminder in settings.reminders:
            for channel in reminder.channels:
                if wanted is None or channel in wanted:
                    key = DeliveryKey(session.id, reminder.name, channel, session.starts_at)
                    per_channel[channel].append((reminder.offset, key))
        for channel, keyed in per_channel.items():
            first = (session.id, channel) not in sent
            cutoff = cutoffs.get(channel)
            notices.extend(_plan_channel(session, keyed, ledger, first, now, cutoff))
    notices.extend(_stale_rows(sessions, rows, channels))
    return sorted(notices, key=lambda n: (n.due_at, n.key.session_id, n.key.channel))


def _history(rows: Iterable[LedgerRow]) -> dict[tuple[str, str], list[LedgerRow]]:
    """Sent rows per (session, channel), oldest first."""
    found: dict[tuple[str, str], list[LedgerRow]] = defaultdict(list)
    for row in rows:
        if row.status == "sent":
            found[(row.key.session_id, row.key.channel)].append(row)
    for sent in found.values():
        sent.sort(key=lambda r: (r.when, r.id))
    return found


def _plan_channel(
    session: SessionData,
    keyed: list[tuple[timedelta, DeliveryKey]],
    ledger: dict[DeliveryKey, LedgerRow],
    first: bool,
    now: datetime,
    cutoff: datetime | None = None,
) -> list[Notice]:
    """Decide every reminder of one session on one channel.

    `cutoff`: a rescheduled notice went (or goes) out then; reminders due by then are superseded.
    """
    start = session.starts_at
    since = session.occurrence_since or start
    open_due: list[tuple[timedelta, DeliveryKey]] = []
    out: list[Notice] = []
    for offset, key in sorted(keyed, key=lambda pair: pair[0]):
        due, deadline = start - offset, deadline_for(start, offset)
        row = ledger.get(key)
        if row is not None and row.status not in OPEN_STATES:
            out.append(Notice(key, offset, due, deadline, "done", first, row.reason, row))
        elif cutoff is not None and due <= cutoff:
            reason = "superseded by rescheduled"
            out.append(Notice(key, offset, due, deadline, "skip", first, reason, row))
        elif due > now:
            out.append(Notice(key, offset, due, deadline, "wait", first, None, row))
        else:
            open_due.append((offset, key))
    if not open_due:
        return out
    (offset, key), superseded = open_due[0], open_due[1:]
    due, deadline = start - offset, deadline_for(start, offset)
    row = ledger.get(key)
    if now >= deadline:
        if row is None and since > due:
            return out  # quiet history: it was never ours to send
        reason = row.reason if row is not None and row.reason else "deadline passed unsent"
        out.append(Notice(key, offset, due, deadline, "miss", first, reason, row))
    elif row is not None and row.next_attempt_at is not None and row.next_attempt_at > now:
        out.append(Notice(key, offset, due, deadline, "wait", first, row.reason, row))
    else:
        out.append(Notice(key, offset, due, deadline, "send", first, None, row))
    nearest = key.notice
    for s_offset, s_key in superseded:
        s_row = ledger.get(s_key)
        reason = f"superseded by {nearest}"
        s_due, s_deadline = start - s_offset, deadline_for(start, s_offset)
        out.append(Notice(s_key, s_offset, s_due, s_deadline, "skip", first, reason, s_row))
    return out


def _stale_rows(
    sessions: Sequence[SessionData], rows: Sequence[LedgerRow], channels: Sequence[str] | None
) -> list[Notice]:
    """Open rows of an earlier start time, or of a cancelled session: they will never go out."""
    by_id = {s.id: s for s in sessions}
    out: list[Notice] = []
    for row in rows:
        session = by_id.get(row.key.session_id)
        if row.status not in OPEN_STATES or session is None:
            continue
        if channels and row.key.channel not in channels:
            continue
        if session.cancelled and row.key.notice == "cancelled":
            continue
        if session.cancelled:
            reason = "session cancelled"
        elif row.key.occurrence != session.starts_at:
            reason = "session moved to another time"
        else:
            continue
        out.append(Notice(row.key, None, row.due_at, row.deadline, "skip", False, reason, row))
    return out


def wake_times(notices: Iterable[Notice], now: datetime) -> list[datetime]:
    """Every future moment something may fall due (due times and retry times), sorted, distinct."""
    times = {
        n.row.next_attempt_at
        if n.row is not None and n.row.next_attempt_at is not None
        else n.due_at
        for n in notices
        if n.action == "wait"
    }
    return sorted(t for t in times if t > now)
