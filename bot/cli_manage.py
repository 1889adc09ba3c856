"""Management commands: `sessions …`, `deliveries …` and `check`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from bot.errors import DataError, UsageError

ICS_HISTORY = timedelta(days=90)
DELIVERY_STATES = (
    "pending",
    "claimed",
    "sending",
    "sent",
    "retrying",
    "failed",
    "skipped",
    "missed",
    "uncertain",
)


def register(cli: click.Group) -> None:
    """Attach the management groups and commands to the root group."""
    from bot.cli import (
        _app,
        command,
        common,
        json_option,
        make_clock,
        now_option,
        parse_now,
        write_atomically,
    )

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
        from bot.sessions_file import parse_sessions
        from bot.sessions_import import import_sessions

        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError([f"{file}: cannot read ({type(exc).__name__})"]) from exc
        sessions = parse_sessions(text, file)
        app = _app()
        now = datetime.now(UTC)
        report = import_sessions(app.engine(), sessions, now=now, prune=prune, dry_run=dry_run)
        verb = "would be " if dry_run else ""
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
            _after_change(app)

    @command(sessions_group, "list")
    @click.option("--all", "show_all", is_flag=True, help="Include past sessions.")
    @json_option
    def list_cmd(show_all: bool) -> None:
        """Upcoming sessions (with --all, every session)."""
        from bot.sessions_import import load_all_sessions

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
        from bot.sessions_file import export_sessions
        from bot.store import get_session
        from bot.timefmt import when_line, zone_times

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
        from bot.sessions_file import export_sessions
        from bot.sessions_import import load_all_sessions

        engine = _app().engine(read_only=True)
        text = export_sessions(load_all_sessions(engine, include_past=True))
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
        from bot.ics import calendar_feed
        from bot.store import load_window

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

    @cli.group("deliveries", invoke_without_command=True)
    @common
    @click.option("--status", type=click.Choice(DELIVERY_STATES), help="Only this state.")
    @click.option("--session", "session_id", help="Only this session.")
    @json_option
    @click.pass_context
    def deliveries_group(ctx: click.Context, status: str | None, session_id: str | None) -> None:
        """The delivery ledger; `retry` and `resolve` settle what needs an operator."""
        if ctx.invoked_subcommand is not None:
            return
        from bot.cli import handles_errors

        handles_errors(_list_deliveries)(_app(), status, session_id)

    @command(deliveries_group, "retry")
    @click.argument("delivery_id", type=click.IntRange(1, 2**63 - 1))
    def retry_cmd(delivery_id: int) -> None:
        """Send an uncertain, failed or missed delivery again (before its deadline)."""
        from bot.operator import retry

        click.echo(retry(_app().engine(), delivery_id, datetime.now(UTC)))

    @command(deliveries_group, "resolve")
    @click.argument("delivery_id", type=click.IntRange(1, 2**63 - 1))
    @click.option("--as", "outcome", required=True, type=click.Choice(["sent", "failed"]))
    def resolve_cmd(delivery_id: int, outcome: str) -> None:
        """Settle an uncertain delivery by hand, after checking the channel."""
        from bot.operator import resolve

        click.echo(resolve(_app().engine(), delivery_id, outcome, datetime.now(UTC)))

    @command(cli, "check")
    @now_option
    @click.option("--online", is_flag=True, help="Also log in to each channel, without posting.")
    def check_cmd(now_text: str | None, online: bool) -> None:
        """Validate configuration, templates and data; exit 1 when anything needs attention."""
        from bot.errors import SchemaError
        from bot.operator import check

        app = _app()
        app.sending = True  # the channels' variables must be right: what check is for
        now = make_clock(parse_now(now_text))()
        try:
            engine = app.engine()  # SQLite migrates itself; PostgreSQL must be upgraded
        except SchemaError as exc:
            click.echo(f"database: {exc}")
            sys.exit(1)
        problems = check(engine, app.settings, now, online)
        for line in problems:
            click.echo(line)
        if not problems:
            click.echo("ok")
        sys.exit(1 if problems else 0)


def _edit(session_id: str, assignments: tuple[str, ...], source: str) -> None:
    from bot.cli import _app
    from bot.session_edit import edit_session

    app = _app()
    report = edit_session(app.engine(), session_id, assignments, datetime.now(UTC), source)
    changed = report.changes.get(session_id, [])
    click.echo(f"{session_id}: " + (f"changed {', '.join(changed)}" if changed else "unchanged"))
    _after_change(app)


def _after_change(app: Any) -> None:
    """Run `check` after every change to the sessions, and show what it finds (as warnings)."""
    from bot.operator import check

    for line in check(app.engine(), app.settings, datetime.now(UTC), online=False):
        click.echo(f"check: {line}", err=True)


def _list_deliveries(app: Any, status: str | None, session_id: str | None) -> None:
    from sqlalchemy import select

    from bot.dispatch import Outcome
    from bot.ledger import COLUMNS, TABLE, row_to_ledger

    query = select(TABLE).order_by(COLUMNS.due_at, COLUMNS.id)
    if status:
        query = query.where(COLUMNS.status == status)
    if session_id:
        query = query.where(COLUMNS.session_id == session_id)
    with app.engine(read_only=True).connect() as conn:
        rows = [row_to_ledger(r) for r in conn.execute(query)]
    for row in rows:
        record = Outcome(
            row.key, row.due_at, row.status, row.reason, row.external_id, row.text
        ).as_json()
        record["id"] = row.id
        detail = row.reason or (f"id={row.external_id}" if row.external_id else "")
        app.out(
            record,
            f"{row.id:>6}  {row.status:<10} {row.key.session_id} {row.key.notice} "
            f"{row.key.channel}  due {record['due_at']}  {detail}".rstrip(),
        )
