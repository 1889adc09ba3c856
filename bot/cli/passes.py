"""The commands that plan and send: `send`, `run`, `plan`, `preview`."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click

from bot.cli.common import (
    App,
    _app,
    _print_outcomes,
    _show_message,
    _zone_time,
    cli,
    command,
    json_option,
    make_clock,
    now_option,
    parse_now,
    write_atomically,
)
from bot.errors import SchemaError, UsageError


@command(cli, "send")
@click.option(
    "--dry-run", is_flag=True, help="Print what would be sent; write and contact nothing."
)
@now_option
@click.option("--channel", "channels", multiple=True, help="Only this channel (repeatable).")
@click.option("--session", "session_id", help="Only this session.")
@json_option
def send_cmd(
    dry_run: bool, now_text: str | None, channels: tuple[str, ...], session_id: str | None
) -> None:
    """One pass: send everything due now, then exit."""
    from bot.dispatch import Dispatcher

    app = _app()
    app.sending = not dry_run
    settings = app.settings
    unknown = [c for c in channels if c not in settings.channels]
    if unknown:
        raise UsageError(f"--channel: not in CHANNELS ({', '.join(unknown)})")
    if app.json:
        from bot.notifiers.console import ConsoleNotifier

        ConsoleNotifier.stream = sys.stderr  # keep stdout pure JSON Lines
    if dry_run and not _has_schema(app):
        return
    engine = app.engine(read_only=dry_run)
    if session_id is not None:
        from bot.store.reads import get_session

        if get_session(engine, session_id) is None:
            raise UsageError(f"--session: no session with id {session_id!r}")
    dispatcher = Dispatcher(engine, settings, make_clock(parse_now(now_text)))
    try:
        result = dispatcher.run_pass(
            dry_run=dry_run, channels=channels or None, session_id=session_id
        )
    finally:
        dispatcher.close()
    _print_outcomes(app, result.outcomes, full_text=dry_run)
    if not dry_run and result.outcomes and settings.site_dir is not None:
        from bot.site.rebuild import rebuild_site

        rebuild_site(engine, settings, dispatcher.clock(), "a send pass")
    # A dry run "fails" only where a message would not render or is over its limit.
    sys.exit(
        result.exit_code if not dry_run else int(any(o.status == "failed" for o in result.outcomes))
    )


def _has_schema(app: App) -> bool:
    """Dry runs never create or migrate a database; an absent or empty one has nothing due."""
    from bot.store.db import open_database, sqlite_path

    url = app.settings.database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return False
    try:
        app._engine = open_database(url, read_only=True, migrate=False)
    except SchemaError as exc:
        if exc.found is None:
            return False
        raise
    return True


@command(cli, "run")
def run_cmd() -> None:
    """The long-lived worker: sends each notice at its time until SIGTERM, SIGINT or SIGHUP."""
    from bot.worker import Worker

    app = _app()
    app.sending = True
    engine = app.engine()
    sys.exit(Worker(engine, app.settings).run())


@command(cli, "plan")
@now_option
@click.option("--days", default=30, show_default=True, type=click.IntRange(0, 3660))
@json_option
def plan_cmd(now_text: str | None, days: int) -> None:
    """Every notice of the next N days and the last 7, with its state."""
    from bot.dispatch import iso as _iso
    from bot.rules.planner import HISTORY, plan, recordings_since
    from bot.store.reads import load_window

    app = _app()
    settings = app.settings
    now = make_clock(parse_now(now_text))()
    longest = max((r.offset for r in settings.reminders), default=timedelta(0))
    sessions, rows = load_window(
        app.engine(read_only=True),
        now - HISTORY,
        now + timedelta(days=days) + longest,
        announced_after=now,
        recordings_from=recordings_since(settings, now),
        recording_channels=len(settings.recording_channels),
    )
    notices = [
        n
        for n in plan(sessions, rows, settings, now)
        if now - HISTORY <= n.due_at <= now + timedelta(days=days)
    ]
    for n in notices:
        record: dict[str, Any] = {
            "session": n.key.session_id,
            "notice": n.key.notice,
            "channel": n.key.channel,
            "occurrence": _iso(n.key.occurrence),
            "due_at": _iso(n.due_at),
            "status": n.state,
            "external_id": n.row.external_id if n.row else None,
            "reason": n.reason,
            "text": n.row.text if n.row else None,
        }
        if n.row is not None:
            record["id"] = n.row.id
        line = (
            f"{_zone_time(settings, n.due_at)}  ({_iso(n.due_at)})  {n.key.session_id}  "
            f"{n.key.notice}  {n.key.channel}  {n.state}" + (f"  ({n.reason})" if n.reason else "")
        )
        app.out(record, line)
    if not notices and not app.json:
        click.echo(f"nothing planned in the next {days} days or the last 7")


@command(cli, "preview")
@click.argument("session_id")
@click.option("--notice", "notice_name", help="Only this notice (default: every one planned).")
@click.option("--channel", "channel", help="Only this channel (default: every configured one).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Write the HTML email.")
@now_option
def preview_cmd(
    session_id: str,
    notice_name: str | None,
    channel: str | None,
    html_file: str | None,
    now_text: str | None,
) -> None:
    """Render the messages of one session that are still to go out, exactly as they will."""
    from bot.dispatch import Dispatcher, iso
    from bot.domain import SPECIAL_NOTICES
    from bot.rules.planner import plan
    from bot.store.reads import load_window

    app = _app()
    settings = app.settings
    now = make_clock(parse_now(now_text))()
    engine = app.engine(read_only=True)
    sessions, rows = load_window(engine, None, None, session_id=session_id)
    if not sessions:
        raise UsageError(f"preview: no session with id {session_id!r}")
    if channel is not None and channel not in settings.channels:
        raise UsageError(f"--channel: not in CHANNELS ({channel})")
    known = notice_name is None or notice_name in SPECIAL_NOTICES
    if not known and settings.reminder(str(notice_name)) is None:
        raise UsageError(f"--notice: not in REMINDERS, nor a change notice ({notice_name})")
    dispatcher = Dispatcher(engine, settings, lambda: now)
    planned = plan(sessions, rows, settings, now, channels=[channel] if channel else None)
    shown = 0
    for notice in planned:
        if notice_name is not None and notice.key.notice != notice_name:
            continue
        if notice.action not in ("send", "wait"):
            continue
        message = dispatcher.render(notice, sessions[0], max(now, notice.due_at))
        click.echo(f"=== {notice.key.notice} · {notice.key.channel} (first={notice.first}) ===")
        click.echo(_show_message(message))
        shown += 1
        if html_file and message.html is not None:
            write_atomically(html_file, message.html.encode("utf-8"))
            html_file = None
    if not shown:
        start = sessions[0].starts_at
        longest = max((r.offset for r in settings.reminders), default=timedelta(0))
        hint = (
            f"`bot deliveries --session {session_id}` shows what went out"
            if rows
            else f"to see its messages, try --now {iso(min(start - longest, now))}"
        )
        click.echo(f"preview: nothing left to send for {session_id} at {iso(now)}; {hint}")
