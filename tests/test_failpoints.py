"""SPEC §6 rule 4: a `send` killed (SIGKILL) at each point of the claim protocol never posts twice.

`BOT_FAILPOINT=NAME` makes a real `python -m bot send --now T` process kill itself at a protocol
point, with one due delivery on the `x` channel of a loopback X API stand-in. Later passes, each at
an explicit `--now` (no sleeps), show what the ledger makes of it: before the lease runs out nothing
moves; after it, a mere claim goes back in line and is sent once, an interrupted `sending` becomes
`uncertain` (exit 1) and is never re-sent by itself, until an operator resolves or retries it.
Runs on a SQLite file and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.store.db import make_engine, upgrade
from bot.store.models import Delivery
from tests.support.data import add_session, deliveries
from tests.support.xapi import XStandIn

pytestmark = pytest.mark.slow

MINUTE, DAY = timedelta(minutes=1), timedelta(days=1)
LEASE = 2 * MINUTE
# `deliveries retry` has no --now and checks the deadline (the start) against the real clock,
# so the session starts in the real future; every pass still runs at an explicit --now.
START = datetime.now(UTC).replace(second=0, microsecond=0) + 10 * DAY
T = START - 6 * DAY  # the announce (7d) is due and unsent
INSIDE_LEASE = T + MINUTE
AFTER_LEASE = T + LEASE + MINUTE
TITLE = "Failpoint check: masked diffusion for code"
X_KEYS = {
    "X_API_KEY": "ck-dummy",
    "X_API_KEY_SECRET": "cs-dummy",
    "X_ACCESS_TOKEN": "at-dummy",
    "X_ACCESS_TOKEN_SECRET": "as-dummy",
}


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@dataclass
class Bot:
    """Runs `python -m bot …` against one database and one X stand-in."""

    db_url: str
    x: XStandIn
    folder: Path

    def __call__(self, *args: str, failpoint: str | None = None) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "X_"))}
        env.update(
            DATABASE_URL=self.db_url,
            CHANNELS="x",
            REMINDERS="announce=7d",
            LEASE="2m",
            X_API_BASE_URL=self.x.base_url,
            X_TIMEOUT="10",
            LOG_LEVEL="WARNING",
            **X_KEYS,
        )
        if failpoint is not None:
            env["BOT_FAILPOINT"] = failpoint
        done = subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=self.folder,  # no stray .env
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def send(self, now: datetime, failpoint: str | None = None) -> Result:
        return self("send", "--now", iso(now), "--json", failpoint=failpoint)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The test's own engine on a migrated database holding one session."""
    eng = make_engine(db_url)
    upgrade(eng)
    add_session(eng, "fp", START, title=TITLE)
    yield eng
    eng.dispose()


@pytest.fixture
def bot(db_url: str, engine: Engine, x_server: XStandIn, tmp_path: Path) -> Bot:
    return Bot(db_url, x_server, tmp_path)


def only_row(engine: Engine) -> Delivery:
    rows = deliveries(engine)
    assert len(rows) == 1, [(r.session_id, r.notice, r.channel, r.status) for r in rows]
    row = rows[0]
    assert (row.session_id, row.notice, row.channel) == ("fp", "announce", "x")
    return row


def post_texts(x: XStandIn) -> list[str | None]:
    return [p.text for p in x.posts]


def killed_at(bot: Bot, failpoint: str) -> Result:
    result = bot.send(T, failpoint=failpoint)
    assert result.code == -9, (result.code, result.stderr)  # SIGKILL, before printing anything
    assert result.stdout == ""
    return result


def nothing_moves_inside_the_lease(bot: Bot, engine: Engine, status: str, posts: int) -> None:
    before = only_row(engine)
    assert before.status == status
    result = bot.send(INSIDE_LEASE)
    assert (result.code, result.records()) == (0, []), result.stderr
    after = only_row(engine)
    assert (after.status, after.token, after.attempts) == (status, before.token, before.attempts)
    assert len(bot.x.posts) == posts


def becomes_uncertain(bot: Bot, engine: Engine, posts: int) -> int:
    """The pass after the lease reports `uncertain` (exit 1) and posts nothing; returns the id."""
    result = bot.send(AFTER_LEASE)
    assert result.code == 1, result.stderr
    [record] = result.records()
    assert record["status"] == "uncertain"
    assert (record["session"], record["notice"], record["channel"]) == ("fp", "announce", "x")
    row = only_row(engine)
    assert (row.status, row.was_uncertain) == ("uncertain", True)
    assert "lease" in (row.reason or "")
    assert len(bot.x.posts) == posts

    # Not re-sent by itself, and not reported again as new.
    again = bot.send(AFTER_LEASE + MINUTE)
    assert (again.code, again.records()) == (0, []), again.stderr
    assert only_row(engine).status == "uncertain"
    assert len(bot.x.posts) == posts

    # The operator sees it: `deliveries`, `plan` and `check`.
    listed = bot("deliveries", "--status", "uncertain", "--json")
    assert listed.code == 0, listed.stderr
    [shown] = listed.records()
    assert (shown["id"], shown["status"], shown["session"]) == (row.id, "uncertain", "fp")
    planned = bot("plan", "--now", iso(AFTER_LEASE + MINUTE), "--json")
    assert planned.code == 0, planned.stderr
    assert [(r["session"], r["status"]) for r in planned.records()] == [("fp", "uncertain")]
    checked = bot("check", "--now", iso(AFTER_LEASE + MINUTE))
    assert checked.code == 1
    assert f"delivery {row.id} " in checked.stdout
    assert "uncertain" in checked.stdout
    return row.id


def nothing_more_goes_out(bot: Bot, engine: Engine, when: datetime) -> None:
    result = bot.send(when)
    assert (result.code, result.records()) == (0, []), result.stderr
    assert len(bot.x.posts) == 1
    assert only_row(engine).status == "sent"


# ------------------------------------------------------------------ the four failpoints


def test_killed_after_claim_the_claim_returns_and_goes_out_once_after_the_lease(
    bot: Bot, engine: Engine
) -> None:
    killed_at(bot, "after_claim")
    assert bot.x.received == []
    nothing_moves_inside_the_lease(bot, engine, "claimed", posts=0)

    result = bot.send(AFTER_LEASE)
    assert result.code == 0, result.stderr
    [record] = result.records()
    assert record["status"] == "sent"
    [post] = bot.x.posts
    assert TITLE in (post.text or "")
    row = only_row(engine)
    assert (row.status, row.external_id, row.attempts) == ("sent", post.post_id, 1)
    assert record["external_id"] == post.post_id
    assert row.was_uncertain is False
    nothing_more_goes_out(bot, engine, AFTER_LEASE + MINUTE)
    assert len(bot.x.received) == 1


def test_killed_after_sending_mark_it_is_uncertain_with_no_post_and_retry_sends_it_once(
    bot: Bot, engine: Engine
) -> None:
    killed_at(bot, "after_sending_mark")
    assert bot.x.received == []
    nothing_moves_inside_the_lease(bot, engine, "sending", posts=0)
    delivery_id = becomes_uncertain(bot, engine, posts=0)
    assert bot.x.received == []

    retried = bot("deliveries", "retry", str(delivery_id))
    assert retried.code == 0, retried.stderr
    assert only_row(engine).status == "pending"
    result = bot.send(AFTER_LEASE + 2 * MINUTE)
    assert result.code == 0, result.stderr
    [record] = result.records()
    assert record["status"] == "sent"
    [post] = bot.x.posts
    row = only_row(engine)
    assert (row.status, row.external_id) == ("sent", post.post_id)
    nothing_more_goes_out(bot, engine, AFTER_LEASE + 3 * MINUTE)
    assert len(bot.x.received) == 1


def test_killed_after_provider_accepted_it_is_uncertain_with_one_post_and_retry_settles_it(
    bot: Bot, engine: Engine
) -> None:
    killed_at(bot, "after_provider_accepted")
    [post] = bot.x.posts
    assert TITLE in (post.text or "")
    nothing_moves_inside_the_lease(bot, engine, "sending", posts=1)
    delivery_id = becomes_uncertain(bot, engine, posts=1)

    # The stand-in rejects duplicates, as X does: the retry's 403 proves the post exists.
    assert bot.x.reject_duplicates
    retried = bot("deliveries", "retry", str(delivery_id))
    assert retried.code == 0, retried.stderr
    result = bot.send(AFTER_LEASE + 2 * MINUTE)
    assert result.code == 0, result.stderr
    [record] = result.records()
    assert record["status"] == "sent"
    assert "duplicate content" in record["reason"]
    row = only_row(engine)
    assert row.status == "sent"
    assert "duplicate content" in (row.reason or "")
    assert post_texts(bot.x) == [post.text]
    assert [r.published for r in bot.x.received] == [True, False]  # the retry was refused
    nothing_more_goes_out(bot, engine, AFTER_LEASE + 3 * MINUTE)
    assert len(bot.x.received) == 2


def test_killed_after_provider_accepted_the_operator_resolves_it_as_sent(
    bot: Bot, engine: Engine
) -> None:
    killed_at(bot, "after_provider_accepted")
    assert len(bot.x.posts) == 1
    nothing_moves_inside_the_lease(bot, engine, "sending", posts=1)
    delivery_id = becomes_uncertain(bot, engine, posts=1)

    resolved = bot("deliveries", "resolve", str(delivery_id), "--as", "sent")
    assert resolved.code == 0, resolved.stderr
    row = only_row(engine)
    assert row.status == "sent"
    assert "operator" in (row.reason or "")
    nothing_more_goes_out(bot, engine, AFTER_LEASE + 2 * MINUTE)
    assert len(bot.x.received) == 1
    checked = bot("check", "--now", iso(AFTER_LEASE + 2 * MINUTE))
    assert (checked.code, checked.stdout.strip()) == (0, "ok"), checked.stdout


def test_killed_after_outcome_commit_it_stays_sent_with_one_post(bot: Bot, engine: Engine) -> None:
    killed_at(bot, "after_outcome_commit")
    [post] = bot.x.posts
    row = only_row(engine)
    assert (row.status, row.external_id, row.token) == ("sent", post.post_id, None)
    nothing_moves_inside_the_lease(bot, engine, "sent", posts=1)
    nothing_more_goes_out(bot, engine, AFTER_LEASE)
    assert only_row(engine).external_id == post.post_id
    assert len(bot.x.received) == 1


def test_the_pass_that_finds_it_uncertain_says_why(bot: Bot, engine: Engine) -> None:
    killed_at(bot, "after_sending_mark")
    result = bot.send(AFTER_LEASE)
    assert result.code == 1, result.stderr
    [record] = result.records()
    assert record["status"] == "uncertain"
    assert record["reason"] == only_row(engine).reason
    assert "lease" in (record["reason"] or "")
