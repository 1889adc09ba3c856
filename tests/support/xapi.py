"""A stand-in for the X API v2: a real HTTP server on 127.0.0.1 with faults settable at run time.

It answers `POST /2/tweets` and `GET /2/users/me` the way X does, refuses requests without an
OAuth 1.0a `Authorization` header (401), and rejects a post whose text is already published
(403, X's duplicate-content answer) unless built with `reject_duplicates=False`.

    with XStandIn() as x:                     # or the `x_server` fixture (tls=CONTEXT: HTTPS)
        env = {"X_API_BASE_URL": x.base_url, ...}   # any process can use the URL
        x.set_fault("status_503", times=1)    # the next request only
        ...
        assert [p.text for p in x.posts] == [text]  # published exactly once

Fault modes: `ok`, `status_503` (optional `retry_after` seconds), `status_429` (`reset_epoch` for
`x-rate-limit-reset`), `status_401`, `duplicate_403`, `hang` (read the request, never answer until
stop), `drop` (read the request, close the socket without answering). A post that meets `hang` or
`drop` is published all the same unless `publish=False`: the answer is lost, not the post.
`delay_seconds` delays every answer (the post is published before the wait).
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.standin import LoopbackServer

FAULTS = ("ok", "status_503", "status_429", "status_401", "duplicate_403", "hang", "drop")
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
_STATUS_BODIES: dict[int, dict[str, Any]] = {
    400: {
        "title": "Invalid Request",
        "type": "about:blank",
        "status": 400,
        "detail": "One or more parameters to your request was invalid.",
    },
    401: {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
    403: {"detail": DUPLICATE_DETAIL, "type": "about:blank", "title": "Forbidden", "status": 403},
    404: {"title": "Not Found Error", "type": "about:blank", "status": 404, "detail": "Not Found"},
    429: {
        "title": "Too Many Requests",
        "type": "about:blank",
        "status": 429,
        "detail": "Too Many Requests",
    },
    503: {
        "title": "Service Unavailable",
        "type": "about:blank",
        "status": 503,
        "detail": "Service Unavailable",
    },
}


@dataclass(frozen=True)
class Received:
    """One request as the server saw it (the Authorization header's value is not kept)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    auth_scheme: str | None  # "OAuth" when an OAuth 1.0a header came with it
    fault: str  # the mode that answered it
    text: str | None = None  # POST /2/tweets only
    published: bool = False
    post_id: str | None = None


@dataclass
class _Fault:
    mode: str = "ok"
    remaining: int | None = None  # None: until changed
    reset_epoch: int | None = None
    retry_after: int | None = None
    publish: bool = True


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    fault: _Fault = field(default_factory=_Fault)
    delay_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1_900_000_000_000_000_001))


class XStandIn(LoopbackServer):
    """The loopback X API server; start() it, point X_API_BASE_URL at `base_url`, stop() it."""

    name = "the X stand-in"

    def __init__(
        self, *, reject_duplicates: bool = True, tls: ssl.SSLContext | None = None
    ) -> None:
        self.reject_duplicates = reject_duplicates
        self.tls = tls  # a server context: answer over HTTPS with its certificate
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the value for X_API_BASE_URL."""
        return self.origin

    def set_fault(
        self,
        mode: str,
        *,
        times: int | None = None,
        reset_epoch: int | None = None,
        retry_after: int | None = None,
        publish: bool = True,
    ) -> None:
        """Answer the next `times` requests (all, when None) with `mode`, then `ok` again."""
        if mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULTS)}")
        with self._state.lock:
            self._state.fault = _Fault(mode, times, reset_epoch, retry_after, publish)

    @property
    def delay_seconds(self) -> float:
        """How long every answer waits."""
        return self._state.delay_seconds

    @delay_seconds.setter
    def delay_seconds(self, seconds: float) -> None:
        with self._state.lock:
            self._state.delay_seconds = seconds

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order."""
        with self._state.lock:
            return list(self._state.received)

    @property
    def received(self) -> list[Received]:
        """Every `POST /2/tweets` received, published or refused."""
        return [r for r in self.requests if r.text is not None]

    @property
    def posts(self) -> list[Received]:
        """The posts X would show: each published one, once."""
        return [r for r in self.requests if r.published]

    def _take_fault(self) -> _Fault:
        with self._state.lock:
            fault = self._state.fault
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._state.fault = _Fault()
            return fault


def _handler_for(standin: XStandIn) -> type[BaseHTTPRequestHandler]:
    state = standin._state

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            auth = self.headers.get("Authorization", "")
            scheme = "OAuth" if auth.startswith("OAuth ") and "oauth_signature=" in auth else None
            route = self.path.split("?", 1)[0]
            record = Received(
                method=self.command,
                path=self.path,
                headers={k: v for k, v in self.headers.items() if k.lower() != "authorization"},
                body=body,
                received_at=datetime.now(UTC),
                auth_scheme=scheme,
                fault="ok",
            )
            known = (self.command, route) in {("POST", "/2/tweets"), ("GET", "/2/users/me")}
            fault = _Fault() if scheme is None or not known else standin._take_fault()
            status, payload = self._answer(record, route, fault, body, known)
            if fault.mode in ("hang", "drop"):
                if fault.mode == "hang":
                    state.stopping.wait()
                self.close_connection = True
                return
            if state.delay_seconds and state.stopping.wait(state.delay_seconds):
                self.close_connection = True
                return
            self._reply(status, payload, fault)

        def _answer(
            self, record: Received, route: str, fault: _Fault, body: bytes, known: bool
        ) -> tuple[int, dict[str, Any]]:
            """Decide the answer and record the request, publishing the post if it is taken."""
            status, payload = 200, {"data": {"id": "1", "name": "Reading Group", "username": "rg"}}
            text: str | None = None
            if record.auth_scheme is None:
                status, payload = 401, _STATUS_BODIES[401]
            elif not known:
                status, payload = 404, _STATUS_BODIES[404]
            elif route == "/2/tweets":
                try:
                    parsed = json.loads(body or b"{}")
                    text = parsed["text"] if isinstance(parsed.get("text"), str) else None
                except (ValueError, AttributeError):
                    text = None
                if text is None:
                    status, payload = 400, _STATUS_BODIES[400]
            published, post_id = False, None
            with state.lock:
                duplicate = self._is_duplicate(text)
                if fault.mode in ("status_503", "status_429", "status_401"):
                    status = int(fault.mode[-3:])
                    payload = _STATUS_BODIES[status]
                elif fault.mode == "duplicate_403" or (status == 200 and text and duplicate):
                    status, payload = 403, _STATUS_BODIES[403]
                elif status == 200 and text is not None and fault.publish:
                    post_id = str(next(state.ids))
                    status, payload = 201, {"data": {"id": post_id, "text": text}}
                    published = True
                state.received.append(
                    replace(
                        record, fault=fault.mode, text=text, published=published, post_id=post_id
                    )
                )
            return status, payload

        def _is_duplicate(self, text: str | None) -> bool:
            if text is None or not standin.reject_duplicates:
                return False
            return any(r.published and r.text == text for r in state.received)

        def _reply(self, status: int, payload: dict[str, Any], fault: _Fault) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:  # the client asked for it; say so, as real servers do
                self.send_header("Connection", "close")
            if fault.mode == "status_429" and fault.reset_epoch is not None:
                self.send_header("x-rate-limit-limit", "100")
                self.send_header("x-rate-limit-remaining", "0")
                self.send_header("x-rate-limit-reset", str(fault.reset_epoch))
            if fault.mode == "status_503" and fault.retry_after is not None:
                self.send_header("Retry-After", str(fault.retry_after))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def x_server() -> Iterator[XStandIn]:
    """A started X stand-in, stopped after the test."""
    with XStandIn() as server:
        yield server
