"""What every command shares: the root group, per-invocation state, options, error mapping."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
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
        # May be a function of the settings: `recordings sync` sends only when it would apply.
        self.sending: bool | Callable[[Settings], bool] = False
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
                if self.sending(settings) if callable(self.sending) else self.sending:
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
            from bot.store.db import open_database

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
    from bot.render.timefmt import parse_instant

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
