"""The `telegram` channel end to end: real `python -m bot` processes, a real SQLite database and
the loopback Bot API stand-in (tests/support/telegramapi.py), the clock given by `--now`.

Sessions start a few days after the real now: `sessions import`, `set` and `cancel` stamp the real
clock, and a change notice is due from that moment (tests/support/cligroup.py says more).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bot.store.db import make_engine
from bot.store.tables import deliveries
from tests.support import telegramapi
from tests.support.cli import iso
from tests.support.cligroup import (
    RECORDING,
    D,
    Group,
    H,
    M,
    MakeGroup,
    a_session,
    on_the_minute,
    real_now,
)
from tests.support.telegramapi import OLD_GROUP_ID, SUPERGROUP_ID, TOKEN, TelegramStandIn

telegram_server = telegramapi.telegram_server
SECRET_PART = TOKEN.split(":")[1]
S = timedelta(seconds=1)


def soon() -> datetime:
    """A pass moment a minute after the real now, to the second (as `--now` is written)."""
    return (real_now() + M).replace(microsecond=0)


def telegram_env(tg: TelegramStandIn, db_url: str, **more: str) -> dict[str, str]:
    """CHANNELS=telegram at the stand-in, REMINDERS as SPEC §3's default."""
    return tg.env() | {
        "DATABASE_URL": db_url,
        "CHANNELS": "telegram",
        "REMINDERS": "announce=7d,reminder=1d,starting=1h",
        "TELEGRAM_TIMEOUT": "5",
        **more,
    }


@pytest.fixture
def group(make_group: MakeGroup, sqlite_url: str, telegram_server: TelegramStandIn) -> Group:
    return make_group(telegram_env(telegram_server, sqlite_url))


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """The test's own view of the database the processes write (read only)."""
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(deliveries).order_by(deliveries.c.id)))


def one(records: list[dict[str, Any]], status: str, notice: str = "announce") -> dict[str, Any]:
    [record] = records
    assert (record["notice"], record["channel"], record["status"]) == (
        notice,
        "telegram",
        status,
    ), record
    return record


def free_port() -> int:
    """A port nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def announced_soon(group: Group, sid: str = "talk", **more: Any) -> datetime:
    """Import a session starting in 5 days: its announce is due at once."""
    start = on_the_minute(real_now() + 5 * D)
    group.import_(a_session(sid, start, **more))
    return start


# ---------------------------------------------------------------- each notice, once


@pytest.mark.slow
def test_each_notice_goes_out_once_at_its_time(
    group: Group, telegram_server: TelegramStandIn
) -> None:
    title = "Masked <b>diffusion</b> & code"
    old = announced_soon(group, title=title)
    new = old + D + 2 * H
    sent: list[dict[str, Any]] = []

    def step(now: datetime, notice: str) -> None:
        records = [r for r in group.send(now) if r["status"] != "skipped"]
        sent.append(one(records, "sent", notice))
        assert group.send(now + S) == []  # once

    step(soon(), "announce")
    group.set("talk", f"starts_at={iso(new)}")
    step(soon(), "rescheduled")
    group.run("sessions", "cancel", "talk")
    step(soon(), "cancelled")
    group.set("talk", "status=scheduled")
    step(soon(), "reinstated")
    step(new - D, "reminder")
    step(new - H, "starting")
    group.set("talk", f"recording_url={RECORDING}")
    step(new + 2 * H, "recording")

    messages = telegram_server.messages
    assert [m.text for m in messages] == [r["text"] for r in sent]
    assert [str(m.message_id) for m in messages] == [r["external_id"] for r in sent]
    assert all(title in m.text and m.parse_mode == "HTML" and not m.entities for m in messages)
    firsts = [m.text.splitlines()[0] for m in messages]
    assert [line.split(":")[0] for line in firsts[1:]] == [
        "New time",
        "Cancelled (update 2)",  # the session's second change
        "Back on (update 3)",
        "Reminder, in 1 day",
        "Starting in 1 hour",
        "Recording online",
    ]
    assert firsts[0].startswith("Next session · ")  # the date heading, then the title
    assert "Now: " in messages[1].text and "Was: " in messages[1].text
    assert RECORDING in messages[-1].text
    assert [r.method for r in telegram_server.requests] == ["sendmessage"] * 7
    assert {r["status"] for r in group.deliveries()} <= {"sent", "skipped"}


def test_a_title_with_markup_arrives_escaped_and_shows_as_text(
    group: Group, telegram_server: TelegramStandIn
) -> None:
    title = "Diffusion <b>&</b> code <i>now</i>"
    announced_soon(group, title=title)
    one(group.send(soon()), "sent")
    [request] = telegram_server.requests
    assert (
        "Diffusion &lt;b&gt;&amp;&lt;/b&gt; code &lt;i&gt;now&lt;/i&gt;" in request.params["text"]
    )
    assert request.params["parse_mode"] == "HTML"
    [posted] = telegram_server.messages
    assert title in posted.text and posted.entities == ()  # no bold, no italics


def test_a_dry_run_prints_the_text_and_contacts_nothing(
    group: Group, telegram_server: TelegramStandIn
) -> None:
    announced_soon(group)
    out = group.run("send", "--dry-run", "--now", iso(soon()))
    assert "Next session" in out and "Masked diffusion for code (talk)" in out
    assert telegram_server.requests == []
    assert group.deliveries() == []


# ---------------------------------------------------------------- failures


def test_429_waits_for_retry_after_then_goes_out(
    group: Group, telegram_server: TelegramStandIn, engine: Engine
) -> None:
    announced_soon(group)
    telegram_server.set_fault("status_429", retry_after=600, times=1)
    t = soon()
    record = one(group.send(t), "retrying")
    assert "429" in record["reason"] and "retry after 600" in record["reason"]
    [row] = rows(engine)
    assert row.next_attempt_at == t + 10 * M  # Telegram's retry_after, not the 1m backoff
    assert group.send(t + 10 * M - S) == []
    assert len(telegram_server.requests) == 1
    one(group.send(t + 10 * M), "sent")
    assert len(telegram_server.messages) == 1 and len(telegram_server.requests) == 2


@pytest.mark.slow
def test_a_wrong_token_fails_at_once_and_is_never_retried(
    make_group: MakeGroup, sqlite_url: str, telegram_server: TelegramStandIn
) -> None:
    wrong = "987654321:AAFakeFakeFakeFakeFakeFakeFakeFake12"
    group = make_group(telegram_env(telegram_server, sqlite_url, TELEGRAM_BOT_TOKEN=wrong))
    announced_soon(group)
    t = soon()
    record = one(group.send(t, code=1), "failed")
    assert "401" in record["reason"] and "TELEGRAM_BOT_TOKEN" in record["reason"]
    for later in (M, H, D):
        assert group.send(t + later) == []
    assert len(telegram_server.requests) == 1 and telegram_server.messages == []
    assert wrong.split(":")[1] not in str(record) + group.err


def test_a_migrated_group_fails_naming_the_variable_and_the_new_id(
    make_group: MakeGroup, sqlite_url: str, telegram_server: TelegramStandIn
) -> None:
    env = telegram_env(telegram_server, sqlite_url, TELEGRAM_CHAT_ID=str(OLD_GROUP_ID))
    group = make_group(env)
    announced_soon(group)
    record = one(group.send(soon(), code=1), "failed")
    assert record["reason"].startswith(
        f"TELEGRAM_CHAT_ID: the group became a supergroup; set TELEGRAM_CHAT_ID={SUPERGROUP_ID}"
    )
    assert telegram_server.messages == []
    [line] = [x for x in group.check("--online", code=1) if x.startswith("channel telegram")]
    assert line.startswith("channel telegram: cannot log in (TELEGRAM_CHAT_ID: the group became")
    assert f"TELEGRAM_CHAT_ID={SUPERGROUP_ID}" in line


@pytest.mark.slow
# "no_body" takes the same path; it is proven against the stand-in in the unit tests.
@pytest.mark.parametrize("fault", ["hang"])
def test_no_answer_after_the_request_stays_uncertain_and_is_posted_once(
    make_group: MakeGroup, sqlite_url: str, telegram_server: TelegramStandIn, fault: str
) -> None:
    group = make_group(telegram_env(telegram_server, sqlite_url, TELEGRAM_TIMEOUT="1"))
    announced_soon(group)
    telegram_server.set_fault(fault, times=1)
    t = soon()
    record = one(group.send(t, code=1), "uncertain")
    if fault == "hang":
        assert "did not answer within 1s" in record["reason"]
    [posted] = telegram_server.messages  # the message went out: only the answer was lost
    assert posted.text == record["text"]
    # Never sent again by itself (no idempotency in the Bot API): an operator decides.
    for later in (M, H):
        assert group.send(t + later) == []
    assert len(telegram_server.requests) == 1 and len(telegram_server.messages) == 1
    [row] = group.deliveries()
    assert (row["status"], row["external_id"]) == ("uncertain", None)
    assert "deliveries resolve or retry" in "\n".join(group.check(code=1))


def test_over_the_limit_is_refused_with_the_measured_length(
    make_group: MakeGroup, sqlite_url: str, telegram_server: TelegramStandIn, tmp_path: Path
) -> None:
    templates = tmp_path / "templates" / "telegram"
    templates.mkdir(parents=True)
    # Emoji: one character each as Telegram counts them (two UTF-16 code units each).
    (templates / "announce.txt.j2").write_text(
        '{{ session.id }} {{ "😀" * 4091 }}\n', encoding="utf-8"
    )
    env = telegram_env(telegram_server, sqlite_url, TEMPLATES_DIR=str(tmp_path / "templates"))
    group = make_group(env)
    announced_soon(group, "fits")  # "fits " + 4091 = 4096: taken
    one(group.send(soon()), "sent")
    announced_soon(group, "too-long")  # "too-long " + 4091 = 4100: refused before any request
    record = one(group.send(soon(), "--session", "too-long", code=1), "failed")
    assert record["reason"] == "message is 4100 characters, over the telegram limit of 4096"
    assert len(telegram_server.requests) == 1
    assert [len(m.text) for m in telegram_server.messages] == [4096]


# ---------------------------------------------------------------- secrets


@pytest.mark.slow
def test_the_token_is_in_no_output_or_log_at_debug(
    make_group: MakeGroup, sqlite_url: str, telegram_server: TelegramStandIn, tmp_path: Path
) -> None:
    debug = {"LOG_LEVEL": "DEBUG", "TELEGRAM_TIMEOUT": "1"}
    group = make_group(telegram_env(telegram_server, sqlite_url, **debug))
    said: list[str] = []

    def run(*args: str, code: int, env: dict[str, str | None] | None = None) -> None:
        said.append(group.run(*args, code=code, env=env) + group.err)

    announced_soon(group, "ok-one")
    run("send", "--now", iso(soon()), "--session", "ok-one", "--json", code=0)
    run("check", "--online", code=0)
    announced_soon(group, "late-one")
    telegram_server.set_fault("hang", times=1)
    run("send", "--now", iso(soon()), "--session", "late-one", "--json", "-v", code=1)
    refused: dict[str, str | None] = {"TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    announced_soon(group, "down-one")
    run("send", "--now", iso(soon()), "--session", "down-one", "--json", code=0, env=refused)
    run("check", "--online", code=1, env=refused)
    run("deliveries", "--json", code=0)
    everything = "\n".join(said)
    assert "DEBUG" in everything and "could not connect to Telegram" in everything
    assert "did not answer within 1s" in everything
    assert TOKEN not in everything and SECRET_PART not in everything
    assert len(telegram_server.messages) == 2


# ---------------------------------------------------------------- check --online


def test_check_online_asks_telegram_without_posting(
    group: Group, telegram_server: TelegramStandIn
) -> None:
    announced_soon(group)
    assert group.check(code=0) == ["ok"]
    assert telegram_server.requests == []
    assert group.check("--online", code=0) == ["ok"]
    assert [r.method for r in telegram_server.requests] == ["getme", "getchat"]
    telegram_server.set_fault("status_401")
    [line] = group.check("--online", code=1)
    assert re.match(r"channel telegram: cannot log in \(Telegram answered 401: Unauthorized", line)
    assert telegram_server.messages == []


def test_a_malformed_token_is_a_configuration_error_that_hides_it(
    make_group: MakeGroup, sqlite_url: str, telegram_server: TelegramStandIn
) -> None:
    group = make_group(telegram_env(telegram_server, sqlite_url))
    bad: dict[str, str | None] = {"TELEGRAM_BOT_TOKEN": f"bot{TOKEN}", "TELEGRAM_CHAT_ID": "rg"}
    out = group.run("check", code=2, env=bad)
    lines = (out + group.err).strip().splitlines()
    assert any(line.startswith("TELEGRAM_BOT_TOKEN: must look like") for line in lines), lines
    assert any(line.startswith("TELEGRAM_CHAT_ID: must be @channelname") for line in lines), lines
    assert SECRET_PART not in out + group.err
    out = group.run("send", "--now", iso(soon()), "--json", code=2, env=bad)
    assert out == "" and SECRET_PART not in group.err and telegram_server.requests == []
