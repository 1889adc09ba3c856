"""The group block and the website's snapshot (SQL for `group_profile` and `group_organizers`)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select

from bot.domain import GROUP_LINKS, GroupInfo, GroupLinks, Organizer, SiteData
from bot.store.db import is_sqlite
from bot.store.reads import load_sessions
from bot.store.recordings import LATEST_VIDEOS, load_videos, video_sessions
from bot.store.tables import (
    group_organizers,
    group_profile,
    recording_matches,
    session_changes,
    sessions,
    videos,
)

GROUP_ROW = 1  # the one row of group_profile


def load_group(conn: Connection) -> tuple[GroupInfo, datetime | None]:
    """The stored group block and when it last changed (an empty block and None: none stored)."""
    row = conn.execute(select(group_profile).where(group_profile.c.id == GROUP_ROW)).first()
    if row is None:
        return GroupInfo(), None
    query = select(group_organizers).order_by(group_organizers.c.position)
    organizers = tuple(
        Organizer(name=o.name, bio=o.bio, url=o.url, photo=o.photo) for o in conn.execute(query)
    )
    links = GroupLinks(**{name: getattr(row, name) for name in GROUP_LINKS})
    group = GroupInfo(name=row.name, about=row.about, organizers=organizers, links=links)
    return group, row.updated_at


def save_group(conn: Connection, group: GroupInfo, now: datetime, *, dry_run: bool = False) -> str:
    """Replace the stored group block: `added`, `updated` or `unchanged` (nothing written)."""
    current, changed_at = load_group(conn)
    if changed_at is not None and current == group:
        return "unchanged"
    if not dry_run:
        conn.execute(delete(group_organizers))
        conn.execute(delete(group_profile))
        links = {f.name: getattr(group.links, f.name) for f in fields(GroupLinks)}
        conn.execute(
            insert(group_profile).values(
                id=GROUP_ROW, name=group.name, about=group.about, updated_at=now, **links
            )
        )
        rows = [{"position": i, **vars(o)} for i, o in enumerate(group.organizers)]
        if rows:
            conn.execute(insert(group_organizers), rows)
    return "added" if changed_at is None else "updated"


def load_site(engine: Engine) -> SiteData:
    """Every session, the group block and when each last changed, from one snapshot."""
    with engine.connect() as conn:
        if not is_sqlite(conn):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            found = load_sessions(conn)
            stamps = list(
                conn.execute(select(sessions.c.id, sessions.c.created_at, sessions.c.updated_at))
            )
            c = session_changes.c
            moved = frozenset(
                conn.scalars(select(c.session_id).where(c.field == "starts_at").distinct())
            )
            group, group_changed_at = load_group(conn)
            latest = tuple(load_videos(conn, LATEST_VIDEOS))
            matched = video_sessions(conn)
    return SiteData(
        sessions=tuple(found),
        group=group,
        group_changed_at=group_changed_at,
        changed_at={r.id: r.updated_at for r in stamps},
        created_at={r.id: r.created_at for r in stamps},
        moved=moved,
        videos=latest,
        video_sessions={v.video_id: matched[v.video_id] for v in latest if v.video_id in matched},
    )


def site_fingerprint(engine: Engine) -> tuple[object, ...]:
    """A value that changes whenever something the website shows was changed in the database."""
    with engine.connect() as conn:
        count, latest = conn.execute(select(func.count(), func.max(sessions.c.updated_at))).one()
        group_at = conn.execute(select(group_profile.c.updated_at)).scalar()
        edits = conn.execute(select(func.max(session_changes.c.id))).scalar()
        seen = conn.execute(select(func.count(), func.max(videos.c.first_seen_at))).one()
        applied = conn.execute(select(func.max(recording_matches.c.decided_at))).scalar()
    return (count, latest, group_at, edits, tuple(seen), applied)


def stored_group(engine: Engine) -> GroupInfo | None:
    """The stored group block, or None when no file has given one."""
    with engine.connect() as conn:
        group, changed_at = load_group(conn)
    return group if changed_at is not None else None
