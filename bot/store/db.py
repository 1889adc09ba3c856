"""Engine set-up, transactions, and schema migration on first use."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from bot.errors import ConfigError, DatabaseGoneError, SchemaError

# The newest migration in bot/migrations/versions. A test checks it against Alembic's own head,
# so that a cron `bot send` can compare versions without importing Alembic.
SCHEMA_HEAD = "0006_recordings"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine: Engine | Connection) -> bool:
    """True when the engine or connection talks to SQLite."""
    return engine.dialect.name == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other engines and in-memory databases)."""
    if not url.startswith("sqlite"):
        return None
    _, _, rest = url.partition(":///")
    path = rest.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _writable(path: Path) -> bool:
    folder = path.parent if str(path.parent) else Path(".")
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def open_database(url: str, *, read_only: bool = False, migrate: bool = True) -> Engine:
    """The engine a command works with, its schema checked (SQLite is migrated on first use,
    unless `migrate` is False: then a schema that is not current raises SchemaError).

    `read_only` commands also work on a SQLite file this process may not write (opened
    read-only, never migrated). Every problem with DATABASE_URL itself is a ConfigError.
    """
    path = sqlite_path(url)
    if path is None:
        engine = make_engine(url)
        ensure_schema(engine, migrate=False if not migrate else None)
        return engine
    if not _writable(path):
        if not path.exists():
            raise ConfigError([f"DATABASE_URL: cannot create {path}: its folder cannot be written"])
        if not read_only:
            raise ConfigError(
                [f"DATABASE_URL: {path} cannot be written, and this command changes it"]
            )
        wal_open = Path(f"{path}-shm").exists()  # a writer has it open: read its WAL too
        mode = "mode=ro" if wal_open else "mode=ro&immutable=1"
        engine = _sqlite_engine(f"sqlite:///file:{path.resolve()}?{mode}&uri=true", True)
        _checked(path, lambda: ensure_schema(engine, migrate=False))
        return engine
    engine = make_engine(url)
    _checked(path, lambda: ensure_schema(engine, migrate=None if migrate else False))
    return engine


def _checked(path: Path, action: Callable[[], None]) -> None:
    """Run `action`; a file that is not a SQLite database is a configuration problem."""
    from sqlalchemy.exc import DatabaseError

    try:
        action()
    except DatabaseError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
        if "not a database" in reason or "malformed" in reason or "unable to open" in reason:
            problem = f"DATABASE_URL: {path} cannot be used as a database ({reason})"
            raise ConfigError([problem]) from exc
        raise


def file_guard(url: str) -> Callable[[], None]:
    """A check that the SQLite file of `url` is still the one there now (a no-op elsewhere).

    A process keeps writing to a database file that was deleted or replaced under it, where
    nobody else sees it; the check raises DatabaseGoneError instead.
    """
    path = sqlite_path(url)
    if path is None:
        return lambda: None

    def identity() -> tuple[int, int] | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    started = identity()

    def check() -> None:
        now = identity()
        if now is None or now != started:
            what = "deleted" if now is None else "replaced"
            raise DatabaseGoneError(
                [f"DATABASE_URL: the SQLite file {path} was {what} while this process used it"]
            )

    return check


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and explicit BEGIN control."""
    try:
        if url.startswith("sqlite"):
            return _sqlite_engine(url)
        return create_engine(url, pool_pre_ping=True, connect_args=_pg_connect_args(url))
    except Exception as exc:  # a bad URL or a missing driver: a configuration problem
        raise ConfigError([f"DATABASE_URL: cannot use this URL ({type(exc).__name__})"]) from exc


def _pg_connect_args(url: str) -> dict[str, Any]:
    return {"connect_timeout": 10} if "psycopg" in url or url.startswith("postgresql:") else {}


def _sqlite_engine(url: str, read_only: bool = False) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite would otherwise defer it).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not read_only:  # (a read-only file keeps the journal mode its writer set)
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A short write transaction; `BEGIN IMMEDIATE` on SQLite, so writers queue, not fail."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def current_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database, or None for an empty database."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if "alembic_version" in str(exc) or "no such table" in str(exc):
            return None
        raise


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = conn
    return config


def upgrade(engine: Engine) -> str:
    """Apply every pending migration under a lock, so concurrent first uses do not collide."""
    from alembic import command

    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if not is_sqlite(conn):
                conn.execute(text("SELECT pg_advisory_xact_lock(7426001)"))
            command.upgrade(_alembic_config(conn), "head")
    return SCHEMA_HEAD


def ensure_schema(engine: Engine, *, migrate: bool | None = None) -> None:
    """Migrate SQLite on first use; elsewhere require `bot db upgrade` to have been run."""
    revision = current_revision(engine)
    if revision == SCHEMA_HEAD:
        return
    if migrate is None:
        migrate = is_sqlite(engine)
    if not migrate:
        found = revision or "empty database"
        error = SchemaError(
            f"DATABASE_URL: schema is at {found}, this program needs {SCHEMA_HEAD}; "
            "run `bot db upgrade`"
        )
        error.found = revision
        raise error
    upgrade(engine)
