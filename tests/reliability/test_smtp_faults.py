"""SMTP faults through the real command line (`bot send --now`), SPEC §6 rule 5.

Each fault meets a real `python -m bot send` process talking to the loopback SMTP server (aiosmtpd)
and ends as the rule says, with the exit status the README gives (0 for `retrying`, 1 for `failed`
and `uncertain`). Then the server is made healthy again, so that a later pass that wrongly
contacted it would succeed and show: a `retrying` delivery is tried again only once its backoff is
over; a `failed` or `uncertain` one never by itself.

Already proven elsewhere, through the CLI, and not repeated: 451 after the data (retrying, then
sent at +1m) and 550 to RCPT (failed, never retried) in tests/test_cli_e2e.py. SQLite only: the
ledger paths are the same on both engines (tests/test_failpoints.py runs those on both).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.reliability.support import (
    MINUTE,
    base_env_email,
    one_session_db,
    only_row,
    send,
)
from tests.support.smtp import HOST, SmtpStandIn, free_port

START = datetime(2030, 3, 18, 14, 0, tzinfo=UTC)
T = START - timedelta(days=7)  # the announce is due
SID = "smtp-001"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    yield from one_session_db(sqlite_url, SID, START)


def env_for(url: str, server: SmtpStandIn, **extra: str) -> dict[str, str]:
    return base_env_email(url) | server.env(**extra)


def one(records: list[dict[str, object]], status: str) -> dict[str, object]:
    [record] = records
    assert (record["session"], record["notice"], record["channel"]) == (SID, "announce", "email")
    assert record["status"] == status, record
    return record


def assert_retry_then_sent(
    engine: Engine, server: SmtpStandIn, env: dict[str, str], folder: Path, at: datetime
) -> None:
    """Healthy again: nobody calls before `at` (the backoff), the pass at `at` sends it once."""
    server.mode = "ok"
    assert send(env, folder, at - timedelta(seconds=1)) == []
    assert server.messages == []
    one(send(env, folder, at), "sent")
    assert server.accepted == 1 and len(server.messages) == 1
    row = only_row(engine)
    assert (row.status, row.external_id) == ("sent", server.messages[0].message["Message-ID"])
    assert send(env, folder, at + timedelta(hours=1)) == []
    assert len(server.messages) == 1


def assert_never_again(
    engine: Engine,
    server: SmtpStandIn,
    env: dict[str, str],
    folder: Path,
    status: str,
    messages: int,
) -> None:
    """Healthy again, and passes at +1m, +30m and +1d: the server is never contacted."""
    server.mode = "ok"
    for later in (MINUTE, 30 * MINUTE, timedelta(days=1)):
        assert send(env, folder, T + later) == []
    assert len(server.messages) == messages and server.accepted == 0
    assert only_row(engine).status == status


def test_smtp_down_is_retried_after_the_backoff(
    engine: Engine, sqlite_url: str, smtp_server: SmtpStandIn, folder: Path
) -> None:
    env = env_for(sqlite_url, smtp_server)
    smtp_server.mode = "refuse"
    record = one(send(env, folder, T, code=0), "retrying")
    assert "connection refused" in str(record["reason"])
    row = only_row(engine)
    assert (row.status, row.attempts, row.next_attempt_at) == ("retrying", 1, T + MINUTE)
    assert_retry_then_sent(engine, smtp_server, env, folder, T + MINUTE)


def test_421_at_the_greeting_is_retried_with_a_growing_backoff(
    engine: Engine, sqlite_url: str, smtp_server: SmtpStandIn, folder: Path
) -> None:
    env = env_for(sqlite_url, smtp_server)
    smtp_server.mode = "reply_421"
    record = one(send(env, folder, T, code=0), "retrying")
    assert "421" in str(record["reason"])
    assert only_row(engine).next_attempt_at == T + MINUTE
    assert send(env, folder, T + timedelta(seconds=59)) == []
    # Still 421 at the second attempt: the next one waits 2 minutes.
    record = one(send(env, folder, T + MINUTE, code=0), "retrying")
    assert "421" in str(record["reason"])
    row = only_row(engine)
    assert (row.attempts, row.next_attempt_at) == (2, T + 3 * MINUTE)
    assert smtp_server.messages == []
    assert_retry_then_sent(engine, smtp_server, env, folder, T + 3 * MINUTE)


def test_a_5xx_after_the_data_fails_at_once_and_is_never_retried(
    engine: Engine, sqlite_url: str, smtp_server: SmtpStandIn, folder: Path
) -> None:
    env = env_for(sqlite_url, smtp_server)
    smtp_server.mode = "reply_550_data"
    record = one(send(env, folder, T, code=1), "failed")
    assert "554" in str(record["reason"]) and "end of DATA" in str(record["reason"])
    row = only_row(engine)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
    assert_never_again(engine, smtp_server, env, folder, "failed", messages=0)


def test_connection_dropped_after_the_data_is_uncertain_and_not_resent(
    engine: Engine, sqlite_url: str, smtp_server: SmtpStandIn, folder: Path
) -> None:
    env = env_for(sqlite_url, smtp_server)
    smtp_server.mode = "drop_after_data"
    record = one(send(env, folder, T, code=1), "uncertain")
    assert "may have been sent" in str(record["reason"])
    assert len(smtp_server.messages) == 1 and smtp_server.accepted == 0  # read, never answered
    row = only_row(engine)
    assert (row.status, row.was_uncertain, row.attempts) == ("uncertain", True, 1)
    assert row.text == smtp_server.messages[0].message["Subject"]
    assert_never_again(engine, smtp_server, env, folder, "uncertain", messages=1)


def test_a_server_that_hangs_after_the_data_is_uncertain_within_the_timeout(
    engine: Engine, sqlite_url: str, smtp_server: SmtpStandIn, folder: Path
) -> None:
    env = env_for(sqlite_url, smtp_server, SMTP_TIMEOUT="1")
    smtp_server.mode = "hang_after_data"
    began = time.monotonic()
    record = one(send(env, folder, T, code=1), "uncertain")
    took = time.monotonic() - began
    assert took < 10, f"SMTP_TIMEOUT=1 but the pass took {took:.1f}s"
    assert "may have been sent" in str(record["reason"])
    assert len(smtp_server.messages) == 1 and smtp_server.accepted == 0
    assert only_row(engine).status == "uncertain"
    assert_never_again(engine, smtp_server, env, folder, "uncertain", messages=1)


class SilentServer:
    """Accepts TCP connections and never says a word (no SMTP greeting): a hung server."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = 0
        self._sock = socket.create_server((HOST, self.port))
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self._conns:
            conn.close()


def test_a_server_that_hangs_at_the_greeting_is_retried(
    engine: Engine, sqlite_url: str, smtp_server: SmtpStandIn, folder: Path
) -> None:
    """Nothing was handed over, so a timeout before the greeting is `retrying`, not uncertain."""
    silent = SilentServer()
    try:
        env = env_for(sqlite_url, smtp_server, SMTP_TIMEOUT="1", SMTP_PORT=str(silent.port))
        began = time.monotonic()
        record = one(send(env, folder, T, code=0), "retrying")
        took = time.monotonic() - began
        assert silent.accepted == 1
        assert took < 10, f"SMTP_TIMEOUT=1 but the pass took {took:.1f}s"
        assert "before the message was sent" in str(record["reason"])
    finally:
        silent.close()
    healthy = env_for(sqlite_url, smtp_server)
    assert_retry_then_sent(engine, smtp_server, healthy, folder, T + MINUTE)
