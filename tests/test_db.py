"""Schema and migrations on real SQLite files and real PostgreSQL databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from bot.errors import ConfigError, SchemaError
from bot.store.db import (
    SCHEMA_HEAD,
    _alembic_config,
    current_revision,
    ensure_schema,
    make_engine,
    sqlite_path,
    upgrade,
)
from bot.store.tables import metadata


def test_schema_head_constant_is_alembics_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/h.db")
    with engine.connect() as conn:
        script = ScriptDirectory.from_config(_alembic_config(conn))
    assert script.get_current_head() == SCHEMA_HEAD


def test_migrations_build_exactly_the_models_schema(engine: Engine) -> None:
    assert current_revision(engine) == SCHEMA_HEAD
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_postgres_is_not_migrated_behind_the_operators_back(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with pytest.raises(SchemaError, match="bot db upgrade"):
        ensure_schema(engine)
    assert current_revision(engine) is None
    upgrade(engine)
    ensure_schema(engine)  # now fine
    assert current_revision(engine) == SCHEMA_HEAD


def test_postgres_without_upgrade_is_exit_2_naming_the_fix(pg_url: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DATABASE_URL": pg_url}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "send"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "run `bot db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr
    upgraded = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert current_revision(make_engine(pg_url)) == SCHEMA_HEAD


def test_first_use_by_many_processes_at_once_migrates_once(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "send", "--now", "2026-12-01T00:00Z"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, results
    assert current_revision(make_engine(env["DATABASE_URL"])) == SCHEMA_HEAD


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///bot.db", Path("bot.db")),
        ("sqlite:////srv/bot/bot.db", Path("/srv/bot/bot.db")),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://u@h/db", None),
    ],
)
def test_sqlite_path(url: str, path: Path | None) -> None:
    assert sqlite_path(url) == path


def test_a_missing_driver_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        make_engine("postgresql+nosuchdriver://u@h/db")


def test_upgrading_a_0001_database_keeps_its_data(db_url: str) -> None:
    from datetime import UTC, datetime

    from alembic import command

    engine = make_engine(db_url)
    with engine.connect() as conn, conn.begin():
        command.upgrade(_alembic_config(conn), "0001_initial")
    stamp = datetime(2026, 11, 1, 12, 0)
    with engine.connect() as conn, conn.begin():
        conn.execute(
            text(
                "INSERT INTO sessions (id, title, starts_at, duration_minutes, abstract, status, "
                "sequence, occurrence_since, created_at, updated_at, recording_url) VALUES "
                "('old', 'Old talk', :t, 60, '', 'scheduled', 0, :t, :t, :t, 'https://y.example/v')"
            ),
            {"t": stamp},
        )
    assert current_revision(engine) == "0001_initial"
    ensure_schema(engine, migrate=True)
    assert current_revision(engine) == SCHEMA_HEAD
    from bot.store.reads import get_session

    session = get_session(engine, "old")
    assert session is not None
    assert session.status_since == stamp.replace(tzinfo=UTC)
    assert session.recording_since == stamp.replace(tzinfo=UTC)


def test_upgrading_a_0002_ledger_numbers_what_each_channel_was_told(db_url: str) -> None:
    from datetime import datetime

    from alembic import command
    from sqlalchemy import select

    from bot.store import tables

    engine = make_engine(db_url)
    with engine.connect() as conn, conn.begin():
        command.upgrade(_alembic_config(conn), "0002_change_history")
    t = datetime(2026, 11, 1, 12, 0)
    with engine.connect() as conn, conn.begin():
        conn.execute(
            text(
                "INSERT INTO sessions (id, title, starts_at, duration_minutes, abstract, status, "
                "sequence, occurrence_since, created_at, updated_at) VALUES "
                "('old', 'Old talk', :t, 60, '', 'scheduled', 0, :t, :t, :t)"
            ),
            {"t": t},
        )
        insert = text(
            "INSERT INTO deliveries (session_id, notice, channel, occurrence, due_at, deadline, "
            "status, attempts, first, was_uncertain, created_at, updated_at, sent_at) VALUES "
            "('old', :notice, 'x', :t, :t, :t, :status, 1, false, false, :t, :t, :sent)"
        )
        for notice, status, minute in (
            ("reminder", "sent", 30),
            ("announce", "sent", 10),
            ("starting", "failed", None),
            ("rescheduled", "uncertain", None),
        ):
            sent = t.replace(minute=minute) if minute is not None else None
            conn.execute(insert, {"notice": notice, "status": status, "t": t, "sent": sent})
    ensure_schema(engine, migrate=True)
    d = tables.deliveries.c
    with engine.connect() as conn:
        marks = dict(conn.execute(select(d.notice, d.mark)).all())
        changes = set(conn.scalars(select(d.change)))
        counted = conn.scalar(select(tables.sessions.c.marks))
    # Told in the order known before marks (when sent, else when last updated); failed: untold.
    assert marks == {"rescheduled": 1, "announce": 2, "reminder": 3, "starting": None}
    assert changes == {0} and counted == 3
