"""`recordings`, `recordings sync|accept|reject`: the group's YouTube videos as recordings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from bot.cli.common import (
    _app,
    cli,
    command,
    common,
    handles_errors,
    json_option,
    make_clock,
    now_option,
    parse_now,
)
from bot.errors import ConfigError

EXIT_FEED = 1


def _feed_url(app: Any) -> str:
    url = str(app.settings.youtube_feed_url)
    if not url:
        raise ConfigError(
            ["YOUTUBE_CHANNEL_ID: not set (recordings are read from that channel's feed)"]
        )
    return url


@cli.group("recordings", invoke_without_command=True)
@common
@json_option
@click.pass_context
@handles_errors
def recordings_group(ctx: click.Context) -> None:
    """The videos matched to sessions as recordings (applied, waiting, rejected)."""
    if ctx.invoked_subcommand is None:
        _list(_app())


def _list(app: Any) -> None:
    from bot.store import recordings as store

    with app.engine(read_only=True).connect() as conn:
        matches = store.load_matches(conn)
        videos = {v.video_id: v for v in store.load_videos(conn)}
        current = store.current_recordings(conn)
    order = {"waiting": 0, "applied": 1, "rejected": 2, "replaced": 3, "closed": 4}
    for m in sorted(matches, key=lambda m: (order.get(m.status, 9), m.session_id, m.video_id)):
        video = videos.get(m.video_id)
        status = m.status
        if status == "applied" and (m.session_id, m.video_id) not in current:
            status = "applied, since changed by hand"  # the next sync marks it `replaced`
        record = {
            "session": m.session_id,
            "video": m.video_id,
            "status": m.status,
            "kind": m.kind,
            "score": m.score,
            "why": m.why,
            "title": video.title if video else None,
            "url": video.url if video else None,
            "published": video.published_at.strftime("%Y-%m-%dT%H:%M:%SZ") if video else None,
            "found_at": m.found_at.strftime("%Y-%m-%dT%H:%M:%SZ") if m.found_at else None,
            "decided_at": m.decided_at.strftime("%Y-%m-%dT%H:%M:%SZ") if m.decided_at else None,
            "decided_by": m.decided_by,
            "current": status == m.status,
        }
        hint = (
            f"; `bot recordings accept {m.session_id} {m.video_id}` or `reject`"
            if m.status == "waiting"
            else ""
        )
        title = f' "{video.title}"' if video else ""
        app.out(
            record,
            f"{status:<9} {m.session_id} <- {m.video_id}{title}  {m.kind} {m.score} "
            f"({m.why}){hint}",
        )
    if not matches and not app.json:
        click.echo(f"no recording matches yet ({len(videos)} videos seen)")


@command(recordings_group, "sync")
@now_option
@click.option("--dry-run", is_flag=True, help="Read the feed and show what would change.")
@json_option
def sync_cmd(now_text: str | None, dry_run: bool) -> None:
    """Read the YouTube feed; attach certain matches, list probable ones."""
    import sys

    from bot.recordings.feed import FeedError
    from bot.recordings.sync import sync

    app = _app()
    now = make_clock(parse_now(now_text))()
    # Applying a match makes the `recording` notice due: the channels must be right then.
    app.sending = lambda settings: not dry_run and settings.recordings_auto
    _feed_url(app)
    engine = app.engine(read_only=dry_run)
    try:
        report = sync(engine, app.settings, now, dry_run=dry_run)
    except FeedError as exc:
        click.echo(
            f"recordings sync: the feed could not be read ({exc}); nothing changed", err=True
        )
        sys.exit(EXIT_FEED)
    verb = "would be " if dry_run else ""
    new = sum(1 for c in report.video_changes if c.startswith("added"))
    for p in report.applied:
        app.out(
            {"event": "applied", "dry_run": dry_run} | vars(p),
            f"{verb}applied: {p.session_id} <- {p.video_id} ({p.why})",
        )
    for p in report.proposed:
        app.out(
            {"event": "proposed", "dry_run": dry_run} | vars(p),
            f"{verb}waiting: {p.session_id} <- {p.video_id} {p.kind} {p.score} ({p.why}); "
            f"`bot recordings accept {p.session_id} {p.video_id}` or `reject`",
        )
    for session_id, video_id, why in report.closed:
        app.out(
            {
                "event": "closed",
                "dry_run": dry_run,
                "session_id": session_id,
                "video_id": video_id,
                "why": why,
            },
            f"{verb}closed: {session_id} <- {video_id} ({why})",
        )
    for note in report.notes:
        app.out({"event": "note", "note": note}, f"note: {note}")
    still = len(report.waiting) - len(report.proposed)  # the new ones are waiting too
    summary = (
        f"feed: {report.feed_videos} videos, {new} new; {len(report.applied)} {verb}applied, "
        f"{len(report.proposed)} newly waiting, {still} still waiting"
        + ("" if report.changed else "; nothing changed")
    )
    record = {"event": "summary", "dry_run": dry_run, "feed_videos": report.feed_videos}
    record |= {"new_videos": new, "applied": len(report.applied)}
    app.out(record | {"waiting": len(report.waiting), "changed": report.changed}, summary)
    if report.changed and not dry_run:
        from bot.cli.data import _after_change

        _after_change(app, "recordings sync")


@command(recordings_group, "accept")
@click.argument("session_id")
@click.argument("video_id")
def accept_cmd(session_id: str, video_id: str) -> None:
    """Make VIDEO_ID the recording of SESSION_ID (its recording notice follows)."""
    from bot.cli.data import _after_change
    from bot.recordings.sync import accept

    app = _app()
    accept(app.engine(), session_id, video_id, datetime.now(UTC))
    click.echo(f"{session_id}: recording_url set from {video_id}")
    _after_change(app, f"recordings accept {session_id}")


@command(recordings_group, "reject")
@click.argument("session_id")
@click.argument("video_id")
def reject_cmd(session_id: str, video_id: str) -> None:
    """VIDEO_ID is not SESSION_ID's recording: never propose it again."""
    from bot.cli.data import _after_change
    from bot.recordings.sync import reject

    app = _app()
    click.echo(reject(app.engine(), session_id, video_id, datetime.now(UTC)))
    _after_change(app, f"recordings reject {session_id}")
