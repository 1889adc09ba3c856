"""How a real `bot run` process ends (SPEC §7): within 20 s of SIGTERM, SIGINT or SIGHUP whatever
a channel does, with an abandoned send recorded `uncertain` and unsent claims given back; and with
a one-line error (exit 2) when its SQLite file is deleted or replaced under it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from bot.store.db import ensure_schema, make_engine
from bot.store.tables import heartbeats
from bot.worker import STOP_DEADLINE_SECONDS
from tests.reliability.support import wait_for
from tests.support.cli import base_env
from tests.support.data import add_session, deliveries
from tests.support.xapi import XStandIn

D, H = timedelta(days=1), timedelta(hours=1)
X_KEYS = {
    "X_API_KEY": "k-dummy",
    "X_API_KEY_SECRET": "ks-dummy",
    "X_ACCESS_TOKEN": "t-dummy",
    "X_ACCESS_TOKEN_SECRET": "ts-dummy",
}


class Worker:
    """A `bot run` process whose standard error is read line by line as it comes."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=folder,
            env=base_env() | env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        assert self.popen.stderr is not None
        stream = self.popen.stderr
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")))
        self.reader.start()

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self.reader.join(10)


def database(folder: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{folder}/bot.db"
    engine = make_engine(url)
    ensure_schema(engine)
    return url, engine


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_ends_the_worker_in_time_while_a_channel_hangs(
    tmp_path: Path, x_server: XStandIn, signum: signal.Signals
) -> None:
    url, engine = database(tmp_path)
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    for name in ("hang-a", "hang-b", "hang-c"):  # one batch: the first post hangs
        add_session(engine, name, due + 7 * D, since=due - H)
    x_server.delay_seconds = 120  # the post is published, the answer never comes in time
    worker = Worker(
        tmp_path,
        X_KEYS
        | {
            "DATABASE_URL": url,
            "CHANNELS": "x",
            "REMINDERS": "announce=7d",
            "X_API_BASE_URL": x_server.base_url,
            "X_TIMEOUT": "60",  # longer than the 20 s the stop may take
            "POLL_INTERVAL": "60s",
        },
    )
    try:
        wait_for(lambda: len(x_server.received) == 1, 30, "the first post to be in flight")
        signalled = time.monotonic()
        worker.popen.send_signal(signum)
        code = worker.popen.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        worker.stop()
    assert code == 0, worker.log()
    assert took <= 20, f"stopped {took:.1f}s after the signal"
    assert took <= STOP_DEADLINE_SECONDS + 0.5
    statuses = sorted((d.status, d.reason or "") for d in deliveries(engine))
    assert [s for s, _ in statuses] == ["pending", "pending", "uncertain"], statuses
    assert "the worker stopped before the channel answered" in statuses[2][1]
    assert len(x_server.received) == 1  # the given-back claims were never attempted
    with engine.connect() as conn:
        assert conn.execute(select(heartbeats)).all() == []
    log = worker.log()
    assert "recorded as uncertain" in log and "worker stopped" in log
    assert "Traceback" not in log


@pytest.mark.slow
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_worker_whose_sqlite_file_goes_away_stops_with_one_line(tmp_path: Path, how: str) -> None:
    url, engine = database(tmp_path)
    add_session(engine, "later", datetime.now(UTC) + 60 * D)
    worker = Worker(
        tmp_path,
        {"DATABASE_URL": url, "CHANNELS": "console", "POLL_INTERVAL": "1s"},
    )
    path = tmp_path / "bot.db"
    try:
        wait_for(lambda: "knows 0 upcoming" in worker.log(), 30, "the worker's first pass")
        if how == "deleted":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            shutil.copy(path, tmp_path / "copy.db")
            (tmp_path / "copy.db").replace(path)
        code = worker.popen.wait(timeout=30)
    finally:
        worker.stop()
    assert code == 2, worker.log()
    errors = [line for line in worker.lines if " ERROR " in line]
    assert len(errors) == 1, worker.log()
    assert f"DATABASE_URL: the SQLite file {path} was {how}" in errors[0]
    assert "Traceback" not in worker.log()
