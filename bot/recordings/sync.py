"""`recordings sync`, `accept` and `reject`: the feed, the matcher and the database together.

A sync reads the feed first (no transaction is open during network I/O); a feed that cannot be
read changes nothing. Then, in one short write transaction, it stores the videos it saw and the
matches found; then it applies each certain match (RECORDINGS_AUTO=on) exactly as `sessions set`
does, in a transaction of its own that re-checks the session still has no `recording_url`: an
organiser's URL is never replaced by the feed. The same feed read twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection, Engine

from bot.config import Settings
from bot.domain import RecordingMatch, SessionData, Video
from bot.errors import DataError, UsageError
from bot.recordings.match import Matching, Proposal, match
from bot.store import recordings as store
from bot.store.db import write_transaction
from bot.store.reads import load_sessions

SOURCE = "youtube"  # session_changes.source of a recording_url the feed gave


class Refused(UsageError):
    """The session cannot take this recording (it has one already, or is cancelled)."""


@dataclass
class SyncReport:
    """What one sync saw and did (or, in a dry run, would do)."""

    dry_run: bool = False
    feed_videos: int = 0
    video_changes: list[str] = field(default_factory=list)  # "added ID", "updated ID"
    applied: list[Proposal] = field(default_factory=list)
    proposed: list[Proposal] = field(default_factory=list)  # newly waiting for the operator
    waiting: list[RecordingMatch] = field(default_factory=list)  # every match still waiting
    closed: list[tuple[str, str, str]] = field(default_factory=list)  # session, video, why
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when the database was (or would be) changed."""
        return bool(self.video_changes or self.applied or self.proposed or self.closed)


def _matching(
    conn: Connection, videos: Sequence[Video], settings: Settings, now: datetime
) -> tuple[
    Matching, list[SessionData], dict[tuple[str, str], RecordingMatch], set[tuple[str, str]]
]:
    matches = {(m.session_id, m.video_id): m for m in store.load_matches(conn)}
    current = store.current_recordings(conn)
    sessions = load_sessions(conn)
    found = match(
        videos,
        sessions,
        now,
        site_url=settings.site_url,
        window=settings.recording_window,
        # Never again: rejected pairs, and applied ones whose URL was changed by hand (marked
        # `replaced` by this sync, if not before).
        excluded=frozenset(
            k
            for k, m in matches.items()
            if m.status in ("rejected", "replaced") or (m.status == "applied" and k not in current)
        ),
        taken=frozenset(video_id for _, video_id in current),
    )
    return found, sessions, matches, current


def sync(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
    read: Callable[[str], list[Video]] | None = None,
    before_write: Callable[[], bool] | None = None,
) -> SyncReport:
    """Read the feed and match; FeedError (nothing changed) when the feed cannot be read.

    `before_write` is asked before each write transaction (the worker: not stopping, the same
    database file); False stops the sync there, with what it did so far.
    """
    from bot.recordings.feed import read as read_feed

    seen = (read or read_feed)(settings.youtube_feed_url)
    report = SyncReport(dry_run=dry_run, feed_videos=len(seen))
    go_on = before_write or (lambda: True)
    if dry_run:
        with engine.connect() as conn:
            videos, report.video_changes = store.merge_videos(store.load_videos(conn), seen)
            found, sessions, matches, current = _matching(conn, videos, settings, now)
            _record(None, found, sessions, matches, current, report, settings, now)
        return report
    if not go_on():
        return report
    with write_transaction(engine) as conn:
        store.lock_recordings(conn)
        report.video_changes = store.save_videos(conn, seen, now)
        found, sessions, matches, current = _matching(conn, store.load_videos(conn), settings, now)
        to_apply = _record(conn, found, sessions, matches, current, report, settings, now)
    by_id = {v.video_id: v for v in seen}
    for proposal in to_apply:
        if not go_on():
            break
        video = by_id.get(proposal.video_id)
        if video is None:  # matched from what an earlier sync stored
            with engine.connect() as conn:
                video = _stored_video(conn, proposal.video_id)
        try:
            apply(engine, proposal, video, now, by="auto")
        except (Refused, DataError) as exc:  # decided meanwhile, or a link sessions refuse
            if isinstance(exc, DataError):
                exc = Refused(f"its link is not a recording_url ({'; '.join(exc.problems)})")
            with write_transaction(engine) as conn:
                store.lock_recordings(conn)
                closed = store.set_match(
                    conn, proposal.session_id, proposal.video_id, "closed", now, "auto",
                    only_from="waiting",
                )  # fmt: skip
            if closed:  # else another sync applied it meanwhile
                report.closed.append((proposal.session_id, proposal.video_id, str(exc)))
            continue
        report.applied.append(proposal)
    with engine.connect() as conn:
        report.waiting = [m for m in store.load_matches(conn) if m.status == "waiting"]
    return report


def _record(
    conn: Connection | None,
    found: Matching,
    sessions: list[SessionData],
    matches: dict[tuple[str, str], RecordingMatch],
    current: set[tuple[str, str]],
    report: SyncReport,
    settings: Settings,
    now: datetime,
) -> list[Proposal]:
    """Store new proposals, close waiting matches whose session got its recording, mark applied
    ones whose URL was changed by hand `replaced`; the certain matches to apply. With `conn`
    None (a dry run), only fill in `report`."""
    report.notes = list(found.notes)
    to_apply: list[Proposal] = []
    for p in found.proposals:
        old = matches.get((p.session_id, p.video_id))
        if old is None or old.status == "closed":
            report.proposed.append(p)
            if conn is not None:
                row = RecordingMatch(p.session_id, p.video_id, p.kind, p.score, p.why)
                if old is None:
                    store.add_match(conn, replace(row, found_at=now))
                else:
                    store.set_match(
                        conn,
                        p.session_id,
                        p.video_id,
                        "waiting",
                        now,
                        "found again",
                        kind=p.kind,
                        score=p.score,
                        why=p.why,
                    )
        elif old.status != "waiting":
            continue
        if p.kind == "certain" and settings.recordings_auto:
            to_apply.append(p)
    report.proposed = [p for p in report.proposed if p not in to_apply]
    by_id = {s.id: s for s in sessions}
    for key, m in sorted(matches.items()):
        if m.status == "applied" and key not in current:
            why = "recording_url changed by hand"
            report.closed.append((key[0], key[1], why))
            if conn is not None:
                store.set_match(conn, *key, "replaced", now, why, only_from="applied")
    proposed = {(p.session_id, p.video_id) for p in found.proposals}
    for (session_id, video_id), m in sorted(matches.items()):
        session = by_id.get(session_id)
        if m.status != "waiting" or (session_id, video_id) in proposed:
            continue
        why = (
            "the session is gone"
            if session is None
            else "the session is cancelled"
            if session.cancelled
            else "the session has its recording_url"
            if session.recording_url
            else "no longer a match (another video or session is as alike, or it is out of the "
            "window)"
        )
        report.closed.append((session_id, video_id, why))
        if conn is not None:
            store.set_match(conn, session_id, video_id, "closed", now, why)
    if report.dry_run:
        report.applied = list(to_apply)
        gone = {(p.session_id, p.video_id) for p in to_apply} | {c[:2] for c in report.closed}
        report.waiting = [
            m for k, m in sorted(matches.items()) if m.status == "waiting" and k not in gone
        ] + [
            RecordingMatch(p.session_id, p.video_id, p.kind, p.score, p.why)
            for p in report.proposed
        ]
    return to_apply


def _stored_video(conn: Connection, video_id: str) -> Video:
    video = store.get_video(conn, video_id)
    if video is None:
        raise UsageError(f"recordings: no video {video_id!r} was seen in the feed")
    return video


def apply(engine: Engine, proposal: Proposal, video: Video, now: datetime, *, by: str) -> None:
    """Set the session's recording_url to the video, as `sessions set` does, and mark the match
    applied, in one transaction; Refused when the session has a recording_url or is cancelled."""
    from bot.store.edits import edit_session

    def check(session: SessionData) -> None:
        if session.recording_url:
            raise Refused(
                f"session {session.id} already has recording_url {session.recording_url}; "
                "the feed never replaces it (clear it with "
                f"`bot sessions set {session.id} recording_url=` first)"
            )
        if session.cancelled:
            raise Refused(f"session {session.id} is cancelled")

    def mark(conn: Connection) -> None:
        store.lock_recordings(conn)
        matches = store.load_matches(conn, proposal.session_id)
        taken = [
            session_id
            for session_id, video_id in sorted(store.current_recordings(conn))
            if video_id == proposal.video_id and session_id != proposal.session_id
        ]
        taken += [s for s in store.sessions_linking(conn, video.url) if s != proposal.session_id]
        if taken:
            raise Refused(
                f"video {proposal.video_id} is already the recording of session {taken[0]} "
                f"(`bot recordings reject {taken[0]} {proposal.video_id}` or `bot sessions set "
                f"{taken[0]} recording_url=` first)"
            )
        old = next((m for m in matches if m.video_id == proposal.video_id), None)
        if by == "auto" and (old is None or old.status != "waiting"):  # an operator's word since
            raise Refused(f"the match was {old.status if old else 'removed'} meanwhile")
        if old is not None:
            store.set_match(
                conn, proposal.session_id, proposal.video_id, "applied", now, by,
                kind=proposal.kind, score=proposal.score, why=proposal.why, applied_url=video.url,
            )  # fmt: skip
        else:
            row = RecordingMatch(
                proposal.session_id, proposal.video_id, proposal.kind,
                proposal.score, proposal.why, "applied", now, now, by, video.url,
            )  # fmt: skip
            store.add_match(conn, row)
        moot = [m for m in matches if m.status == "waiting" and m.video_id != proposal.video_id]
        for m in moot:  # the session has its recording: its other proposals are moot
            why = "the session has its recording_url"
            store.set_match(conn, m.session_id, m.video_id, "closed", now, why)

    edit_session(
        engine,
        proposal.session_id,
        [f"recording_url={video.url}"],
        now,
        SOURCE,
        check=check,
        also=mark,
    )


def _pair(
    engine: Engine, session_id: str, video_id: str, verb: str
) -> tuple[Video, SessionData, RecordingMatch | None]:
    """The video, the session and their match so far, for an operator's word on them."""
    with engine.connect() as conn:
        video = _stored_video(conn, video_id)
        sessions = load_sessions(conn, session_id=session_id)
        known = {m.video_id: m for m in store.load_matches(conn, session_id)}
    if not sessions:
        raise UsageError(f"recordings {verb}: no session with id {session_id!r}")
    return video, sessions[0], known.get(video_id)


def accept(engine: Engine, session_id: str, video_id: str, now: datetime) -> Proposal:
    """The operator's yes: the video becomes the session's recording (any seen video, proposed
    or not, a rejected one included: the later word wins)."""
    from rapidfuzz.utils import default_process

    from bot.recordings.match import likeness

    video, session, old = _pair(engine, session_id, video_id, "accept")
    if old is not None and old.status == "applied" and session.recording_url == old.applied_url:
        raise UsageError(f"recordings accept: {video_id} is already {session_id}'s recording")
    if old is not None:
        proposal = Proposal(session_id, video_id, old.kind, old.score, old.why)
    else:
        score, _ = likeness(default_process(video.title), session.title)
        proposal = Proposal(session_id, video_id, "probable", score, "named by an operator")
    apply(engine, proposal, video, now, by="operator")
    return proposal


def reject(engine: Engine, session_id: str, video_id: str, now: datetime) -> str:
    """The operator's no: the pair is never proposed again. A rejected match that was applied
    takes its URL back off the session (when it is still the session's recording_url).

    Decided inside a transaction that holds the session's row and the matches, so a sync that
    applies the pair meanwhile is either before it (and undone) or after it (and refused).
    """
    from bot.store.edits import edit_session
    from bot.store.imports import edit_transaction

    _pair(engine, session_id, video_id, "reject")  # both exist, or a one-line error

    def mark(conn: Connection) -> None:
        store.lock_recordings(conn)
        if store.get_match(conn, session_id, video_id) is None:
            row = RecordingMatch(
                session_id, video_id, "probable", 0, "rejected by an operator",
                "rejected", now, now, "operator",
            )  # fmt: skip
            store.add_match(conn, row)
        else:
            store.set_match(conn, session_id, video_id, "rejected", now, "operator")

    def still_current(session: SessionData) -> None:
        if (session_id, video_id) not in current:
            raise Refused(f"session {session_id}'s recording_url changed meanwhile")

    for _ in range(3):
        with edit_transaction(engine, session_id) as conn:
            store.lock_recordings(conn)
            current = store.current_recordings(conn)
            if (session_id, video_id) not in current:
                mark(conn)
                return f"{session_id}: {video_id} rejected; it will not be proposed again"
        try:  # it is the session's recording: take the URL back, as `sessions set` does
            edit_session(
                engine, session_id, ["recording_url="], now, SOURCE, check=still_current, also=mark
            )
        except Refused:
            continue  # changed between the two transactions: decide again
        return f"{session_id}: {video_id} rejected; recording_url cleared"
    raise UsageError(f"recordings reject: session {session_id} keeps changing; try again")
