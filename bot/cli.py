"""The command line: the only place that reads the clock and maps errors to exit codes."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.errors import BotError, ProblemsError, SchemaError, UsageError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.config import Settings
    from bot.dispatch import Outcome

F = TypeVar("F", bound=Callable[..., Any])
EXIT_BAD_INPUT = 2


# ---------------------------------------------------------------- shared options and state


class App:
    """Per-invocation state: options, then settings and engine built on first use."""

    def __init__(self) -> None:
        self.env_file: str | None = None
        self.verbose = 0
        self.json = False
        # Set by the commands that send (and `check`): a channel's bad variables are then fatal;
        # the others only warn, so data can be managed before every channel is set up.
        self.sending = False
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        """Validated settings; logging is set up with them."""
        if self._settings is None:
            from bot.config import load_env, load_settings
            from bot.logs import secret_values, setup_logging

            settings = load_settings(load_env(self.env_file))
            level = "DEBUG" if self.verbose else settings.log_level
            setup_logging(level, settings.log_format, secret_values(settings))
            if settings.channel_problems:
                if self.sending:
                    settings.require_channels()
                count = len(settings.channel_problems)
                click.echo(
                    f"warning: {count} problem{'s' if count > 1 else ''} with the channels' "
                    "variables; `bot check` lists them",
                    err=True,
                )
            self._settings = settings
        return self._settings

    def engine(self, *, read_only: bool = False) -> Engine:
        """The database engine, with the schema checked (SQLite is migrated on first use).

        `read_only` commands also work on a SQLite file they may not write.
        """
        if self._engine is None:
            from bot.db import open_database

            self._engine = open_database(self.settings.database_url, read_only=read_only)
        return self._engine

    def out(self, record: dict[str, Any], line: str) -> None:
        """Print one record: a JSON line with --json, else the human line."""
        click.echo(json.dumps(record, default=str) if self.json else line)


def _app() -> App:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = App()
    app = root.obj
    assert isinstance(app, App)
    return app


def _set_env_file(_ctx: click.Context, _p: click.Parameter, value: str | None) -> None:
    if value:
        _app().env_file = value


def _set_verbose(_ctx: click.Context, _p: click.Parameter, value: int) -> None:
    _app().verbose += value


def _set_json(_ctx: click.Context, _p: click.Parameter, value: bool) -> None:
    _app().json = _app().json or value


def common(fn: F) -> F:
    """Options every command accepts, before or after its name."""
    fn = click.option(
        "--env-file",
        type=click.Path(dir_okay=False),
        expose_value=False,
        is_eager=True,
        callback=_set_env_file,
        help="Load variables from this file instead of ./.env.",
    )(fn)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_set_verbose,
        help="Log at DEBUG level.",
    )(fn)


def json_option(fn: F) -> F:
    """`--json`: print JSON Lines, one object per record."""
    return click.option(
        "--json", is_flag=True, expose_value=False, callback=_set_json, help="Print JSON Lines."
    )(fn)


def parse_now(value: str | None) -> datetime | None:
    """`--now` as an aware datetime, or None for the real clock."""
    if value is None:
        return None
    from bot.timefmt import parse_instant

    try:
        moment = parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"ISO 8601 time with an offset or Z needed ({value})", param_hint="'--now'"
        ) from exc
    if not 1970 <= moment.year <= 9000:
        raise click.BadParameter(f"a year between 1970 and 9000 ({value})", param_hint="'--now'")
    return moment


now_option = click.option(
    "--now", "now_text", metavar="TIME", help="Act as if it were TIME (ISO 8601 with offset or Z)."
)


def write_atomically(path: str, data: bytes) -> None:
    """Write a file whole or not at all; a path that cannot be written is a usage error."""
    from pathlib import Path

    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def make_clock(fixed: datetime | None) -> Callable[[], datetime]:
    """The real UTC clock, or a frozen one for --now."""
    if fixed is None:
        return lambda: datetime.now(UTC)
    frozen = fixed.astimezone(UTC)
    return lambda: frozen


def handles_errors(fn: F) -> F:
    """Turn the program's errors into one line per problem on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import DBAPIError

        try:
            return fn(*args, **kwargs)
        except ProblemsError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            sys.exit(EXIT_BAD_INPUT)
        except (UsageError, SchemaError) as exc:
            click.echo(str(exc), err=True)
            sys.exit(EXIT_BAD_INPUT)
        except BotError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except DBAPIError as exc:
            reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            click.echo(f"DATABASE_URL: the database cannot be used ({reason})", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def command(group: click.Group, name: str, **kwargs: Any) -> Callable[[F], F]:
    """A subcommand with the common options and error handling."""

    def decorate(fn: F) -> F:
        return group.command(name, **kwargs)(common(handles_errors(fn)))  # type: ignore[return-value]

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common
def cli() -> None:
    """Announce reading-group sessions by email and on X: on time, exactly once, and right."""


def main() -> None:
    """Console-script entry point: every usage error is one line (no usage block), exit 2."""
    try:
        code = cli.main(prog_name="bot", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "bot"
        click.echo(f"{where}: {exc.format_message()}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# ---------------------------------------------------------------- output helpers


def _zone_time(settings: Settings, value: datetime) -> str:
    local = value.astimezone(settings.reference_zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _print_outcomes(app: App, outcomes: Iterable[Outcome], *, full_text: bool) -> None:
    for outcome in outcomes:
        key = outcome.key
        detail = outcome.reason or (f"id={outcome.external_id}" if outcome.external_id else "")
        line = (
            f"{outcome.status:<10} {key.session_id} {key.notice} {key.channel}"
            f"  due {_zone_time(app.settings, outcome.due_at)}  {detail}".rstrip()
        )
        app.out(outcome.as_json(), line)
        if full_text and not app.json and outcome.message is not None:
            click.echo(_show_message(outcome.message))


def _show_message(message: Any) -> str:
    lines = []
    if message.subject is not None:
        lines.append(f"Subject: {message.subject}")
    lines.append(message.text)
    extras = (["HTML part"] if message.html else []) + [a.filename for a in message.attachments]
    if extras:
        lines.append(f"[+ {', '.join(extras)}]")
    body = "\n".join(lines)
    return "\n".join(f"    {line}" for line in body.splitlines()) + "\n"


# ---------------------------------------------------------------- send / run / plan / preview


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
        from bot.store import get_session

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
    # A dry run "fails" only where a message would not render or is over its limit.
    sys.exit(
        result.exit_code if not dry_run else int(any(o.status == "failed" for o in result.outcomes))
    )


def _has_schema(app: App) -> bool:
    """Dry runs never create or migrate a database; an absent or empty one has nothing due."""
    from bot.db import open_database, sqlite_path

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
    from bot.planner import HISTORY, plan, recordings_since
    from bot.store import load_window

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
    from bot.planner import plan
    from bot.store import load_window

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


# ---------------------------------------------------------------- database, health


@cli.group("db")
@common
def db_group() -> None:
    """Database schema."""


@command(db_group, "upgrade")
def db_upgrade_cmd() -> None:
    """Apply pending migrations."""
    from bot.db import make_engine, upgrade

    engine = make_engine(_app().settings.database_url)
    click.echo(f"database at {upgrade(engine)}")


@command(cli, "health")
@click.option("--max-age", default="2m", show_default=True, help="How fresh a heartbeat must be.")
def health_cmd(max_age: str) -> None:
    """Exit 0 when a worker's heartbeat is fresh, 1 otherwise."""
    from bot.config import parse_duration
    from bot.worker import latest_heartbeat

    try:
        limit = parse_duration(max_age)
    except ValueError as exc:
        raise UsageError(f"--max-age: {exc}") from exc
    beat = latest_heartbeat(_app().engine(read_only=True))
    now = datetime.now(UTC)
    if beat is None:
        click.echo("no worker heartbeat found")
        sys.exit(1)
    age = now - beat
    fresh = age <= limit
    click.echo(f"{'ok' if fresh else 'stale'}: last heartbeat {int(age.total_seconds())}s ago")
    sys.exit(0 if fresh else 1)


from bot import cli_manage  # noqa: E402  (registers `sessions` and `deliveries`)

cli_manage.register(cli)
