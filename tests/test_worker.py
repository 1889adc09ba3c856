"""The worker: in-process passes with a frozen clock, and a real `bot run` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete

from bot.config import Reminder, Settings
from bot.store import tables
from bot.store.db import ensure_schema, make_engine, write_transaction
from bot.testing import FrozenClock, RecordingNotifier
from bot.worker import Worker, latest_heartbeat
from tests.support.data import add_session, deliveries

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
START = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)


def test_tick_sends_what_is_due_and_writes_a_heartbeat(engine: Engine) -> None:
    add_session(engine, "s1", START)
    settings = Settings(channels=("x",), reminders=(Reminder("announce", 7 * D, ("x",)),))
    clock = FrozenClock(START - 7 * D)
    worker = Worker(engine, settings, clock)
    x = RecordingNotifier()
    worker.dispatcher._notifiers["x"] = x
    worker.tick()
    assert [m.key.notice for m in x.sent] == ["announce"]
    assert latest_heartbeat(engine) == clock.now


def test_tick_survives_a_database_that_went_away(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/gone/bot.db")  # the folder does not exist
    worker = Worker(engine, Settings(reminders=(Reminder("a", D, ("console",)),)))
    worker.tick()  # logs, does not raise
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [getattr(r, "event", None) for r in errors] == ["database_error"]
    (tmp_path / "gone").mkdir()
    ensure_schema(engine)
    worker.tick()
    assert latest_heartbeat(engine) is not None


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "CHANNELS": "console",
        "REMINDERS": "announce=7d",
        "POLL_INTERVAL": "60s",
    }
    env.update(extra)
    return env


def _wait_for(predicate, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    limit = time.monotonic() + seconds
    while time.monotonic() < limit:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_run_sends_at_the_due_time_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    ensure_schema(engine)
    # Due 4 s from now; the poll interval is 60 s, so only the wake-up at the due time sends it.
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    add_session(engine, "soon", due + 7 * D, since=due - H)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(lambda: any(d.status == "sent" for d in deliveries(engine)), 20)
        (row,) = deliveries(engine)
        assert row.sent_at is not None
        lateness = (row.sent_at - row.due_at).total_seconds()
        assert 0 <= lateness < 2, lateness
        health = subprocess.run(
            [sys.executable, "-m", "bot", "health"],
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
        )
        assert health.returncode == 0, health.stdout + health.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=25)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "--- soon · announce · console ---" in out
    assert latest_heartbeat(engine) is None  # a clean stop removes its heartbeat


def test_run_refuses_to_start_with_a_broken_template(tmp_path: Path) -> None:
    templates = tmp_path / "tpl" / "console"
    templates.mkdir(parents=True)
    (templates / "default.txt.j2").write_text("{{ session.title }\n")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=_env(tmp_path, TEMPLATES_DIR=str(tmp_path / "tpl")),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "console/default.txt.j2" in result.stderr
    assert "Traceback" not in result.stderr


def test_health_is_1_without_a_worker(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "health"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "no worker heartbeat" in result.stdout


def test_one_scheduler_job_per_upcoming_due_time_rebuilt_each_pass(engine: Engine) -> None:
    add_session(engine, "s1", START)
    add_session(engine, "s2", START + 2 * H)
    settings = Settings(
        channels=("x",),
        reminders=(Reminder("reminder", D, ("x",)), Reminder("starting", H, ("x",))),
    )
    clock = FrozenClock(START - 36 * H)  # both sessions inside the window a pass reads
    worker = Worker(engine, settings, clock)
    worker._scheduler = Worker.make_scheduler()
    worker._scheduler.start(paused=True)  # inspect the jobs; run none
    try:
        worker.tick()
        due = sorted(j.next_run_time for j in worker._scheduler.get_jobs())
        assert due == [START - D, START + 2 * H - D, START - H, START + H]
        with write_transaction(engine) as conn:
            conn.execute(delete(tables.sessions).where(tables.sessions.c.id == "s2"))
        worker.tick()
        due = sorted(j.next_run_time for j in worker._scheduler.get_jobs())
        assert due == [START - D, START - H]
    finally:
        worker._scheduler.shutdown(wait=False)


def test_a_second_signal_exits_at_once_while_a_send_hangs(tmp_path: Path, x_server) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    ensure_schema(engine)
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    add_session(engine, "hung", due + 7 * D, since=due - H)
    x_server.delay_seconds = 60  # the post is taken, the answer never comes in time
    env = _env(
        tmp_path,
        CHANNELS="x",
        X_API_KEY="k",
        X_API_KEY_SECRET="ks",
        X_ACCESS_TOKEN="t",
        X_ACCESS_TOKEN_SECRET="ts",
        X_API_BASE_URL=x_server.base_url,
        X_TIMEOUT="120",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")))
    reader.start()
    try:
        assert _wait_for(lambda: len(x_server.received) == 1, 20)  # the send is in flight
        proc.send_signal(signal.SIGINT)
        assert _wait_for(lambda: any("finishing sends in flight" in x for x in lines), 10)
        assert proc.poll() is None  # the first signal drains; it does not exit
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    assert proc.returncode == 130
    assert any("second signal" in line for line in lines)
    assert [d.status for d in deliveries(engine)] == ["sending"]  # the sweep will settle it


def test_run_starts_despite_an_over_long_message_and_fails_only_that_one(
    tmp_path: Path, x_server
) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    ensure_schema(engine)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    add_session(engine, "fits", due + 7 * D, since=due - H)
    add_session(engine, "long", due + 7 * D, since=due - H, title="Masked diffusion " * 30)
    env = _env(
        tmp_path,
        CHANNELS="x",
        X_API_KEY="k",
        X_API_KEY_SECRET="ks",
        X_ACCESS_TOKEN="t",
        X_ACCESS_TOKEN_SECRET="ts",
        X_API_BASE_URL=x_server.base_url,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        settled = lambda: {d.status for d in deliveries(engine)} == {"sent", "failed"}  # noqa: E731
        assert _wait_for(settled, 20)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=25)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "session long: announce on x: message is" in err  # reported at start, at ERROR
    by_session = {d.session_id: (d.status, d.reason or "") for d in deliveries(engine)}
    assert by_session["fits"] == ("sent", "")
    assert by_session["long"][0] == "failed" and "over the x limit of 280" in by_session["long"][1]
    assert len(x_server.posts) == 1
