"""The `slack` channel through the real command line: `python -m bot send --now …` processes, a
SQLite file, and the loopback Slack (tests/support/slackapi.py), in both modes where it applies.

`sessions import`, `set` and `cancel` stamp the real clock, so sessions start after the real now
and the passes run at simulated times (`--now`); the stand-in stamps each message's `ts` with the
pass's simulated time, as Slack's clock would agree with the bot's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from bot.store.tables import deliveries
from tests.support.cli import BotCli, iso, json_lines, session_yaml
from tests.support.slackapi import SlackStandIn, started

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
MEETING = "https://example.zoom.us/j/81234567890?pwd=a&b=c"
RECORDING = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
MODES = ["bot", "webhook"]
HEADLINES = {
    "announce": "Next session: ",
    "reminder": "Reminder, in 1 day: ",
    "starting": "Starting in 1 hour: ",
    "rescheduled": "New time",  # each change notice may say which update it is
    "cancelled": "Cancelled",
    "reinstated": "Back on",
    "recording": "Recording online: ",
}
Records = list[dict[str, Any]]


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    yield from started()


def on_the_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def real_now() -> datetime:
    return datetime.now(UTC)


def a_session(session_id: str, starts_at: datetime, **more: Any) -> dict[str, Any]:
    return {
        "id": session_id,
        "title": f"Masked diffusion & <code> ({session_id})",
        "starts_at": starts_at,
        "duration": "60m",
        "speakers": [{"name": "Shansan Gong", "affiliation": "HKU"}],
        "abstract": "Diffusion language models generate text by denoising an entire sequence.",
        "papers": [{"title": "DiffuCoder", "url": "https://arxiv.org/abs/2506.20639"}],
        "meeting_url": MEETING,
        **more,
    }


class Slack:
    """The CLI on one SQLite file with CHANNELS=slack in one mode, at the stand-in."""

    def __init__(self, tmp_path: Path, slack: SlackStandIn, mode: str, **more: str) -> None:
        self.url = f"sqlite:///{tmp_path}/bot.db"
        self.stand_in = slack
        self.mode = mode
        mode_env = slack.bot_env() if mode == "bot" else slack.webhook_env()
        env = {"DATABASE_URL": self.url, "CHANNELS": "slack", "SLACK_TIMEOUT": "1"}
        self.cli = BotCli(tmp_path / "cwd", env | mode_env | more)
        self.folder = tmp_path
        self.err = ""
        self._files = 0

    def run(self, *args: str, code: int = 0, env: dict[str, str | None] | None = None) -> str:
        rc, out, err = self.cli(*args, env=env)
        assert rc == code, (args, rc, out, err)
        assert "Traceback" not in out + err, err
        self.err = err
        return out

    def import_(self, *sessions: dict[str, Any]) -> None:
        self._files += 1
        path = self.folder / f"sessions-{self._files}.yaml"
        path.write_text(session_yaml(sessions), encoding="utf-8")
        self.run("sessions", "import", str(path))

    def send(self, now: datetime, *args: str, code: int = 0) -> Records:
        """One pass at `now`; the stand-in's clock says the same time."""
        self.stand_in.now = now
        return json_lines(self.run("send", "--now", iso(now), "--json", *args, code=code))

    def rows(self) -> list[Any]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(select(deliveries).order_by(deliveries.c.id)))
        finally:
            engine.dispose()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cli(tmp_path: Path, slack: SlackStandIn, mode: str) -> Slack:
    return Slack(tmp_path, slack, mode)


@pytest.fixture
def bot_cli(tmp_path: Path, slack: SlackStandIn) -> Slack:
    return Slack(tmp_path, slack, "bot")


@pytest.fixture
def hook_cli(tmp_path: Path, slack: SlackStandIn) -> Slack:
    return Slack(tmp_path, slack, "webhook")


def one(records: Records, status: str, notice: str = "announce") -> dict[str, Any]:
    [record] = records
    assert (record["notice"], record["channel"], record["status"]) == (notice, "slack", status), (
        record
    )
    return record


def permalink(slack: SlackStandIn, ts: str) -> str:
    return f"https://reading-group.slack.com/archives/{slack.channel_id}/p{ts.replace('.', '')}"


def one_upcoming(cli: Slack, sid: str = "talk") -> datetime:
    """A session a month ahead: its announce (7d), reminder (1d) and starting (1h) are ahead."""
    start = on_the_minute(real_now() + 30 * D)
    cli.import_(a_session(sid, start))
    return start


# ---------------------------------------------------------------- every notice, once


@pytest.mark.slow
def test_each_notice_goes_out_once_at_its_time(cli: Slack, slack: SlackStandIn) -> None:
    # Change notices are due from the real moment of the change: a session 5 days ahead is
    # announced at once (its 7-day announce is already due), then moved, cancelled, reinstated.
    moved = on_the_minute(real_now() + 5 * D)
    past = on_the_minute(real_now() - 3 * D)
    cli.import_(a_session("changing", moved), a_session("recorded", past))
    expected: list[tuple[str, str]] = []

    def sends(notice: str, sid: str, now: datetime, *args: str) -> None:
        records = [r for r in cli.send(now, *args) if r["status"] != "skipped"]
        record = one(records, "sent", notice)
        assert record["session"] == sid
        expected.append((sid, notice))
        [*_, posted] = slack.messages
        assert posted.text.startswith(HEADLINES[notice]), posted.text
        if cli.mode == "bot":
            assert record["external_id"] == permalink(slack, posted.ts)
            assert posted.metadata is not None
            assert posted.metadata["event_payload"]["notice"] == notice
        else:
            assert record["external_id"] is None and posted.metadata is None

    sends("announce", "changing", real_now() + M)
    cli.run("sessions", "set", "changing", f"starts_at={iso(moved + D)}")
    sends("rescheduled", "changing", real_now() + M)
    cli.run("sessions", "cancel", "changing")
    sends("cancelled", "changing", real_now() + M)
    cli.run("sessions", "set", "changing", "status=scheduled")
    sends("reinstated", "changing", real_now() + M)
    cli.run("sessions", "set", "recorded", f"recording_url={RECORDING}")
    sends("recording", "recorded", real_now() + M)

    start = one_upcoming(cli)
    for notice, before in (("announce", 7 * D), ("reminder", D), ("starting", H)):
        assert cli.send(start - before - M, "--session", "talk") == []
        sends(notice, "talk", start - before, "--session", "talk")

    assert cli.send(real_now() + 2 * M) == []  # nothing more, for any of them
    assert cli.send(start + 2 * H, "--session", "talk") == []
    texts = [m.text for m in slack.messages]
    assert len(texts) == len(expected) == 8 and len(set(texts)) == 8
    assert "New time" in texts[1] and "Cancelled" in texts[2] and "Back on" in texts[3]
    assert RECORDING in texts[4]
    assert "Masked diffusion &amp; &lt;code&gt; (talk)" in str(slack.messages[-1].blocks)
    assert len(slack.posts) == 8  # one request each, never a second attempt
    if cli.mode == "bot":
        references = [m.reference for m in slack.messages]
        assert None not in references and len(set(references)) == 8
        stored = {r.reference for r in cli.rows() if r.status == "sent"}
        assert stored == set(references)


def test_a_dry_run_contacts_nothing(cli: Slack, slack: SlackStandIn) -> None:
    start = one_upcoming(cli)
    rc, out, err = cli.cli("send", "--dry-run", "--now", iso(start - 7 * D), "--json")
    assert rc == 0, err
    record = one(json_lines(out), "would_send")
    assert "Next session: Masked diffusion & <code> (talk)" in record["text"]
    assert slack.requests == [] and cli.rows() == []


# ---------------------------------------------------------------- failures


def test_429_waits_for_its_retry_after(cli: Slack, slack: SlackStandIn) -> None:
    start = one_upcoming(cli)
    t = start - 7 * D
    slack.set_fault("status_429", retry_after=600, times=1)
    record = one(cli.send(t), "retrying")
    assert "429" in record["reason"]
    [row] = cli.rows()
    assert row.next_attempt_at == t + 10 * M  # Retry-After, not the 1-minute backoff
    assert cli.send(t + 10 * M - timedelta(seconds=1)) == []
    assert len(slack.requests) == 1
    one(cli.send(t + 10 * M), "sent")
    assert len(slack.messages) == 1 and len(slack.posts) == 2


def test_a_refused_token_fails_at_once(cli: Slack, slack: SlackStandIn) -> None:
    start = one_upcoming(cli)
    slack.set_fault("invalid_auth")
    record = one(cli.send(start - 7 * D, code=1), "failed")
    expected = "invalid_auth" if cli.mode == "bot" else "HTTP 403 invalid_token"
    assert expected in record["reason"]
    slack.set_fault("ok")
    assert cli.send(start - 7 * D + H) == []  # never retried
    assert len(slack.posts) == 1 and slack.messages == []


@pytest.mark.slow
# "no_body" takes the same path; it is proven against the stand-in in the unit tests.
@pytest.mark.parametrize("fault", ["hang"])
def test_a_bot_post_whose_answer_was_lost_settles_itself(
    bot_cli: Slack, slack: SlackStandIn, fault: str
) -> None:
    start = one_upcoming(bot_cli)
    t = start - 7 * D
    slack.set_fault(fault, times=1)  # Slack posts it; the answer never (fully) arrives
    record = one(bot_cli.send(t, code=1), "uncertain")
    assert "did not answer within 1s" in record["reason"] or "lost" in record["reason"]
    assert bot_cli.send(t + M) == []  # a moment too early to ask
    assert [r.route for r in slack.requests] == ["chat.postMessage"]
    record = one(bot_cli.send(t + 2 * M), "sent")
    [posted] = slack.messages
    assert "settled" in record["reason"]
    assert record["external_id"] == permalink(slack, posted.ts)
    assert len(slack.posts) == 1  # found, not posted again
    [row] = bot_cli.rows()
    assert (row.status, row.external_id, row.reference) == (
        "sent",
        permalink(slack, posted.ts),
        posted.reference,
    )
    assert bot_cli.send(t + H) == []


@pytest.mark.slow
def test_a_bot_post_lost_before_slack_stored_it_is_sent_once_after_two_minutes(
    bot_cli: Slack, slack: SlackStandIn
) -> None:
    start = one_upcoming(bot_cli)
    t = start - 7 * D
    slack.set_fault("hang", times=1, store=False)
    one(bot_cli.send(t, code=1), "uncertain")
    assert slack.messages == []
    records = bot_cli.send(t + 2 * M)
    assert [r["status"] for r in records] == ["retrying", "sent"]
    assert "settled by the channel: not posted" in records[0]["reason"]
    [posted] = slack.messages
    first, second = slack.posts
    assert posted.reference is not None
    assert first.params["metadata"] == second.params["metadata"] == posted.metadata  # one reference
    assert records[1]["external_id"] == permalink(slack, posted.ts)
    assert bot_cli.send(t + H) == []
    assert len(slack.messages) == 1


@pytest.mark.slow
def test_a_webhook_post_whose_answer_was_lost_stays_uncertain(
    hook_cli: Slack, slack: SlackStandIn
) -> None:
    start = one_upcoming(hook_cli)
    t = start - 7 * D
    slack.set_fault("hang", times=1)
    record = one(hook_cli.send(t, code=1), "uncertain")
    assert "did not answer within 1s" in record["reason"]
    for later in (2 * M, H, D):
        assert hook_cli.send(t + later) == []
    assert len(slack.requests) == 1 and len(slack.messages) == 1  # never asked, never re-sent
    [row] = hook_cli.rows()
    assert (row.status, row.reference, row.settle_after) == ("uncertain", None, None)


def test_over_the_limit_is_refused_with_its_length(cli: Slack, slack: SlackStandIn) -> None:
    start = on_the_minute(real_now() + 30 * D)
    cli.import_(a_session("long", start, abstract="masked diffusion " * 250))
    record = one(cli.send(start - 7 * D, code=1), "failed")
    match = re.fullmatch(
        r"message is (\d+) characters, over the slack limit of 4000", record["reason"]
    )
    assert match is not None, record["reason"]
    assert int(match.group(1)) > 17 * 250
    assert slack.requests == []


# ---------------------------------------------------------------- secrets, check


def test_no_secret_in_output_or_debug_logs(cli: Slack, slack: SlackStandIn) -> None:
    start = one_upcoming(cli)
    debug: dict[str, str | None] = {"LOG_LEVEL": "DEBUG"}
    texts = [cli.run("check", "--online", "--now", iso(start - 8 * D), env=debug), cli.err]
    slack.set_fault("status_500", times=1)
    texts += [cli.run("send", "--now", iso(start - 7 * D), "--json", code=1, env=debug), cli.err]
    texts += [cli.run("send", "--now", iso(start - D), "--json", "-v", env=debug), cli.err]
    both = {"SLACK_BOT_TOKEN": slack.token, "SLACK_WEBHOOK_URL": slack.webhook_url}
    texts += [cli.run("check", code=2, env={**both, "LOG_LEVEL": "DEBUG"}), cli.err]
    assert " DEBUG " in "".join(texts) and "HTTP 500" in "".join(texts)
    assert len(slack.messages) == 1  # the 500 stored nothing; the reminder went out
    for secret in (slack.token, slack.webhook_url, slack.webhook_path, slack.webhook_key):
        for text in texts:
            assert secret not in text


def test_check_online_logs_in_without_posting(cli: Slack, slack: SlackStandIn) -> None:
    one_upcoming(cli)
    assert cli.run("check", "--online").splitlines() == ["ok"]
    if cli.mode == "bot":
        assert [r.route for r in slack.requests] == ["auth.test", "conversations.history"]
        lines = cli.run("check", "--online", code=1, env={"SLACK_BOT_TOKEN": "xoxb-wrong"})
        [line] = lines.splitlines()
        assert line.startswith("channel slack: cannot log in") and "invalid_auth" in line
    else:
        assert slack.requests == []
        assert "cannot be checked without posting" in cli.err
    assert slack.messages == []


def test_exactly_one_mode_is_a_configuration_problem(cli: Slack, slack: SlackStandIn) -> None:
    both = {"SLACK_BOT_TOKEN": slack.token, "SLACK_WEBHOOK_URL": slack.webhook_url}
    out = cli.run("send", "--now", iso(real_now()), code=2, env=dict(both))
    assert "SLACK_BOT_TOKEN, SLACK_WEBHOOK_URL: set only one of them" in out + cli.err
    neither: dict[str, str | None] = {"SLACK_BOT_TOKEN": None, "SLACK_WEBHOOK_URL": None}
    out = cli.run("check", code=2, env=neither)
    assert "SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL: required by the slack channel" in out + cli.err
    assert slack.requests == []
