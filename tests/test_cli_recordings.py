"""`bot recordings …` through the real command line, against a YouTube feed stand-in on
127.0.0.1: the certain match applied and announced once, the probable one held until accepted,
the rejected one never again, a feed that cannot be read changing nothing (one line, exit 1),
the configuration errors (one line each, exit 2), `check` and `check --online`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import BotCli, iso, json_lines, session_yaml
from tests.support.discordapi import DiscordStandIn, discord_server
from tests.support.youtubefeed import CHANNEL_ID, FeedStandIn, FeedVideo, youtube_feed

__all__ = ["discord_server", "youtube_feed"]

H = timedelta(hours=1)
D = timedelta(days=1)
# `sessions import` and `recordings accept` read the real clock: the sessions took place two days
# before it, and each test's `--now` (the `now` fixture) is a minute after its own start.
START = datetime.now(UTC).replace(second=0, microsecond=0) - 2 * D
SITE = "https://dlm.example.org"
SESSIONS = [
    {"id": "diffucoder", "title": "DiffuCoder: Masked Diffusion Models for Code Generation",
     "starts_at": START, "speakers": [{"name": "Shansan Gong"}]},
    {"id": "llada", "title": "Large Language Diffusion Models", "starts_at": START - 7 * D,
     "speakers": [{"name": "Shen Nie"}]},
]  # fmt: skip
CERTAIN = FeedVideo("Xq3kL9vB2mA", "Reading group #7", START + 3 * H, "session:diffucoder")
PROBABLE = FeedVideo(
    "Lm4nP0qR7sT", "Large Language Diffusion Models (Shen Nie)", START - 7 * D + 2 * H
)


@pytest.fixture
def now() -> datetime:
    """A minute after the real now, when the test starts (later than its `sessions import`)."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)


@pytest.fixture
def bot(tmp_path: Path, youtube_feed: FeedStandIn) -> BotCli:
    cli = BotCli(
        tmp_path,
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
            "CHANNELS": "console",
            "REMINDERS": "reminder=1d",
            "SITE_URL": SITE,
            "YOUTUBE_CHANNEL_ID": CHANNEL_ID,
            "YOUTUBE_FEED_URL": youtube_feed.url,
        },
    )
    (tmp_path / "sessions.yaml").write_text(session_yaml(SESSIONS), encoding="utf-8")
    code, _, err = cli("sessions", "import", "sessions.yaml")
    assert code == 0, err
    return cli


def state(bot: BotCli) -> tuple[str, str, str]:
    """What a sync may change: the sessions, the matches, the ledger."""
    outputs = []
    for args in (("sessions", "export"), ("recordings", "--json"), ("deliveries", "--json")):
        code, out, err = bot(*args)
        assert code == 0, err
        outputs.append(out)
    return outputs[0], outputs[1], outputs[2]


def recording_sends(bot: BotCli, now: datetime) -> list[dict[str, object]]:
    code, out, err = bot("send", "--now", iso(now), "--json")
    assert code == 0, err
    return [r for r in json_lines(out) if r["notice"] == "recording"]


def test_a_certain_match_is_applied_and_its_notice_goes_out_once(
    now: datetime, bot: BotCli, youtube_feed: FeedStandIn
) -> None:
    youtube_feed.add(CERTAIN)
    code, out, err = bot("recordings", "sync", "--now", iso(now))
    assert code == 0, err
    assert f"applied: diffucoder <- {CERTAIN.video_id} (its description holds session:)" in out
    assert "feed: 1 videos, 1 new; 1 applied" in out
    [sent] = recording_sends(bot, now + H)
    assert sent["status"] == "sent" and CERTAIN.url in str(sent["text"])
    # Read again, sent again: nothing.
    code, out, _ = bot("recordings", "sync", "--now", iso(now + 2 * H))
    assert code == 0 and out.strip().endswith("nothing changed")
    assert recording_sends(bot, now + 3 * H) == []
    code, out, _ = bot("sessions", "show", "diffucoder")
    assert f"recording_url: {CERTAIN.url}" in out


def test_the_recording_goes_out_once_on_every_recording_channel(
    now: datetime, bot: BotCli, youtube_feed: FeedStandIn, discord_server: DiscordStandIn
) -> None:
    youtube_feed.add(CERTAIN)
    env = {"CHANNELS": "console,discord", "DISCORD_WEBHOOK_URL": discord_server.webhook_url}
    code, _, err = bot("recordings", "sync", "--now", iso(now), env=env)
    assert code == 0, err
    for hours in (1, 2):
        code, out, err = bot("send", "--now", iso(now + hours * H), "--json", env=env)
        assert code == 0, err
        sent = sorted(r["channel"] for r in json_lines(out) if r["notice"] == "recording")
        assert sent == (["console", "discord"] if hours == 1 else [])
    [posted] = discord_server.messages
    assert CERTAIN.url in posted.content + str(posted.embeds)


def test_a_probable_match_waits_for_accept_and_a_rejected_one_never_returns(
    now: datetime, bot: BotCli, youtube_feed: FeedStandIn
) -> None:
    youtube_feed.add(PROBABLE)
    code, out, err = bot("recordings", "sync", "--now", iso(now))
    assert code == 0, err
    assert f"waiting: llada <- {PROBABLE.video_id} probable" in out
    assert f"`bot recordings accept llada {PROBABLE.video_id}`" in out
    [listed] = json_lines(bot("recordings", "--json")[1])
    assert (listed["status"], listed["kind"], listed["session"]) == ("waiting", "probable", "llada")
    assert listed["score"] >= 85 and "nie named" in listed["why"]
    code, out, _ = bot("check", "--now", iso(now))
    assert code == 1 and f"recordings: session llada may be video {PROBABLE.video_id}" in out
    assert recording_sends(bot, now + H) == []  # held

    code, out, err = bot("recordings", "reject", "llada", PROBABLE.video_id)
    assert code == 0, err
    assert out.strip() == f"llada: {PROBABLE.video_id} rejected; it will not be proposed again"
    code, out, _ = bot("recordings", "sync", "--now", iso(now + 2 * H))
    assert code == 0 and "waiting:" not in out and "0 still waiting" in out
    assert [r["status"] for r in json_lines(bot("recordings", "--json")[1])] == ["rejected"]

    code, out, err = bot("recordings", "accept", "llada", PROBABLE.video_id)
    assert (code, out.strip()) == (0, f"llada: recording_url set from {PROBABLE.video_id}"), err
    [sent] = recording_sends(bot, now + 3 * H)
    assert PROBABLE.url in str(sent["text"])


@pytest.mark.parametrize(
    ("fault", "options", "reason"),
    [
        ("status", {"status": 404}, "answered 404 Not Found"),
        ("status", {"status": 500}, "answered 500 Internal Server Error"),
        ("truncated", {}, "the feed is not well-formed XML"),
        pytest.param("hang", {}, "did not answer within 10s", marks=pytest.mark.slow),
    ],
)
def test_a_feed_that_cannot_be_read_is_one_line_exit_1_and_changes_nothing(
    now: datetime,
    bot: BotCli,
    youtube_feed: FeedStandIn,
    fault: str,
    options: dict[str, int],
    reason: str,
) -> None:
    youtube_feed.add(CERTAIN, PROBABLE)
    before = state(bot)
    youtube_feed.set_fault(fault, **options)
    code, out, err = bot("recordings", "sync", "--now", iso(now))
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith("recordings sync: the feed could not be read (")
    assert reason in line and line.endswith("; nothing changed")
    assert "Traceback" not in err and "channel_id" not in line
    assert state(bot) == before


def test_a_dry_run_reads_the_feed_and_changes_nothing(
    now: datetime, bot: BotCli, youtube_feed: FeedStandIn
) -> None:
    youtube_feed.add(CERTAIN, PROBABLE)
    before = state(bot)
    code, out, err = bot("recordings", "sync", "--dry-run", "--now", iso(now))
    assert code == 0, err
    assert f"would be applied: diffucoder <- {CERTAIN.video_id}" in out
    assert f"would be waiting: llada <- {PROBABLE.video_id}" in out
    assert state(bot) == before
    assert len(youtube_feed.requests) == 1


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"YOUTUBE_CHANNEL_ID": None, "YOUTUBE_FEED_URL": None},
         "YOUTUBE_CHANNEL_ID: not set (recordings are read from that channel's feed)"),
        ({"YOUTUBE_CHANNEL_ID": "my-channel"},
         "YOUTUBE_CHANNEL_ID: must be a channel id: UC and 22 letters, digits, - or _ "
         "(my-channel)"),
        ({"YOUTUBE_FEED_URL": "ftp://feeds.example/k3y?token=s3cret"},
         "YOUTUBE_FEED_URL: must be an http(s) URL with a host (ftp://feeds.example)"),
        ({"YOUTUBE_CHANNEL_ID": None},
         "YOUTUBE_FEED_URL: set without YOUTUBE_CHANNEL_ID (recordings need it)"),
        ({"RECORDINGS_POLL": "30s"}, "RECORDINGS_POLL: must be from 1m to 1d (30s)"),
        ({"RECORDINGS_AUTO": "sometimes"},
         "RECORDINGS_AUTO: must be one of on, off, true, false, 1, 0 (sometimes)"),
    ],
)  # fmt: skip
def test_bad_recordings_variables_are_one_line_exit_2(
    now: datetime, bot: BotCli, youtube_feed: FeedStandIn, env: dict[str, str | None], line: str
) -> None:
    youtube_feed.add(CERTAIN)
    code, out, err = bot("recordings", "sync", "--now", iso(now), env=env)
    assert (code, out, err.splitlines()) == (2, "", [line])
    assert youtube_feed.requests == []


def test_a_channel_problem_stops_a_sync_that_would_apply_but_not_a_dry_run(
    now: datetime, bot: BotCli, youtube_feed: FeedStandIn
) -> None:
    youtube_feed.add(CERTAIN)
    broken = {"CHANNELS": "console,discord", "DISCORD_WEBHOOK_URL": None}
    code, _, err = bot("recordings", "sync", "--now", iso(now), env=broken)
    assert code == 2
    assert err.splitlines() == ["DISCORD_WEBHOOK_URL: required by the discord channel (missing)"]
    assert youtube_feed.requests == []
    code, out, err = bot("recordings", "sync", "--dry-run", "--now", iso(now), env=broken)
    assert code == 0 and "would be applied" in out and "`bot check` lists them" in err


def test_check_online_reads_the_feed(now: datetime, bot: BotCli, youtube_feed: FeedStandIn) -> None:
    code, out, err = bot("check", "--online", "--now", iso(now))
    assert (code, out.strip()) == (0, "ok"), err
    assert len(youtube_feed.requests) == 1
    youtube_feed.set_fault("status", status=500)
    code, out, _ = bot("check", "--online", "--now", iso(now))
    assert code == 1
    assert out.splitlines() == [
        "recordings: the YouTube feed cannot be read "
        f"({youtube_feed.origin} answered 500 Internal Server Error)"
    ]


def test_the_website_lists_the_latest_videos_and_links_the_recording(
    now: datetime, bot: BotCli, youtube_feed: FeedStandIn, tmp_path: Path
) -> None:
    youtube_feed.add(CERTAIN, FeedVideo("Zz9yX8wV7uT", "Channel trailer", START - 60 * D))
    site = tmp_path / "site"
    code, _, err = bot("recordings", "sync", "--now", iso(now), env={"SITE_DIR": str(site)})
    assert code == 0, err
    index = (site / "index.html").read_text(encoding="utf-8")
    latest = index[index.index('id="recordings-heading">Latest videos') :]
    assert latest.index(CERTAIN.url) < latest.index("https://www.youtube.com/watch?v=Zz9yX8wV7uT")
    assert 'href="sessions/diffucoder/">the session</a>' in latest
    page = (site / "sessions" / "diffucoder" / "index.html").read_text(encoding="utf-8")
    assert CERTAIN.url in page


@pytest.mark.slow
def test_syncs_racing_each_other_apply_once_and_announce_once(
    now: datetime, db_url: str, tmp_path: Path, youtube_feed: FeedStandIn
) -> None:
    """Six `recordings sync` processes and two `send` passes at once, on SQLite and PostgreSQL:
    one recording_url change, one match applied, one recording notice per channel."""
    import threading

    from sqlalchemy import create_engine, select

    from bot.store import tables

    env = {
        "DATABASE_URL": db_url,
        "CHANNELS": "console",
        "REMINDERS": "reminder=1d",
        "YOUTUBE_CHANNEL_ID": CHANNEL_ID,
        "YOUTUBE_FEED_URL": youtube_feed.url,
    }
    cli = BotCli(tmp_path, env)
    assert cli("db", "upgrade")[0] == 0
    (tmp_path / "sessions.yaml").write_text(session_yaml(SESSIONS), encoding="utf-8")
    assert cli("sessions", "import", "sessions.yaml")[0] == 0
    youtube_feed.add(CERTAIN, PROBABLE)
    results: list[tuple[int, str, str]] = []
    syncs = [("recordings", "sync", "--now", iso(now))] * 6
    runs = syncs + [("send", "--now", iso(now), "--json")] * 2
    threads = [threading.Thread(target=lambda a=a: results.append(cli(*a))) for a in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r[0] for r in results] == [0] * len(runs), [r[2] for r in results]
    sent = recording_sends(cli, now + H)  # whatever the racing passes did not send yet
    engine = create_engine(db_url)
    with engine.connect() as conn:
        c, d, m = tables.session_changes.c, tables.deliveries.c, tables.recording_matches.c
        changes = conn.execute(
            select(c.source).where(c.session_id == "diffucoder", c.field == "recording_url")
        ).all()
        notices = conn.execute(
            select(d.status).where(d.session_id == "diffucoder", d.notice == "recording")
        ).all()
        matches = conn.execute(select(m.session_id, m.video_id, m.status)).all()
    engine.dispose()
    assert [tuple(r) for r in changes] == [("youtube",)]
    assert [tuple(r) for r in notices] == [("sent",)]
    assert sorted(tuple(r) for r in matches) == [
        ("diffucoder", CERTAIN.video_id, "applied"),
        ("llada", PROBABLE.video_id, "waiting"),
    ]
    assert len(sent) <= 1


@pytest.mark.slow
def test_the_worker_reads_the_feed_applies_and_announces_and_survives_an_outage(
    tmp_path: Path, youtube_feed: FeedStandIn
) -> None:
    """`bot run` reads the feed when it starts: a feed answering 500 is a warning and the worker
    keeps running; once a certain match is applied, the worker sends its recording notice at
    once (not at the next POLL_INTERVAL), and a stop signal still ends it cleanly."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    from tests.support.cli import base_env

    env = base_env() | {
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "CHANNELS": "console",
        "REMINDERS": "reminder=1d",
        "POLL_INTERVAL": "1h",
        "YOUTUBE_CHANNEL_ID": CHANNEL_ID,
        "YOUTUBE_FEED_URL": youtube_feed.url,
    }
    cli = BotCli(tmp_path, env)
    (tmp_path / "sessions.yaml").write_text(session_yaml(SESSIONS), encoding="utf-8")
    assert cli("sessions", "import", "sessions.yaml")[0] == 0

    def wait_for(predicate, seconds: float = 20) -> bool:  # type: ignore[no-untyped-def]
        limit = time.monotonic() + seconds
        while time.monotonic() < limit:
            if predicate():
                return True
            time.sleep(0.1)
        return False

    def run_worker() -> tuple[subprocess.Popen[str], list[str]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []  # its log, as it comes
        stream = proc.stderr
        assert stream is not None
        threading.Thread(target=lambda: lines.extend(stream), daemon=True).start()
        return proc, lines

    youtube_feed.add(CERTAIN)
    youtube_feed.set_fault("status", status=500)
    proc, log = run_worker()
    try:
        assert wait_for(lambda: any("recordings: the feed could not be read" in x for x in log))
        assert wait_for(lambda: any("knows 0 upcoming sessions" in x for x in log))  # passes go on
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=25)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log
    [warning] = [line for line in log if "recordings: the feed could not be read" in line]
    assert "answered 500" in warning and "nothing changed, next try in 15m" in warning
    assert "recording" not in out

    youtube_feed.set_fault("ok")
    proc, log = run_worker()
    try:
        assert wait_for(lambda: "applied" in json_lines_or_empty(cli("recordings", "--json")[1]))
        assert wait_for(lambda: "sent" in [d["status"] for d in deliveries_of(cli)])
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=25)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log
    assert out.count("--- diffucoder · recording · console ---") == 1
    assert CERTAIN.url in out


def json_lines_or_empty(out: str) -> list[str]:
    return [str(r["status"]) for r in json_lines(out)]


def deliveries_of(cli: BotCli) -> list[dict[str, object]]:
    code, out, _ = cli("deliveries", "--json")
    return [r for r in json_lines(out) if r["notice"] == "recording"] if code == 0 else []
