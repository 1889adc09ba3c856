"""The `bluesky` channel through the real command line: `python -m bot` processes, a real database
and the loopback PDS stand-in (tests/support/blueskyapi.py), reached by its URL.

Import stamps a session with the real clock, so the reminder tests use sessions a month ahead
and simulated `--now` passes before their start; the change tests follow
tests/support/cligroup.py (a change is due from the real moment it was made: passes run a
minute after it). Each pass is a new process: the login kept in the database is what they share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.store.db import make_engine
from bot.store.tables import deliveries
from tests.support import blueskyapi
from tests.support.blueskyapi import (
    APP_PASSWORD,
    CREATE_RECORD,
    CREATE_SESSION,
    GET_RECORD,
    GET_SESSION,
    REFRESH_SESSION,
    BlueskyStandIn,
)
from tests.support.cli import BotCli, iso, json_lines, session_yaml

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
TITLE = "DiffuCoder: Masked Diffusion Models for Code Generation"
MEETING = "https://example.zoom.us/j/81234567890"
RECORDING = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
SITE = "https://dllm.example.org"
SPEAKER = "shansan.bsky.social"
SPEAKER_DID = "did:plc:shansangong2345abcdefghij"
bluesky_server = blueskyapi.bluesky_server  # the fixture


def a_session(session_id: str, starts_at: datetime, **more: Any) -> dict[str, Any]:
    return {
        "id": session_id,
        "title": f"{TITLE} ({session_id})",
        "starts_at": starts_at,
        "duration": "60m",
        "speakers": [{"name": "Shansan Gong", "affiliation": "HKU", "bluesky": SPEAKER}],
        "abstract": "Diffusion language models generate text by denoising an entire sequence.",
        "meeting_url": MEETING,
        **more,
    }


def real_now() -> datetime:
    return datetime.now(UTC)


def on_the_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def soon() -> datetime:
    """A pass just after the change the test has just made."""
    return real_now() + M


class Cli:
    """The CLI bound to one database and the stand-in; keeps everything it printed."""

    def __init__(self, bot: BotCli, folder: Path) -> None:
        self.bot = bot
        self.folder = folder
        self.files = 0
        self.output = ""  # stdout and stderr of every call

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

    def row(self) -> Any:
        """The one delivery row, read from the database."""
        engine = make_engine(self.bot.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                [row] = conn.execute(select(deliveries)).all()
        finally:
            engine.dispose()
        return row


Make = Callable[..., Cli]


@pytest.fixture
def make_cli(tmp_path: Path, sqlite_url: str, bluesky_server: BlueskyStandIn) -> Make:
    bluesky_server.add_handle(SPEAKER, SPEAKER_DID)

    def make(db_url: str = sqlite_url, **more: str) -> Cli:
        env = bluesky_server.env(
            **{
                "DATABASE_URL": db_url,
                "CHANNELS": "bluesky",
                "BLUESKY_TIMEOUT": "5",
                "GROUP_NAME": "Diffusion LLM Reading Group",
                "GROUP_URL": "https://example.org/dllm",
                "SITE_URL": SITE,
                **more,
            }
        )
        cli = Cli(BotCli(tmp_path / "cwd", env), tmp_path)
        if not db_url.startswith("sqlite"):
            cli.run("db", "upgrade")
        return cli

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


def last(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The final record of the one delivery a pass handled (an uncertain one may settle)."""
    assert len({(r["session"], r["notice"]) for r in records}) == 1, records
    return records[-1]


# ---------------------------------------------------------------- each notice once


@pytest.mark.slow
def test_each_reminder_goes_out_once_at_its_time_and_logs_in_once(
    cli: Cli, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    cli.import_(a_session("talk", start))
    announce, reminder, starting = start - 7 * D, start - D, start - H

    assert cli.send(announce - M) == []
    assert bluesky_server.requests == []  # a pass with nothing due never logs in

    for notice, due in (("announce", announce), ("reminder", reminder), ("starting", starting)):
        [record] = cli.send(due)
        assert (record["notice"], record["status"]) == (notice, "sent"), record
        post = bluesky_server.posts[-1]
        assert record["external_id"] == post.uri and post.uri.startswith("at://did:plc:")
        assert post.text is not None and f"{TITLE} (talk)" in post.text
        assert ("mention", SPEAKER_DID, f"@{SPEAKER}") in post.facets
        assert ("link", MEETING, "example.zoom.us/j/81234567890") in post.facets
        assert post.value["embed"]["external"]["uri"] == f"{SITE}/sessions/talk/"
        assert cli.send(due + M) == []  # once
    texts = [p.text for p in bluesky_server.posts]
    assert len(texts) == 3 and len(set(texts)) == 3
    assert [t.split(":")[0] for t in texts if t] == [
        "Next session",
        "Reminder, in 1 day",
        "Starting in 1 hour",
    ]
    # Three passes, three processes, one login: the session is kept in the database.
    assert len(bluesky_server.calls(CREATE_SESSION)) == 1
    assert [c.token for c in bluesky_server.calls(CREATE_RECORD)] == ["access"] * 3
    assert {r["status"] for r in cli.deliveries()} == {"sent"}


@pytest.mark.slow
def test_change_and_recording_notices_each_go_out_once(
    cli: Cli, bluesky_server: BlueskyStandIn
) -> None:
    first = on_the_hour(real_now() + 5 * D)
    cli.import_(a_session("moving", first), a_session("done", on_the_hour(real_now() - 3 * D)))
    assert statuses(cli.send(soon())) == [("moving", "announce", "sent")]

    cli.run("sessions", "set", "moving", f"starts_at={iso(first + D)}")
    assert ("moving", "rescheduled", "sent") in statuses(cli.send(soon()))
    cli.run("sessions", "cancel", "moving")
    assert statuses(cli.send(soon())) == [("moving", "cancelled", "sent")]
    cli.run("sessions", "set", "moving", "status=scheduled")
    assert ("moving", "reinstated", "sent") in statuses(cli.send(soon()))
    cli.run("sessions", "set", "done", f"recording_url={RECORDING}")
    assert statuses(cli.send(soon())) == [("done", "recording", "sent")]
    assert cli.send(soon() + H) == []  # once each

    texts = [p.text or "" for p in bluesky_server.posts]
    assert [t.split(":")[0] for t in texts] == [
        "Next session",
        "New time",
        "Cancelled (update 2)",  # a repeated kind of change says which update it is
        "Back on (update 3)",
        "Recording online",
    ]
    recording = bluesky_server.posts[-1]
    assert ("link", RECORDING, "www.youtube.com/watch?v=dQw4…") in recording.facets
    assert len(bluesky_server.calls(CREATE_SESSION)) == 1


# ---------------------------------------------------------------- dry run, limits


def test_a_dry_run_contacts_nothing(
    cli: Cli, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    cli.import_(a_session("talk", start))
    out = cli.run("send", "--dry-run", "--now", iso(start - 7 * D))
    assert "would_send" in out and f"{TITLE} (talk)" in out
    assert bluesky_server.requests == []
    assert cli.deliveries() == []


def test_over_limit_text_is_refused_with_its_measured_length(
    make_cli: Make, bluesky_server: BlueskyStandIn, tmp_path: Path, start: datetime
) -> None:
    templates = tmp_path / "templates"
    (templates / "bluesky").mkdir(parents=True)
    (templates / "bluesky" / "announce.txt.j2").write_text(
        '{{ "拡" * 290 }} https://dllm.example.org/sessions/{{ "x" * 200 }}\n', encoding="utf-8"
    )
    cli = make_cli(TEMPLATES_DIR=str(templates))
    cli.import_(a_session("long", start))
    t = start - 7 * D

    out = cli.run("check", "--now", iso(t), code=1)
    assert "321 graphemes" in out  # 290 + 1 + the link as shown (30)

    [record] = cli.send(t, code=1)
    assert record["status"] == "failed"
    assert record["reason"] == "message is 321 graphemes, over the bluesky limit of 300"
    assert bluesky_server.requests == []  # not even a login


# ---------------------------------------------------------------- failures


def test_429_waits_for_its_reset_then_goes_out(
    cli: Cli, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    cli.import_(a_session("talk", start))
    t = start - 7 * D
    reset = t + 10 * M
    bluesky_server.set_fault("status_429", times=1, reset_epoch=int(reset.timestamp()))

    [record] = cli.send(t)
    assert record["status"] == "retrying" and "429" in record["reason"]
    assert cli.row().next_attempt_at >= reset  # not the usual 1m backoff
    assert cli.send(reset - timedelta(seconds=1)) == []
    assert len(bluesky_server.calls(CREATE_RECORD)) == 1
    [record] = cli.send(reset)
    assert record["status"] == "sent" and record["reason"] is None
    assert len(bluesky_server.posts) == 1
    assert len(bluesky_server.calls(CREATE_SESSION)) == 1


def test_401_fails_at_once_and_is_never_retried(
    cli: Cli, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    cli.import_(a_session("talk", start))
    t = start - 7 * D
    bluesky_server.set_fault("status_401", times=1)
    [record] = cli.send(t, code=1)
    assert record["status"] == "failed" and "401" in record["reason"]
    calls = len(bluesky_server.requests)
    assert cli.send(t + M) == [] and cli.send(t + H) == []
    assert len(bluesky_server.requests) == calls and bluesky_server.posts == []


def test_a_wrong_app_password_fails_at_once(
    make_cli: Make, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    cli = make_cli(BLUESKY_APP_PASSWORD="wxyz-wxyz-wxyz-wxyz")
    cli.import_(a_session("talk", start))
    [record] = cli.send(start - 7 * D, code=1)
    assert record["status"] == "failed"
    assert "401" in record["reason"] and "Invalid identifier or password" in record["reason"]
    assert [r.nsid for r in bluesky_server.requests] == [CREATE_SESSION]
    assert "wxyz-wxyz-wxyz-wxyz" not in cli.output


# "no_body" takes the same path; it is proven against the stand-in in the unit tests.
@pytest.mark.parametrize("fault", ["hang"])
def test_a_lost_answer_after_the_post_settles_itself(
    make_cli: Make, bluesky_server: BlueskyStandIn, start: datetime, fault: str
) -> None:
    """`hang`: created, answered after BLUESKY_TIMEOUT=1; `no_body`: headers, then nothing."""
    cli = make_cli(BLUESKY_TIMEOUT="1")
    cli.import_(a_session("talk", start))
    t = start - 7 * D
    bluesky_server.set_fault(fault, times=1)
    began = time.monotonic()
    records = cli.send(t)  # exit 0: the uncertain post settled in the same pass
    assert time.monotonic() - began < 15
    assert [r["status"] for r in records] == ["uncertain", "sent"]
    assert "settled" in records[-1]["reason"] and "the post exists" in records[-1]["reason"]
    [post] = bluesky_server.posts  # exactly one record
    assert records[-1]["external_id"] == post.uri
    assert [r.query["rkey"] for r in bluesky_server.calls(GET_RECORD)] == [post.rkey]
    row = cli.row()
    assert (row.status, row.external_id, row.reference) == ("sent", post.uri, post.rkey)
    assert cli.send(t + H) == []
    assert len(bluesky_server.posts) == 1


def test_a_post_lost_before_the_pds_took_it_is_sent_again_under_its_key(
    make_cli: Make, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    cli = make_cli(BLUESKY_TIMEOUT="1")
    cli.import_(a_session("talk", start))
    t = start - 7 * D
    bluesky_server.set_fault("hang", times=1, process=False)
    records = cli.send(t)  # uncertain → getRecord: absent → retrying at once → the next round
    assert [r["status"] for r in records][:2] == ["uncertain", "retrying"]
    assert records[-1]["status"] == "sent", records
    [post] = bluesky_server.posts
    keys = {c.body["rkey"] for c in bluesky_server.calls(CREATE_RECORD)}
    assert keys == {post.rkey}  # the same record key on both attempts


# ---------------------------------------------------------------- facets


def test_facets_cover_their_text_after_emoji_and_cjk(
    cli: Cli, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    title = "🎉 拡散モデル 👨‍👩‍👧 for code, with #DiffusionLLM"
    cli.import_(a_session("emoji", start, title=title))
    [record] = cli.send(start - 7 * D)
    assert record["status"] == "sent", record
    [post] = bluesky_server.posts
    assert post.text is not None and title in post.text
    assert post.facets == [
        ("tag", "DiffusionLLM", "#DiffusionLLM"),
        ("mention", SPEAKER_DID, f"@{SPEAKER}"),
        ("link", MEETING, "example.zoom.us/j/81234567890"),
        ("link", f"{SITE}/sessions/emoji/", "dllm.example.org/sessions/emo…"),
    ]


# ---------------------------------------------------------------- the session


def test_an_expired_access_token_is_refreshed_not_a_failure(
    make_cli: Make, db_url: str, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    """On SQLite and PostgreSQL: the session is kept in `channel_state` between processes."""
    cli = make_cli(db_url)
    cli.import_(a_session("talk", start))
    assert cli.send(start - 7 * D)[0]["status"] == "sent"
    bluesky_server.expire_access_tokens()
    [record] = cli.send(start - D)
    assert (record["notice"], record["status"], record["reason"]) == ("reminder", "sent", None)
    assert [c.status for c in bluesky_server.calls(CREATE_RECORD)] == [200, 400, 200]
    assert len(bluesky_server.calls(REFRESH_SESSION)) == 1
    assert len(bluesky_server.calls(CREATE_SESSION)) == 1
    bluesky_server.expire_refresh_tokens()
    bluesky_server.expire_access_tokens()
    [record] = cli.send(start - H)  # refresh refused: one new login, and it goes out
    assert record["status"] == "sent"
    assert len(bluesky_server.calls(CREATE_SESSION)) == 2
    assert len(bluesky_server.posts) == 3


def test_check_online_logs_in_without_posting(
    make_cli: Make, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    cli = make_cli()
    cli.import_(a_session("talk", start))
    assert cli.run("check", "--online").splitlines() == ["ok"]
    assert [r.nsid for r in bluesky_server.requests] == [CREATE_SESSION]
    assert cli.run("check", "--online").splitlines() == ["ok"]  # the kept session
    assert [r.nsid for r in bluesky_server.requests] == [CREATE_SESSION, GET_SESSION]
    assert bluesky_server.posts == []
    wrong = make_cli(BLUESKY_APP_PASSWORD="wxyz-wxyz-wxyz-wxyz")
    out = wrong.run("check", "--online", code=1)
    assert "channel bluesky: cannot log in" in out and "401" in out
    assert "wxyz-wxyz-wxyz-wxyz" not in wrong.output


def test_no_secret_reaches_output_or_logs_at_debug(
    make_cli: Make, bluesky_server: BlueskyStandIn, start: datetime
) -> None:
    cli = make_cli(LOG_LEVEL="DEBUG")
    cli.import_(a_session("talk", start))
    cli.send(start - 7 * D)
    bluesky_server.expire_access_tokens()
    cli.send(start - D)  # refreshed
    bluesky_server.set_fault("status_401", times=1)
    cli.send(start - H, code=1)
    cli.run("check", "--online", code=1)  # lists the failed delivery
    cli.run("deliveries")
    assert " DEBUG " in cli.output  # it did log at DEBUG
    secrets = [APP_PASSWORD, *bluesky_server.tokens]
    assert len(secrets) >= 7  # the app password, two logins' and one refresh's tokens
    for secret in secrets:
        assert secret not in cli.output
