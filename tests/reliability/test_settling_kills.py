"""Rule 4 + rule 5a: a `send` killed (SIGKILL) at each point of the claim protocol, on the
channels that settle themselves (Bluesky, Mastodon), ends with the post made exactly once and
nothing left `uncertain` for an operator: the pass after the lease asks the channel.

A real `python -m bot send --now T` process kills itself at a failpoint (`BOT_FAILPOINT`) with one
due delivery; the loopback stand-in of the channel keeps what was posted. Later passes run at an
explicit `--now` (no sleeps). SQLite file and a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.store.db import make_engine, upgrade
from tests.support.blueskyapi import BlueskyStandIn
from tests.support.data import add_session, deliveries
from tests.support.mastodonapi import MastodonStandIn

pytestmark = pytest.mark.slow

MINUTE, DAY = timedelta(minutes=1), timedelta(days=1)
START = datetime(2030, 3, 18, 14, 0, tzinfo=UTC)
T = START - 6 * DAY  # the announce (7d) is due and unsent
AFTER_LEASE = T + 3 * MINUTE  # LEASE=2m
FAILPOINTS = (
    "after_claim",
    "after_sending_mark",
    "after_provider_accepted",
    "after_outcome_commit",
)


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class Channel:
    """One self-settling channel's stand-in, seen the same way by the test."""

    def __init__(self, name: str, server: Any, posts: Callable[[], int]) -> None:
        self.name, self.server, self.count = name, server, posts

    def env(self) -> dict[str, str]:
        return {**self.server.env(), f"{self.name.upper()}_TIMEOUT": "10"}


@pytest.fixture(params=["bluesky", "mastodon"])
def channel(request: pytest.FixtureRequest) -> Iterator[Channel]:
    if request.param == "bluesky":
        with BlueskyStandIn() as pds:
            yield Channel("bluesky", pds, lambda: len(pds.posts))
    else:
        with MastodonStandIn() as mastodon:
            yield Channel("mastodon", mastodon, lambda: len(mastodon.statuses))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    add_session(eng, "fp", START, title="Failpoint check: masked diffusion for code")
    yield eng
    eng.dispose()


def send(
    db_url: str, channel: Channel, folder: Path, now: datetime, failpoint: str | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(
        DATABASE_URL=db_url,
        CHANNELS=channel.name,
        REMINDERS="announce=7d",
        LEASE="2m",
        LOG_LEVEL="WARNING",
        **channel.env(),
    )
    if failpoint is not None:
        env["BOT_FAILPOINT"] = failpoint
    done = subprocess.run(
        [sys.executable, "-m", "bot", "send", "--now", iso(now), "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, records, done.stderr


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_killed_at_each_failpoint_the_post_is_made_once_and_nothing_stays_uncertain(
    db_url: str, engine: Engine, channel: Channel, tmp_path: Path, failpoint: str
) -> None:
    code, records, err = send(db_url, channel, tmp_path, T, failpoint)
    assert (code, records) == (-9, []), err  # killed before printing anything
    posted = channel.count()
    assert posted == (1 if failpoint in ("after_provider_accepted", "after_outcome_commit") else 0)

    code, records, err = send(db_url, channel, tmp_path, AFTER_LEASE)
    assert code == 0, (records, err)
    [row] = deliveries(engine)
    assert row.status == "sent", (row.status, row.reason)
    assert row.external_id
    assert channel.count() == 1  # exactly once, whatever the kill point
    statuses = [r["status"] for r in records]
    if failpoint == "after_claim":  # never marked: the claim came back and went out
        assert statuses == ["sent"]
    elif failpoint == "after_outcome_commit":  # it was recorded before the kill
        assert statuses == []
    else:  # marked `sending`, then killed: uncertain after the lease, settled in the same pass
        assert statuses[0] == "uncertain" and statuses[-1] == "sent"
        assert row.reference is not None
        if failpoint == "after_provider_accepted":
            assert "settled by the channel: the post exists" in (row.reason or "")

    # Nothing more, ever: later passes post nothing and report nothing.
    for later in (START + DAY,):
        code, records, err = send(db_url, channel, tmp_path, later)
        assert (code, records) == (0, []), err
    assert channel.count() == 1
    assert [r.status for r in deliveries(engine)] == ["sent"]
