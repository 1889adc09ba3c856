"""The delivery ledger and what needs an operator: `deliveries [retry|resolve]`, `check`."""

from __future__ import annotations

import sys
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


def _list_deliveries(app: Any, status: str | None, session_id: str | None) -> None:
    from sqlalchemy import select

    from bot.dispatch import Outcome
    from bot.store.ledger import COLUMNS, TABLE, row_to_ledger

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
