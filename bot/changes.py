"""Change notices (SPEC §6 rules 6–8), pure like the planner: rescheduled, cancelled, recording.

- `rescheduled`: the start subscribers on a channel were last told (the occurrence of the newest
  delivery sent there) differs from the current start. Due when the start was changed, until the
  new start. A session moved twice before anything went out, or moved and moved back before the
  notice went out, sends nothing: what was announced is compared, not each edit.
- `cancelled`: on each channel where something was sent, once, before the start.
- `recording`: when a started session gets a recording URL, once per RECORDING_CHANNELS channel,
  until RECORDING_WINDOW after the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from bot.config import Settings
from bot.domain import SessionData
from bot.notifiers.base import DeliveryKey
from bot.planner import FINAL_STATES, OPEN_STATES, Action, LedgerRow, Notice

History = Mapping[tuple[str, str], list[LedgerRow]]


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%MZ")


def _thread(told: list[LedgerRow]) -> tuple[str, ...]:
    """What went out on a channel, as the channel named it (an email's Message-ID)."""
    return tuple(r.external_id for r in told if r.external_id)


def _decide(
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


def _rescheduled(
    session: SessionData,
    channel: str,
    told: list[LedgerRow],
    ledger: Mapping[DeliveryKey, LedgerRow],
    now: datetime,
) -> tuple[Notice | None, datetime | None]:
    """The rescheduled notice for one channel, and the moment it supersedes reminders up to."""
    start = session.starts_at
    since = session.occurrence_since or start
    key = DeliveryKey(session.id, "rescheduled", channel, start)
    row = ledger.get(key)
    if row is not None and row.due_at < since and row.status in FINAL_STATES:
        row_is_current = False  # it belongs to an earlier move to this same start
    else:
        row_is_current = row is not None
    last = told[-1] if told else None
    if last is None or (last.key.occurrence == start and not row_is_current):
        return None, None  # nothing announced yet, or the announced time is the current one
    thread = _thread(told)
    if row_is_current and row is not None and row.status not in OPEN_STATES:
        done = Notice(key, None, row.due_at, start, "done", False, row.reason, row, thread=thread)
        return done, row.when
    previous = last.key.occurrence
    reason = f"start moved from {_stamp(previous)} to {_stamp(start)}"
    number = 1 + sum(r.key.notice == "rescheduled" for r in told)
    if not row_is_current and row is not None:
        rearm = Notice(key, None, since, start, "rearm", False, reason, row, previous, thread)
        return replace(rearm, number=number), now
    notice = _decide(key, since, start, row, now, reason, previous=previous, thread=thread)
    if notice is None:
        return None, None
    return replace(notice, number=number), now if notice.action in ("send", "wait") else None


def _cancelled(
    session: SessionData,
    channel: str,
    told: list[LedgerRow],
    ledger: Mapping[DeliveryKey, LedgerRow],
    now: datetime,
) -> Notice | None:
    told = [r for r in told if r.key.notice != "cancelled"]
    if not told:
        return None
    key = DeliveryKey(session.id, "cancelled", channel, session.starts_at)
    due = session.status_since or now
    reason = f"session cancelled at {_stamp(due)}"
    thread = _thread(told)
    return _decide(key, due, session.starts_at, ledger.get(key), now, reason, thread=thread)


def _recording(
    session: SessionData,
    channel: str,
    told: list[LedgerRow],
    ledger: Mapping[DeliveryKey, LedgerRow],
    settings: Settings,
    now: datetime,
) -> Notice | None:
    since = session.recording_since or session.starts_at
    known = session.occurrence_since
    if known is not None and known >= session.starts_at and since <= known:
        return None  # quiet history: imported after it took place, recording and all
    due = max(session.starts_at, since)
    deadline = session.starts_at + settings.recording_window
    key = DeliveryKey(session.id, "recording", channel, session.starts_at)
    reason = f"recording added at {_stamp(since)}"
    thread = _thread(told)
    notice = _decide(key, due, deadline, ledger.get(key), now, reason, thread=thread)
    if notice is not None and not told:
        return replace(notice, first=True)
    return notice


def change_notices(
    session: SessionData,
    history: History,
    ledger: Mapping[DeliveryKey, LedgerRow],
    settings: Settings,
    now: datetime,
    wanted: set[str] | None,
) -> tuple[list[Notice], dict[str, datetime]]:
    """The change notices of one session, and per channel the rescheduled cutoff for reminders."""
    notices: list[Notice] = []
    cutoffs: dict[str, datetime] = {}
    for channel in settings.channels:
        if wanted is not None and channel not in wanted:
            continue
        told = history.get((session.id, channel), [])
        if settings.change_notices and session.cancelled:
            found = _cancelled(session, channel, told, ledger, now)
            notices.extend([found] if found else [])
        elif settings.change_notices:
            notice, cutoff = _rescheduled(session, channel, told, ledger, now)
            notices.extend([notice] if notice else [])
            if cutoff is not None:
                cutoffs[channel] = cutoff
        if (
            session.recording_url
            and not session.cancelled
            and channel in settings.recording_channels
        ):
            found = _recording(session, channel, told, ledger, settings, now)
            notices.extend([found] if found else [])
    return notices, cutoffs
