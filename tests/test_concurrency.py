"""SPEC §6 rule 4 ("Once"): many processes share one database and each delivery goes out once.

Real `python -m bot` processes, all started before any is waited on, race for the same 500 due
deliveries against one X API stand-in (a real loopback HTTP server), on a SQLite file and on a
fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from bot.store.db import make_engine, upgrade
from bot.store.models import Delivery
from tests.support.data import add_sessions
from tests.support.xapi import XStandIn

pytestmark = pytest.mark.slow

SESSIONS = 500
SEND_PROCESSES = 8
PROCESS_TIMEOUT = 120  # seconds; a hang is a failure, not a wait
DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)
TITLE = re.compile(r"Concurrency check (\d{3}): diffusion decoding")
X_KEYS = {
    "X_API_KEY": "ck-dummy",
    "X_API_KEY_SECRET": "cs-dummy",
    "X_ACCESS_TOKEN": "at-dummy",
    "X_ACCESS_TOKEN_SECRET": "as-dummy",
}


def title(index: int) -> str:
    return f"Concurrency check {index:03d}: diffusion decoding"


def session_id(index: int) -> str:
    return f"conc-{index:03d}"


def index_in(text: str | None) -> int:
    """The session number whose title a post carries."""
    match = TITLE.search(text or "")
    assert match is not None, f"no session title in {text!r}"
    return int(match.group(1))


def bulk_sessions(url: str, starts_at: datetime) -> None:
    """Migrate, then insert SESSIONS sessions all starting at `starts_at`, in one transaction."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        starts = {session_id(i): starts_at for i in range(SESSIONS)}
        add_sessions(engine, starts, starts_at - 30 * DAY, lambda sid: title(int(sid[-3:])))
    finally:
        engine.dispose()


def bot_env(db_url: str, x: XStandIn, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "X_"))}
    env.update(
        DATABASE_URL=db_url,
        CHANNELS="x",
        REMINDERS="announce=7d",
        X_API_BASE_URL=x.base_url,
        X_TIMEOUT="30",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        **X_KEYS,
        **extra,
    )
    return env


@dataclass
class Proc:
    """A started `python -m bot …` process whose output goes to files."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def wait(self, timeout: float = PROCESS_TIMEOUT) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"{self.name} did not finish within {timeout}s\n{self.err()}")

    def out(self) -> str:
        return self.stdout.read_text(encoding="utf-8")

    def err(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")[-3000:]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out().splitlines() if line.strip()]


def start(name: str, args: list[str], env: Mapping[str, str], folder: Path) -> Proc:
    """Launch `python -m bot ARGS` in `folder` (no stray .env), output to files there."""
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
    return Proc(name, popen, out, err)


@pytest.fixture
def x(x_server: XStandIn) -> XStandIn:
    """One X stand-in (rejecting duplicates, as X does) shared by every process."""
    return x_server


@pytest.fixture
def ledger_engine(db_url: str) -> Iterator[Engine]:
    """A second engine for the test's own reads (the processes use their own)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def status_counts(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return Counter({status: count for status, count in rows})


def assert_clean_logs(procs: list[Proc]) -> None:
    """No crash, and no sign of two processes fighting over one delivery (LOG_LEVEL=WARNING)."""
    for proc in procs:
        text = proc.err()
        for marker in ("Traceback", "claim lost", "outcome not recorded", "database"):
            assert marker not in text, f"{proc.name}: {text}"


def assert_each_sent_once(engine: Engine, x: XStandIn) -> None:
    """500 posts, one per session, and a ledger of 500 `sent` rows naming those very posts."""
    posts = x.posts
    assert len(posts) == SESSIONS, f"{len(posts)} posts for {SESSIONS} deliveries"
    assert len(x.received) == SESSIONS, "a post was attempted more than once"
    per_session = Counter(index_in(p.text) for p in posts)
    assert sorted(per_session) == list(range(SESSIONS))
    assert set(per_session.values()) == {1}
    assert len({p.text for p in posts}) == SESSIONS
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery).order_by(Delivery.id)).all()
    assert len(rows) == SESSIONS
    assert Counter(r.status for r in rows) == Counter({"sent": SESSIONS})
    assert {r.session_id for r in rows} == {session_id(i) for i in range(SESSIONS)}
    assert {(r.notice, r.channel) for r in rows} == {("announce", "x")}
    assert all(r.attempts == 1 and r.token is None for r in rows)
    by_post_id = {p.post_id: p for p in posts}
    assert len(by_post_id) == SESSIONS
    ids = [r.external_id for r in rows]
    assert len(set(ids)) == SESSIONS
    assert set(ids) == set(by_post_id)
    for row in rows:
        post = by_post_id[row.external_id]
        assert post.text == row.text
        assert session_id(index_in(post.text)) == row.session_id


def test_eight_send_processes_send_each_delivery_once(
    db_url: str, ledger_engine: Engine, x: XStandIn, tmp_path: Path
) -> None:
    starts_at = datetime(2030, 3, 18, 14, 0, tzinfo=UTC)
    now = starts_at - 6 * DAY  # announce (7d) is due and unsent, the start is ahead
    bulk_sessions(db_url, starts_at)
    env = bot_env(db_url, x)
    args = ["send", "--now", now.strftime("%Y-%m-%dT%H:%M:%SZ"), "--json"]

    began = time.monotonic()
    procs = [start(f"send{n}", args, env, tmp_path) for n in range(SEND_PROCESSES)]
    codes = [p.wait() for p in procs]
    elapsed = time.monotonic() - began
    print(f"\n{SEND_PROCESSES} send processes, {SESSIONS} deliveries: {elapsed:.1f}s")

    assert codes == [0] * SEND_PROCESSES, "\n".join(p.err() for p in procs)
    assert_clean_logs(procs)
    per_process = [len(p.records()) for p in procs]
    print(f"deliveries handled per process: {per_process}")
    assert sum(1 for n in per_process if n) >= 2, "the processes did not actually compete"
    records = [r for p in procs for r in p.records()]
    sent = [r for r in records if r["status"] == "sent"]
    assert len(sent) == SESSIONS
    assert Counter(r["status"] for r in records) == Counter({"sent": SESSIONS})
    assert len({r["session"] for r in sent}) == SESSIONS
    assert {r["external_id"] for r in sent} == {p.post_id for p in x.posts}
    assert_each_sent_once(ledger_engine, x)
    assert not status_counts(ledger_engine).keys() & {"claimed", "sending", "pending"}

    # One more pass finds nothing left to do.
    again = start("again", args, env, tmp_path)
    assert again.wait() == 0, again.err()
    assert again.records() == []
    assert len(x.received) == SESSIONS


def test_send_passes_and_workers_together_send_each_delivery_once(
    db_url: str, ledger_engine: Engine, x: XStandIn, tmp_path: Path
) -> None:
    # `bot run` has no --now: the deliveries are due by the real clock (announce 7d, start in 6d).
    real_now = datetime.now(UTC).replace(microsecond=0)
    starts_at = real_now + 6 * DAY
    bulk_sessions(db_url, starts_at)
    env = bot_env(db_url, x, POLL_INTERVAL="1s")
    args = ["send", "--now", real_now.strftime("%Y-%m-%dT%H:%M:%SZ"), "--json"]

    began = time.monotonic()
    workers = [start(f"run{n}", ["run"], env, tmp_path) for n in range(2)]
    senders = [start(f"send{n}", args, env, tmp_path) for n in range(3)]
    try:
        codes = [p.wait() for p in senders]
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while status_counts(ledger_engine).get("sent", 0) < SESSIONS:
            assert all(w.popen.poll() is None for w in workers), [w.err() for w in workers]
            assert time.monotonic() < deadline, status_counts(ledger_engine)
            time.sleep(0.2)
    finally:
        for worker in workers:
            if worker.popen.poll() is None:
                worker.popen.send_signal(signal.SIGTERM)
    worker_codes = [w.wait(timeout=30) for w in workers]
    elapsed = time.monotonic() - began
    records = [r for p in senders for r in p.records()]
    print(
        f"\n3 send processes + 2 workers, {SESSIONS} deliveries: {elapsed:.1f}s "
        f"({len(records)} sent by the send passes)"
    )

    assert codes == [0, 0, 0], "\n".join(p.err() for p in senders)
    assert worker_codes == [0, 0], "\n".join(w.err() for w in workers)
    assert_clean_logs(senders + workers)
    assert {r["status"] for r in records} <= {"sent"}
    assert_each_sent_once(ledger_engine, x)
    assert not status_counts(ledger_engine).keys() & {"claimed", "sending", "pending"}
