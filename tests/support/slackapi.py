"""A stand-in for Slack: the Web API methods the bot uses and an incoming webhook, on a real HTTP
server at 127.0.0.1 with faults settable at run time.

It answers as Slack does: Web API methods always with HTTP 200 and `{"ok": false, "error": …}` for
refusals (a missing or wrong `Authorization: Bearer` token is `not_authed` / `invalid_auth`, a
method outside the token's scopes is `missing_scope` naming what is `needed`), throttling with
HTTP 429 and `Retry-After`; the webhook with plain-text bodies (`ok`, `invalid_payload`, …).

    with SlackStandIn() as slack:             # any process can use the URLs
        env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_CHANNEL": slack.channel_id,
               "SLACK_API_BASE_URL": slack.base_url}      # or SLACK_WEBHOOK_URL: slack.webhook_url
        slack.now = moment                    # the clock of the `ts` it gives (default: real)
        slack.set_fault("hang", times=1)      # the next post is stored, its answer never comes
        ...
        assert [m.text for m in slack.messages] == [...]  # what the channel shows

Methods: `chat.postMessage` (stores the message with its metadata), `auth.test`,
`conversations.history` (newest first, `oldest`/`latest` exclusive, `limit`, `cursor` paging;
metadata only with `include_all_metadata=true`), `conversations.list`, `chat.getPermalink`; and
the webhook `POST /services/T…/B…/KEY`.

Faults (`set_fault(mode, times=…, route=…)`; `route` is a method name or "webhook", by default
both ways of posting): `status_429` (HTTP 429, `Retry-After: retry_after`), `ratelimited` (HTTP
200, ok:false), `status_500`, `internal_error` (ok:false, may still store with `store=True`),
`refuse` (ok:false `error=…`; on the webhook the matching status: 400 invalid_payload,
403 action_prohibited, 404 channel_not_found, 410 channel_is_archived), `invalid_auth`,
`hang` (the message is stored, the answer comes `delay` seconds later or never), `no_body`
(stored; headers sent, the body withheld), `drop` (stored; the socket closed unanswered). With
`store=False` a hang, no_body or drop loses the request before anything is stored.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.standin import LoopbackServer

FAULTS = (
    "ok",
    "status_429",
    "ratelimited",
    "status_500",
    "internal_error",
    "refuse",
    "invalid_auth",
    "hang",
    "no_body",
    "drop",
)
WEBHOOK_STATUS = {
    "invalid_payload": 400,
    "invalid_token": 403,
    "action_prohibited": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "channel_is_archived": 410,
    "rollup_error": 500,
}
POSTING = ("chat.postMessage", "webhook")
SCOPES = frozenset({"chat:write", "channels:history", "groups:history", "channels:read"})
WORKSPACE = "https://reading-group.slack.com"


@dataclass(frozen=True)
class Received:
    """One request as the server saw it (the token itself is kept only as `bearer`)."""

    method: str
    path: str
    route: str  # the Web API method, "webhook", or "unknown"
    headers: dict[str, str]
    params: dict[str, Any]
    body: bytes
    bearer: str | None
    fault: str


@dataclass(frozen=True)
class Posted:
    """A message the channel shows."""

    ts: str
    channel: str
    text: str
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    via: str  # "chat.postMessage" or "webhook"

    @property
    def reference(self) -> str | None:
        """The delivery reference in its metadata."""
        payload = (self.metadata or {}).get("event_payload") or {}
        value = payload.get("reference")
        return value if isinstance(value, str) else None


@dataclass
class _Fault:
    mode: str = "ok"
    remaining: int | None = None
    route: tuple[str, ...] = POSTING
    retry_after: int | None = None
    error: str | None = None
    store: bool | None = None  # None: the mode's own default
    delay: float | None = None

    def stores(self) -> bool:
        if self.store is not None:
            return self.store
        return self.mode in ("ok", "hang", "no_body", "drop")


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    fault: _Fault = field(default_factory=_Fault)
    received: list[Received] = field(default_factory=list)
    messages: list[Posted] = field(default_factory=list)
    last_ts: float = 0.0


class SlackStandIn(LoopbackServer):
    """The loopback Slack; start() it, point SLACK_API_BASE_URL or SLACK_WEBHOOK_URL at it."""

    name = "the Slack stand-in"

    def __init__(
        self,
        *,
        token: str = "xoxb-1111-2222-StandInSecretToken",
        channel_id: str = "C0READING1",
        channel_name: str = "reading-group",
        webhook_key: str = "StandInWebhookSecretKey1234",
        scopes: frozenset[str] = SCOPES,
    ) -> None:
        self.token = token
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.webhook_key = webhook_key
        self.scopes = scopes
        self.now: datetime | None = None  # the clock Slack stamps messages with (None: real)
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        """The value for SLACK_API_BASE_URL."""
        return f"{self.origin}/api"

    @property
    def webhook_path(self) -> str:
        """The webhook URL's path: as secret as the URL."""
        return f"/services/T0READING/B0WEBHOOK/{self.webhook_key}"

    @property
    def webhook_url(self) -> str:
        """The value for SLACK_WEBHOOK_URL."""
        return self.origin + self.webhook_path

    def bot_env(self, **more: str) -> dict[str, str]:
        """The variables of bot-token mode."""
        return {
            "SLACK_BOT_TOKEN": self.token,
            "SLACK_CHANNEL": self.channel_id,
            "SLACK_API_BASE_URL": self.base_url,
            **more,
        }

    def webhook_env(self, **more: str) -> dict[str, str]:
        """The variables of webhook mode."""
        return {"SLACK_WEBHOOK_URL": self.webhook_url, **more}

    def set_fault(
        self,
        mode: str,
        *,
        times: int | None = None,
        route: str | tuple[str, ...] = POSTING,
        retry_after: int | None = None,
        error: str | None = None,
        store: bool | None = None,
        delay: float | None = None,
    ) -> None:
        """Answer the next `times` requests to `route` (all, when None) with `mode`."""
        if mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULTS)}")
        routes = (route,) if isinstance(route, str) else tuple(route)
        with self._state.lock:
            self._state.fault = _Fault(mode, times, routes, retry_after, error, store, delay)

    def post(self, text: str, *, metadata: dict[str, Any] | None = None) -> Posted:
        """A message someone else posts in the channel (it shows in the history)."""
        with self._state.lock:
            return self._store(self.channel_id, text, None, metadata, "someone")

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order."""
        with self._state.lock:
            return list(self._state.received)

    @property
    def posts(self) -> list[Received]:
        """Every attempt to post (chat.postMessage or the webhook), stored or not."""
        return [r for r in self.requests if r.route in POSTING]

    @property
    def messages(self) -> list[Posted]:
        """What the channel shows, oldest first."""
        with self._state.lock:
            return list(self._state.messages)

    # Inside the server (the caller holds the lock) ------------------------------------------

    def _store(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        metadata: dict[str, Any] | None,
        via: str,
    ) -> Posted:
        state = self._state
        moment = (self.now or datetime.now(UTC)).timestamp()
        value = max(round(moment, 6), round(state.last_ts + 0.000001, 6))
        state.last_ts = value
        posted = Posted(f"{value:.6f}", channel, text, blocks, metadata, via)
        state.messages.append(posted)
        return posted

    def _take_fault(self, route: str) -> _Fault:
        fault = self._state.fault
        if route not in fault.route or fault.mode == "ok":
            return _Fault()
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._state.fault = _Fault()
        return fault


def _cursor(offset: int) -> str:
    return base64.b64encode(f"next:{offset}".encode()).decode()


def _offset(cursor: str) -> int | None:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except ValueError:
        return None
    return int(text[5:]) if text.startswith("next:") and text[5:].isdigit() else None


def _true(value: Any) -> bool:
    return str(value).lower() in ("true", "1")


def _handler_for(standin: SlackStandIn) -> type[BaseHTTPRequestHandler]:
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
            parts = urlsplit(self.path)
            params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            params.update(self._body_params(body))
            auth = self.headers.get("Authorization", "")
            bearer = auth[7:] if auth.startswith("Bearer ") else None
            if parts.path == standin.webhook_path or parts.path.startswith("/services/"):
                route = "webhook"
            elif parts.path.startswith("/api/"):
                route = parts.path[5:]
            else:
                route = "unknown"
            with state.lock:
                fault = standin._take_fault(route)
                status, payload, extra = self._answer(route, params, bearer, parts.path, fault)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
                state.received.append(
                    Received(
                        self.command, self.path, route, headers, params, body, bearer, fault.mode
                    )
                )
            if fault.mode == "drop":
                self.close_connection = True
                return
            if fault.mode == "hang":  # the answer comes `delay` seconds late, or never
                stopped = state.stopping.wait(3600 if fault.delay is None else fault.delay)
                if stopped or fault.delay is None:
                    self.close_connection = True
                    return
            self._reply(status, payload, extra, withhold=fault.mode == "no_body")

        def _body_params(self, body: bytes) -> dict[str, Any]:
            if not body:
                return {}
            kind = self.headers.get("Content-Type", "")
            if kind.startswith("application/json"):
                try:
                    value = json.loads(body)
                except ValueError:
                    return {"__invalid__": True}
                return value if isinstance(value, dict) else {"__invalid__": True}
            return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}

        def _answer(
            self,
            route: str,
            params: dict[str, Any],
            bearer: str | None,
            path: str,
            fault: _Fault,
        ) -> tuple[int, Any, dict[str, str]]:
            """Decide the answer; store a message that is taken."""
            if route == "webhook":
                return self._webhook(params, path, fault)
            if route == "unknown":
                return 404, "Not Found", {}
            if bearer is None:
                return 200, {"ok": False, "error": "not_authed"}, {}
            if bearer != standin.token or fault.mode == "invalid_auth":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            refused = self._fault_answer(fault, webhook=False)
            if route == "chat.postMessage":
                return self._post_message(params, fault, refused)
            if refused is not None:
                return refused
            handler = {
                "auth.test": self._auth_test,
                "conversations.history": self._history,
                "conversations.list": self._list,
                "chat.getPermalink": self._permalink,
            }.get(route)
            if handler is None:
                return 200, {"ok": False, "error": "unknown_method"}, {}
            return handler(params)

        def _fault_answer(
            self, fault: _Fault, *, webhook: bool
        ) -> tuple[int, Any, dict[str, str]] | None:
            retry = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            if fault.mode == "status_429":
                body = "rate_limited" if webhook else {"ok": False, "error": "ratelimited"}
                return 429, body, {"Retry-After": str(fault.retry_after or 30)}
            if fault.mode == "ratelimited" and not webhook:
                return 200, {"ok": False, "error": "ratelimited"}, retry
            if fault.mode == "status_500":
                return 500, "rollup_error" if webhook else "<html>Internal Server Error</html>", {}
            if fault.mode == "internal_error" and not webhook:
                return 200, {"ok": False, "error": "internal_error"}, {}
            if fault.mode == "refuse":
                error = fault.error or ("invalid_payload" if webhook else "invalid_arguments")
                if webhook:
                    return WEBHOOK_STATUS.get(error, 400), error, {}
                answer: dict[str, Any] = {"ok": False, "error": error}
                if error == "missing_scope":
                    answer |= {"needed": "chat:write", "provided": ",".join(sorted(standin.scopes))}
                return 200, answer, {}
            return None

        def _channel(self, value: Any) -> str | None:
            name = str(value or "").lstrip("#")
            if name in (standin.channel_id, standin.channel_name):
                return standin.channel_id
            return None

        def _missing(self, scope: str) -> tuple[int, Any, dict[str, str]] | None:
            if scope in standin.scopes:
                return None
            provided = ",".join(sorted(standin.scopes))
            answer = {"ok": False, "error": "missing_scope", "needed": scope, "provided": provided}
            return 200, answer, {}

        def _post_message(
            self,
            params: dict[str, Any],
            fault: _Fault,
            refused: tuple[int, Any, dict[str, str]] | None,
        ) -> tuple[int, Any, dict[str, str]]:
            if (missing := self._missing("chat:write")) is not None:
                return missing
            channel = self._channel(params.get("channel"))
            if channel is None:
                return 200, {"ok": False, "error": "channel_not_found"}, {}
            text = params.get("text")
            if not isinstance(text, str) or not text:
                return 200, {"ok": False, "error": "no_text"}, {}
            blocks = params.get("blocks")
            metadata = params.get("metadata")
            if isinstance(metadata, str):  # form-encoded calls send it as a JSON string
                metadata = json.loads(metadata)
            if fault.stores():
                posted = standin._store(
                    channel,
                    text,
                    blocks if isinstance(blocks, list) else None,
                    metadata if isinstance(metadata, dict) else None,
                    "chat.postMessage",
                )
                if refused is None:
                    message = {"type": "message", "text": text, "ts": posted.ts, "bot_id": "B0BOT"}
                    return (
                        200,
                        {"ok": True, "channel": channel, "ts": posted.ts, "message": message},
                        {},
                    )
            if refused is not None:
                return refused
            return 200, {"ok": False, "error": "internal_error"}, {}  # lost before storing

        def _auth_test(self, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
            answer = {
                "ok": True,
                "url": f"{WORKSPACE}/",
                "team": "Reading Group",
                "user": "readingbot",
                "team_id": "T0READING",
                "user_id": "U0BOT",
                "bot_id": "B0BOT",
            }
            return 200, answer, {}

        def _history(self, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
            if (missing := self._missing("channels:history")) is not None:
                return missing
            channel = str(params.get("channel") or "")
            if channel != standin.channel_id:  # an ID only: no names here
                return 200, {"ok": False, "error": "channel_not_found"}, {}
            oldest = float(params.get("oldest") or 0)
            latest = float(params["latest"]) if params.get("latest") else None
            found = [
                m
                for m in reversed(state.messages)
                if m.channel == channel
                and float(m.ts) > oldest
                and (latest is None or float(m.ts) < latest)
            ]
            limit = max(1, min(int(params.get("limit") or 100), 999))
            start = _offset(str(params["cursor"])) if params.get("cursor") else 0
            if start is None:
                return 200, {"ok": False, "error": "invalid_cursor"}, {}
            page = found[start : start + limit]
            more = start + limit < len(found)
            items = []
            for m in page:
                item: dict[str, Any] = {"type": "message", "text": m.text, "ts": m.ts}
                if m.via != "someone":
                    item |= {"subtype": "bot_message", "bot_id": "B0BOT"}
                if m.blocks is not None:
                    item["blocks"] = m.blocks
                if m.metadata is not None and _true(params.get("include_all_metadata")):
                    item["metadata"] = m.metadata
                items.append(item)
            answer: dict[str, Any] = {"ok": True, "messages": items, "has_more": more}
            answer["response_metadata"] = {"next_cursor": _cursor(start + limit) if more else ""}
            return 200, answer, {}

        def _list(self, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
            if (missing := self._missing("channels:read")) is not None:
                return missing
            channels = [
                {"id": "C0OTHER001", "name": "general", "is_member": False},
                {"id": standin.channel_id, "name": standin.channel_name, "is_member": True},
            ]
            answer = {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}
            return 200, answer, {}

        def _permalink(self, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
            channel, ts = str(params.get("channel") or ""), str(params.get("message_ts") or "")
            if not any(m.channel == channel and m.ts == ts for m in state.messages):
                return 200, {"ok": False, "error": "message_not_found"}, {}
            link = f"{WORKSPACE}/archives/{channel}/p{ts.replace('.', '')}"
            return 200, {"ok": True, "channel": channel, "permalink": link}, {}

        def _webhook(
            self, params: dict[str, Any], path: str, fault: _Fault
        ) -> tuple[int, Any, dict[str, str]]:
            if path != standin.webhook_path:
                return 404, "no_service", {}
            if fault.mode == "invalid_auth":
                return 403, "invalid_token", {}
            refused = self._fault_answer(fault, webhook=True)
            text = params.get("text")
            if params.get("__invalid__") or not isinstance(text, str) or not text:
                return 400, "invalid_payload", {}
            if fault.stores():
                blocks = params.get("blocks")
                standin._store(
                    standin.channel_id,
                    text,
                    blocks if isinstance(blocks, list) else None,
                    None,
                    "webhook",
                )
            return refused if refused is not None else (200, "ok", {})

        def _reply(
            self, status: int, payload: Any, extra: dict[str, str], *, withhold: bool
        ) -> None:
            if isinstance(payload, str):
                data, kind = payload.encode(), "text/html"
            else:
                data, kind = json.dumps(payload).encode(), "application/json; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            if self.close_connection:  # the client asked for it; say so, as real servers do
                self.send_header("Connection", "close")
            self.end_headers()
            if withhold:  # the headers are out; the body never comes
                self.wfile.flush()
                state.stopping.wait(3600)
                self.close_connection = True
                return
            self.wfile.write(data)

    return Handler


def started() -> Iterator[SlackStandIn]:
    """A started stand-in, stopped afterwards (for a fixture: `yield from started()`)."""
    with SlackStandIn() as server:
        yield server
