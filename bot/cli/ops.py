"""Operating the database and the worker: `db upgrade`, `health`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from bot.cli.common import _app, cli, command, common
from bot.errors import UsageError


@cli.group("db")
@common
def db_group() -> None:
    """Database schema."""


@command(db_group, "upgrade")
def db_upgrade_cmd() -> None:
    """Apply pending migrations."""
    from bot.store.db import make_engine, upgrade

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
