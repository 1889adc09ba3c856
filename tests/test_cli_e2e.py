"""End to end through the real command line: `python -m bot` subprocesses against a real database
(SQLite and PostgreSQL), a real SMTP server and a loopback X API server. The clock is `--now`.

Import stamps a session with the real clock (`occurrence_since`), so sessions here start weeks
after the real now, and the passes run at simulated times before their start.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import BotCli, iso, json_lines, session_yaml
from tests.support.smtp import SmtpStandIn
from tests.support.xapi import XStandIn

TITLE = "DiffuCoder: Masked Diffusion & Code Generation"
ABSTRACT = "Diffusion language models generate text by denoising an entire sequence."
MEETING = "https://example.zoom.us/j/81234567890"
X_KEYS = {
    "X_API_KEY": "test-api-key",
    "X_API_KEY_SECRET": "test-api-key-secret",
    "X_ACCESS_TOKEN": "test-access-token",
    "X_ACCESS_TOKEN_SECRET": "test-access-token-secret",
}


def a_session(session_id: str, starts_at: datetime, **more: Any) -> dict[str, Any]:
    """One session as the file holds it, starting at `starts_at` (UTC)."""
    return {
        "id": session_id,
        "title": TITLE,
        "starts_at": starts_at,
        "duration": "60m",
        "speakers": [{"name": "Shansan Gong", "affiliation": "HKU", "x": "@gong"}],
        "abstract": ABSTRACT,
        "papers": [{"title": "DiffuCoder", "url": "https://arxiv.org/abs/2506.20639"}],
        "meeting_url": MEETING,
        **more,
    }


def weeks_ahead() -> datetime:
    """A start time about a month after the real now, on the hour (all reminders still ahead)."""
    day = datetime.now(UTC) + timedelta(days=30)
    return day.replace(hour=15, minute=0, second=0, microsecond=0)


@pytest.fixture
def start() -> datetime:
    return weeks_ahead()


@pytest.fixture
def bot(tmp_path: Path, db_url: str, smtp_server: SmtpStandIn, x_server: XStandIn) -> BotCli:
    """The CLI with CHANNELS=email,x pointed at both stand-ins, on db_url, REMINDERS default.

    PostgreSQL is migrated with `bot db upgrade` first, as a deployment's release step does;
    SQLite is migrated on first use.
    """
    env = (
        smtp_server.env()
        | X_KEYS
        | {
            "X_API_BASE_URL": x_server.base_url,
            "DATABASE_URL": db_url,
            "CHANNELS": "email,x",
        }
    )
    bot = BotCli(tmp_path / "cwd", env)
    if not db_url.startswith("sqlite"):
        code, _, err = bot("db", "upgrade")
        assert code == 0, err
    return bot


Importer = Callable[..., None]


@pytest.fixture
def imported(bot: BotCli, tmp_path: Path) -> Importer:
    """Write a session file and import it through the CLI."""

    def run(*sessions: dict[str, Any]) -> None:
        path = tmp_path / "sessions.yaml"
        path.write_text(session_yaml(sessions), encoding="utf-8")
        code, out, err = bot("sessions", "import", str(path))
        assert code == 0, err
        assert f"{len(sessions)} added" in out

    return run


def send(bot: BotCli, now: datetime, *args: str, code: int = 0) -> list[dict[str, Any]]:
    """`bot send --now NOW --json ARGS`; the JSON records, after checking the exit status."""
    rc, out, err = bot("send", "--now", iso(now), "--json", *args)
    assert rc == code, (rc, out, err)
    assert "Traceback" not in err
    return json_lines(out)


def by_channel(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["channel"]: r for r in records}


def ledger(bot: BotCli) -> list[dict[str, Any]]:
    code, out, err = bot("deliveries", "--json")
    assert code == 0, err
    return json_lines(out)


# ---------------------------------------------------------------- the happy path


def test_each_notice_goes_out_once_at_its_time(
    bot: BotCli,
    imported: Importer,
    start: datetime,
    smtp_server: SmtpStandIn,
    x_server: XStandIn,
) -> None:
    imported(a_session("diffucoder", start))
    announce, reminder, starting = (
        start - timedelta(days=7),
        start - timedelta(days=1),
        start - timedelta(hours=1),
    )

    assert send(bot, announce - timedelta(minutes=1)) == []
    assert smtp_server.messages == [] and x_server.requests == []

    records = send(bot, announce)
    assert len(records) == 2
    sent = by_channel(records)
    assert set(sent) == {"email", "x"}
    for channel, record in sent.items():
        assert record["status"] == "sent", record
        assert record["session"] == "diffucoder" and record["notice"] == "announce"
        assert record["occurrence"] == iso(start) and record["due_at"] == iso(announce)
        assert record["external_id"], channel
    assert smtp_server.accepted == 1 and len(x_server.posts) == 1

    mail = smtp_server.messages[0].message
    assert mail["Message-ID"] == sent["email"]["external_id"]
    assert mail["Subject"] == sent["email"]["text"]
    assert TITLE in mail["Subject"]
    types = [part.get_content_type() for part in mail.walk()]
    for wanted in ("text/plain", "text/html", "text/calendar"):
        assert wanted in types, types
    parts = {part.get_content_type(): part for part in mail.walk()}
    assert TITLE in parts["text/plain"].get_content()
    assert ABSTRACT in parts["text/plain"].get_content()
    assert "Diffusion &amp; Code" in parts["text/html"].get_content()
    calendar = parts["text/calendar"].get_content()
    calendar = calendar.decode() if isinstance(calendar, bytes) else calendar
    assert "BEGIN:VEVENT" in calendar and f"DTSTART:{start:%Y%m%dT%H%M%S}Z" in calendar

    post = x_server.posts[0]
    assert post.text == sent["x"]["text"]
    assert post.post_id == sent["x"]["external_id"]
    assert TITLE in (post.text or "") and MEETING in (post.text or "")

    # The same pass again (the same moment, written in New York time): nothing more goes out.
    code, out, err = bot(
        "send", "--now", f"{announce - timedelta(hours=5):%Y-%m-%dT%H:%M:%S}-05:00"
    )
    assert (code, out, err) == (0, "", "")
    assert smtp_server.accepted == 1 and len(x_server.requests) == 1

    code, out, err = bot("plan", "--now", iso(announce), "--json")
    assert code == 0, err
    states = {(r["notice"], r["channel"]): r for r in json_lines(out)}
    assert {k: r["status"] for k, r in states.items()} == {
        ("announce", "email"): "sent",
        ("announce", "x"): "sent",
        ("reminder", "email"): "planned",
        ("reminder", "x"): "planned",
        ("starting", "email"): "planned",
        ("starting", "x"): "planned",
    }
    assert states[("reminder", "x")]["due_at"] == iso(reminder)
    assert states[("starting", "email")]["due_at"] == iso(starting)
    assert isinstance(states[("announce", "x")]["id"], int)

    for notice, due in (("reminder", reminder), ("starting", starting)):
        records = send(bot, due)
        assert sorted((r["notice"], r["channel"], r["status"]) for r in records) == [
            (notice, "email", "sent"),
            (notice, "x", "sent"),
        ]
    assert smtp_server.accepted == 3 and len(x_server.posts) == 3
    assert len(x_server.requests) == 3
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert len(set(subjects)) == 3, subjects

    rows = ledger(bot)
    assert sorted((r["notice"], r["channel"], r["status"]) for r in rows) == [
        (n, c, "sent") for n in ("announce", "reminder", "starting") for c in ("email", "x")
    ]
    ids = [r["id"] for r in rows]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 6
    assert {r["external_id"] for r in rows if r["channel"] == "x"} == {
        p.post_id for p in x_server.posts
    }


def test_concurrent_passes_send_each_delivery_once(
    bot: BotCli,
    imported: Importer,
    start: datetime,
    smtp_server: SmtpStandIn,
    x_server: XStandIn,
) -> None:
    imported(a_session("diffucoder", start))
    announce = start - timedelta(days=7)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: bot("send", "--now", iso(announce), "--json"), range(4)))
    records = []
    for code, out, err in results:
        assert code == 0, err
        assert "Traceback" not in err
        records.extend(json_lines(out))
    assert sorted((r["channel"], r["status"]) for r in records) == [
        ("email", "sent"),
        ("x", "sent"),
    ]
    assert smtp_server.accepted == 1 and len(x_server.requests) == 1


# ---------------------------------------------------------------- dry run


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQL: both engines in-process
def test_dry_run_prints_the_full_text_and_touches_nothing(
    bot: BotCli,
    imported: Importer,
    start: datetime,
    smtp_server: SmtpStandIn,
    x_server: XStandIn,
) -> None:
    imported(a_session("diffucoder", start))
    announce = start - timedelta(days=7)
    db_file = bot.env["DATABASE_URL"].removeprefix("sqlite:///")
    before = Path(db_file).read_bytes() if bot.env["DATABASE_URL"].startswith("sqlite") else b""

    code, out, err = bot("send", "--dry-run", "--now", iso(announce))
    assert code == 0, err
    if before:
        assert Path(db_file).read_bytes() == before
    assert "Traceback" not in out + err
    assert out.count("would_send") == 2
    assert TITLE in out and ABSTRACT in out and MEETING in out
    assert smtp_server.messages == [] and x_server.requests == []
    assert ledger(bot) == []

    # What the dry run printed is exactly what then goes out.
    records = send(bot, announce)
    assert {r["status"] for r in records} == {"sent"}
    post = x_server.posts[0].text or ""
    assert "\n".join(f"    {line}".rstrip() for line in post.splitlines()) in "\n".join(
        line.rstrip() for line in out.splitlines()
    )
    body = smtp_server.messages[0].message.get_body(("plain",))
    assert body is not None
    for line in body.get_content().splitlines():
        assert f"    {line}".rstrip() in out
    assert f"Subject: {smtp_server.messages[0].message['Subject']}" in out


def test_dry_run_creates_no_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "absent.db"
    bot = BotCli(tmp_path / "cwd", {"DATABASE_URL": f"sqlite:///{db}"})
    code, out, err = bot("send", "--dry-run", "--now", "2026-12-20T15:00:00Z")
    assert code == 0, err
    assert "Traceback" not in out + err
    assert not db.exists()
    assert list((tmp_path / "cwd").iterdir()) == []


# ---------------------------------------------------------------- retries and failures


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQL: both engines in-process
def test_transient_failures_back_off_then_send(
    bot: BotCli,
    imported: Importer,
    start: datetime,
    smtp_server: SmtpStandIn,
    x_server: XStandIn,
) -> None:
    imported(a_session("diffucoder", start))
    t = start - timedelta(days=7)
    x_server.set_fault("status_503")
    smtp_server.mode = "reply_451"

    records = by_channel(send(bot, t))
    assert records["x"]["status"] == "retrying" and "503" in records["x"]["reason"]
    assert records["email"]["status"] == "retrying" and "451" in records["email"]["reason"]
    assert len(x_server.requests) == 1
    smtp_server.mode = "ok"

    # Before the first backoff (1m) is over: nobody is called.
    assert send(bot, t + timedelta(seconds=30)) == []
    assert len(x_server.requests) == 1 and smtp_server.accepted == 0

    # At +1m both are tried again: the email goes out, X answers 503 once more (next: +2m).
    records = by_channel(send(bot, t + timedelta(minutes=1)))
    assert records["email"]["status"] == "sent"
    assert records["x"]["status"] == "retrying"
    assert len(x_server.requests) == 2 and smtp_server.accepted == 1
    rows = by_channel(ledger(bot))
    assert rows["email"]["status"] == "sent"
    assert rows["x"]["status"] == "retrying" and "503" in rows["x"]["reason"]

    assert send(bot, t + timedelta(minutes=2, seconds=59)) == []
    assert len(x_server.requests) == 2
    x_server.set_fault("ok")
    records = send(bot, t + timedelta(minutes=3))
    assert [(r["channel"], r["status"]) for r in records] == [("x", "sent")]
    assert len(x_server.posts) == 1 and smtp_server.accepted == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the backoff path runs on both
def test_rate_limit_waits_for_the_reset_time(
    bot: BotCli,
    imported: Importer,
    start: datetime,
    x_server: XStandIn,
) -> None:
    imported(a_session("diffucoder", start))
    t = start - timedelta(days=7)
    reset = t + timedelta(minutes=10)
    x_server.set_fault("status_429", reset_epoch=int(reset.timestamp()))

    records = by_channel(send(bot, t, "--channel", "x"))
    assert records["x"]["status"] == "retrying" and "429" in records["x"]["reason"]
    assert len(x_server.requests) == 1
    x_server.set_fault("ok")
    # The usual backoff would allow +1m; the reset time says +10m.
    assert send(bot, t + timedelta(minutes=9, seconds=59), "--channel", "x") == []
    assert len(x_server.requests) == 1
    records = send(bot, reset, "--channel", "x")
    assert [(r["channel"], r["status"]) for r in records] == [("x", "sent")]
    assert len(x_server.posts) == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQL: both engines in-process
def test_refused_for_good_fails_at_once_and_is_never_retried(
    bot: BotCli,
    imported: Importer,
    start: datetime,
    smtp_server: SmtpStandIn,
    x_server: XStandIn,
) -> None:
    imported(a_session("diffucoder", start))
    t = start - timedelta(days=7)
    x_server.set_fault("status_401", times=1)
    smtp_server.mode = "reply_550"

    records = by_channel(send(bot, t, code=1))
    assert records["x"]["status"] == "failed" and "401" in records["x"]["reason"]
    assert records["email"]["status"] == "failed" and "550" in records["email"]["reason"]
    assert len(x_server.requests) == 1
    smtp_server.mode = "ok"  # were it tried again, it would now go through

    assert send(bot, t + timedelta(minutes=1)) == []  # when a retry would have come
    assert len(x_server.requests) == 1 and smtp_server.accepted == 0
    rows = by_channel(ledger(bot))
    assert rows["x"]["status"] == rows["email"]["status"] == "failed"
    assert "401" in rows["x"]["reason"] and "550" in rows["email"]["reason"]


def test_over_limit_post_fails_without_reaching_x(
    tmp_path: Path, sqlite_url: str, x_server: XStandIn, start: datetime
) -> None:
    templates = tmp_path / "templates"
    (templates / "x").mkdir(parents=True)
    (templates / "x" / "announce.txt.j2").write_text('{{ "a" * 400 }}\n', encoding="utf-8")
    bot = BotCli(
        tmp_path / "cwd",
        X_KEYS
        | {
            "X_API_BASE_URL": x_server.base_url,
            "DATABASE_URL": sqlite_url,
            "CHANNELS": "x",
            "TEMPLATES_DIR": str(templates),
        },
    )
    (tmp_path / "s.yaml").write_text(session_yaml([a_session("long", start)]), encoding="utf-8")
    assert bot("sessions", "import", str(tmp_path / "s.yaml"))[0] == 0
    t = start - timedelta(days=7)

    code, out, err = bot("check", "--now", iso(t))
    assert code == 1, (out, err)
    assert "280" in out + err

    [record] = send(bot, t, code=1)
    assert record["status"] == "failed"
    assert "400" in record["reason"] and "280" in record["reason"]
    assert x_server.requests == []
    [row] = ledger(bot)
    assert row["status"] == "failed" and "400" in row["reason"]


# ---------------------------------------------------------------- late and past sessions


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_pass_after_the_start_reports_missed(
    bot: BotCli, imported: Importer, start: datetime, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    """No pass ran all week (a worker was down): nothing goes out late, and send exits 1."""
    imported(a_session("diffucoder", start))
    records = send(bot, start + timedelta(minutes=5), code=1)
    got = {(r["notice"], r["channel"]): r["status"] for r in records}
    assert got[("starting", "email")] == got[("starting", "x")] == "missed"
    assert set(got.values()) <= {"missed", "skipped"}
    assert smtp_server.messages == [] and x_server.requests == []
    code, out, err = bot("plan", "--now", iso(start + timedelta(minutes=6)), "--json")
    assert code == 0, err
    planned = {(r["notice"], r["channel"]): r["status"] for r in json_lines(out)}
    # `plan` looks back 7 days: the announce (due 7 days and 6 minutes ago) is out of view.
    assert planned == {k: v for k, v in got.items() if k[0] != "announce"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQL: both engines in-process
def test_session_added_late_sends_only_the_nearest_reminder(
    bot: BotCli, imported: Importer, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    # Imported (real clock) 2 hours before its start; the pass runs 30 minutes before it.
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    imported(a_session("late", start))
    records = send(bot, start - timedelta(minutes=30))
    got = sorted((r["notice"], r["channel"], r["status"]) for r in records)
    assert got == [
        ("announce", "email", "skipped"),
        ("announce", "x", "skipped"),
        ("reminder", "email", "skipped"),
        ("reminder", "x", "skipped"),
        ("starting", "email", "sent"),
        ("starting", "x", "sent"),
    ]
    for r in records:
        if r["status"] == "skipped":
            assert "superseded" in r["reason"]
    assert smtp_server.accepted == 1 and len(x_server.posts) == 1
    # Nothing had gone out before: the one notice carries the full details (first=True).
    body = smtp_server.messages[0].message.get_body(("plain",))
    assert body is not None and ABSTRACT in body.get_content()
    statuses = sorted((r["notice"], r["channel"], r["status"]) for r in ledger(bot))
    assert statuses == got


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQL: both engines in-process
def test_importing_past_sessions_sends_and_plans_nothing(
    bot: BotCli, imported: Importer, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    yesterday = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    imported(a_session("yesterday", yesterday))
    code, out, err = bot("send", "--json")
    assert (code, out) == (0, ""), err
    code, out, err = bot("plan", "--json")
    assert (code, out) == (0, ""), err
    assert smtp_server.messages == [] and x_server.requests == []


# ---------------------------------------------------------------- preview, export


def test_preview_and_the_console_channel(tmp_path: Path, sqlite_url: str, start: datetime) -> None:
    bot = BotCli(tmp_path / "cwd", {"DATABASE_URL": sqlite_url, "CHANNELS": "console"})
    (tmp_path / "s.yaml").write_text(session_yaml([a_session("talk", start)]), encoding="utf-8")
    assert bot("sessions", "import", str(tmp_path / "s.yaml"))[0] == 0

    code, out, err = bot("preview", "talk", "--now", iso(start - timedelta(days=8)))
    assert code == 0, err
    assert TITLE in out and MEETING in out
    for notice in ("announce", "reminder", "starting"):
        assert f"=== {notice} · console" in out

    html = tmp_path / "out.html"
    email_env = {
        "CHANNELS": "email",
        "SMTP_HOST": "127.0.0.1",
        "EMAIL_FROM": "bot@example.org",
        "EMAIL_TO": "list@example.org",
    }
    code, out, err = bot(
        "preview", "talk", "--channel", "email", "--html", str(html), env=email_env
    )
    assert code == 0, err
    assert "Subject:" in out and TITLE in out
    text = html.read_text(encoding="utf-8")
    assert "<html" in text.lower() and "DiffuCoder: Masked Diffusion &amp; Code Generation" in text

    # With --json, stdout stays pure JSON Lines: the console channel writes to stderr.
    code, out, err = bot("send", "--now", iso(start - timedelta(days=7)), "--json")
    assert code == 0, err
    [record] = json_lines(out)
    assert (record["channel"], record["status"]) == ("console", "sent")
    assert TITLE in err


def test_preview_says_when_nothing_is_left_to_send(
    tmp_path: Path, sqlite_url: str, start: datetime
) -> None:
    bot = BotCli(
        tmp_path / "cwd", {"DATABASE_URL": sqlite_url, "CHANNELS": "console", "REMINDERS": "a=7d"}
    )
    (tmp_path / "s.yaml").write_text(session_yaml([a_session("talk", start)]), encoding="utf-8")
    assert bot("sessions", "import", str(tmp_path / "s.yaml"))[0] == 0
    after = iso(start + timedelta(days=1))
    code, out, err = bot("preview", "talk", "--now", after)
    assert (code, err) == (0, "")
    assert out == (
        f"preview: nothing left to send for talk at {after}; "
        f"to see its messages, try --now {iso(start - timedelta(days=7))}\n"
    )
    assert bot("send", "--now", iso(start - timedelta(days=7)))[0] == 0
    code, out, _ = bot("preview", "talk", "--now", iso(start - timedelta(days=6)))
    assert out.endswith("; `bot deliveries --session talk` shows what went out\n")


def test_preview_shows_a_change_notice_that_is_due(
    tmp_path: Path, sqlite_url: str, start: datetime
) -> None:
    bot = BotCli(tmp_path / "cwd", {"DATABASE_URL": sqlite_url, "CHANNELS": "console"})
    (tmp_path / "s.yaml").write_text(session_yaml([a_session("talk", start)]), encoding="utf-8")
    assert bot("sessions", "import", str(tmp_path / "s.yaml"))[0] == 0
    assert bot("send", "--now", iso(start - timedelta(days=7)))[0] == 0
    assert bot("sessions", "cancel", "talk")[0] == 0
    code, out, err = bot("preview", "talk", "--notice", "cancelled")
    assert code == 0, err
    assert "=== cancelled · console (first=False) ===" in out and "will not take place" in out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQL: both engines in-process
def test_export_round_trips(bot: BotCli, tmp_path: Path, start: datetime) -> None:
    sessions = [
        a_session("utc-instant", start),
        a_session("cancelled-one", start + timedelta(days=1), status="cancelled"),
        {
            "id": "local-time",
            "title": "Scaling Diffusion Language Models: “beyond” 8B — ünïcode",
            "starts_at": "2027-03-15 10:00",
            "timezone": "America/New_York",
            "duration": "1h30m",
            "speakers": [
                {
                    "name": "Priya Raman",
                    "affiliation": "UW",
                    "x": "@priya",
                    "bluesky": "priya.bsky.social",
                    "mastodon": "@priya@sigmoid.social",
                    "url": "https://example.org/priya",
                },
                {"name": "Daniel Okafor"},
            ],
            "abstract": "Line one.\n\n  Indented line two: with a colon.\n",
            "papers": [{"title": "LLaDA", "url": "https://arxiv.org/abs/2502.09992"}],
            "meeting_url": "https://example.zoom.us/j/1",
            "recording_url": "https://youtube.com/watch?v=abc",
        },
        {"id": "minimal", "title": "Minimal", "starts_at": "2026-11-01T01:30:00-04:00"},
    ]
    first = tmp_path / "first.yaml"
    first.write_text(session_yaml(sessions), encoding="utf-8")
    code, out, err = bot("sessions", "import", str(first))
    assert code == 0, err
    assert "4 added" in out

    exported = tmp_path / "exported.yaml"
    code, _, err = bot("sessions", "export", str(exported))
    assert code == 0, err
    code, out, err = bot("sessions", "import", str(exported))
    assert code == 0, err
    assert f"{exported}: 0 added, 0 updated, 4 unchanged" in out
