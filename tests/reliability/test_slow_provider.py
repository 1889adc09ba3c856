"""Slow but alive: X answers only after the lease has run out (README "Exactly once").

A `bot send --now T` process (LEASE=10s) posts; the X stand-in publishes the post at once but
holds its answer for SLOW_SECONDS (≈13 s, beyond the lease). Meanwhile another `bot send` pass at
`--now` T + 11 s (after the lease) sweeps the delivery to `uncertain` and posts nothing. When the
slow answer arrives, the first process records `sent` under its claim's token: a late success
wins over the sweep. Nothing is sent again; the final state is `sent` with one post. Runs on a
SQLite file and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.store.ledger import LEASE_EXPIRED
from tests.reliability.support import (
    MINUTE,
    bot_env,
    iso_ms,
    one_session_db,
    only_row,
    send,
    session_in,
    start,
    wait_for,
)
from tests.support.xapi import XStandIn

pytestmark = pytest.mark.slow

SLOW_SECONDS = 13.0  # how long X holds its answer: past the 10 s lease
START = datetime(2030, 3, 18, 14, 0, tzinfo=UTC)
T = START - timedelta(days=7)  # the announce is due
AFTER_LEASE = T + timedelta(seconds=11)
SID = "slow-001"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    yield from one_session_db(db_url, SID, START)


def test_a_late_answer_after_the_sweep_still_records_sent_once(
    engine: Engine, db_url: str, x_server: XStandIn, tmp_path: Path
) -> None:
    env = bot_env(db_url, x_server, LEASE="10s", X_TIMEOUT="30")
    folder = tmp_path / "procs"
    x_server.delay_seconds = SLOW_SECONDS
    slow = start("slow", ["send", "--now", iso_ms(T), "--json"], env, folder)
    try:
        # The post is published the moment X reads it; the answer is what is slow.
        wait_for(lambda: x_server.posts, 30, "the slow pass's post to reach X")
        row = only_row(engine)
        assert (row.status, row.lease_expires_at) == ("sending", T + timedelta(seconds=10))

        # The lease is over at AFTER_LEASE: that pass makes it `uncertain` and sends nothing.
        [record] = send(env, folder, AFTER_LEASE, code=1)
        assert (record["session"], record["status"], record["reason"]) == (
            SID,
            "uncertain",
            LEASE_EXPIRED,
        )
        assert slow.alive, "the slow answer came before the sweep: raise SLOW_SECONDS"
        row = only_row(engine)
        assert (row.status, row.was_uncertain) == ("uncertain", True)
        assert len(x_server.received) == 1

        # The slow answer arrives: the first process records `sent`, and says so.
        assert slow.wait(timeout=SLOW_SECONDS + 30) == 0, slow.err()
    finally:
        slow.kill()
    [late] = slow.records()
    [post] = x_server.posts
    assert (late["status"], late["external_id"]) == ("sent", post.post_id)
    assert "Traceback" not in slow.err()
    row = only_row(engine)
    assert (row.status, row.external_id, row.token, row.attempts) == ("sent", post.post_id, None, 1)
    assert row.text == post.text and session_in(post.text) == SID

    # Nothing is sent again, by a pass inside or long after the lease.
    x_server.delay_seconds = 0
    for later in (AFTER_LEASE + MINUTE, T + timedelta(days=1)):
        assert send(env, folder, later) == []
    assert len(x_server.received) == 1 and len(x_server.posts) == 1
    assert only_row(engine).status == "sent"
