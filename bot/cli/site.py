"""The group's website: `site build`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from bot.cli.common import _app, cli, command, common, now_option, parse_now
from bot.errors import UsageError


@cli.group("site")
@common
def site_group() -> None:
    """The group's static website, built from the sessions in the database."""


@command(site_group, "build")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="Write the site to this folder (default: SITE_DIR).",
)
@now_option
def build_cmd(output: str | None, now_text: str | None) -> None:
    """Write the website to a folder, swapped in at once (the same data gives the same files)."""
    from bot.site.rebuild import build_into

    app = _app()
    target = Path(output) if output else app.settings.site_dir
    if target is None:
        raise UsageError("site build: give -o DIR, or set SITE_DIR")
    now = parse_now(now_text) or datetime.now(UTC)
    try:
        built = build_into(app.engine(read_only=True), app.settings, now, target)
    except OSError as exc:
        raise UsageError(f"{target}: cannot write the site ({exc.strerror or exc})") from exc
    click.echo(f"{built.target}: {built.sessions} sessions, {built.files} files")
