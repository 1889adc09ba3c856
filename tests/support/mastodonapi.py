"""A stand-in for a Mastodon instance: a real HTTP server on 127.0.0.1, faults settable at run time.

It answers as Mastodon 4.x does (app/controllers/api/v1/statuses_controller.rb,
app/services/post_status_service.rb, app/lib/rate_limiter.rb, config/initializers/rack_attack.rb):

- `POST /api/v1/statuses` (JSON or form: `status`, `visibility`, `language`) needs
  `Authorization: Bearer TOKEN` (else 401 `{"error": "The access token is invalid"}`) with the
  `write` or `write:statuses` scope (else 403 `{"error": "This action is outside the authorized
  scopes"}`). A text over `max_characters` (URLs count `url_length`, `@user@domain` counts as
  `@user`, graphemes) or an empty one is refused with 422 `{"error": "Validation failed: …"}`.
- `Idempotency-Key`: kept per account for `key_ttl` seconds (Mastodon: 3600) from the moment its
  status was created. A request repeating a kept key gets that status (200) and creates nothing,
  before any validation; one that comes while another request with the same key is still being
  processed (the redis lock is held) gets 503 `{"error": "There was a temporary problem serving
  your request, please try again"}`; a kept key whose status was deleted gets 404.
- `GET /api/v1/accounts/verify_credentials` needs `profile`, `read` or `read:accounts`.
- `GET /api/v2/instance` (or only `/api/v1/instance`, `instance_api="v1"`) says
  `configuration.statuses.max_characters` and `characters_reserved_per_url`; no token needed.

    with MastodonStandIn(max_characters=500) as mastodon:     # or the `mastodon_server` fixture
        env = {"MASTODON_BASE_URL": mastodon.base_url, "MASTODON_ACCESS_TOKEN": mastodon.token}
        mastodon.set_fault("hang", times=1)      # the next POST /api/v1/statuses only
        ...
        assert [s.text for s in mastodon.statuses] == [text]   # created exactly once

Faults (on `POST /api/v1/statuses`, unless `route=` names another, e.g. `"GET /api/v2/instance"`,
or is `"*"`): `ok`; `status_429` (headers
X-RateLimit-Limit/Remaining/Reset, the reset an ISO 8601 time: `reset=` a datetime) and
`status_503`, which create nothing; `status_500`, `status_502`, `status_504`, which create the
status first only with `create=True` (a gateway that gave up while the app went on, mastodon#21840);
`status_401` (the token refused); and, each creating the status first: `hang` (the answer comes
`seconds` late, or never until stop), `no_body` (headers sent, the body withheld until stop),
`drop` (the connection closed without an answer). `slow` holds the key's lock for `seconds`
before creating (a slow database): a second request with the same key meanwhile gets 503.
`then_fault(...)` queues a fault for once the ones before are used up (`hang`, then `status_503`
for the re-send). `forget_keys()` lets every kept key expire; `delete(id)` deletes a status.

Another process can read and steer it through `GET /_standin/statuses` (JSON list) and
`POST /_standin/fault` (JSON: `mode`, `times`, `seconds`, `create`, `reset` ISO 8601).
"""

from __future__ import annotations

import html
import itertools
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import regex  # type: ignore[import-untyped, unused-ignore]

from tests.support.standin import LoopbackServer

FAULTS = (
    "ok",
    "status_429",
    "status_500",
    "status_502",
    "status_503",
    "status_504",
    "status_401",
    "hang",
    "no_body",
    "drop",
    "slow",
)
STATUSES = "/api/v1/statuses"
TOKEN = "mastodon-SECRET-token-0123456789abcdef"
INVALID_TOKEN = {"error": "The access token is invalid"}
OUT_OF_SCOPE = {"error": "This action is outside the authorized scopes"}
TEMPORARY = {"error": "There was a temporary problem serving your request, please try again"}
NOT_FOUND = {"error": "Record not found"}
TOO_MANY = {"error": "Too many requests"}
SERVER_ERROR = {"error": "We're sorry, but something went wrong on our end."}
VISIBILITIES = ("public", "unlisted", "private", "direct")
WRITE_SCOPES = {"write", "write:statuses"}
READ_ACCOUNT_SCOPES = {"profile", "read", "read:accounts"}
# Mastodon's counting, written independently of the bot's: URLs with a scheme, mentions.
_URL = regex.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)\]']")
_MENTION = regex.compile(
    r"(?<![=/\w])@([a-z0-9_]+(?:[a-z0-9_.\-]+[a-z0-9_]+)?)(?:@[\w.\-]+\w)?", regex.I
)


@dataclass(frozen=True)
class Status:
    """A status the instance created."""

    id: str
    text: str
    visibility: str
    language: str | None
    idempotency_key: str | None
    created_at: datetime


@dataclass(frozen=True)
class Received:
    """One request as the server saw it (the Authorization header is never kept)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    authorized: bool  # the right bearer token came with it
    idempotency_key: str | None
    fault: str  # the mode that answered it
    status: int  # the HTTP status decided (sent late, or never, for hang/no_body/drop)
    text: str | None = None  # POST /api/v1/statuses only
    created: str | None = None  # the id of the status this request created
    replayed: str | None = None  # the id of the status a kept key answered with


@dataclass
class _Fault:
    mode: str = "ok"
    remaining: int | None = None  # None: until changed
    seconds: float | None = None
    create: bool = False
    reset: datetime | None = None
    route: str = f"POST {STATUSES}"


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    fault: _Fault = field(default_factory=_Fault)
    queue: list[_Fault] = field(default_factory=list)  # faults to take once `fault` is done
    received: list[Received] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    keys: dict[str, tuple[str, float]] = field(default_factory=dict)  # key → (id, stored at)
    in_progress: set[str] = field(default_factory=set)  # keys whose lock is held
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(113_000_000_000_000_001))


def _length(text: str, url_length: int) -> int:
    text = _URL.sub("x" * url_length, text)
    text = _MENTION.sub(lambda m: "@" + m[1], text)
    return len(regex.findall(r"\X", text))


def _iso(moment: datetime) -> str:
    """Ruby's `Time#iso8601(6)` of a UTC time: `2025-12-08T15:15:00.000000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class MastodonStandIn(LoopbackServer):
    """The loopback Mastodon instance; start() it, use `base_url` and `token`, stop() it."""

    name = "the Mastodon stand-in"

    def __init__(
        self,
        *,
        token: str = TOKEN,
        scopes: tuple[str, ...] = ("write:statuses", "profile"),
        max_characters: int = 500,
        url_length: int = 23,
        key_ttl: float = 3600.0,
        instance_api: str = "v2",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.token = token
        self.scopes = set(scopes)
        self.max_characters = max_characters
        self.url_length = url_length
        self.key_ttl = key_ttl
        self.instance_api = instance_api
        self.tls = tls
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the value for MASTODON_BASE_URL."""
        return self.origin

    def env(self, **more: str) -> dict[str, str]:
        """The MASTODON_* variables of a bot process posting here."""
        return {
            "MASTODON_BASE_URL": self.base_url,
            "MASTODON_ACCESS_TOKEN": self.token,
            **more,
        }

    def set_fault(
        self,
        mode: str,
        *,
        times: int | None = None,
        seconds: float | None = None,
        create: bool = False,
        reset: datetime | None = None,
        route: str = f"POST {STATUSES}",
    ) -> None:
        """Answer the next `times` requests to `route` ("*": any) with `mode`, then `ok`."""
        fault = _fault(mode, times, seconds, create, reset, route)
        with self._state.lock:
            self._state.fault, self._state.queue = fault, []

    def then_fault(
        self,
        mode: str,
        *,
        times: int = 1,
        seconds: float | None = None,
        create: bool = False,
        reset: datetime | None = None,
        route: str = f"POST {STATUSES}",
    ) -> None:
        """Once the faults set before are used up, answer the next `times` with `mode`."""
        fault = _fault(mode, times, seconds, create, reset, route)
        with self._state.lock:
            self._state.queue.append(fault)

    def forget_keys(self) -> None:
        """Let every kept Idempotency-Key expire now (an hour passing on the server)."""
        with self._state.lock:
            self._state.keys.clear()

    def delete(self, status_id: str) -> None:
        """Delete a status (its key, if kept, then finds nothing: 404)."""
        with self._state.lock:
            self._state.deleted.add(status_id)

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order."""
        with self._state.lock:
            return list(self._state.received)

    @property
    def posts(self) -> list[Received]:
        """Every `POST /api/v1/statuses` received, whatever came of it."""
        return [r for r in self.requests if r.method == "POST" and r.path == STATUSES]

    @property
    def busy_keys(self) -> set[str]:
        """The Idempotency-Keys whose request is being processed (their lock is held)."""
        with self._state.lock:
            return set(self._state.in_progress)

    @property
    def statuses(self) -> list[Status]:
        """The statuses the instance shows: each created one, once, deleted ones left out."""
        with self._state.lock:
            return [s for s in self._state.statuses if s.id not in self._state.deleted]

    def _take_fault(self, route: str) -> _Fault:
        with self._state.lock:
            fault = self._state.fault
            if fault.mode == "ok" or fault.route not in ("*", route):
                return _Fault()
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue = self._state.queue
                    self._state.fault = queue.pop(0) if queue else _Fault()
            return fault

    def account(self) -> dict[str, Any]:
        return {
            "id": "109000000000000001",
            "username": "readinggroup",
            "acct": "readinggroup",
            "display_name": "Reading Group",
            "url": f"{self.base_url}/@readinggroup",
        }

    def status_json(self, status: Status) -> dict[str, Any]:
        content = "<p>" + html.escape(status.text).replace("\n", "<br />") + "</p>"
        return {
            "id": status.id,
            "created_at": _iso(status.created_at),
            "in_reply_to_id": None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": status.visibility,
            "language": status.language,
            "uri": f"{self.base_url}/users/readinggroup/statuses/{status.id}",
            "url": f"{self.base_url}/@readinggroup/{status.id}",
            "content": content,
            "account": self.account(),
        }

    def instance_json(self, version: str) -> dict[str, Any]:
        statuses = {
            "max_characters": self.max_characters,
            "max_media_attachments": 4,
            "characters_reserved_per_url": self.url_length,
        }
        body: dict[str, Any] = {
            "title": "Reading group stand-in",
            "version": "4.3.2",
            "configuration": {"statuses": statuses},
        }
        if version == "v2":
            body["domain"] = "127.0.0.1"
        else:
            body["uri"] = "127.0.0.1"
        return body


Payload = dict[str, Any] | list[Any]
_Answer = tuple[int, Payload, dict[str, str]]


def _handler_for(standin: MastodonStandIn) -> type[BaseHTTPRequestHandler]:
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
            route = self.path.split("?", 1)[0]
            if route.startswith("/_standin/"):
                self._reply(*self._control(route, body))
                return
            auth = self.headers.get("Authorization", "")
            authorized = auth == f"Bearer {standin.token}"
            key = self.headers.get("Idempotency-Key") or None
            fault = standin._take_fault(f"{self.command} {route}")
            if fault.mode == "status_401":
                authorized = False
            record = Received(
                method=self.command,
                path=route,
                headers={k: v for k, v in self.headers.items() if k.lower() != "authorization"},
                body=body,
                received_at=datetime.now(UTC),
                authorized=authorized,
                idempotency_key=key,
                fault=fault.mode,
                status=0,
            )
            if (self.command, route) == ("POST", STATUSES):
                status, payload, headers, record = self._post_status(record, fault, body)
            else:
                status, payload, headers = self._read(route, authorized, fault)
                record = _with(record, status=status)
            with state.lock:
                state.received.append(record)
            self._deliver(status, payload, headers, fault)

        # ---- answers

        def _read(self, route: str, authorized: bool, fault: _Fault) -> _Answer:
            if fault.mode in ("status_429", "status_500", "status_502", "status_503", "status_504"):
                return self._fault_answer(fault)
            if route == "/api/v1/accounts/verify_credentials" and self.command == "GET":
                if not authorized:
                    return 401, INVALID_TOKEN, {}
                if not standin.scopes & READ_ACCOUNT_SCOPES:
                    return 403, OUT_OF_SCOPE, {}
                return 200, standin.account(), {}
            if self.command == "GET" and route in ("/api/v2/instance", "/api/v1/instance"):
                version = route.split("/")[2]
                if version == "v2" and standin.instance_api != "v2":
                    return 404, NOT_FOUND, {}
                return 200, standin.instance_json(version), {}
            return 404, NOT_FOUND, {}

        def _fault_answer(self, fault: _Fault) -> _Answer:
            status = int(fault.mode[-3:])
            if status == 429:
                reset = fault.reset or datetime.now(UTC) + timedelta(minutes=5)
                headers = {
                    "X-RateLimit-Limit": "300",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": _iso(reset),
                }
                return 429, TOO_MANY, headers
            return status, TEMPORARY if status == 503 else SERVER_ERROR, {}

        def _post_status(
            self, record: Received, fault: _Fault, body: bytes
        ) -> tuple[int, Payload, dict[str, str], Received]:
            params = _params(self.headers.get("Content-Type", ""), body)
            text = params.get("status")
            record = _with(record, text=text if isinstance(text, str) else None)
            if not record.authorized:
                return 401, INVALID_TOKEN, {}, _with(record, status=401)
            if not standin.scopes & WRITE_SCOPES:
                return 403, OUT_OF_SCOPE, {}, _with(record, status=403)
            if fault.mode in ("status_429", "status_503"):  # rack-attack, or a busy server
                status, payload, headers = self._fault_answer(fault)
                return status, payload, headers, _with(record, status=status)
            key = record.idempotency_key
            with state.lock:
                if key is not None:
                    kept = state.keys.get(key)
                    if kept is not None and time.monotonic() - kept[1] >= standin.key_ttl:
                        del state.keys[key]
                        kept = None
                    if key in state.in_progress:  # with_redis_lock: RaceConditionError
                        return 503, TEMPORARY, {}, _with(record, status=503)
                    if kept is not None:
                        found = [s for s in state.statuses if s.id == kept[0]]
                        if kept[0] in state.deleted or not found:
                            return 404, NOT_FOUND, {}, _with(record, status=404)
                        answer = standin.status_json(found[0])
                        return 200, answer, {}, _with(record, status=200, replayed=kept[0])
                    state.in_progress.add(key)
            try:
                if fault.mode == "slow":
                    state.stopping.wait(fault.seconds or 1.0)
                problem = self._invalid(params)
                if problem is not None:
                    return 422, {"error": problem}, {}, _with(record, status=422)
                if fault.mode in ("status_500", "status_502", "status_504") and not fault.create:
                    status, payload, headers = self._fault_answer(fault)
                    return status, payload, headers, _with(record, status=status)
                created = self._create(params, key)
            finally:
                if key is not None:
                    with state.lock:
                        state.in_progress.discard(key)
            record = _with(record, created=created.id)
            if fault.mode in ("status_500", "status_502", "status_504"):
                status, payload, headers = self._fault_answer(fault)
                return status, payload, headers, _with(record, status=status)
            return 200, standin.status_json(created), {}, _with(record, status=200)

        def _invalid(self, params: dict[str, Any]) -> str | None:
            text = params.get("status")
            text = text if isinstance(text, str) else ""
            visibility = params.get("visibility") or "public"
            if not text.strip():
                return "Validation failed: Text can't be blank"
            if visibility not in VISIBILITIES:
                return f"Validation failed: '{visibility}' is not a valid visibility"
            if _length(text, standin.url_length) > standin.max_characters:
                return (
                    f"Validation failed: Text character limit of {standin.max_characters} exceeded"
                )
            return None

        def _create(self, params: dict[str, Any], key: str | None) -> Status:
            language = params.get("language")
            with state.lock:
                status = Status(
                    id=str(next(state.ids)),
                    text=str(params["status"]),
                    visibility=str(params.get("visibility") or "public"),
                    language=language if isinstance(language, str) else None,
                    idempotency_key=key,
                    created_at=datetime.now(UTC),
                )
                state.statuses.append(status)
                if key is not None:
                    state.keys[key] = (status.id, time.monotonic())
            return status

        def _control(self, route: str, body: bytes) -> _Answer:
            if route == "/_standin/statuses" and self.command == "GET":
                listed = [{**asdict(s), "created_at": _iso(s.created_at)} for s in standin.statuses]
                return 200, listed, {}
            if route == "/_standin/fault" and self.command == "POST":
                try:
                    asked = json.loads(body or b"{}")
                    reset = asked.get("reset")
                    standin.set_fault(
                        str(asked.get("mode", "ok")),
                        times=asked.get("times"),
                        seconds=asked.get("seconds"),
                        create=bool(asked.get("create", False)),
                        reset=datetime.fromisoformat(reset.replace("Z", "+00:00"))
                        if isinstance(reset, str)
                        else None,
                        route=str(asked.get("route", f"POST {STATUSES}")),
                    )
                except (ValueError, AttributeError, TypeError) as exc:
                    return 400, {"error": str(exc)}, {}
                return 200, {"ok": True}, {}
            return 404, NOT_FOUND, {}

        # ---- the wire

        def _deliver(
            self,
            status: int,
            payload: dict[str, Any] | list[Any],
            headers: dict[str, str],
            fault: _Fault,
        ) -> None:
            if fault.mode == "drop":
                self.close_connection = True
                return
            if fault.mode == "hang":
                late = (
                    state.stopping.wait(fault.seconds) if fault.seconds else state.stopping.wait()
                )
                if late and state.stopping.is_set():
                    self.close_connection = True
                    return
            self._reply(status, payload, headers, withhold_body=fault.mode == "no_body")

        def _reply(
            self,
            status: int,
            payload: dict[str, Any] | list[Any],
            headers: dict[str, str] | None = None,
            *,
            withhold_body: bool = False,
        ) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                if self.close_connection:  # the client asked for it; say so, as servers do
                    self.send_header("Connection", "close")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if withhold_body:
                    self.wfile.flush()
                    state.stopping.wait()
                    self.close_connection = True
                    return
                self.wfile.write(data)
            except OSError:  # the client gave up waiting: a late answer has nobody to go to
                self.close_connection = True

    return Handler


def _fault(
    mode: str,
    times: int | None,
    seconds: float | None,
    create: bool,
    reset: datetime | None,
    route: str,
) -> _Fault:
    if mode not in FAULTS:
        raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULTS)}")
    return _Fault(mode, times, seconds, create, reset, route)


def _with(record: Received, **changes: Any) -> Received:
    return replace(record, **changes)


def _params(content_type: str, body: bytes) -> dict[str, Any]:
    """A status's parameters from a JSON or a form body."""
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in form.items()}


@pytest.fixture
def mastodon_server() -> Iterator[MastodonStandIn]:
    """A started Mastodon stand-in, stopped after the test."""
    with MastodonStandIn() as server:
        yield server
