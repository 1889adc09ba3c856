"""The delivery ledger: every SQL statement of the claim protocol lives here.

A delivery is claimed in a short write transaction (a unique key decides who wins), marked
`sending` in another one committed before any network call, and its outcome is recorded under the
claim's token. No transaction is open while a channel is contacted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)

from bot.domain import CHANGE_KINDS, OPEN_STATES, TOLD_STATES, DeliveryKey, LedgerRow, Notice
from bot.store.db import is_sqlite, write_transaction
from bot.store.tables import deliveries, sessions

TABLE: Table = deliveries
COLUMNS = TABLE.c
CLAIM_BATCH = 25
KEY_COLUMNS = ("session_id", "notice", "channel", "occurrence", "change")
LEASE_EXPIRED = "the sender stopped before recording the outcome (lease expired)"


@dataclass(frozen=True)
class Claim:
    """A delivery this process holds: only it may mark it `sending` and record its outcome."""

    id: int
    token: str
    notice: Notice
    attempts: int
    was_uncertain: bool
    reference: str | None = None  # minted with the first `sending` mark, reused after
    referenced_at: datetime | None = None

    @property
    def key(self) -> DeliveryKey:
        """The delivery's key."""
        return self.notice.key


def row_to_ledger(row: Row[Any]) -> LedgerRow:
    """A LedgerRow from a `deliveries` result row."""
    m = row._mapping
    return LedgerRow(
        id=m["id"],
        key=DeliveryKey(m["session_id"], m["notice"], m["channel"], m["occurrence"], m["change"]),
        status=m["status"],
        due_at=m["due_at"],
        deadline=m["deadline"],
        next_attempt_at=m["next_attempt_at"],
        attempts=m["attempts"],
        reason=m["reason"],
        external_id=m["external_id"],
        text=m["text"],
        was_uncertain=m["was_uncertain"],
        sent_at=m["sent_at"],
        mark=m["mark"],
        reference=m["reference"],
        referenced_at=m["referenced_at"],
        settle_after=m["settle_after"],
    )


def load_rows(conn: Connection, session_ids: Sequence[str]) -> list[LedgerRow]:
    """Every ledger row of the given sessions."""
    rows: list[LedgerRow] = []
    ids = list(session_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result = conn.execute(select(TABLE).where(COLUMNS.session_id.in_(chunk)))
        rows.extend(row_to_ledger(r) for r in result)
    return rows


def _insert(conn: Connection) -> Any:
    if is_sqlite(conn):
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(TABLE)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(TABLE)


def _new_row(notice: Notice, status: str, now: datetime, **extra: Any) -> dict[str, Any]:
    key = notice.key
    values: dict[str, Any] = {
        "session_id": key.session_id,
        "notice": key.notice,
        "channel": key.channel,
        "occurrence": key.occurrence,
        "change": key.change,
        "due_at": notice.due_at,
        "deadline": notice.deadline,
        "status": status,
        "attempts": 0,
        "first": notice.first,
        "was_uncertain": False,
        "reason": notice.reason,
        "created_at": now,
        "updated_at": now,
    }
    values.update(extra)
    return values


def sweep(engine: Engine, now: datetime) -> list[LedgerRow]:
    """Expired claims go back to pending; expired `sending` marks become `uncertain` (returned)."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(TABLE)
            .where(COLUMNS.status == "claimed", COLUMNS.lease_expires_at < now)
            .values(status="pending", token=None, lease_expires_at=None, updated_at=now)
        )
        # One statement: a sender recording its outcome meanwhile is never reported as uncertain.
        expired = conn.execute(
            update(TABLE)
            .where(COLUMNS.status == "sending", COLUMNS.lease_expires_at < now)
            .values(
                status="uncertain",
                was_uncertain=True,
                reason=LEASE_EXPIRED,
                updated_at=now,
                # A channel that can look the post up is asked at once (rule 5a).
                settle_after=case((COLUMNS.reference.is_not(None), now), else_=None),
            )
            .returning(*TABLE.c)
        ).all()
    return [row_to_ledger(r) for r in expired]


def settle(engine: Engine, notices: Sequence[Notice], now: datetime) -> list[Notice]:
    """Write `skipped` and `missed` decisions; returns those this call actually wrote."""
    written: list[Notice] = []
    if not notices:
        return written
    with write_transaction(engine) as conn:
        for notice in notices:
            status = "skipped" if notice.action == "skip" else "missed"
            if notice.row is None:
                stmt = (
                    _insert(conn)
                    .values(_new_row(notice, status, now))
                    .on_conflict_do_nothing(index_elements=list(KEY_COLUMNS))
                    .returning(COLUMNS.id)
                )
                done = conn.execute(stmt).first() is not None
            else:
                result = conn.execute(
                    update(TABLE)
                    .where(COLUMNS.id == notice.row.id, COLUMNS.status.in_(OPEN_STATES))
                    .values(status=status, reason=notice.reason, token=None, updated_at=now)
                )
                done = result.rowcount == 1
            if done:
                written.append(notice)
    return written


def claim(
    engine: Engine, notices: Sequence[Notice], now: datetime, lease: timedelta
) -> list[Claim]:
    """Claim deliveries in one short transaction; those another process holds are left out."""
    token = uuid.uuid4().hex
    expires = now + lease
    claims: list[Claim] = []
    with write_transaction(engine) as conn:
        fresh = [n for n in notices if n.row is None]
        if fresh:
            # One multi-row INSERT: the unique key lets exactly one claimer have each delivery.
            stmt = (
                _insert(conn)
                .values(
                    [
                        _new_row(n, "claimed", now, token=token, lease_expires_at=expires)
                        for n in fresh
                    ]
                )
                .on_conflict_do_nothing(index_elements=list(KEY_COLUMNS))
                .returning(COLUMNS.id, *(COLUMNS[c] for c in KEY_COLUMNS))
            )
            won = {DeliveryKey(*r[1:]): r[0] for r in conn.execute(stmt)}
            claims.extend(Claim(won[n.key], token, n, 0, False) for n in fresh if n.key in won)
        existing = [n for n in notices if n.row is not None]
        lockable = _lock_open_rows(conn, existing, now)
        for notice in existing:
            row = notice.row
            if row is not None and row.id in lockable:
                conn.execute(
                    update(TABLE)
                    .where(COLUMNS.id == row.id)
                    .values(status="claimed", token=token, lease_expires_at=expires, updated_at=now)
                )
                claims.append(
                    Claim(
                        row.id,
                        token,
                        notice,
                        row.attempts,
                        row.was_uncertain,
                        row.reference,
                        row.referenced_at,
                    )
                )
    return claims


def _lock_open_rows(conn: Connection, notices: Sequence[Notice], now: datetime) -> set[int]:
    """Ids of existing rows still open and due; PostgreSQL skips rows other claimers hold."""
    ids = [n.row.id for n in notices if n.row is not None]
    if not ids:
        return set()
    query = select(COLUMNS.id).where(
        COLUMNS.id.in_(ids),
        COLUMNS.status.in_(OPEN_STATES),
        or_(COLUMNS.next_attempt_at.is_(None), COLUMNS.next_attempt_at <= now),
    )
    if not is_sqlite(conn):
        query = query.with_for_update(skip_locked=True)
    return set(conn.execute(query).scalars())


class _Refused(Exception):
    """Rolls back a `sending` mark that cannot be granted; its argument is the reason."""


# Built once: a pass marks every delivery it sends, and building statements costs more than
# running them on SQLite.
_TAKE_MARK = (
    update(sessions)
    .where(
        sessions.c.id == bindparam("m_session"),
        sessions.c.sequence == bindparam("m_version"),
        sessions.c.starts_at == bindparam("m_start", type_=sessions.c.starts_at.type),
        sessions.c.status == bindparam("m_status"),
    )
    .values(marks=sessions.c.marks + 1)
    .returning(sessions.c.marks)
)
_MARK_SENDING = (
    update(TABLE)
    .where(
        COLUMNS.id == bindparam("m_id"),
        COLUMNS.token == bindparam("m_token"),
        COLUMNS.status == "claimed",
    )
    .values(
        status="sending",
        mark=bindparam("m_mark"),
        text=bindparam("m_text"),
        reference=bindparam("m_reference"),
        referenced_at=bindparam("m_referenced_at", type_=COLUMNS.referenced_at.type),
        settle_after=None,
        attempts=COLUMNS.attempts + 1,
        lease_expires_at=bindparam("m_lease", type_=COLUMNS.lease_expires_at.type),
        updated_at=bindparam("m_now", type_=COLUMNS.updated_at.type),
    )
)


def mark_sending(
    engine: Engine,
    held: Claim,
    now: datetime,
    lease: timedelta,
    text: str | None = None,
    *,
    version: int,
    reference: str | None = None,
) -> str:
    """Commit the `sending` mark (with the text, for an operator): the pre-send check.

    Granted only while the session is still in the state the message describes: the same
    `sequence` (`version`, what the pass read), start and status; and, for a change notice,
    while the last message its channel was told is still the one the notice follows. The
    session's row is locked while the mark is taken, so edits and marks are ordered by the
    database, and the mark's number (`deliveries.mark`) records that order.

    `reference` (rule 5a) is stored with the mark; the claim's own, when it has one, is kept.

    Returns `sending`; `lost` when the claim expired and went to another process; `changed`
    when the session or what its channel was told changed since the pass read them (the claim
    is then given back by the caller).
    """
    key = held.key
    try:
        with write_transaction(engine) as conn:
            # One statement locks the session's row, proves its state, and takes the next mark.
            mark = conn.execute(
                _TAKE_MARK,
                {
                    "m_session": key.session_id,
                    "m_version": version,
                    "m_start": key.occurrence,
                    "m_status": "cancelled" if key.describes_cancelled else "scheduled",
                },
            ).scalar()
            basis = held.notice.basis
            if mark is None or (key.notice in CHANGE_KINDS and _last_told(conn, key) != basis):
                raise _Refused("changed")
            marked = conn.execute(
                _MARK_SENDING,
                {
                    "m_id": held.id,
                    "m_token": held.token,
                    "m_mark": mark,
                    "m_text": text,
                    "m_reference": held.reference or reference,
                    "m_referenced_at": held.referenced_at or (now if reference else None),
                    "m_lease": now + lease,
                    "m_now": now,
                },
            )
            if marked.rowcount != 1:  # the lease ran out and the sweep or another process took it
                raise _Refused("lost")
    except _Refused as refused:
        return str(refused)
    return "sending"


def _last_told(conn: Connection, key: DeliveryKey) -> int:
    """The mark of the newest message that may have reached this session's channel (0: none)."""
    found = conn.execute(
        select(func.max(COLUMNS.mark)).where(
            COLUMNS.session_id == key.session_id,
            COLUMNS.channel == key.channel,
            COLUMNS.status.in_(TOLD_STATES),
        )
    ).scalar()
    return int(found or 0)


def record(engine: Engine, held: Claim, status: str, now: datetime, **values: Any) -> bool:
    """Record an outcome under the claim's token; a late success still turns `uncertain` → sent."""
    values = {"status": status, "updated_at": now, "lease_expires_at": None, **values}
    if status != "retrying":
        values.setdefault("next_attempt_at", None)
    if status in ("sent", "failed", "missed", "retrying", "skipped"):
        values["token"] = None
    if status == "uncertain":
        values["was_uncertain"] = True
    else:
        values.setdefault("settle_after", None)  # nothing left to ask the channel about
    if status == "sent":
        values.setdefault("sent_at", now)
        values.setdefault("reason", None)  # an earlier attempt's error is not this outcome's
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(TABLE)
            .where(
                and_(
                    COLUMNS.id == held.id,
                    COLUMNS.token == held.token,
                    COLUMNS.status.in_(("claimed", "sending", "uncertain")),
                )
            )
            .values(**values)
        )
        return result.rowcount == 1


def take_unsettled(
    engine: Engine, channels: Sequence[str], now: datetime, lease: timedelta
) -> list[tuple[Claim, LedgerRow]]:
    """Claim the `uncertain` deliveries of self-settling `channels` whose time to ask has come.

    Each row is taken under a fresh token and its next ask pushed a lease ahead, in one
    statement per row, so two processes never ask about (or re-send) the same delivery at once.
    """
    if not channels:
        return []
    token = uuid.uuid4().hex
    with write_transaction(engine) as conn:
        rows = conn.execute(
            select(TABLE).where(
                COLUMNS.status == "uncertain",
                COLUMNS.settle_after <= now,
                COLUMNS.reference.is_not(None),
                COLUMNS.channel.in_(list(channels)),
            )
        ).all()
        taken: list[tuple[Claim, LedgerRow]] = []
        for raw in rows:
            row = row_to_ledger(raw)
            won = conn.execute(
                update(TABLE)
                .where(
                    COLUMNS.id == row.id,
                    COLUMNS.status == "uncertain",
                    COLUMNS.settle_after <= now,
                )
                .values(token=token, settle_after=now + lease, updated_at=now)
            )
            if won.rowcount == 1:
                notice = Notice(row.key, None, row.due_at, row.deadline, "send", row=row)
                claim = Claim(
                    row.id,
                    token,
                    notice,
                    row.attempts,
                    True,
                    row.reference,
                    row.referenced_at,
                )
                taken.append((claim, row))
    return taken


def release(engine: Engine, held: Sequence[Claim], now: datetime) -> None:
    """Give claims back unsent (the process is stopping): the next pass takes them."""
    if not held:
        return
    with write_transaction(engine) as conn:
        for item in held:
            conn.execute(
                update(TABLE)
                .where(
                    COLUMNS.id == item.id, COLUMNS.token == item.token, COLUMNS.status == "claimed"
                )
                .values(status="pending", token=None, lease_expires_at=None, updated_at=now)
            )
