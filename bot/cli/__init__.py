"""The command line: the only place that reads the clock and maps errors to exit codes.

`common` holds the root group and what every command shares; each other module registers its
commands on import: `passes` (send, run, plan, preview), `data` (sessions, ics), `ledger`
(deliveries, check), `ops` (db, health), `site` (site build), `recordings` (recordings …).
"""

from __future__ import annotations

import sys

import click

from bot.cli import data, ledger, ops, passes, recordings, site
from bot.cli.common import EXIT_BAD_INPUT, cli

__all__ = ["cli", "data", "ledger", "main", "ops", "passes", "recordings", "site"]


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
