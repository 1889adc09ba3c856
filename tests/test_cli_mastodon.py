"""The `mastodon` channel through the real command line: `python -m bot` processes, a real
database, and the loopback Mastodon stand-in (tests/support/mastodonapi.py), reached by URL.

Import stamps a session with the real clock, so the reminder tests use sessions a month ahead and
simulated `--now` passes before their start; the change tests follow tests/support/cligroup.py
(a change is due from the real moment it was made: passes run a minute after it). A killed
process is a real SIGKILL at a failpoint (`BOT_FAILPOINT`), as in the reliability suite.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import mastodonapi
from tests.support.cli import BotCli, iso, json_lines, session_yaml
from tests.support.mastodonapi import TOKEN, MastodonStandIn

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
TITLE = "DiffuCoder: Masked Diffusion Models for Code Generation"
MEETING = "https://example.zoom.us/j/81234567890"
RECORDING = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
SITE = "https://dllm.example.org"
mastodon_server = mastodonapi.mastodon_server  # the fixture
Records = list[dict[str, Any]]


def a_session(session_id: str, starts_at: datetime, **more: Any) -> dict[str, Any]:
    return {
        "id": session_id,
        "title": f"{TITLE} ({session_id})",
        "starts_at": starts_at,
        "duration": "60m",
        "speakers": [
            {"name": "Shansan Gong", "affiliation": "HKU", "mastodon": "@gong@sigmoid.social"}
        ],
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
    """The CLI bound to one database and the stand-in; keeps everything it printed."""

    def __init__(self, bot: BotCli, folder: Path) -> None:
        self.bot = bot
        self.folder = folder
        self.files = 0
        self.output = ""  # every call's stdout and stderr

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

    def send(
        self, now: datetime, *args: str, code: int = 0, env: dict[str, str | None] | None = None
    ) -> Records:
        return json_lines(self.run("send", "--now", iso(now), "--json", *args, code=code, env=env))

    def killed_send(self, now: datetime, failpoint: str) -> None:
        """A pass SIGKILLed at `failpoint` (its outcome never recorded)."""
        rc, out, err = self.bot("send", "--now", iso(now), env={"BOT_FAILPOINT": failpoint})
        self.output += out + err
        assert rc == -9, (rc, out, err)

    def deliveries(self) -> Records:
        return json_lines(self.run("deliveries", "--json"))


Make = Callable[..., Cli]


@pytest.fixture
def make_cli(tmp_path: Path, sqlite_url: str) -> Make:
    def make(server: MastodonStandIn, **more: str) -> Cli:
        env = {
            "DATABASE_URL": sqlite_url,
            "CHANNELS": "mastodon",
            "MASTODON_BASE_URL": server.base_url,
            "MASTODON_ACCESS_TOKEN": server.token,
            "MASTODON_TIMEOUT": "1",
            "GROUP_NAME": "Diffusion LLM Reading Group",
            "SITE_URL": SITE,
            **more,
        }
        return Cli(BotCli(tmp_path / "cwd", env), tmp_path)

    return make


@pytest.fixture
def cli(make_cli: Make, mastodon_server: MastodonStandIn) -> Cli:
    return make_cli(mastodon_server)


@pytest.fixture
def start() -> datetime:
    """About a month ahead, on the hour: every reminder is still to come."""
    return on_the_hour(real_now() + 30 * D)


def sent(records: Records) -> list[tuple[str, str, str]]:
    """What went out (a change notice also skips the reminders it stands in for)."""
    return sorted(
        (r["session"], r["notice"], r["status"]) for r in records if r["status"] == "sent"
    )


def only(records: Records, status: str) -> dict[str, Any]:
    [record] = records
    assert record["status"] == status, record
    return record


# ---------------------------------------------------------------- each notice, once


@pytest.mark.slow
def test_each_notice_goes_out_once_at_its_time(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli.import_(a_session("diffucoder", start))
    assert cli.send(start - 7 * D - M) == []
    assert mastodon_server.requests == []
    expected = {
        "announce": ("Next session: ", "Paper: DiffuCoder https://arxiv.org/abs/2506.20639"),
        "reminder": ("Reminder, in 1 day: ", "with @gong@sigmoid.social"),
        "starting": ("Starting in 1 hour: ", f"Join: {MEETING}"),
    }
    for notice, due in (("announce", 7 * D), ("reminder", D), ("starting", H)):
        records = cli.send(start - due)
        assert sent(records) == [("diffucoder", notice, "sent")]
        assert cli.send(start - due + M) == []  # once
        status = mastodon_server.statuses[-1]
        assert status.text == records[0]["text"] and status.id == records[0]["external_id"]
        for words in expected[notice]:
            assert words in status.text, (notice, status.text)
    announce = mastodon_server.statuses[0].text
    assert "Shansan Gong (@gong@sigmoid.social) will present" in announce
    assert f"Details: {SITE}/sessions/diffucoder/" in announce and f"Join: {MEETING}" in announce

    # Change notices (stamped with the real clock) on a session five days ahead.
    moving = on_the_hour(real_now() + 5 * D)
    cli.import_(a_session("moving", moving))
    assert sent(cli.send(soon())) == [("moving", "announce", "sent")]
    changes: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
        (("set", "moving", f"starts_at={iso(moving + D)}"), "rescheduled", ("New time", "(was ")),
        (("cancel", "moving"), "cancelled", ("Cancelled", "will not take place")),
        (("set", "moving", "status=scheduled"), "reinstated", ("Back on", "after all")),
    ]
    for command, kind, markers in changes:
        cli.run("sessions", *command)
        records = cli.send(soon())
        assert sent(records) == [("moving", kind, "sent")], records
        status = mastodon_server.statuses[-1]
        assert all(m in status.text for m in markers), (kind, status.text)
    cancelled = mastodon_server.statuses[-2].text
    assert MEETING not in cancelled

    # The recording of a session that ended three days ago.
    cli.import_(a_session("recorded", on_the_hour(real_now() - 3 * D)))
    assert cli.send(soon()) == []  # importing a past session sends nothing
    cli.run("sessions", "set", "recorded", f"recording_url={RECORDING}")
    assert sent(cli.send(soon())) == [("recorded", "recording", "sent")]
    assert cli.send(soon() + H) == []
    recording = mastodon_server.statuses[-1]
    assert recording.text.startswith("Recording online: ") and RECORDING in recording.text

    statuses = mastodon_server.statuses
    # Seven notices, and the moving session's announce: one request each.
    assert len(statuses) == 8 == len(mastodon_server.posts), [s.text[:30] for s in statuses]
    assert {(s.visibility, s.language) for s in statuses} == {("public", "en")}
    keys = [s.idempotency_key for s in statuses]
    assert all(keys) and len(set(keys)) == 8  # a key of its own for every delivery
    assert len({s.text for s in statuses}) == 8
    rows = {(r["session"], r["notice"]): r for r in cli.deliveries() if r["status"] == "sent"}
    assert {r["external_id"] for r in rows.values()} == {s.id for s in statuses}


def test_visibility_unlisted_is_used(
    make_cli: Make, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli = make_cli(mastodon_server, MASTODON_VISIBILITY="unlisted")
    cli.import_(a_session("quiet", start))
    only(cli.send(start - 7 * D), "sent")
    assert [s.visibility for s in mastodon_server.statuses] == ["unlisted"]


def test_a_dry_run_contacts_nothing(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli.import_(a_session("dry", start))
    out = cli.run("send", "--dry-run", "--now", iso(start - 7 * D))
    assert "would_send" in out and f"{TITLE} (dry)" in out
    assert mastodon_server.requests == []
    assert cli.deliveries() == []


# ---------------------------------------------------------------- failures


def test_429_waits_for_its_reset(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli.import_(a_session("limited", start))
    t = start - 7 * D
    reset = t + 10 * M + timedelta(microseconds=500_000)  # Mastodon's ISO 8601, with fractions
    mastodon_server.set_fault("status_429", reset=reset, times=1)
    record = only(cli.send(t), "retrying")
    assert "429" in record["reason"]
    assert len(mastodon_server.posts) == 1 and mastodon_server.statuses == []
    # The usual backoff would allow +1m; the reset says 10m 0.5s.
    assert cli.send(t + 10 * M) == []
    assert len(mastodon_server.posts) == 1
    record = only(cli.send(t + 11 * M), "sent")
    [status] = mastodon_server.statuses
    assert record["external_id"] == status.id
    first, second = mastodon_server.posts
    assert first.idempotency_key == second.idempotency_key == status.idempotency_key


def test_401_fails_at_once_and_is_never_retried(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli.import_(a_session("refused", start))
    t = start - 7 * D
    mastodon_server.set_fault("status_401", times=1)
    record = only(cli.send(t, code=1), "failed")
    assert "401: The access token is invalid" in record["reason"]
    for later in (M, H, 5 * D):  # healthy again: a retry would post
        assert cli.send(t + later) == []
    assert len(mastodon_server.posts) == 1 and mastodon_server.statuses == []
    [row] = cli.deliveries()
    assert row["status"] == "failed"


def test_missing_variables_are_a_configuration_error(tmp_path: Path, sqlite_url: str) -> None:
    bot = BotCli(tmp_path / "cwd", {"DATABASE_URL": sqlite_url, "CHANNELS": "mastodon"})
    code, out, err = bot("send", "--now", "2030-01-01T00:00:00Z")
    assert code == 2, (out, err)
    assert "MASTODON_BASE_URL: required by the mastodon channel" in out + err
    assert "MASTODON_ACCESS_TOKEN: required by the mastodon channel" in out + err


# ---------------------------------------------------------------- self-settling (rule 5a)


@pytest.mark.parametrize(
    ("fault", "create"),
    [
        # The other faults (no_body, drop, 504) take the same path and are proven against the
        # same stand-in in tests/test_mastodon.py; kills at every failpoint are in
        # tests/reliability/test_settling_kills.py.
        ("hang", True),
        ("status_502", False),
    ],
)
def test_a_lost_answer_is_settled_by_itself(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime, fault: str, create: bool
) -> None:
    """The status was made (or, behind a failing gateway, not): the re-send with the same key
    is answered with it (or makes it), and the delivery ends `sent`, posted once."""
    cli.import_(a_session("lost", start))
    t = start - 7 * D
    mastodon_server.set_fault(fault, times=1, create=create)
    records = cli.send(t)  # exit 0: settled in the same pass
    assert [r["status"] for r in records] == ["uncertain", "sent"]
    [status] = mastodon_server.statuses
    assert records[1]["external_id"] == status.id
    assert "settled" in records[1]["reason"]
    first, again = mastodon_server.posts
    assert first.idempotency_key == again.idempotency_key == status.idempotency_key
    assert (again.replayed is not None) == create  # answered from the kept key
    [row] = cli.deliveries()
    assert (row["status"], row["external_id"]) == ("sent", status.id)
    assert "settled" in row["reason"]
    assert cli.send(t + H) == []
    assert len(mastodon_server.posts) == 2


@pytest.mark.slow
def test_a_resend_that_fails_is_asked_again_on_a_later_pass(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli.import_(a_session("busy", start))
    t = start - 7 * D
    mastodon_server.set_fault("hang", times=1)
    mastodon_server.then_fault("status_503", times=1)  # the re-send: a busy server
    records = cli.send(t, code=1)
    assert [r["status"] for r in records] == ["uncertain"]
    assert len(mastodon_server.statuses) == 1
    assert cli.send(t + 30 * timedelta(seconds=1)) == []  # asked again at +1m, not before
    assert len(mastodon_server.posts) == 2
    records = cli.send(t + M)
    assert [r["status"] for r in records] == ["sent"]
    [status] = mastodon_server.statuses
    assert records[0]["external_id"] == status.id
    assert len(mastodon_server.posts) == 3


@pytest.mark.parametrize(
    ("failpoint", "made"),
    [("after_provider_accepted", 1)],  # every failpoint: test_settling_kills
)
def test_a_killed_pass_is_settled_by_the_next_one(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime, failpoint: str, made: int
) -> None:
    """Killed after Mastodon took it (or before the request): after the LEASE (5m) the next
    pass finds it uncertain and re-sends with its key: one status either way."""
    cli.import_(a_session("killed", start))
    t = start - 7 * D
    cli.killed_send(t, failpoint)
    assert len(mastodon_server.statuses) == made
    assert cli.send(t + 2 * M) == []  # within the lease: still its owner's
    records = cli.send(t + 6 * M)
    assert [r["status"] for r in records] == ["uncertain", "sent"]
    assert "settled" in records[1]["reason"]
    [status] = mastodon_server.statuses
    assert records[1]["external_id"] == status.id
    assert {p.idempotency_key for p in mastodon_server.posts} == {status.idempotency_key}


@pytest.mark.slow
def test_past_the_keys_lifetime_it_stays_uncertain_for_an_operator(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli.import_(a_session("expired", start))
    t = start - 7 * D
    cli.killed_send(t, "after_provider_accepted")
    assert len(mastodon_server.statuses) == 1 and len(mastodon_server.posts) == 1
    records = cli.send(t + 51 * M, code=1)  # the key was used 51 minutes ago
    assert [r["status"] for r in records] == ["uncertain", "uncertain"]
    reason = records[-1]["reason"]
    assert "Idempotency-Key" in reason and "could post twice" in reason
    assert len(mastodon_server.posts) == 1  # not re-sent: it could have made a second status
    assert cli.send(t + 2 * H) == []  # later passes ask no more
    assert len(mastodon_server.posts) == 1
    [row] = cli.deliveries()
    assert row["status"] == "uncertain"
    out = cli.run("check", "--now", iso(t + 2 * H), code=1)
    assert "uncertain" in out and f"deliveries resolve or retry {row['id']}" in out


# ---------------------------------------------------------------- length


def override(tmp_path: Path, body: str) -> str:
    templates = tmp_path / "templates"
    (templates / "mastodon").mkdir(parents=True, exist_ok=True)
    (templates / "mastodon" / "announce.txt.j2").write_text(body, encoding="utf-8")
    return str(templates)


def test_over_the_limit_is_refused_with_the_measured_length(
    make_cli: Make, mastodon_server: MastodonStandIn, tmp_path: Path, start: datetime
) -> None:
    # 480 letters, a space, a URL counted 23: 504 characters (the URL itself is 121 long).
    body = '{{ "a" * 480 }} https://example.com/{{ "p" * 100 }}\n'
    cli = make_cli(mastodon_server, TEMPLATES_DIR=override(tmp_path, body))
    cli.import_(a_session("long", start))
    t = start - 7 * D
    out = cli.run("check", "--now", iso(t), code=1)
    assert "504 characters, over the mastodon limit of 500" in out
    record = only(cli.send(t, code=1), "failed")
    assert "504 characters" in record["reason"] and "500" in record["reason"]
    assert mastodon_server.requests == []


@pytest.mark.slow
def test_the_instance_limit_read_by_check_online_is_used(
    make_cli: Make, tmp_path: Path, start: datetime
) -> None:
    with MastodonStandIn(max_characters=5000) as server:
        cli = make_cli(server, TEMPLATES_DIR=override(tmp_path, '{{ "a" * 1000 }}\n'))
        cli.import_(a_session("long", start))
        t = start - 7 * D
        assert "1000 characters, over the mastodon limit of 500" in cli.run(
            "check", "--now", iso(t), code=1
        )
        # It logs in and reads the limit (its own template check may still have used 500:
        # bot/operator.py checks the templates before logging in).
        rc, out, err = cli.bot("check", "--online", "--now", iso(t))
        assert "Traceback" not in err
        lines = out.splitlines()
        assert (rc, lines) == (0, ["ok"]) or (rc == 1 and all("of 500" in x for x in lines)), out
        assert [r.path for r in server.requests] == [
            "/api/v2/instance",
            "/api/v1/accounts/verify_credentials",
            "/api/v1/statuses",
        ]
        assert cli.run("check", "--now", iso(t)).splitlines() == ["ok"]
        record = only(cli.send(t), "sent")
        [status] = server.statuses
        assert status.text == "a" * 1000 and record["external_id"] == status.id


# ---------------------------------------------------------------- check --online and secrets


@pytest.mark.slow
def test_check_online_verifies_the_token_without_posting(
    cli: Cli, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli.import_(a_session("checked", start))
    assert cli.run("check", "--online").splitlines() == ["ok"]
    assert [(r.method, r.path, r.status) for r in mastodon_server.requests] == [
        ("GET", "/api/v2/instance", 200),
        ("GET", "/api/v1/accounts/verify_credentials", 200),
        ("POST", "/api/v1/statuses", 422),
    ]
    assert mastodon_server.statuses == []

    mastodon_server.token = "revoked-token"
    out = cli.run("check", "--online", code=1)
    assert "channel mastodon: cannot log in (Mastodon answered 401" in out
    mastodon_server.token = TOKEN
    mastodon_server.scopes = {"read"}
    out = cli.run("check", "--online", code=1)
    assert "needs the write:statuses scope" in out
    assert mastodon_server.statuses == []


@pytest.mark.slow
def test_no_secret_in_output_or_logs_at_debug(
    make_cli: Make, mastodon_server: MastodonStandIn, start: datetime
) -> None:
    cli = make_cli(mastodon_server, LOG_LEVEL="DEBUG")
    cli.import_(a_session("secret", start), a_session("second", start))
    t = start - 7 * D
    mastodon_server.set_fault("hang", times=1)
    records = cli.send(t)  # one settled after a lost answer, one sent
    assert {r["status"] for r in records} == {"uncertain", "sent"}
    cli.run("check", "--online", "--now", iso(t))
    mastodon_server.token = "revoked-token"
    cli.run("check", "--online", "--now", iso(t), code=1)
    cli.import_(a_session("third", start + D))
    cli.send(t + D, code=1)  # refused: 401
    cli.run("deliveries", "--json")
    assert "DEBUG" in cli.output  # the debug log was on
    assert "401" in cli.output
    assert TOKEN not in cli.output
    assert TOKEN[:16] not in cli.output and TOKEN[-16:] not in cli.output
