"""What is due at `now`: a pure function of (sessions, ledger rows, settings, now).

Rules (SPEC §6): a reminder with offset O is due at start − O and may go out until the start
(offset 0: until 10 minutes after). When several reminders of a session are due and unsent on one
channel, only the nearest (smallest offset) goes out and the others are skipped as superseded; a
reminder is also superseded once one with a smaller or equal offset for the same start was sent
on that channel (nearest wins across history). Unsent past its deadline, a reminder is `missed` if
the session (at this start time) was already in the database when it fell due; otherwise it is
quiet history and never planned. Change and recording notices come from `bot.rules.changes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from bot.config import Settings
from bot.domain import (
    CHANGE_KINDS,
    FINAL_STATES,
    OPEN_STATES,
    DeliveryKey,
    LedgerRow,
    Notice,
    SessionData,
)
from bot.rules.changes import Cutoff, channel_change, recording_notice, told_history

__all__ = ["FINAL_STATES", "OPEN_STATES", "LedgerRow", "Notice", "plan", "wake_times"]

ZERO_OFFSET_GRACE = timedelta(minutes=10)
HISTORY = timedelta(days=7)  # how far back a pass still reports `missed`, and `plan` shows
LOOKAHEAD = timedelta(days=1)  # sessions read beyond the longest offset, to know the next wake


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


def plan(
    sessions: Sequence[SessionData],
    rows: Sequence[LedgerRow],
    settings: Settings,
    now: datetime,
    *,
    channels: Sequence[str] | None = None,
) -> list[Notice]:
    """Every notice of `sessions` on the configured channels, with the action due at `now`."""
    ledger = {row.key: row for row in rows}
    history = told_history(rows)
    wanted = [c for c in settings.channels if not channels or c in channels]
    notices: list[Notice] = []
    for session in sessions:
        for channel in wanted:
            told = history.get((session.id, channel), [])
            change, cutoff = channel_change(session, channel, told, ledger, now)
            if change is not None and settings.change_notices:
                notices.append(change)
            if (
                session.recording_url
                and not session.cancelled
                and channel in settings.recording_channels
            ):
                found = recording_notice(session, channel, told, ledger, settings, now)
                notices.extend([found] if found else [])
            if not session.cancelled:
                keyed = [
                    (r.offset, DeliveryKey(session.id, r.name, channel, session.starts_at))
                    for r in settings.reminders
                    if channel in r.channels
                ]
                notices.extend(_plan_channel(session, keyed, ledger, told, now, cutoff))
    notices.extend(_other_rows(sessions, rows, wanted, {n.key for n in notices}))
    return sorted(notices, key=lambda n: (n.due_at, n.key.session_id, n.key.channel))


def _nearest_told(start: datetime, told: Sequence[LedgerRow]) -> tuple[timedelta, str] | None:
    """The smallest offset of a reminder for `start` the channel was already sent, and its name."""
    found = [
        (r.key.occurrence - r.due_at, r.key.notice)
        for r in told
        if r.is_reminder and r.key.occurrence == start
    ]
    return min(found) if found else None


def _plan_channel(
    session: SessionData,
    keyed: list[tuple[timedelta, DeliveryKey]],
    ledger: dict[DeliveryKey, LedgerRow],
    told: Sequence[LedgerRow],
    now: datetime,
    cutoff: Cutoff | None = None,
) -> list[Notice]:
    """Decide every reminder of one session on one channel."""
    start = session.starts_at
    since = session.occurrence_since or start
    first = not told
    nearest = _nearest_told(start, told)
    open_due: list[tuple[timedelta, DeliveryKey]] = []
    out: list[Notice] = []
    for offset, key in sorted(keyed, key=lambda pair: pair[0]):
        due, deadline = start - offset, deadline_for(start, offset)
        row = ledger.get(key)
        if row is not None and row.status not in OPEN_STATES:
            out.append(Notice(key, offset, due, deadline, "done", first, row.reason, row))
        elif nearest is not None and offset >= nearest[0]:
            reason = f"superseded by {nearest[1]}, already sent"
            out.append(Notice(key, offset, due, deadline, "skip", first, reason, row))
        elif cutoff is not None and due <= cutoff.at:
            reason = f"superseded by {cutoff.notice}"
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
    for s_offset, s_key in superseded:
        s_row = ledger.get(s_key)
        reason = f"superseded by {key.notice}"
        s_due, s_deadline = start - s_offset, deadline_for(start, s_offset)
        out.append(Notice(s_key, s_offset, s_due, s_deadline, "skip", first, reason, s_row))
    return out


def _other_rows(
    sessions: Sequence[SessionData],
    rows: Sequence[LedgerRow],
    channels: Sequence[str],
    planned: set[DeliveryKey],
) -> list[Notice]:
    """Rows the plan did not name: open ones will never go out, so they are skipped; change
    notices already settled for the current start are shown as done (what `plan` lists)."""
    by_id = {s.id: s for s in sessions}
    out: list[Notice] = []
    for row in rows:
        session = by_id.get(row.key.session_id)
        if session is None or row.key in planned or row.key.channel not in channels:
            continue  # (another channel's business, or a --channel pass)
        if row.status not in OPEN_STATES:
            if row.key.notice in CHANGE_KINDS and row.key.occurrence == session.starts_at:
                reason = row.reason
                out.append(
                    Notice(row.key, None, row.due_at, row.deadline, "done", False, reason, row)
                )
            continue
        if row.key.occurrence != session.starts_at:
            reason = "session moved to another time"
        elif session.cancelled and row.key.notice != "cancelled":
            reason = "session cancelled"
        elif row.key.notice in CHANGE_KINDS:
            reason = "superseded: the session changed again before it went out"
        elif row.key.notice == "recording":
            reason = "recording removed, or not announced on this channel any more"
        else:
            reason = "no longer configured"
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
