"""The database goes away under a running worker, and comes back.

A `bot run` worker (POLL_INTERVAL=1s) reaches PostgreSQL through a small TCP proxy in this test.
Stopping the proxy closes every connection and refuses new ones: a real outage as the worker sees
it. While it lasts, a delivery falls due (its session was written straight to PostgreSQL, past
the proxy); the worker logs a database error at every poll and stays alive. When the proxy is
back on the same port, the worker resumes within a few poll intervals and sends that delivery,
exactly once. And when the outage hits a `bot send` between its post and the outcome's record,
the delivery ends `uncertain` (after the lease) and is never posted again.

SQLite has no variant here: there is no server to go away. Tests run as root, so `chmod 000` on
the database's folder blocks nothing, and a worker's pooled connection keeps its open file
descriptors to a moved or unlinked file, so the file "going away" is no outage either. The only
real SQLite failure a worker can meet, a lock held by another process, needs the 30 s busy timeout
to run out (tests/test_worker.py covers a database that is not there, in process).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from tests.reliability.support import (
    DAY,
    HOUR,
    add_sessions,
    bot_env,
    iso_ms,
    latest_beat,
    ledger,
    migrated,
    send,
    session_in,
    start,
    wait_for,
)
from tests.support.smtp import free_port
from tests.support.xapi import XStandIn

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

POLL = 1.0  # POLL_INTERVAL, seconds
RESUME_WITHIN = 5 * POLL  # after the database is back: "within a few poll intervals"
DB_ERROR = "database unavailable"


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`; stop() drops every connection and stops listening,
    start() listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.connections = 0  # accepted so far
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _serve(self, listener: socket.socket) -> None:
        """One thread: accepts, and pumps bytes both ways, until stopped."""
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, None)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    if key.fileobj.fileno() == -1:  # type: ignore[union-attr]
                        continue  # closed with its peer earlier in this batch
                    if key.data is None:
                        self._accept(listener, sel)
                    else:
                        self._pump(key.fileobj, key.data, sel)  # type: ignore[arg-type]
        finally:
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
            sel.close()

    def _accept(self, listener: socket.socket, sel: selectors.BaseSelector) -> None:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        self.connections += 1
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)

    def _pump(self, src: socket.socket, dst: socket.socket, sel: selectors.BaseSelector) -> None:
        try:
            data = src.recv(65536)
            if data:
                dst.sendall(data)
                return
        except OSError:
            pass
        for sock in (src, dst):
            sel.unregister(sock)
            sock.close()


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    eng = migrated(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    url = make_url(pg_url)
    server = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    server.start()
    yield server
    server.stop()


def test_a_worker_survives_a_database_outage_and_sends_what_fell_due_during_it(
    engine: Engine, pg_url: str, proxy: TcpProxy, x_server: XStandIn, tmp_path: Path
) -> None:
    via_proxy = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    env = bot_env(
        via_proxy.render_as_string(hide_password=False),
        x_server,
        POLL_INTERVAL=f"{POLL:g}s",
        LOG_LEVEL="INFO",
    )
    worker = start("run", ["run"], env, tmp_path / "procs")
    try:

        def alive() -> None:
            assert worker.alive, (worker.popen.returncode, worker.err())

        wait_for(lambda: latest_beat(engine), 30, "the worker's first heartbeat", also=alive)
        assert proxy.connections >= 1

        proxy.stop()
        down_at = datetime.now(UTC)
        due = down_at + timedelta(seconds=1.5)
        add_sessions(engine, {"outage-001": due + 7 * DAY}, down_at - HOUR)

        def errors_logged() -> int:
            return worker.err(tail=1_000_000).count(DB_ERROR)

        # The due time passes during the outage; the worker keeps polling and logging.
        wait_for(lambda: errors_logged() >= 3, 15, "three logged database errors", also=alive)
        wait_for(lambda: datetime.now(UTC) > due + timedelta(seconds=POLL), 10, "the due time")
        alive()
        assert x_server.requests == []
        assert ledger(engine) == []
        line = next(x for x in worker.err(tail=1_000_000).splitlines() if DB_ERROR in x)
        assert "ERROR" in line, line

        proxy.start()
        back = time.monotonic()

        def sent() -> bool:
            rows = ledger(engine)
            return bool(rows) and rows[0].status == "sent"

        wait_for(sent, RESUME_WITHIN, "the delivery due during the outage to be sent", also=alive)
        resumed_in = time.monotonic() - back
        sent_at = datetime.now(UTC)
        # A few more polls (fresh heartbeats) and still one post.
        wait_for(
            lambda: (latest_beat(engine) or sent_at) > sent_at + timedelta(seconds=2 * POLL),
            15,
            "two more polls",
            also=alive,
        )
        code = worker.terminate()
    finally:
        worker.kill()
    print(f"\nresumed and sent {resumed_in:.1f}s after the database came back")
    assert code == 0, worker.err()
    assert "Traceback" not in worker.err(tail=1_000_000)
    [row] = ledger(engine)
    [post] = x_server.posts
    assert len(x_server.received) == 1
    assert (row.session_id, row.status, row.external_id) == ("outage-001", "sent", post.post_id)
    assert session_in(post.text) == "outage-001"


def test_the_database_going_away_between_the_post_and_its_outcome_never_resends(
    engine: Engine, pg_url: str, proxy: TcpProxy, x_server: XStandIn, tmp_path: Path
) -> None:
    """The outage hits a `bot send` after its `sending` mark, while X is answering: the post is
    out, the outcome cannot be written. The pass says so (exit 1, one line, no traceback); once
    the database is back, the pass after the lease finds the delivery `uncertain` and sends
    nothing again."""
    start_at = datetime(2030, 3, 18, 14, 0, tzinfo=UTC)
    t = start_at - 7 * DAY
    add_sessions(engine, {"outage-002": start_at}, t - 30 * DAY)
    via_proxy = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    env = bot_env(via_proxy.render_as_string(hide_password=False), x_server, LEASE="10s")
    folder = tmp_path / "procs"
    x_server.delay_seconds = 2  # the post is published at once; the answer takes 2 s
    sender = start("send", ["send", "--now", iso_ms(t), "--json"], env, folder)
    try:
        wait_for(lambda: x_server.posts, 30, "the post to reach X")
        proxy.stop()  # while X's answer is on its way
        code = sender.wait(timeout=60)
    finally:
        sender.kill()
    err = sender.err()
    assert code == 1, (code, err)
    assert "Traceback" not in err, err
    assert "DATABASE_URL: the database cannot be used" in err, err
    [row] = ledger(engine)
    assert (row.status, row.attempts) == ("sending", 1)  # marked, outcome never written

    proxy.start()
    x_server.delay_seconds = 0
    [record] = send(env, folder, t + timedelta(seconds=11), code=1)
    assert (record["session"], record["status"]) == ("outage-002", "uncertain")
    assert send(env, folder, t + timedelta(hours=1)) == []
    [post] = x_server.posts
    assert len(x_server.received) == 1 and session_in(post.text) == "outage-002"
    [row] = ledger(engine)
    assert (row.status, row.text) == ("uncertain", post.text)
