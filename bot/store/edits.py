"""`sessions set` and `sessions cancel`: edits validated exactly as an import is, then upserted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import Connection, Engine

from bot.domain import SessionData
from bot.errors import DataError, UsageError
from bot.sources.sessions_file import export_sessions, parse_sessions
from bot.store.imports import ImportReport, edit_transaction, plan_import, write_import
from bot.store.reads import load_sessions

EDITABLE = (
    "title",
    "starts_at",
    "timezone",
    "duration",
    "abstract",
    "meeting_url",
    "recording_url",
    "status",
)


def _assignments(pairs: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    problems, found = [], []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep:
            problems.append(f"{pair}: expected FIELD=VALUE")
        elif name not in EDITABLE:
            problems.append(f"{name}: not a field `set` can change ({', '.join(EDITABLE)})")
        else:
            found.append((name, value))
    if not found and not problems:
        raise UsageError("sessions set: give at least one FIELD=VALUE")
    return found, problems


def _apply(raw: dict[str, Any], assignments: list[tuple[str, str]]) -> None:
    names = {name for name, _ in assignments}
    for name, value in assignments:
        if value.strip() == "":
            raw.pop(name, None)  # `recording_url=` clears it
            continue
        raw[name] = value  # a string: parse_sessions reads times and durations from text
        if name == "starts_at" and "timezone" not in names and _has_offset(value):
            raw.pop("timezone", None)  # an explicit offset replaces the local-time form


def _has_offset(value: str) -> bool:
    text = value.strip()
    return text.endswith(("Z", "z")) or (len(text) > 19 and text[-6] in "+-")


def edit_session(
    engine: Engine,
    session_id: str,
    pairs: Sequence[str],
    now: datetime,
    source: str = "set",
    *,
    check: Callable[[SessionData], None] | None = None,
    also: Callable[[Connection], None] | None = None,
) -> ImportReport:
    """Change fields of one session; DataError names each bad field and value, writes nothing.

    The session is read, validated and written inside one write transaction holding its row,
    so two edits of different fields at once both stick. `check` sees the session as it is in
    that transaction and may raise to refuse the edit; `also` writes more in the same
    transaction (a recording match applied with the URL it gave).
    """
    found, problems = _assignments(pairs)
    with edit_transaction(engine, session_id) as conn:
        current = load_sessions(conn, session_id=session_id)
        if not current:
            raise UsageError(f"sessions {source}: no session with id {session_id!r}")
        if check is not None:
            check(current[0])
        doc = yaml.safe_load(export_sessions(current))
        raw = doc["sessions"][0]
        if raw.get("timezone") and isinstance(raw.get("starts_at"), datetime):
            raw["starts_at"] = raw["starts_at"].strftime("%Y-%m-%d %H:%M")
        _apply(raw, found)
        label = f"sessions {source} {session_id}"
        try:
            (edited,) = parse_sessions(yaml.safe_dump(doc, allow_unicode=True), label)
        except DataError as exc:
            prefix = f"{label}: sessions[0]."
            problems.extend(p.replace(prefix, "", 1) for p in exc.problems)
        if problems:
            raise DataError(problems)
        existing = {current[0].id: current[0]}
        report, writes = plan_import(conn, existing, [edited], now, False, ImportReport(), source)
        write_import(conn, writes, now)
        if also is not None:
            also(conn)
    return report
