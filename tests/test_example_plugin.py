"""The example plugin distribution (examples/webhook-channel): installed, found through the
`bot.notifiers` entry point, and driven through the real command line against a loopback
webhook receiver written here.

Skipped when the distribution is not installed (`pip install -e examples/webhook-channel`),
unless BOT_REQUIRE_PLUGIN=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import BotCli, iso, json_lines, session_yaml

DISTRIBUTION = "rgb-webhook-channel"
REQUIRE = os.environ.get("BOT_REQUIRE_PLUGIN") == "1"
TITLE = "DiffuCoder: Masked Diffusion & Code Generation"
ABSTRACT = "Diffusion language models generate text by denoising an entire sequence."
MEETING = "https://example.zoom.us/j/81234567890"
SITE = "https://rg.example.org"


def _not_installed() -> str | None:
    """Why the example plugin cannot be tested here, or None."""
    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:
        return (
            f"the example plugin {DISTRIBUTION} is not installed "
            "(.venv/bin/python -m pip install -e examples/webhook-channel)"
        )
    points = [ep for ep in dist.entry_points if ep.group == "bot.notifiers"]
    if [ep.name for ep in points] != ["webhook"]:
        return f"{DISTRIBUTION} is installed without its bot.notifiers entry point: reinstall it"
    return None


PROBLEM = _not_installed()


@pytest.fixture(autouse=True)
def _plugin_installed() -> None:
    if PROBLEM is not None:
        if REQUIRE:
            pytest.fail(f"BOT_REQUIRE_PLUGIN=1: {PROBLEM}", pytrace=False)
        pytest.skip(PROBLEM)


# ---------------------------------------------------------------- the receiver


FAULTS = (
    "ok",
    "status_400",  # refused; the error message echoes the URL it was sent to
    "status_401",
    "status_429",  # with Retry-After: `retry_after` seconds
    "status_500",  # stored, then a server error: maybe sent
    "status_503",  # not stored
    "late",  # stored, the answer comes after the client's timeout
    "headers_only",  # stored, headers sent, the body withheld
    "drop",  # read the request, closed the connection, stored nothing
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body of a POST, else None
    fault: str


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    fault: str = "ok"
    remaining: int | None = None
    retry_after: int = 0
    requests: list[Request] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> message
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))


class Receiver:
    """A webhook receiver on 127.0.0.1 keeping the contract in rgb_webhook_channel's docstring:
    POST stores (deduplicated by reference), GET on the hook answers, GET hook/REFERENCE looks
    a message up. Built with `lookup="none"` it has no lookup (a plain 404 page), with
    `lookup="catch_all"` it answers 200 to any GET. Any other path (a wrong token) is a 404
    page."""

    def __init__(self, *, lookup: str = "on") -> None:
        self.lookup = lookup
        self.token = secrets.token_urlsafe(24)
        self.path = f"/hooks/{self.token}"
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """The value for WEBHOOK_URL (the token in its path is the secret)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def set_fault(self, mode: str, *, times: int | None = None, retry_after: int = 0) -> None:
        """Answer the next `times` POSTs (all, when None) with `mode`, then `ok` again."""
        assert mode in FAULTS, mode
        with self._state.lock:
            self._state.fault, self._state.remaining = mode, times
            self._state.retry_after = retry_after

    @property
    def requests(self) -> list[Request]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]

    @property
    def stored(self) -> dict[str, dict[str, Any]]:
        """The messages the receiver keeps, by id: what its readers see."""
        with self._state.lock:
            return dict(self._state.stored)

    def _take_fault(self) -> str:
        with self._state.lock:
            fault = self._state.fault
            if self._state.remaining is not None:
                self._state.remaining -= 1
                if self._state.remaining <= 0:
                    self._state.fault, self._state.remaining = "ok", None
            return fault

    def _store(self, body: dict[str, Any]) -> str:
        with self._state.lock:
            reference = body.get("reference")
            for known, message in self._state.stored.items():
                if reference is not None and message.get("reference") == reference:
                    return known  # the same message again: nothing new is created
            message_id = f"msg-{next(self._state.ids)}"
            self._state.stored[message_id] = body
            return message_id

    def _find(self, reference: str) -> str | None:
        with self._state.lock:
            found = (k for k, m in self._state.stored.items() if m.get("reference") == reference)
            return next(found, None)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    state = receiver._state

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._record(None, "ok")
            if self.path == receiver.path:
                self._reply(200, {"name": "reading-group-room"})
            elif receiver.lookup == "catch_all" and self.path.startswith(receiver.path):
                self._reply(200, {"ok": True})
            elif receiver.lookup == "on" and self.path.startswith(receiver.path + "/"):
                reference = self.path[len(receiver.path) + 1 :]
                found = receiver._find(reference)
                if found is None:
                    self._reply(404, {"reference": reference, "found": False})
                else:
                    self._reply(200, {"id": found, "reference": reference})
            else:
                self._page_not_found()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path != receiver.path:
                self._record(None, "ok")
                self._page_not_found()
                return
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            fault = receiver._take_fault()
            self._record(body, fault)
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                self._reply(400, {"error": "a JSON object with a text is expected"})
            elif fault == "ok":
                self._reply(200, {"id": receiver._store(body)})
            elif fault == "status_400":
                url = f"http://{self.headers.get('Host')}{self.path}"
                self._reply(400, {"error": f"malformed card in the POST to {url}"})
            elif fault == "status_401":
                self._reply(401, {"error": "this hook was revoked"})
            elif fault in ("status_429", "status_503"):
                status = int(fault[-3:])
                headers = {"Retry-After": str(state.retry_after)} if state.retry_after else {}
                self._reply(status, {"error": "slow down"}, headers)
            elif fault == "status_500":
                receiver._store(body)
                self._reply(500, {"error": "the notification fan-out failed"})
            elif fault == "late":
                message_id = receiver._store(body)
                if not state.stopping.wait(3):  # the client (WEBHOOK_TIMEOUT=1) gave up
                    self._reply(200, {"id": message_id})
            elif fault == "headers_only":
                receiver._store(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "64")
                self.end_headers()
                self.wfile.flush()
                state.stopping.wait(3)
                self.close_connection = True
            else:  # drop
                self.close_connection = True

        def _record(self, body: Any, fault: str) -> None:
            with state.lock:
                state.requests.append(
                    Request(self.command, self.path, dict(self.headers.items()), body, fault)
                )

        def _page_not_found(self) -> None:
            data = b"<html><body><h1>404 Not Found</h1></body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reply(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


# ---------------------------------------------------------------- the command line


def weeks_ahead() -> datetime:
    """A start about a month after the real now (imports stamp the real clock), on the hour."""
    day = datetime.now(UTC) + timedelta(days=30)
    return day.replace(hour=15, minute=0, second=0, microsecond=0)


def a_session(session_id: str, starts_at: datetime) -> dict[str, Any]:
    return {
        "id": session_id,
        "title": TITLE,
        "starts_at": starts_at,
        "duration": "60m",
        "speakers": [{"name": "Shansan Gong", "affiliation": "HKU"}],
        "abstract": ABSTRACT,
        "papers": [{"title": "DiffuCoder", "url": "https://arxiv.org/abs/2506.20639"}],
        "meeting_url": MEETING,
    }


def make_bot(tmp_path: Path, receiver: Receiver, start: datetime, **env: str) -> BotCli:
    """The CLI with CHANNELS=webhook pointed at `receiver`, one session imported."""
    bot = BotCli(
        tmp_path / "cwd",
        {
            "CHANNELS": "webhook",
            "WEBHOOK_URL": receiver.url,
            "WEBHOOK_TIMEOUT": "1",
            "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
            "SITE_URL": SITE,
            **env,
        },
    )
    sessions = tmp_path / "sessions.yaml"
    sessions.write_text(session_yaml([a_session("diffucoder", start)]), encoding="utf-8")
    code, _, err = bot("sessions", "import", str(sessions))
    assert code == 0, err
    return bot


def send(bot: BotCli, now: datetime, *args: str, code: int = 0) -> list[dict[str, Any]]:
    rc, out, err = bot("send", "--now", iso(now), "--json", *args)
    assert rc == code, (rc, out, err)
    assert "Traceback" not in err
    return json_lines(out)


def statuses(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["notice"], r["status"]) for r in records]


def ledger(bot: BotCli) -> list[dict[str, Any]]:
    code, out, err = bot("deliveries", "--json")
    assert code == 0, err
    return json_lines(out)


# ---------------------------------------------------------------- found and sent


def test_the_channel_is_found_through_its_entry_point() -> None:
    from rgb_webhook_channel import WebhookNotifier

    from bot.notifiers import registry

    assert "webhook" in registry.names()
    assert registry.get("webhook") is WebhookNotifier
    assert WebhookNotifier.secret_variables == ("WEBHOOK_URL",)


def test_importing_the_channel_does_not_import_requests() -> None:
    code = (
        "import sys, rgb_webhook_channel; print(sorted({'requests', 'urllib3'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.slow  # several `bot` processes, over 5 s
def test_each_notice_goes_out_once_as_json(tmp_path: Path, receiver: Receiver) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start)
    announce = start - timedelta(days=7)
    assert send(bot, announce - timedelta(minutes=1)) == []
    assert receiver.requests == []

    [record] = send(bot, announce)
    assert (record["notice"], record["status"]) == ("announce", "sent")
    [post] = receiver.posts
    assert post.body == {
        "text": record["text"],
        "session": "diffucoder",
        "notice": "announce",
        "occurrence": iso(start),
        "reference": None,  # WEBHOOK_LOOKUP is off: nothing to look the message up by
        "card": {
            "url": f"{SITE}/sessions/diffucoder/",
            "title": TITLE,
            "description": f"Shansan Gong. {ABSTRACT}",
            "starts_at": iso(start),
        },
    }
    assert post.headers["Content-Type"] == "application/json"
    assert record["external_id"] in receiver.stored
    # The plugin's own webhook/announce.txt.j2 rendered it (found through templates_dir).
    assert record["text"].startswith("Next session · ")
    assert TITLE in record["text"] and MEETING in record["text"]

    assert send(bot, announce + timedelta(minutes=5)) == []  # once
    for notice, due in (
        ("reminder", start - timedelta(days=1)),
        ("starting", start - timedelta(hours=1)),
    ):
        [record] = send(bot, due)
        assert (record["notice"], record["status"]) == (notice, "sent")
        assert receiver.posts[-1].body["notice"] == notice
    assert len(receiver.posts) == len(receiver.stored) == 3

    # A change notice: the cancellation goes out once, and nothing after it.
    code, _, err = bot("sessions", "cancel", "diffucoder")
    assert code == 0, err
    [record] = send(bot, start - timedelta(minutes=30))
    assert (record["notice"], record["status"]) == ("cancelled", "sent")
    assert receiver.posts[-1].body["text"].startswith(f"Cancelled: {TITLE}")
    assert send(bot, start) == []
    assert sorted((r["notice"], r["status"]) for r in ledger(bot)) == [
        ("announce", "sent"),
        ("cancelled", "sent"),
        ("reminder", "sent"),
        ("starting", "sent"),
    ]


def test_the_plugins_own_templates_are_found_without_templates_dir(
    tmp_path: Path, receiver: Receiver
) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start, GROUP_NAME="Diffusion LLMs")
    code, out, err = bot("check", "--now", iso(start - timedelta(days=8)))
    assert (code, out.strip()) == (0, "ok"), err
    [record] = send(bot, start - timedelta(days=7))
    text = receiver.posts[0].body["text"]
    assert text == record["text"]
    assert text.startswith(f"Next session · {start:%A}")  # webhook/announce.txt.j2
    assert ABSTRACT in text and f"Meeting link: {MEETING}" in text
    assert f"Session page: {SITE}/sessions/diffucoder/" in text
    assert text.endswith("--\nDiffusion LLMs")


def test_a_dry_run_contacts_nothing(tmp_path: Path, receiver: Receiver) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start)
    code, out, err = bot("send", "--dry-run", "--now", iso(start - timedelta(days=7)))
    assert code == 0, err
    assert "would_send" in out and TITLE in out
    assert receiver.requests == [] and ledger(bot) == []


# ---------------------------------------------------------------- configuration


def test_check_names_a_missing_webhook_url_in_one_line(tmp_path: Path) -> None:
    bot = BotCli(
        tmp_path / "cwd", {"CHANNELS": "webhook", "DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}
    )
    code, out, err = bot("check")
    assert code == 2
    assert (out, err.strip()) == ("", "WEBHOOK_URL: required by the webhook channel (missing)")


def test_every_problem_is_listed_and_the_url_never_shown(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(16)
    bot = BotCli(
        tmp_path / "cwd",
        {
            "CHANNELS": "webhook",
            "DATABASE_URL": f"sqlite:///{tmp_path}/b.db",
            "WEBHOOK_URL": f"ftp://hooks.example.org/{token}",
            "WEBHOOK_TIMEOUT": "0",
            "WEBHOOK_LOOKUP": "sometimes",
        },
    )
    code, out, err = bot("send", "--now", "2027-01-01T00:00:00Z")
    assert code == 2
    assert err.strip().splitlines() == [
        "WEBHOOK_URL: not a valid http(s) URL (value hidden)",
        "WEBHOOK_TIMEOUT: must be a number of seconds above 0, at most 600 (0)",
        "WEBHOOK_LOOKUP: must be one of on, off (sometimes)",
    ]
    assert token not in out + err


def test_check_online_reaches_the_hook_without_posting(tmp_path: Path, receiver: Receiver) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start, WEBHOOK_LOOKUP="on")
    code, out, err = bot("check", "--online", "--now", iso(start - timedelta(days=8)))
    assert (code, out.strip()) == (0, "ok"), err
    assert [r.method for r in receiver.requests] == ["GET", "GET"]  # the hook, then a lookup
    assert receiver.posts == []

    wrong = {"WEBHOOK_URL": receiver.url.replace(receiver.token, "revoked-token")}
    code, out, err = bot("check", "--online", env=wrong)
    assert code == 1
    assert out.strip() == "channel webhook: cannot log in (the webhook answered 404)"
    assert "revoked-token" not in out + err


def test_check_online_says_when_the_receiver_has_no_lookup(tmp_path: Path) -> None:
    with Receiver(lookup="none") as receiver:
        bot = make_bot(tmp_path, receiver, weeks_ahead(), WEBHOOK_LOOKUP="on")
        code, out, _ = bot("check", "--online")
        assert code == 1
        assert "WEBHOOK_LOOKUP=on but the receiver's lookup answered 404" in out
        assert receiver.posts == []


# ---------------------------------------------------------------- failures


@pytest.mark.slow  # several `bot` processes, over 5 s
def test_a_rate_limit_waits_for_retry_after(tmp_path: Path, receiver: Receiver) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start)
    t = start - timedelta(days=7)
    receiver.set_fault("status_429", times=1, retry_after=600)
    [record] = send(bot, t)
    assert record["status"] == "retrying" and "429" in record["reason"]
    code, out, _ = bot("check", "--now", iso(t))
    assert code == 1 and f"next at {t + timedelta(minutes=10):%Y-%m-%dT%H:%MZ}" in out

    # The usual backoff would allow +1m; Retry-After says +10m.
    assert send(bot, t + timedelta(minutes=9, seconds=59)) == []
    assert len(receiver.posts) == 1
    [record] = send(bot, t + timedelta(minutes=10))
    assert record["status"] == "sent" and record["reason"] is None
    assert len(receiver.posts) == 2 and len(receiver.stored) == 1


@pytest.mark.slow  # several `bot` processes, over 5 s
def test_a_503_is_not_taken_and_retried(tmp_path: Path, receiver: Receiver) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start)
    t = start - timedelta(days=7)
    receiver.set_fault("status_503", times=1)
    [record] = send(bot, t)
    assert record["status"] == "retrying" and "503" in record["reason"]
    assert send(bot, t + timedelta(seconds=59)) == []
    assert statuses(send(bot, t + timedelta(minutes=1))) == [("announce", "sent")]
    assert len(receiver.stored) == 1


@pytest.mark.slow  # several `bot` processes, over 5 s
def test_a_refusal_fails_at_once(tmp_path: Path, receiver: Receiver) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start)
    t = start - timedelta(days=7)
    receiver.set_fault("status_401", times=1)
    [record] = send(bot, t, code=1)
    assert record["status"] == "failed"
    assert record["reason"] == "the webhook answered 401: this hook was revoked"
    assert send(bot, t + timedelta(minutes=1)) == []  # never retried
    assert len(receiver.posts) == 1 and receiver.stored == {}


@pytest.mark.slow  # several `bot` processes, over 5 s
def test_a_message_over_the_limit_is_refused_before_any_request(
    tmp_path: Path, receiver: Receiver
) -> None:
    templates = tmp_path / "templates" / "webhook"
    templates.mkdir(parents=True)
    # 2,001 emoji: 2,001 code points, but 4,002 UTF-16 code units (the receiver's count).
    (templates / "announce.txt.j2").write_text('{{ "\U0001f600" * 2001 }}\n', encoding="utf-8")
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start, TEMPLATES_DIR=str(templates.parent))
    t = start - timedelta(days=7)
    reason = "message is 4002 UTF-16 code units, over the webhook limit of 4000"
    code, out, _ = bot("check", "--now", iso(t))
    assert code == 1 and reason in out
    [record] = send(bot, t, code=1)
    assert (record["status"], record["reason"]) == ("failed", reason)
    assert receiver.requests == []


@pytest.mark.slow  # several `bot` processes, over 5 s
def test_a_server_error_without_lookup_stays_uncertain(tmp_path: Path, receiver: Receiver) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start)
    t = start - timedelta(days=7)
    receiver.set_fault("status_500", times=1)
    [record] = send(bot, t, code=1)
    assert record["status"] == "uncertain" and "500" in record["reason"]
    assert send(bot, t + timedelta(minutes=5)) == []  # never re-sent by itself
    [row] = ledger(bot)
    assert row["status"] == "uncertain"
    assert len(receiver.posts) == len(receiver.stored) == 1


# ---------------------------------------------------------------- maybe sent, and settling


@pytest.mark.slow  # several `bot` processes, over 5 s
@pytest.mark.parametrize("fault", ["late", "headers_only"])
def test_a_timeout_after_the_request_settles_itself_with_lookup_on(
    tmp_path: Path, receiver: Receiver, fault: str
) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start, WEBHOOK_LOOKUP="on")
    t = start - timedelta(days=7)
    receiver.set_fault(fault, times=1)
    [record] = send(bot, t, code=1)
    assert record["status"] == "uncertain"
    [post] = receiver.posts
    reference = post.body["reference"]
    assert isinstance(reference, str) and len(reference) == 32
    assert [r.method for r in receiver.requests] == ["POST"]  # not asked before settle_delay

    # A minute later the pass asks the receiver, which has the message: sent, with its id.
    [record] = send(bot, t + timedelta(minutes=1))
    assert record["status"] == "sent"
    [(message_id, message)] = receiver.stored.items()
    assert record["external_id"] == message_id and message["reference"] == reference
    assert receiver.requests[-1].method == "GET"
    assert receiver.requests[-1].path == f"{receiver.path}/{reference}"
    assert len(receiver.posts) == 1  # nothing was sent twice
    [row] = ledger(bot)
    assert (row["status"], row["external_id"]) == ("sent", message_id)
    assert "settled by the channel" in row["reason"]


def test_a_post_that_provably_did_not_arrive_is_sent_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start, WEBHOOK_LOOKUP="on")
    t = start - timedelta(days=7)
    receiver.set_fault("drop", times=1)
    [record] = send(bot, t, code=1)
    assert record["status"] == "uncertain" and "connection" in record["reason"]
    assert receiver.stored == {}

    records = send(bot, t + timedelta(minutes=1))
    assert statuses(records) == [("announce", "retrying"), ("announce", "sent")]
    first, again = receiver.posts
    assert again.body["reference"] == first.body["reference"]  # the same reference every time
    [(message_id, _)] = receiver.stored.items()
    assert records[-1]["external_id"] == message_id


@pytest.mark.slow  # several `bot` processes, over 5 s
def test_a_timeout_after_the_request_stays_uncertain_with_lookup_off(
    tmp_path: Path, receiver: Receiver
) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start)  # WEBHOOK_LOOKUP defaults to off
    t = start - timedelta(days=7)
    receiver.set_fault("late", times=1)
    [record] = send(bot, t, code=1)
    assert record["status"] == "uncertain"
    assert record["reason"] == "the webhook did not answer within 1s after the request was sent"
    assert send(bot, t + timedelta(minutes=5)) == []
    assert [r.method for r in receiver.requests] == ["POST"]  # never asked, never re-sent
    code, out, _ = bot("check", "--now", iso(t + timedelta(minutes=5)))
    assert code == 1 and "uncertain" in out and "resolve or retry" in out


@pytest.mark.slow  # several `bot` processes, over 5 s
@pytest.mark.parametrize("lookup", ["none", "catch_all"])
def test_a_receiver_without_lookup_is_never_taken_for_proof(tmp_path: Path, lookup: str) -> None:
    """WEBHOOK_LOOKUP=on against a receiver without the lookup (its 404 is a plain page, or it
    answers 200 to anything): neither "absent" (a resend) nor "exists" (a lost message)."""
    with Receiver(lookup=lookup) as receiver:
        start = weeks_ahead()
        bot = make_bot(tmp_path, receiver, start, WEBHOOK_LOOKUP="on")
        t = start - timedelta(days=7)
        receiver.set_fault("late", times=1)
        assert statuses(send(bot, t, code=1)) == [("announce", "uncertain")]
        [record] = send(bot, t + timedelta(minutes=1), code=1)
        assert record["status"] == "uncertain"
        assert "has no lookup" in record["reason"]
        assert send(bot, t + timedelta(minutes=30)) == []  # final: not asked again
        assert [r.method for r in receiver.requests] == ["POST", "GET"]


# ---------------------------------------------------------------- secrets


@pytest.mark.slow  # several `bot` processes, over 5 s
def test_the_url_never_shows_at_debug(tmp_path: Path, receiver: Receiver) -> None:
    start = weeks_ahead()
    bot = make_bot(tmp_path, receiver, start, LOG_LEVEL="DEBUG", WEBHOOK_LOOKUP="on")
    t = start - timedelta(days=7)
    seen: list[str] = []

    def run(*args: str, **env: str) -> int:
        code, out, err = bot(*args, env=env)
        seen.append(out + err)
        return code

    receiver.set_fault("status_400", times=1)  # the receiver echoes the URL in its error
    assert run("send", "--now", iso(t)) == 1
    [row] = ledger(bot)
    assert row["status"] == "failed" and "malformed card in the POST to ***" in row["reason"]
    receiver.set_fault("late", times=1)
    assert run("send", "--now", iso(start - timedelta(days=1))) == 1
    assert run("send", "--now", iso(start - timedelta(days=1) + timedelta(minutes=1))) == 0
    assert run("check", "--online", "--now", iso(t)) == 1  # the announce failed
    wrong = receiver.url.replace(receiver.token, receiver.token[:-4] + "XXXX")
    assert run("check", "--online", WEBHOOK_URL=wrong) == 1
    assert run("deliveries", "--json") == 0
    assert len(seen) == 6 and any("DEBUG" in text for text in seen)
    for text in seen:
        assert receiver.token not in text and receiver.token[:-4] not in text


def test_urllib3_debug_lines_show_no_url(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    from rgb_webhook_channel import WebhookNotifier

    from bot.domain import DeliveryKey
    from bot.notifiers.base import Message

    notifier = WebhookNotifier(WebhookNotifier.parse_config({"WEBHOOK_URL": receiver.url}))
    now = datetime(2027, 1, 13, 15, tzinfo=UTC)
    key = DeliveryKey("diffucoder", "announce", "webhook", now + timedelta(days=7))
    with caplog.at_level(logging.DEBUG, logger="urllib3"):
        receipt = notifier.send(Message(key=key, text="Next session: DiffuCoder"), now)
    notifier.close()
    assert receipt.external_id in receiver.stored
    assert "POST" in caplog.text  # urllib3 did log the request line
    assert receiver.token not in caplog.text


# ---------------------------------------------------------------- limits, directly


def test_length_is_counted_in_utf16_code_units() -> None:
    from rgb_webhook_channel import WebhookNotifier

    assert WebhookNotifier.measure("é") == 1
    assert WebhookNotifier.measure("\U0001f600") == 2
    assert WebhookNotifier.over_limit("a" * 4000) is None
    assert WebhookNotifier.over_limit("\U0001f600" * 2000) is None
    assert WebhookNotifier.over_limit("\U0001f600" * 2000 + "a") == (
        "message is 4001 UTF-16 code units, over the webhook limit of 4000"
    )
    assert WebhookNotifier.over_limit(" \n ") == "message is empty"
