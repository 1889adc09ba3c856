"""The `discord` channel through the real command line: `python -m bot` processes, a real SQLite
database, and the loopback Discord webhook stand-in (tests/support/discordapi.py), reached by URL.

Import stamps a session with the real clock, so the reminder tests use sessions a month ahead and
simulated `--now` passes before their start; the change tests follow tests/support/cligroup.py
(a change is due from the real moment it was made: passes run a minute after it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.store.db import make_engine
from bot.store.tables import deliveries
from tests.support import discordapi
from tests.support.cli import BotCli, iso, json_lines, session_yaml
from tests.support.discordapi import TOKEN, DiscordStandIn

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
TITLE = "DiffuCoder: Masked Diffusion Models for Code Generation"
MEETING = "https://example.zoom.us/j/81234567890"
RECORDING = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
discord_server = discordapi.discord_server  # the fixture


def a_session(session_id: str, starts_at: datetime, **more: Any) -> dict[str, Any]:
    return {
        "id": session_id,
        "title": f"{TITLE} ({session_id})",
        "starts_at": starts_at,
        "duration": "60m",
        "speakers": [{"name": "Shansan Gong", "affiliation": "HKU"}],
        "abstract": "Diffusion language models generate text by denoising an entire sequence.",
        "papers": [{"title": "DiffuCoder", "url": "https://arxiv.org/abs/2506.20639"}],
        "meeting_url": MEETING,
        **more,
    }


def on_the_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def real_now() -> datetime:
    return datetime.now(UTC)


def soon() -> datetime:
    """A pass just after the change the test has just made."""
    return real_now() + M


class Cli:
    """The CLI bound to one SQLite database and the stand-in."""

    def __init__(self, bot: BotCli, folder: Path) -> None:
        self.bot = bot
        self.folder = folder
        self.files = 0
        self.output = ""  # everything every call printed, stdout and stderr

    def run(self, *args: str, code: int = 0, env: dict[str, str | None] | None = None) -> str:
        rc, out, err = self.bot(*args, env=env)
        self.output += out + err
        assert rc == code, (args, rc, out, err)
        assert "Traceback" not in out + err, err
        return out

    def import_(self, *sessions: dict[str, Any]) -> None:
        self.files += 1
        path = self.folder / f"sessions-{self.files}.yaml"
        path.write_text(session_yaml(sessions), encoding="utf-8")
        self.run("sessions", "import", str(path))

    def send(self, now: datetime, *args: str, code: int = 0) -> list[dict[str, Any]]:
        return json_lines(self.run("send", "--now", iso(now), "--json", *args, code=code))

    def deliveries(self) -> list[dict[str, Any]]:
        return json_lines(self.run("deliveries", "--json"))


Make = Callable[..., Cli]


@pytest.fixture
def make_cli(tmp_path: Path, sqlite_url: str, discord_server: DiscordStandIn) -> Make:
    def make(**more: str) -> Cli:
        env = {
            "DATABASE_URL": sqlite_url,
            "CHANNELS": "discord",
            "DISCORD_WEBHOOK_URL": discord_server.webhook_url,
            "DISCORD_TIMEOUT": "1",
            "GROUP_NAME": "Diffusion LLM Reading Group",
            "GROUP_URL": "https://example.org/dllm",
            **more,
        }
        return Cli(BotCli(tmp_path / "cwd", env), tmp_path)

    return make


@pytest.fixture
def cli(make_cli: Make) -> Cli:
    return make_cli()


@pytest.fixture
def start() -> datetime:
    """About a month ahead, on the hour: every reminder is still to come."""
    return on_the_hour(real_now() + 30 * D)


def statuses(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((r["session"], r["notice"], r["status"]) for r in records)


def sent(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """What went out (a change notice also skips the reminders it stands in for)."""
    return [s for s in statuses(records) if s[2] == "sent"]


def assert_no_secret(text: str, discord: DiscordStandIn) -> None:
    assert TOKEN not in text
    assert TOKEN[:12] not in text and TOKEN[-12:] not in text
    assert discord.webhook_url not in text


# ---------------------------------------------------------------- each notice, once


@pytest.mark.slow
def test_each_notice_goes_out_once_at_its_time(
    cli: Cli, discord_server: DiscordStandIn, start: datetime
) -> None:
    # Change notices and the recording, on sessions near the real clock.
    near = on_the_hour(real_now() + 5 * D)
    past = on_the_hour(real_now() - 3 * D)
    cli.import_(a_session("moving", near), a_session("recorded", past))
    assert statuses(cli.send(soon(), "--session", "moving")) == [("moving", "announce", "sent")]
    cli.run("sessions", "set", "moving", f"starts_at={iso(near + 2 * H)}")
    changed = cli.send(soon(), "--session", "moving")
    assert sent(changed) == [("moving", "rescheduled", "sent")]
    assert statuses(changed) == [("moving", "announce", "skipped"), *sent(changed)]
    cli.run("sessions", "cancel", "moving")
    assert sent(cli.send(soon(), "--session", "moving")) == [("moving", "cancelled", "sent")]
    cli.run("sessions", "set", "moving", "status=scheduled")
    assert sent(cli.send(soon(), "--session", "moving")) == [("moving", "reinstated", "sent")]
    assert cli.send(soon(), "--session", "recorded") == []  # a past session: nothing
    cli.run("sessions", "set", "recorded", f"recording_url={RECORDING}")
    records = cli.send(soon(), "--session", "recorded")
    assert statuses(records) == [("recorded", "recording", "sent")]

    # The reminders of a session a month ahead, each at its due time.
    cli.import_(a_session("diffucoder", start))
    announce, reminder, starting = start - 7 * D, start - D, start - H
    assert cli.send(announce - M, "--session", "diffucoder") == []
    for due, notice in ((announce, "announce"), (reminder, "reminder"), (starting, "starting")):
        records = cli.send(due, "--session", "diffucoder")
        assert statuses(records) == [("diffucoder", notice, "sent")]
        assert records[0]["due_at"] == iso(due)
        assert cli.send(due + M, "--session", "diffucoder") == []  # once

    messages = discord_server.messages
    heads = [re.sub(r" \(update \d+\)", "", m.content.split(":")[0]) for m in messages]
    assert heads == [
        "**Next session",
        "**New time",
        "**Cancelled",
        "**Back on",
        "**Recording online",
        "**Next session",
        "**Reminder, in 1 day",
        "**Starting in 1 hour",
    ]
    assert len({m.content for m in messages}) == len(messages)
    assert all(m.allowed_mentions == {"parse": []} and m.waited for m in messages)
    assert all(m.embeds and m.embeds[0]["url"] == "https://example.org/dllm" for m in messages)
    assert messages[-1].embeds[0]["title"] == f"{TITLE} (diffucoder)"
    assert messages[-1].embeds[0]["timestamp"] == start.isoformat()
    assert RECORDING in messages[4].content and MEETING in messages[5].content
    assert len(discord_server.requests) == len(messages)  # nothing sent twice, nothing else
    rows = [r for r in cli.deliveries() if r["status"] != "skipped"]
    assert all(r["status"] == "sent" for r in rows) and len(rows) == len(messages)
    assert sorted(r["external_id"] for r in rows) == sorted(m.id for m in messages)


def test_a_dry_run_contacts_nothing(
    cli: Cli, discord_server: DiscordStandIn, start: datetime
) -> None:
    cli.import_(a_session("diffucoder", start))
    out = cli.run("send", "--dry-run", "--now", iso(start - 7 * D))
    assert "would_send" in out and f"{TITLE} (diffucoder)" in out and MEETING in out
    assert discord_server.requests == []
    assert cli.deliveries() == []


# ---------------------------------------------------------------- failures


def test_a_rate_limit_waits_for_its_reset(
    cli: Cli, discord_server: DiscordStandIn, start: datetime, sqlite_url: str
) -> None:
    cli.import_(a_session("diffucoder", start))
    t = start - 7 * D
    reset = t + 10 * M
    discord_server.set_fault("status_429", retry_after=600.0, reset_epoch=reset.timestamp())
    [record] = cli.send(t)
    assert record["status"] == "retrying" and "429" in record["reason"]
    assert "retry after 600s" in record["reason"]
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        [row] = conn.execute(select(deliveries)).all()
    engine.dispose()
    next_at = row.next_attempt_at.replace(tzinfo=row.next_attempt_at.tzinfo or UTC)
    assert next_at >= reset  # not the 1-minute backoff
    check = cli.run("check", "--now", iso(t + M), code=1)
    assert "retrying" in check and "429" in check
    discord_server.set_fault("ok")

    assert cli.send(t + 9 * M + timedelta(seconds=59)) == []
    assert len(discord_server.requests) == 1
    [record] = cli.send(reset)
    assert record["status"] == "sent"
    assert [m.id for m in discord_server.messages] == [record["external_id"]]


def test_a_401_fails_at_once_and_is_never_retried(
    cli: Cli, discord_server: DiscordStandIn, start: datetime
) -> None:
    cli.import_(a_session("diffucoder", start))
    t = start - 7 * D
    discord_server.set_fault("status_401")
    [record] = cli.send(t, code=1)
    assert record["status"] == "failed"
    assert "401: Invalid Webhook Token (code 50027)" in record["reason"]
    assert "invalid or was deleted" in record["reason"]
    discord_server.set_fault("ok")  # were it tried again, it would go through now
    assert cli.send(t + M) == [] and cli.send(t + H) == []
    assert len(discord_server.requests) == 1 and discord_server.messages == []
    [row] = cli.deliveries()
    assert row["status"] == "failed" and "401" in row["reason"]
    assert_no_secret(cli.output, discord_server)


@pytest.mark.slow
# "no_body" takes the same path; it is proven against the stand-in in the unit tests.
@pytest.mark.parametrize("fault", ["hang"])
def test_a_timeout_after_the_request_stays_uncertain(
    cli: Cli, discord_server: DiscordStandIn, start: datetime, fault: str
) -> None:
    cli.import_(a_session("diffucoder", start))
    t = start - 7 * D
    discord_server.set_fault(fault, times=1)
    [record] = cli.send(t, code=1)
    assert record["status"] == "uncertain", record
    assert len(discord_server.messages) == 1  # it did go out: Discord has it, the bot cannot tell

    # A webhook cannot be asked: it stays for an operator, and no later pass posts it again.
    for later in (t + H, t + D):
        assert cli.send(later) == []  # nothing new to report
    assert len(discord_server.messages) == 1 and len(discord_server.requests) == 1
    [row] = cli.deliveries()
    assert row["status"] == "uncertain" and row["external_id"] is None
    check = cli.run("check", "--now", iso(t + H), code=1)
    assert "uncertain" in check and f"bot deliveries resolve or retry {row['id']}" in check
    assert_no_secret(cli.output, discord_server)


def test_a_title_holding_everyone_pings_nobody(
    cli: Cli, discord_server: DiscordStandIn, start: datetime
) -> None:
    title = "Office hours @everyone: masked diffusion @here"
    cli.import_(a_session("pinging", start, title=title))
    [record] = cli.send(start - 7 * D)
    assert record["status"] == "sent"
    [posted] = discord_server.messages
    assert title in posted.content and posted.embeds[0]["title"] == title
    assert posted.allowed_mentions == {"parse": []}
    assert posted.pinged == ()


def test_over_limit_text_is_refused_with_its_measured_length(
    make_cli: Make, discord_server: DiscordStandIn, start: datetime, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    (templates / "discord").mkdir(parents=True)
    # 2,001 code points; a UTF-16 count would say 4,002.
    (templates / "discord" / "announce.txt.j2").write_text('{{ "🙂" * 2001 }}\n', encoding="utf-8")
    cli = make_cli(TEMPLATES_DIR=str(templates))
    cli.import_(a_session("long", start))
    t = start - 7 * D
    check = cli.run("check", "--now", iso(t), code=1)
    assert "2001 characters, over the discord limit of 2000" in check
    [record] = cli.send(t, code=1)
    assert record["status"] == "failed"
    assert record["reason"] == "message is 2001 characters, over the discord limit of 2000"
    assert discord_server.requests == []


# ---------------------------------------------------------------- secrets and check --online


@pytest.mark.slow
def test_the_webhook_url_never_shows_even_at_debug(
    make_cli: Make, discord_server: DiscordStandIn, start: datetime
) -> None:
    cli = make_cli(LOG_LEVEL="DEBUG")
    cli.import_(a_session("diffucoder", start))
    [record] = cli.send(start - 7 * D)
    assert record["status"] == "sent"
    discord_server.set_fault("status_429", retry_after=5, reset_epoch=(start - D).timestamp())
    [record] = cli.send(start - D)
    assert record["status"] == "retrying"
    discord_server.set_fault("hang", times=1)
    [record] = cli.send(start - D + 10 * M, code=1)
    assert record["status"] == "uncertain"
    discord_server.set_fault("status_401")
    cli.run("check", "--online", "--now", iso(start - D), code=1)
    cli.run("deliveries")
    cli.run(
        "check",
        "--online",
        code=2,
        env={"DISCORD_WEBHOOK_URL": discord_server.webhook_url + "?x=1"},
    )
    cli.run("send", "--now", iso(start - H), code=2, env={"DISCORD_WEBHOOK_URL": "ftp://" + TOKEN})
    assert " DEBUG " in cli.output  # it did log at DEBUG
    assert "DISCORD_WEBHOOK_URL" in cli.output  # the problems were named
    assert_no_secret(cli.output, discord_server)


def test_check_online_reads_the_webhook_without_posting(
    cli: Cli, discord_server: DiscordStandIn
) -> None:
    assert cli.run("check").strip() == "ok"
    assert discord_server.requests == []  # plain check contacts nothing
    assert cli.run("check", "--online").strip() == "ok"
    [request] = discord_server.requests
    assert request.method == "GET" and request.query == {}
    assert discord_server.messages == []
    assert_no_secret(cli.output, discord_server)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"token": "Wr0ng-" + TOKEN[6:]}, "401: Invalid Webhook Token (code 50027)"),
        ({"webhook_id": "1399999999999999999"}, "404: Unknown Webhook (code 10015)"),
    ],
)
def test_check_online_says_when_the_webhook_is_invalid_or_deleted(
    make_cli: Make, discord_server: DiscordStandIn, change: dict[str, str], words: str
) -> None:
    cli = make_cli(DISCORD_WEBHOOK_URL=discord_server.url_for(**change))
    out = cli.run("check", "--online", code=1)
    [line] = out.splitlines()
    assert line.startswith("channel discord: cannot log in (Discord answered ")
    assert words in line and "the webhook is invalid or was deleted" in line
    assert "Wr0ng" not in cli.output
    assert_no_secret(cli.output, discord_server)
    assert discord_server.messages == []
