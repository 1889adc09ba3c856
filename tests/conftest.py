"""Shared fixtures: real databases (a SQLite file, and PostgreSQL when reachable)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from bot.store.db import ensure_schema, make_engine, upgrade

pytest_plugins = [
    "tests.support.smtp",
    "tests.support.xapi",
    "tests.support.cligroup",
    "tests.support.browser",
]

PG_ADMIN_URL = os.environ.get(
    "BOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("BOT_REQUIRE_POSTGRES") == "1"


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at BOT_TEST_POSTGRES_URL ({type(exc).__name__})"


_PG_PROBLEM = _pg_reachable()


def _fresh_pg_database() -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards."""
    if _PG_PROBLEM is not None:
        if REQUIRE_PG:
            pytest.fail(_PG_PROBLEM)
        pytest.skip(_PG_PROBLEM)
    name = f"bot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    """A URL for a new SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path}/bot.db"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL for a new, empty PostgreSQL database (skipped when PostgreSQL is unreachable)."""
    yield from _fresh_pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """Each test using this runs on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/bot.db"
    else:
        yield from _fresh_pg_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on db_url."""
    eng = make_engine(db_url)
    if db_url.startswith("sqlite"):
        ensure_schema(eng)
    else:
        upgrade(eng)
    yield eng
    eng.dispose()
