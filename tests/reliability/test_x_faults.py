"""X API faults through the real command line (`bot send --now`), SPEC §6 rule 5.

A real `python -m bot send` process posts to the loopback X API stand-in, which answers with the
fault under test. Each ends as the rule says, with the README's exit status, and later passes show
whether the stand-in is contacted again (it is healthy again by then, so a wrong retry would post).

Already proven through the CLI and not repeated: 503 without Retry-After (retrying, backoff 1m,
2m) and 429 whose reset is before the deadline (no call before the reset), and 401 (failed, never
retried), in tests/test_cli_e2e.py. SQLite only: the ledger paths are the same on both engines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.reliability.support import (
    HOUR,
    MINUTE,
    bot_env,
    one_session_db,
    only_row,
    send,
    session_in,
)
from tests.support.smtp import free_port
from tests.support.xapi import XStandIn

START = datetime(2030, 3, 18, 14, 0, tzinfo=UTC)
T = START - timedelta(days=7)  # the announce is due
SID = "xfault-001"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    yield from one_session_db(sqlite_url, SID, START)


def one(records: list[dict[str, object]], status: str) -> dict[str, object]:
    [record] = records
    assert (record["session"], record["notice"], record["channel"]) == (SID, "announce", "x")
    assert record["status"] == status, record
    return record


def assert_never_again(
    engine: Engine, x: XStandIn, env: dict[str, str], folder: Path, status: str
) -> None:
    """Healthy again, and passes up to the start and after it: X is never called again."""
    x.set_fault("ok")
    requests = len(x.requests)
    for later in (MINUTE, HOUR, timedelta(days=6, hours=23)):
        assert send(env, folder, T + later) == []
    assert send(env, folder, START + HOUR) == []  # after the start: nothing new to report
    assert len(x.requests) == requests
    assert only_row(engine).status == status


def test_rate_limited_past_the_deadline_is_missed_and_never_tried_again(
    engine: Engine, sqlite_url: str, x_server: XStandIn, folder: Path
) -> None:
    env = bot_env(sqlite_url, x_server)
    reset = START + HOUR  # X's reset time falls after the start, the announce's deadline
    x_server.set_fault("status_429", reset_epoch=int(reset.timestamp()))
    record = one(send(env, folder, T, code=1), "missed")
    reason = str(record["reason"])
    assert "429" in reason and "deadline" in reason
    assert len(x_server.requests) == 1 and x_server.posts == []
    row = only_row(engine)
    assert (row.status, row.attempts, row.next_attempt_at, row.token) == ("missed", 1, None, None)
    assert_never_again(engine, x_server, env, folder, "missed")


def test_503_with_retry_after_waits_for_it_not_for_the_backoff(
    engine: Engine, sqlite_url: str, x_server: XStandIn, folder: Path
) -> None:
    env = bot_env(sqlite_url, x_server)
    x_server.set_fault("status_503", retry_after=600, times=1)
    record = one(send(env, folder, T, code=0), "retrying")
    assert "503" in str(record["reason"])
    assert only_row(engine).next_attempt_at == T + 10 * MINUTE  # Retry-After, not 1m
    for before in (MINUTE, 9 * MINUTE + timedelta(seconds=59)):
        assert send(env, folder, T + before) == []
    assert len(x_server.requests) == 1
    record = one(send(env, folder, T + 10 * MINUTE), "sent")
    [post] = x_server.posts
    assert record["external_id"] == post.post_id == only_row(engine).external_id
    assert session_in(post.text) == SID


def test_duplicate_content_on_a_first_attempt_fails_and_is_not_retried(
    engine: Engine, sqlite_url: str, x_server: XStandIn, folder: Path
) -> None:
    env = bot_env(sqlite_url, x_server)
    x_server.set_fault("duplicate_403", times=1)
    record = one(send(env, folder, T, code=1), "failed")
    assert record["reason"] == "duplicate content"
    row = only_row(engine)
    assert (row.status, row.reason, row.attempts, row.was_uncertain) == (
        "failed",
        "duplicate content",
        1,
        False,
    )
    assert x_server.posts == []
    assert_never_again(engine, x_server, env, folder, "failed")


@pytest.mark.parametrize("fault", ["hang", "drop"])
def test_no_answer_after_the_request_was_sent_is_uncertain_and_posted_once(
    engine: Engine, sqlite_url: str, x_server: XStandIn, folder: Path, fault: str
) -> None:
    """`hang`: X_TIMEOUT=1 runs out after the request went out; `drop`: the socket closes."""
    env = bot_env(sqlite_url, x_server, X_TIMEOUT="1")
    x_server.set_fault(fault, times=1)
    began = time.monotonic()
    record = one(send(env, folder, T, code=1), "uncertain")
    took = time.monotonic() - began
    assert took < 10, f"X_TIMEOUT=1 but the pass took {took:.1f}s"
    if fault == "hang":
        assert "did not answer within 1s" in str(record["reason"])
    else:
        assert "lost after the request was sent" in str(record["reason"])
    [post] = x_server.posts  # the stand-in published it: only the answer was lost
    assert session_in(post.text) == SID
    row = only_row(engine)
    assert (row.status, row.was_uncertain, row.external_id) == ("uncertain", True, None)
    assert row.text == post.text
    assert_never_again(engine, x_server, env, folder, "uncertain")
    assert len(x_server.posts) == 1


def test_x_unreachable_is_retried_and_then_sent(
    engine: Engine, sqlite_url: str, x_server: XStandIn, folder: Path
) -> None:
    """Connection refused: nothing was sent, so it is `retrying`, and goes out after 1m."""
    down = bot_env(sqlite_url, f"http://127.0.0.1:{free_port()}")
    record = one(send(down, folder, T, code=0), "retrying")
    assert "could not connect to X" in str(record["reason"])
    assert only_row(engine).next_attempt_at == T + MINUTE
    up = bot_env(sqlite_url, x_server)
    assert send(up, folder, T + timedelta(seconds=59)) == []
    assert x_server.requests == []
    one(send(up, folder, T + MINUTE), "sent")
    assert len(x_server.posts) == 1 and len(x_server.requests) == 1
