"""Managing sessions: `sessions import|list|show|export|cancel|set`, and `ics`.

Every change (import, set, cancel) rebuilds the website in SITE_DIR when it is set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from bot.cli.common import _app, cli, command, common, json_option, write_atomically
from bot.errors import DataError, UsageError

ICS_HISTORY = timedelta(days=90)


@cli.group("sessions")
@common
def sessions_group() -> None:
    """Manage sessions: import a YAML file, list, show, export, cancel."""


@command(sessions_group, "import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.option("--prune", is_flag=True, help="Remove sessions missing from the file.")
def import_cmd(file: str, dry_run: bool, prune: bool) -> None:
    """Upsert sessions from FILE, all or nothing."""
    from bot.sources.sessions_file import parse_session_file
    from bot.store.imports import import_sessions

    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError([f"{file}: cannot read ({type(exc).__name__})"]) from exc
    found = parse_session_file(text, file)
    app = _app()
    now = datetime.now(UTC)
    report = import_sessions(
        app.engine(), found.sessions, now=now, prune=prune, dry_run=dry_run, group=found.group
    )
    verb = "would be " if dry_run else ""
    if report.group in ("added", "updated"):
        click.echo(f"{verb}{report.group}: the group block")
    for label, ids in (
        ("added", report.added),
        ("updated", report.updated),
        ("removed", report.pruned),
        ("cancelled", report.cancelled_by_prune),
        ("kept (already held or cancelled)", report.kept),
    ):
        for session_id in ids:
            click.echo(f"{verb}{label}: {session_id}")
    click.echo(
        f"{file}: {len(report.added)} {verb}added, {len(report.updated)} {verb}updated, "
        f"{len(report.unchanged)} unchanged"
        + (
            f", {len(report.pruned)} {verb}removed, {len(report.cancelled_by_prune)} "
            f"{verb}cancelled"
            if prune
            else ""
        )
    )
    if not dry_run:
        _after_change(app, "sessions import")


@command(sessions_group, "list")
@click.option("--all", "show_all", is_flag=True, help="Include past sessions.")
@json_option
def list_cmd(show_all: bool) -> None:
    """Upcoming sessions (with --all, every session)."""
    from bot.store.imports import load_all_sessions

    app = _app()
    now = datetime.now(UTC)
    for s in load_all_sessions(app.engine(read_only=True), include_past=show_all, now=now):
        local = s.starts_at.astimezone(app.settings.reference_zone)
        app.out(
            {
                "id": s.id,
                "title": s.title,
                "starts_at": s.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "status": s.status,
            },
            f"{s.id:<24} {local:%Y-%m-%d %H:%M %Z}  {s.status:<9}  {s.title}",
        )


@command(sessions_group, "show")
@click.argument("session_id")
def show_cmd(session_id: str) -> None:
    """Every field of one session, with its time in each display zone."""
    from bot.render.timefmt import when_line, zone_times
    from bot.sources.sessions_file import export_sessions
    from bot.store.reads import get_session

    app = _app()
    session = get_session(app.engine(read_only=True), session_id)
    if session is None:
        raise UsageError(f"sessions show: no session with id {session_id!r}")
    click.echo(export_sessions([session]).rstrip())
    times = zone_times(session.starts_at, app.settings.display_timezones)
    click.echo(f"# shown as: {when_line(times)}")
    click.echo(f"# sequence: {session.sequence}")


@command(sessions_group, "export")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def export_cmd(file: str | None) -> None:
    """Write every session in the import format (to FILE, or standard output)."""
    from bot.sources.sessions_file import export_sessions
    from bot.store.imports import load_all_sessions
    from bot.store.site import stored_group

    engine = _app().engine(read_only=True)
    text = export_sessions(load_all_sessions(engine, include_past=True), stored_group(engine))
    if file is None:
        click.echo(text, nl=False)
        return
    write_atomically(file, text.encode("utf-8"))


@command(sessions_group, "cancel")
@click.argument("session_id")
def cancel_cmd(session_id: str) -> None:
    """Cancel a session: no more reminders; a cancelled notice where it was announced."""
    _edit(session_id, ("status=cancelled",), "cancel")


@command(sessions_group, "set")
@click.argument("session_id")
@click.argument("assignments", nargs=-1, required=True, metavar="FIELD=VALUE...")
def set_cmd(session_id: str, assignments: tuple[str, ...]) -> None:
    """Change fields of a session, validated as an import is: title="New title" …"""
    _edit(session_id, assignments, "set")


@command(cli, "ics")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
def ics_cmd(output: str | None) -> None:
    """An iCalendar feed of upcoming and recent sessions (cancelled ones marked)."""
    from bot.render.ics import calendar_feed
    from bot.store.reads import load_window

    app = _app()
    now = datetime.now(UTC)
    sessions, _ = load_window(app.engine(read_only=True), now - ICS_HISTORY, None)
    name = app.settings.group_name or "Reading group"
    data = calendar_feed(sessions, now=now, name=name, domain=app.settings.uid_domain)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    write_atomically(output, data)
    click.echo(f"{output}: {len(sessions)} sessions")


def _edit(session_id: str, assignments: tuple[str, ...], source: str) -> None:
    from bot.store.edits import edit_session

    app = _app()
    report = edit_session(app.engine(), session_id, assignments, datetime.now(UTC), source)
    changed = report.changes.get(session_id, [])
    click.echo(f"{session_id}: " + (f"changed {', '.join(changed)}" if changed else "unchanged"))
    _after_change(app, f"sessions {source} {session_id}")


def _after_change(app: Any, why: str) -> None:
    """After every change to the sessions: rebuild SITE_DIR (when set; a failure is logged and
    keeps the previous site), then run `check` and show what it finds (as warnings)."""
    from bot.operator import check

    if app.settings.site_dir is not None:
        from bot.site.rebuild import rebuild_site

        rebuild_site(app.engine(), app.settings, datetime.now(UTC), why)
    for line in check(app.engine(), app.settings, datetime.now(UTC), online=False):
        click.echo(f"check: {line}", err=True)
