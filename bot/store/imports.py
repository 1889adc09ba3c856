"""Sessions into the database: an all-or-nothing upsert by id, written in bulk with Core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, exists, insert, select, text, update

from bot.domain import GroupInfo, SessionData
from bot.store import tables
from bot.store.db import is_sqlite, write_transaction
from bot.store.reads import load_sessions
from bot.store.site import save_group

# A delivery in one of these states may have reached people: its session is cancelled, not deleted.
MAYBE_SENT = ("sent", "sending", "uncertain", "claimed")
# What an import compares, in the order changes are reported.
_BOOKKEEPING = ("id", "sequence", "occurrence_since", "status_since", "recording_since")
COMPARED = tuple(f.name for f in fields(SessionData) if f.name not in _BOOKKEEPING)


@dataclass(frozen=True)
class ImportReport:
    """What an import did (or, in a dry run, would do), by session id."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)  # deleted: missing from the file, never sent
    cancelled_by_prune: list[str] = field(default_factory=list)  # missing, something was sent
    kept: list[str] = field(default_factory=list)  # missing, announced, but started or cancelled
    changes: dict[str, list[str]] = field(default_factory=dict)  # updated id -> changed fields
    dry_run: bool = False
    group: str = ""  # the group block: added | updated | unchanged ("" when the file had none)


@dataclass
class _Writes:
    """What an import will write, gathered first, so that a dry run can simply not write it."""

    new: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    children: list[SessionData] = field(default_factory=list)  # speakers and papers to insert
    emptied: list[str] = field(default_factory=list)  # ids whose old speakers and papers go
    deleted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # rows for session_changes


@contextmanager
def edit_transaction(engine: Engine, session_id: str | None = None) -> Iterator[Connection]:
    """The write transaction every session edit reads, validates and writes in.

    SQLite: `BEGIN IMMEDIATE`, one writer at a time. PostgreSQL: an import locks the sessions
    table against every other edit; an edit of one session (`session_id`) locks that row, after
    a table lock that only imports wait for, so edits of different sessions do not queue and
    edits of one session do not lose each other's changes. Marks (`ledger.mark_sending`) lock
    the same row, so an edit and a mark are always ordered.
    """
    with write_transaction(engine) as conn:
        if not is_sqlite(conn):
            if session_id is None:
                conn.execute(text("LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE"))
            else:
                conn.execute(text("LOCK TABLE sessions IN ROW EXCLUSIVE MODE"))
                conn.execute(
                    select(tables.sessions.c.id)
                    .where(tables.sessions.c.id == session_id)
                    .with_for_update()
                )
        yield conn


def import_sessions(
    engine: Engine,
    sessions: list[SessionData],
    *,
    now: datetime,
    prune: bool = False,
    dry_run: bool = False,
    source: str = "import",
    group: GroupInfo | None = None,
) -> ImportReport:
    """Upsert `sessions` by id in one write transaction; `prune` removes the ones not given.

    A `group` block replaces the stored one in the same transaction (None keeps it).
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if dry_run:
        with engine.connect() as conn, conn.begin():
            existing = {s.id: s for s in load_sessions(conn)}
            sessions = keep_feed_recordings(conn, existing, sessions)
            report = plan_import(
                conn, existing, sessions, now, prune, ImportReport(dry_run=True), source
            )[0]
            if group is not None:
                report = replace(report, group=save_group(conn, group, now, dry_run=True))
            return report
    with edit_transaction(engine) as conn:
        existing = {s.id: s for s in load_sessions(conn)}
        sessions = keep_feed_recordings(conn, existing, sessions)
        report, writes = plan_import(conn, existing, sessions, now, prune, ImportReport(), source)
        write_import(conn, writes, now)
        if group is not None:
            report = replace(report, group=save_group(conn, group, now))
    return report


def keep_feed_recordings(
    conn: Connection, existing: dict[str, SessionData], sessions: list[SessionData]
) -> list[SessionData]:
    """A file that says nothing of `recording_url` keeps the one the YouTube feed gave (the
    organiser's file predates the upload); a file that gives one wins, and `sessions set ID
    recording_url=` clears it."""
    from bot.store.recordings import applied_recordings

    silent = [s.id for s in sessions if s.recording_url is None and s.id in existing]
    if not silent:
        return sessions
    kept = applied_recordings(conn, silent)
    return [
        replace(s, recording_url=kept[s.id]) if s.recording_url is None and s.id in kept else s
        for s in sessions
    ]


def plan_import(
    conn: Connection,
    existing: dict[str, SessionData],
    sessions: list[SessionData],
    now: datetime,
    prune: bool,
    report: ImportReport,
    source: str,
) -> tuple[ImportReport, _Writes]:
    """What upserting `sessions` over `existing` changes, and the writes that do it."""
    w = _Writes()

    def record(sid: str, name: str, old: object, new: object) -> None:
        w.history.append(
            {
                "session_id": sid,
                "changed_at": now,
                "field": name,
                "old_value": _as_text(old),
                "new_value": _as_text(new),
                "source": source,
            }
        )

    for new in sessions:
        old = existing.get(new.id)
        if old is None:
            report.added.append(new.id)
            recording_since = now if new.recording_url else None
            row = _row(new, 0, now, now) | {"status_since": now, "recording_since": recording_since}
            w.new.append(row | {"created_at": now})
            w.children.append(new)
            record(new.id, "created", None, new.starts_at)
            continue
        changed = [name for name in COMPARED if getattr(new, name) != getattr(old, name)]
        if not changed:
            report.unchanged.append(new.id)
            continue
        report.updated.append(new.id)
        report.changes[new.id] = changed
        for name in changed:
            record(new.id, name, getattr(old, name), getattr(new, name))
        since = {
            "status_since": now if "status" in changed else old.status_since,
            "recording_since": now if "recording_url" in changed else old.recording_since,
        }
        # Every change raises the sequence: calendars update the event, and a notice rendered
        # from the old version is refused at its `sending` mark.
        occurrence_since = now if "starts_at" in changed else old.occurrence_since
        w.changed.append(_row(new, old.sequence + 1, occurrence_since, now) | since)
        if "speakers" in changed or "papers" in changed:
            w.children.append(new)
            w.emptied.append(new.id)
    if prune:
        d = tables.deliveries.c
        sent = set(conn.scalars(select(d.session_id).where(d.status.in_(MAYBE_SENT)).distinct()))
        for sid in sorted(existing.keys() - {s.id for s in sessions}):
            if sid not in sent:
                report.pruned.append(sid)
                w.deleted.append(sid)
                record(sid, "deleted", existing[sid].starts_at, None)
            elif existing[sid].starts_at > now and existing[sid].status != "cancelled":
                report.cancelled_by_prune.append(sid)
                w.cancelled.append(sid)
                record(sid, "status", existing[sid].status, "cancelled")
            else:  # it took place, or its cancellation is already known
                report.kept.append(sid)
    return report, w


def _row(s: SessionData, sequence: int, since: datetime | None, now: datetime) -> dict[str, Any]:
    row = {k: v for k, v in vars(s).items() if k not in ("duration", "speakers", "papers")}
    extra = {"duration_minutes": s.duration // timedelta(minutes=1), "updated_at": now}
    return row | extra | {"sequence": sequence, "occurrence_since": since}


def write_import(conn: Connection, w: _Writes, now: datetime) -> None:
    """Every write as one executemany per statement, never row by row through the ORM."""
    by_id = tables.sessions.c.id == bindparam("b_id")
    gone: list[dict[str, Any]] = [{"b_id": sid} for sid in w.deleted]
    emptied = [{"b_id": sid} for sid in w.emptied]
    for table in (tables.speakers, tables.papers):
        if emptied:
            conn.execute(delete(table).where(table.c.session_id == bindparam("b_id")), emptied)
    if gone:
        # Re-checked as it is deleted: a worker may have started sending since the plan was made
        # (speakers and papers go with the session, ON DELETE CASCADE).
        other = tables.deliveries.alias("other")
        maybe_sent = exists().where(
            other.c.session_id == bindparam("b_id"), other.c.status.in_(MAYBE_SENT)
        )
        d = tables.deliveries.c
        conn.execute(
            delete(tables.deliveries).where(d.session_id == bindparam("b_id"), ~maybe_sent), gone
        )
        conn.execute(delete(tables.sessions).where(by_id, ~maybe_sent), gone)
    if w.new:
        conn.execute(insert(tables.sessions), w.new)
    # Parameter keys that name columns become the SET clause; `b_id` only picks the row.
    if w.changed:
        rows = [{"b_id": r["id"]} | {k: v for k, v in r.items() if k != "id"} for r in w.changed]
        conn.execute(update(tables.sessions).where(by_id), rows)
    if w.cancelled:
        rows = [
            {"b_id": sid, "status": "cancelled", "status_since": now, "updated_at": now}
            for sid in w.cancelled
        ]
        bump = {"sequence": tables.sessions.c.sequence + 1}
        conn.execute(update(tables.sessions).where(by_id).values(bump), rows)
    if w.history:
        conn.execute(insert(tables.session_changes), w.history)
    for table, field_name in ((tables.speakers, "speakers"), (tables.papers, "papers")):
        rows = [
            {"session_id": s.id, "position": i, **vars(item)}
            for s in w.children
            for i, item in enumerate(getattr(s, field_name))
        ]
        if rows:
            conn.execute(insert(table), rows)


def _as_text(value: object) -> str | None:
    """A change's old or new value as the history stores it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, tuple):
        return "; ".join(str(getattr(v, "name", None) or getattr(v, "title", v)) for v in value)
    return str(value)[:2000]


def load_all_sessions(
    engine: Engine, *, include_past: bool = True, now: datetime | None = None
) -> list[SessionData]:
    """Stored sessions with speakers and papers, by start; leaving out ended ones needs `now`."""
    if not include_past and now is None:
        raise ValueError("now is needed to leave out past sessions")
    with engine.connect() as conn:
        found = load_sessions(conn)
    return found if include_past or now is None else [s for s in found if s.ends_at > now]
