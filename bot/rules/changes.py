"""Change and recording notices (SPEC §6 rules 6 and 8), pure like the planner.

The told-state model: for every session and channel, what the channel was last told is the start
and status described by its newest message, in the order the database granted their `sending`
marks (`LedgerRow.mark`, never a clock). While the session has not started, whenever its current
state differs from that, one change notice goes out on the channel, describing the current state:

- `rescheduled`: the start differs;
- `cancelled`: the session is cancelled now, the channel was told it was on;
- `reinstated`: the channel was told it was cancelled, and it is on again.

A change notice's key carries the session's version it describes (`DeliveryKey.change`), so every
change is a delivery of its own and nothing already sent, or dropped, can block a later one. It
also carries the mark of the message it follows (`Notice.basis`): its `sending` mark is refused
once the channel was told anything newer. A change undone before its notice went out leaves
nothing to announce; two changes between passes give one notice describing the newest state.
Channels told nothing hear nothing about changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.config import Settings
from bot.domain import (
    CHANGE_KINDS,
    OPEN_STATES,
    Action,
    DeliveryKey,
    LedgerRow,
    Notice,
    SessionData,
)

History = Mapping[tuple[str, str], Sequence[LedgerRow]]


@dataclass(frozen=True)
class Cutoff:
    """A change notice went (or goes) out at `at`: reminders of its start due by then are moot."""

    at: datetime
    notice: str


def stamp(value: datetime) -> str:
    """A compact UTC time for reasons: 2026-12-14T15:00Z."""
    return value.strftime("%Y-%m-%dT%H:%MZ")


def told_history(rows: Iterable[LedgerRow]) -> dict[tuple[str, str], list[LedgerRow]]:
    """Per (session, channel), every message that may have reached it, in the database's order."""
    found: dict[tuple[str, str], list[LedgerRow]] = defaultdict(list)
    for row in rows:
        if row.told:
            found[(row.key.session_id, row.key.channel)].append(row)
    for told in found.values():
        told.sort(key=lambda r: (r.mark if r.mark is not None else -1, r.id))
    return found


def decide(
    key: DeliveryKey,
    due: datetime,
    deadline: datetime,
    row: LedgerRow | None,
    now: datetime,
    reason: str,
    previous: datetime | None = None,
    thread: tuple[str, ...] = (),
) -> Notice | None:
    """The common life of a one-off notice: wait, send, retry, miss, or done."""

    def notice(action: Action, why: str | None) -> Notice:
        return Notice(key, None, due, deadline, action, False, why, row, previous, thread)

    if row is not None and row.status not in OPEN_STATES:
        return notice("done", row.reason or reason)
    if due >= deadline:
        return None  # it could never have gone out: quiet
    if now < due:
        return notice("wait", reason)
    if now >= deadline:
        return notice("miss", row.reason if row is not None and row.reason else "deadline passed")
    if row is not None and row.next_attempt_at is not None and row.next_attempt_at > now:
        return notice("wait", row.reason)
    return notice("send", reason)


def _thread(told: Sequence[LedgerRow]) -> tuple[str, ...]:
    """What went out on a channel, as the channel named it (an email's Message-ID)."""
    return tuple(r.external_id for r in told if r.external_id)


def change_kind(told_start: datetime, told_cancelled: bool, session: SessionData) -> str | None:
    """The change notice a channel told (start, cancelled) needs now, or None."""
    if session.cancelled:
        return None if told_cancelled else "cancelled"
    if told_cancelled:
        return "reinstated"
    return "rescheduled" if told_start != session.starts_at else None


def _reason(kind: str, told_start: datetime, session: SessionData) -> str:
    start = session.starts_at
    if kind == "rescheduled":
        return f"start moved from {stamp(told_start)} to {stamp(start)}"
    if kind == "cancelled":
        return f"session cancelled (the channel was told {stamp(told_start)})"
    moved = f", now at {stamp(start)}" if told_start != start else ""
    return f"session on again after a cancellation{moved}"


def _state_since(session: SessionData, now: datetime) -> datetime:
    """When the session's start or status took its current value."""
    known = [t for t in (session.occurrence_since, session.status_since) if t is not None]
    return max(known) if known else now


def _cutoff(session: SessionData, told: Sequence[LedgerRow]) -> Cutoff | None:
    """The newest change notice told for the current start, which moots reminders due by then."""
    for row in reversed(told):
        if row.key.notice in ("rescheduled", "reinstated"):
            if row.key.occurrence != session.starts_at:
                return None
            return Cutoff(row.sent_at or row.due_at, row.key.notice)
    return None


def channel_change(
    session: SessionData,
    channel: str,
    told: Sequence[LedgerRow],
    ledger: Mapping[DeliveryKey, LedgerRow],
    now: datetime,
) -> tuple[Notice | None, Cutoff | None]:
    """The change notice one channel needs, and the cutoff it sets for reminders."""
    cutoff = _cutoff(session, told)
    if not told:
        return None, cutoff
    last = told[-1]
    told_start, told_cancelled = last.key.occurrence, last.key.describes_cancelled
    kind = change_kind(told_start, told_cancelled, session)
    if kind is None:
        return None, cutoff
    start = session.starts_at
    key = DeliveryKey(session.id, kind, channel, start, change=session.sequence)
    previous = told_start if told_start != start else None
    notice = decide(
        key,
        _state_since(session, now),
        start,
        ledger.get(key),
        now,
        _reason(kind, told_start, session),
        previous=previous,
        thread=_thread(told),
    )
    if notice is None:
        return None, cutoff
    number = 1 + sum(r.key.notice in CHANGE_KINDS for r in told)
    notice = replace(notice, number=number, basis=last.mark or 0)
    if notice.action in ("send", "wait") and kind != "cancelled":
        cutoff = Cutoff(now, kind)
    elif notice.action == "done" and notice.row is not None and notice.row.told:
        cutoff = Cutoff(notice.row.sent_at or notice.row.due_at, kind)
    return notice, cutoff


def recording_notice(
    session: SessionData,
    channel: str,
    told: Sequence[LedgerRow],
    ledger: Mapping[DeliveryKey, LedgerRow],
    settings: Settings,
    now: datetime,
) -> Notice | None:
    """The `recording` notice: from the session's end until RECORDING_WINDOW after its start."""
    since = session.recording_since or session.starts_at
    known = session.occurrence_since
    if known is not None and known >= session.starts_at and since <= known:
        return None  # quiet history: imported after it took place, recording and all
    due = max(session.ends_at, since)  # a URL set before the end waits for the end
    deadline = session.starts_at + settings.recording_window
    key = DeliveryKey(session.id, "recording", channel, session.starts_at)
    reason = f"recording added at {stamp(since)}"
    notice = decide(key, due, deadline, ledger.get(key), now, reason, thread=_thread(told))
    if notice is not None and not told:
        return replace(notice, first=True)
    return notice
