"""Shared helpers for the reliability suite: real `python -m bot` processes, real databases.

Every process gets a minimal environment (PATH and HOME, plus what the test gives) and runs in a
folder of its own, so neither the developer's variables nor a stray `.env` can leak in. Nothing
here sleeps and hopes: `wait_for` polls an observable condition until a deadline.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, Row, func, select

from bot.store.db import make_engine, upgrade
from bot.store.tables import deliveries, heartbeats
from tests.support.cli import base_env
from tests.support.data import add_sessions as insert_sessions
from tests.support.xapi import XStandIn

DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
X_KEYS = {
    "X_API_KEY": "ck-dummy",
    "X_API_KEY_SECRET": "cs-dummy",
    "X_ACCESS_TOKEN": "at-dummy",
    "X_ACCESS_TOKEN_SECRET": "as-dummy",
}
TITLE_RE = re.compile(r"Reliability check ([a-z]+-\d{3}): masked diffusion")
T = TypeVar("T")


def iso_ms(value: datetime) -> str:
    """`2026-12-20T15:00:00.250Z`: `--now` to the millisecond (real-clock moments are not
    whole seconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def title_of(session_id: str) -> str:
    """A title that names its session, so each post tells which delivery it is."""
    return f"Reliability check {session_id}: masked diffusion"


def session_in(text: str | None) -> str:
    """The session id a post's text names."""
    match = TITLE_RE.search(text or "")
    assert match is not None, f"no session title in {text!r}"
    return match.group(1)


def wait_for(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    also: Callable[[], None] | None = None,
) -> T:
    """Poll `condition` until it is truthy (and return it); fail naming `what` at the deadline.

    `also` runs at every poll (e.g. checks that the workers are still alive) and may fail first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if also is not None:
            also()
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- databases


def migrated(url: str) -> Engine:
    """The test's own engine on a migrated database (the processes use their own engines)."""
    engine = make_engine(url)
    upgrade(engine)
    return engine


def one_session_db(url: str, sid: str, start: datetime) -> Iterator[Engine]:
    """A migrated database holding one session, known for a month before its announce was due."""
    engine = migrated(url)
    add_sessions(engine, {sid: start}, start - timedelta(days=37))
    yield engine
    engine.dispose()


def add_sessions(engine: Engine, starts: Mapping[str, datetime], since: datetime) -> None:
    """Insert sessions (id → start), each in the database since `since`, in one transaction."""
    insert_sessions(engine, starts, since, title_of)


def ledger(engine: Engine) -> list[Row[Any]]:
    """Every delivery row, in id order."""
    with engine.connect() as conn:
        return list(conn.execute(select(deliveries).order_by(deliveries.c.id)))


def status_counts(engine: Engine) -> Counter[str]:
    """How many deliveries are in each state."""
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))
        return Counter({status: count for status, count in rows})


def latest_beat(engine: Engine) -> datetime | None:
    """The newest worker heartbeat, aware UTC."""
    with engine.connect() as conn:
        value = conn.execute(select(func.max(heartbeats.c.beat_at))).scalar()
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- processes


def bot_env(db_url: str, x: XStandIn | str, **extra: str) -> dict[str, str]:
    """The environment of a bot process posting to X (`x`: a stand-in or a base URL)."""
    return base_env() | {
        "DATABASE_URL": db_url,
        "CHANNELS": "x",
        "REMINDERS": "announce=7d",
        "X_API_BASE_URL": x if isinstance(x, str) else x.base_url,
        "X_TIMEOUT": "30",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **X_KEYS,
        **extra,
    }


@dataclass
class Proc:
    """A started `python -m bot …` process whose output goes to files."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    env: dict[str, str]

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"{self.name} did not finish within {timeout}s\n{self.err()}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (the graceful stop) and wait for the exit status."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL by pid and reap it."""
        if self.alive:
            self.popen.kill()
        self.popen.wait()

    def out(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def err(self, tail: int = 4000) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")[-tail:]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out().splitlines() if line.strip()]


def start(name: str, args: Iterable[str], env: Mapping[str, str], folder: Path) -> Proc:
    """Launch `python -m bot ARGS` in `folder`, stdout and stderr to `folder/NAME.out|.err`."""
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=folder,
            env=dict(env),
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    return Proc(name, popen, out, err, dict(env))


def run(args: Iterable[str], env: Mapping[str, str], folder: Path, timeout: float = 60) -> Proc:
    """Run `python -m bot ARGS` to its end (the exit status is in `.popen.returncode`)."""
    name = f"run-{time.monotonic_ns()}"
    proc = start(name, args, env, folder)
    proc.wait(timeout)
    return proc


def stop_all(procs: Iterable[Proc]) -> None:
    """Kill whatever is still running (test teardown)."""
    for proc in procs:
        if proc.alive:
            proc.kill()


# ---------------------------------------------------------------- the X stand-in and the ledger


def assert_no_traceback(procs: Iterable[Proc]) -> None:
    for proc in procs:
        text = proc.err(tail=100_000)
        assert "Traceback" not in text, f"{proc.name}:\n{text[-4000:]}"


def assert_ledger_matches_posts(engine: Engine, x: XStandIn, expected: set[str]) -> list[Row[Any]]:
    """Each of `expected` sessions was posted exactly once, and its one row is `sent` naming it.

    The stand-in must publish duplicates (`reject_duplicates=False`), so a second post of the
    same delivery would show up here instead of being refused with 403.
    """
    posts = x.posts
    per_session = Counter(session_in(p.text) for p in posts)
    twice = {sid: n for sid, n in per_session.items() if n > 1}
    assert not twice, f"posted more than once: {twice}"
    attempts = Counter(session_in(r.text) for r in x.received)
    assert set(attempts.values()) <= {1}, f"attempted more than once: {attempts}"
    assert set(per_session) == expected, sorted(set(per_session) ^ expected)
    rows = ledger(engine)
    assert len(rows) == len(expected)
    assert Counter(r.status for r in rows) == Counter({"sent": len(expected)})
    by_id = {p.post_id: p for p in posts}
    for row in rows:
        post = by_id.get(row.external_id)
        assert post is not None, f"{row.session_id} is `sent` as {row.external_id}, never posted"
        assert post.text == row.text
        assert session_in(post.text) == row.session_id
    return rows


def send(
    env: Mapping[str, str], folder: Path, now: datetime, *args: str, code: int = 0
) -> list[dict[str, Any]]:
    """`bot send --now NOW --json ARGS` to its end: its records, after checking the exit status."""
    proc = run(["send", "--now", iso_ms(now), "--json", *args], env, folder)
    assert proc.popen.returncode == code, (proc.popen.returncode, proc.out(), proc.err())
    assert "Traceback" not in proc.err(tail=100_000), proc.err()
    return proc.records()


def only_row(engine: Engine) -> Row[Any]:
    """The one delivery row."""
    rows = ledger(engine)
    assert len(rows) == 1, [(r.session_id, r.notice, r.channel, r.status) for r in rows]
    return rows[0]


def base_env_email(db_url: str, **extra: str) -> dict[str, str]:
    """The environment of a bot process sending email (add the SMTP stand-in's `env()`)."""
    return base_env() | {
        "DATABASE_URL": db_url,
        "CHANNELS": "email",
        "REMINDERS": "announce=7d",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
