"""SPEC §6 rule 4 under fire: three `bot run` workers SIGKILLed at random moments never post twice.

300 deliveries fall due over about 20 s of real time (`bot run` has no --now: sessions are placed
relative to the real clock) while a killer thread (a seeded `random.Random`, a bounded number of
kills) SIGKILLs a random worker at random moments and starts it again. Some restarted workers
also carry a `BOT_FAILPOINT`, so that the protocol's narrow windows (after the claim, after the
`sending` mark, after the provider accepted, after the outcome commit) are certainly hit, not
just by luck. When every delivery has left the queue, the workers are stopped, the leases are let
expire (a final `bot send` with `--now` past the last lease) and that pass sweeps what the dead
left behind. Then, against the X stand-in (which publishes duplicates, so that a double post
would show): nothing posted twice, nothing `sent` that was not published, nothing left in flight,
and every `uncertain` delivery is one that a death interrupted between its `sending` mark and its
outcome. Runs on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from bot.failpoints import POINTS
from bot.store.ledger import LEASE_EXPIRED
from bot.store.tables import heartbeats
from tests.reliability.support import (
    HOUR,
    Proc,
    add_sessions,
    assert_no_traceback,
    bot_env,
    iso_ms,
    ledger,
    migrated,
    run,
    session_in,
    start,
    status_counts,
    stop_all,
    wait_for,
)
from tests.support.xapi import XStandIn

pytestmark = pytest.mark.slow

SEED = 20261214
SESSIONS = 300
SPREAD_SECONDS = 20.0
FIRST_DUE_IN = 2.0  # seconds after the sessions are written
WORKERS = 3
LEASE = timedelta(seconds=10)
MAX_KILLS = 10  # SIGKILLs sent by the killer thread
MAX_FAILPOINT_STARTS = 4  # restarts that carry a BOT_FAILPOINT
KILL_GAP = (0.4, 2.5)  # seconds between two kills, uniformly drawn
SETTLE_TIMEOUT = 60.0  # after the last due time, for every delivery to leave the queue
IN_FLIGHT = {"claimed", "sending"}


def sid(index: int) -> str:
    return f"kill-{index:03d}"


@pytest.fixture
def x() -> Iterator[XStandIn]:
    """An X stand-in that publishes a repeated text again: a double send shows as two posts."""
    with XStandIn(reject_duplicates=False) as server:
        yield server


@pytest.fixture
def ledger_engine(db_url: str) -> Iterator[Engine]:
    engine = migrated(db_url)
    yield engine
    engine.dispose()


class Workers:
    """WORKERS slots, each holding the current `bot run` process; the killer replaces them."""

    def __init__(self, env: dict[str, str], folder: Path, rng: random.Random) -> None:
        self.env, self.folder, self.rng = env, folder, rng
        self.slots: list[Proc] = []
        self.every: list[Proc] = []
        self.kills = 0  # SIGKILLs the killer sent
        self.failpoint_deaths = 0  # workers that killed themselves at a failpoint
        self.failpoint_starts = 0
        self.problems: list[str] = []  # deaths nobody asked for
        self._generation = 0

    def launch(self, slot: int, *, failpoint: str | None = None) -> Proc:
        self._generation += 1
        env = dict(self.env)
        if failpoint is not None:
            env["BOT_FAILPOINT"] = failpoint
        proc = start(f"run{slot}-{self._generation:02d}", ["run"], env, self.folder)
        if slot < len(self.slots):
            self.slots[slot] = proc
        else:
            self.slots.append(proc)
        self.every.append(proc)
        return proc

    def restart(self, slot: int) -> None:
        failpoint = None
        if self.failpoint_starts < MAX_FAILPOINT_STARTS and self.rng.random() < 0.5:
            self.failpoint_starts += 1
            failpoint = f"{self.rng.choice(POINTS)}:{self.rng.randint(1, 8)}"
        self.launch(slot, failpoint=failpoint)

    def reap(self) -> None:
        """Restart workers that died by themselves: only a failpoint may do that."""
        for slot, proc in enumerate(self.slots):
            code = proc.popen.poll()
            if code is None:
                continue
            if code == -9 and "BOT_FAILPOINT" in proc.env:
                self.failpoint_deaths += 1
            else:
                self.problems.append(f"{proc.name} exited {code}:\n{proc.err()}")
            self.restart(slot)

    def kill_one(self) -> None:
        slot = self.rng.randrange(len(self.slots))
        proc = self.slots[slot]
        if proc.popen.poll() is None:
            proc.kill()
            self.kills += 1
            self.restart(slot)

    @property
    def deaths(self) -> int:
        return self.kills + self.failpoint_deaths


def heartbeat_pids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(select(heartbeats.c.pid)).scalars())


def killer(workers: Workers, stop: threading.Event, lock: threading.Lock) -> None:
    while not stop.wait(workers.rng.uniform(*KILL_GAP)):
        with lock:
            workers.reap()
            if workers.kills < MAX_KILLS:
                workers.kill_one()


def test_random_sigkills_never_post_twice_and_leave_nothing_in_flight(
    db_url: str, ledger_engine: Engine, x: XStandIn, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    first_due = now + timedelta(seconds=FIRST_DUE_IN)
    step = SPREAD_SECONDS / (SESSIONS - 1)
    dues = {sid(i): first_due + timedelta(seconds=i * step) for i in range(SESSIONS)}
    add_sessions(ledger_engine, {s: due + timedelta(days=7) for s, due in dues.items()}, now - HOUR)
    last_due = max(dues.values())
    expected = set(dues)

    env = bot_env(db_url, x, POLL_INTERVAL="1s", LEASE="10s")
    rng = random.Random(SEED)
    workers = Workers(env, tmp_path / "procs", rng)
    lock, stop = threading.Lock(), threading.Event()
    began = time.monotonic()
    try:
        for slot in range(WORKERS):
            workers.launch(slot)
        thread = threading.Thread(target=killer, args=(workers, stop, lock), daemon=True)
        thread.start()

        def left_the_queue() -> bool:
            if datetime.now(UTC) <= last_due:
                return False
            counts = status_counts(ledger_engine)
            return sum(counts.values()) == SESSIONS and not counts.keys() & {"pending", "retrying"}

        def no_stray_deaths() -> None:
            assert not workers.problems, workers.problems

        remaining = (last_due - datetime.now(UTC)).total_seconds()
        wait_for(
            left_the_queue,
            remaining + SETTLE_TIMEOUT,
            "every delivery to be sent or in flight",
            interval=0.25,
            also=no_stray_deaths,
        )
        stop.set()
        thread.join(timeout=10)
        with lock:
            workers.reap()
            no_stray_deaths()
            # A worker restarted a moment ago may not have its signal handlers yet: wait until
            # each live one has written a heartbeat (after they are installed).
            wait_for(
                lambda: all(
                    not p.alive or p.popen.pid in heartbeat_pids(ledger_engine)
                    for p in workers.slots
                ),
                30,
                "every live worker's first heartbeat",
            )
            # The graceful stop: sends in flight finish, unsent claims are given back.
            codes = {p.name: p.terminate() for p in workers.slots}
        for name, code in codes.items():
            proc = next(p for p in workers.slots if p.name == name)
            allowed = {0, -9} if "BOT_FAILPOINT" in proc.env else {0}
            assert code in allowed, f"{name} exited {code}:\n{proc.err()}"
        running_for = time.monotonic() - began
    finally:
        stop.set()
        stop_all(workers.every)

    # What the dead left in flight, before the sweep.
    before = {r.session_id: r for r in ledger(ledger_engine)}
    # (`pending`: claims a stopping worker gave back.)
    claimed = {s for s, r in before.items() if r.status in ("claimed", "pending")}
    sending = {s for s, r in before.items() if r.status == "sending"}
    posts_before = len(x.posts)

    # Let the leases expire: a final pass at a moment past every lease sweeps them.
    leases = [r.lease_expires_at for r in before.values() if r.status in IN_FLIGHT]
    sweep_at = max([datetime.now(UTC), *leases]) + timedelta(seconds=1)
    final = run(["send", "--now", iso_ms(sweep_at), "--json"], env, tmp_path / "procs")
    swept = {(r["session"], r["status"]) for r in final.records()}
    assert final.popen.returncode == (1 if sending else 0), final.err()
    # A mere claim was never sent: it goes back in line and goes out now; a `sending` mark whose
    # process died may have gone out: it becomes `uncertain` and is not sent again.
    assert swept == {(s, "sent") for s in claimed} | {(s, "uncertain") for s in sending}
    assert len(x.posts) == posts_before + len(claimed)

    rows = ledger(ledger_engine)
    posts = x.posts
    counts = Counter(r.status for r in rows)
    print(
        f"\n{db_url.split(':')[0]}: {SESSIONS} deliveries, {workers.kills} SIGKILLs, "
        f"{workers.failpoint_deaths} failpoint deaths ({workers.failpoint_starts} armed), "
        f"{running_for:.1f}s; left over: {len(claimed)} claimed or pending, "
        f"{len(sending)} sending; "
        f"final states {dict(counts)}; {len(posts)} posts"
    )
    assert_no_traceback([*workers.every, final])
    assert workers.kills >= 1, "the killer never struck"

    # Every delivery has exactly one row, and it is final: nothing pending, claimed or sending.
    assert len(rows) == SESSIONS
    assert {r.session_id for r in rows} == expected
    assert set(counts) <= {"sent", "uncertain"}, counts  # nothing failed, nothing missed

    # Nothing posted twice, nothing attempted twice (uncertain is never re-sent by itself).
    per_text = Counter(p.text for p in posts)
    assert set(per_text.values()) <= {1}, [t for t, n in per_text.items() if n > 1]
    per_session = Counter(session_in(r.text) for r in x.received)
    assert set(per_session.values()) <= {1}, [s for s, n in per_session.items() if n > 1]

    # Nothing `sent` that the stand-in did not publish, and the ids match.
    by_post_id = {p.post_id: p for p in posts}
    sent = [r for r in rows if r.status == "sent"]
    for row in sent:
        post = by_post_id.get(row.external_id)
        assert post is not None, f"{row.session_id} is sent as {row.external_id}: no such post"
        assert (post.text, session_in(post.text)) == (row.text, row.session_id)
    assert {r.external_id for r in sent} <= set(by_post_id)

    # `uncertain` = interrupted between the `sending` mark and the outcome: the mark was made
    # (one attempt, text kept for the operator), and the post either went out or did not.
    # (A live worker's sweep may have found it first, or the final pass.)
    uncertain = [r for r in rows if r.status == "uncertain"]
    assert sending <= {r.session_id for r in uncertain}
    posted_sessions = {session_in(p.text) for p in posts}
    for row in uncertain:
        assert (row.reason, row.was_uncertain, row.attempts) == (LEASE_EXPIRED, True, 1)
        assert row.text is not None and session_in(row.text) == row.session_id
        assert row.external_id is None
    # Each death interrupts at most one send: a worker sends one delivery at a time.
    assert len(uncertain) <= workers.deaths
    # Every post is a sent row, or the unanswered send of an uncertain one.
    uncertain_posted = {r.session_id for r in uncertain} & posted_sessions
    assert posted_sessions == {r.session_id for r in sent} | uncertain_posted
    assert len(posts) == len(sent) + len(uncertain_posted) >= len(sent)
