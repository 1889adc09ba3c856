"""Replicas: three `bot run` workers and a stream of overlapping `bot send` passes share one
database for REPLICA_SECONDS (60 s, as the issue names), with deliveries falling due throughout.

Every process uses the real clock (no --now): a new `bot send` starts every SEND_EVERY seconds
whether or not the previous one has finished (two at once every PAIR_EVERY starts; at most
MAX_SENDS_AT_ONCE running), while the workers wake at each due time and poll every second.
Every due delivery is posted exactly once (the X stand-in publishes duplicates, so a second post
would show) and every row ends `sent`. Runs on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.reliability.support import (
    HOUR,
    Proc,
    add_sessions,
    assert_ledger_matches_posts,
    assert_no_traceback,
    bot_env,
    migrated,
    start,
    status_counts,
    stop_all,
    wait_for,
)
from tests.support.xapi import XStandIn

pytestmark = pytest.mark.slow

# How long the replicas run together: the 60 s (BOT_TEST_REPLICA_SECONDS overrides it,
# e.g. for a quicker local run; the 120 deliveries are spread over whatever it is).
REPLICA_SECONDS = float(os.environ.get("BOT_TEST_REPLICA_SECONDS", "60"))
SESSIONS = 120  # their announce due times spread over REPLICA_SECONDS
WORKERS = 3
SEND_EVERY = 0.5  # seconds between two `bot send` starts
# A start is skipped while this many passes still run: on a loaded 2-core machine an unbounded
# stream piles up (each pass costs about 0.3 s of CPU) until nothing finishes in time.
MAX_SENDS_AT_ONCE = 4
PAIR_EVERY = 10
FIRST_DUE_IN = 2.0
SETTLE_TIMEOUT = 30.0


def sid(index: int) -> str:
    return f"repl-{index:03d}"


@pytest.fixture
def x() -> Iterator[XStandIn]:
    with XStandIn(reject_duplicates=False) as server:
        yield server


@pytest.fixture
def ledger_engine(db_url: str) -> Iterator[Engine]:
    engine = migrated(db_url)
    yield engine
    engine.dispose()


class Senders:
    """The `bot send` processes started so far, and how many ran at once (at most)."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.most_at_once = 0
        self.skipped = 0  # starts left out because MAX_SENDS_AT_ONCE were running
        self.stop = threading.Event()  # the test failed: start no more


def send_loop(env: dict[str, str], folder: Path, until: float, senders: Senders) -> None:
    """Start a `bot send` every SEND_EVERY seconds until `until` (monotonic), not waiting for
    the previous ones to finish (but never more than MAX_SENDS_AT_ONCE at a time)."""
    n = 0
    next_at = time.monotonic()
    while next_at < until and not senders.stop.is_set():
        # Every PAIR_EVERY-th start is two at once, so that passes overlap even on a machine
        # fast enough to finish each one within SEND_EVERY.
        for _ in range(2 if n % PAIR_EVERY == 0 else 1):
            running = sum(p.alive for p in senders.procs)
            if running < MAX_SENDS_AT_ONCE:
                senders.procs.append(start(f"send{n:03d}", ["send", "--json"], env, folder))
                senders.most_at_once = max(senders.most_at_once, running + 1)
            else:
                senders.skipped += 1
            n += 1
        next_at += SEND_EVERY
        senders.stop.wait(max(0.0, next_at - time.monotonic()))


def test_workers_and_overlapping_send_passes_post_each_delivery_once(
    db_url: str, ledger_engine: Engine, x: XStandIn, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    first_due = now + timedelta(seconds=FIRST_DUE_IN)
    step = (REPLICA_SECONDS - FIRST_DUE_IN - 1) / (SESSIONS - 1)
    dues = {sid(i): first_due + timedelta(seconds=i * step) for i in range(SESSIONS)}
    add_sessions(ledger_engine, {s: due + timedelta(days=7) for s, due in dues.items()}, now - HOUR)
    expected = set(dues)

    env = bot_env(db_url, x, POLL_INTERVAL="1s")
    folder = tmp_path / "procs"
    senders = Senders()
    began = time.monotonic()
    workers = [start(f"run{n}", ["run"], env, folder) for n in range(WORKERS)]
    loop = threading.Thread(target=send_loop, args=(env, folder, began + REPLICA_SECONDS, senders))
    try:
        loop.start()

        def workers_alive() -> None:
            dead = [w for w in workers if not w.alive]
            assert not dead, [(w.name, w.popen.returncode, w.err()) for w in dead]

        def all_sent() -> bool:
            return status_counts(ledger_engine).get("sent", 0) >= SESSIONS

        while loop.is_alive():
            workers_alive()
            loop.join(timeout=1)
        wait_for(all_sent, SETTLE_TIMEOUT, "every delivery to be sent", also=workers_alive)
        codes = [s.wait(timeout=60) for s in senders.procs]
        worker_codes = [w.terminate() for w in workers]
        elapsed = time.monotonic() - began
    finally:
        senders.stop.set()
        loop.join(timeout=10)
        stop_all(workers + senders.procs)

    procs = senders.procs
    by_senders = Counter(r["status"] for s in procs for r in s.records())
    print(
        f"\n{db_url.split(':')[0]}: {len(procs)} send passes "
        f"(up to {senders.most_at_once} at once, {senders.skipped} starts skipped) "
        f"+ {WORKERS} workers for {elapsed:.1f}s; {by_senders['sent']} of {SESSIONS} "
        "sent by the send passes"
    )
    assert codes == [0] * len(procs), [(s.name, s.err()) for s in procs if s.popen.returncode]
    assert worker_codes == [0] * WORKERS, [w.err() for w in workers]
    assert_no_traceback(workers + procs)
    assert set(by_senders) <= {"sent"}, by_senders
    assert senders.most_at_once >= 2, "the send passes never overlapped"
    rows = assert_ledger_matches_posts(ledger_engine, x, expected)
    assert all(r.attempts == 1 and r.token is None for r in rows)
