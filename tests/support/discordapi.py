"""A stand-in for Discord's webhook API: a real HTTP server on 127.0.0.1, faults set at run time.

It answers `POST` and `GET /api/webhooks/{id}/{token}` (also `/api/v10/...`) the way Discord does
(discord-api-docs: resources/webhook, resources/message, topics/rate-limits, opcodes-and-status-
codes): a wrong token is 401 `{"message": "Invalid Webhook Token", "code": 50027}`, an unknown id
404 `{"message": "Unknown Webhook", "code": 10015}`; a post with `?wait=true` gets the message
object (200), one without it a bare 204. It checks a post as Discord does (content at most 2,000
code points, embed title 256, description 4,096, 6,000 over all embeds, something to show) and
answers 400 with code 50035 and the `errors` tree when it does not fit.

    with DiscordStandIn() as discord:        # or the `discord_server` fixture
        env = {"DISCORD_WEBHOOK_URL": discord.webhook_url}   # any process can use the URL
        discord.set_fault("status_429", retry_after=2.5, times=1)
        ...
        [message] = discord.messages          # what the channel shows, with its mentions

Fault modes: `ok`; `status_429` (JSON `retry_after` and `global`, headers `Retry-After`,
`X-RateLimit-Reset-After`, `X-RateLimit-Reset`: `reset_epoch`, or the real clock plus
`retry_after`); `status_5xx` (`status`: 500, 502, 503 or 504; the message is kept only with
`publish=True`); `status_401` (Invalid Webhook Token, whatever the token); `hang` (the message is
stored, then the answer waits `hang_seconds`, by default until stop: it comes too late for the
client); `no_body` (the message is stored, the headers are sent, the body never comes).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.standin import LoopbackServer

FAULTS = ("ok", "status_429", "status_5xx", "status_401", "hang", "no_body")
WEBHOOK_ID = "1300000000000000001"
TOKEN = "Zq3v-TESTTOKEN_k9F2xWm7YpLr0sD4aHc6NbJ8eGu1tVi5oQyXz"
CHANNEL_ID = "1200000000000000002"
GUILD_ID = "1100000000000000003"
WEBHOOK_NAME = "Reading group"
INVALID_TOKEN = {"message": "Invalid Webhook Token", "code": 50027}
UNKNOWN_WEBHOOK = {"message": "Unknown Webhook", "code": 10015}
_MENTION_TYPES = {"users", "roles", "everyone"}
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Received:
    """One request as the server saw it (its path holds the token: tests must not print it)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    fault: str  # the mode that answered it
    status: int  # what was (or would have been) answered


@dataclass(frozen=True)
class Posted:
    """A message the channel now shows."""

    id: str
    content: str
    embeds: list[dict[str, Any]]
    allowed_mentions: dict[str, Any] | None  # as sent; None when the field was left out
    pinged: tuple[str, ...]  # the mass mentions that notified people: "@everyone", "@here"
    waited: bool  # sent with ?wait=true
    fault: str


@dataclass
class _Fault:
    mode: str = "ok"
    remaining: int | None = None  # None: until changed
    retry_after: float = 1.0
    reset_epoch: float | None = None
    global_: bool = False
    status: int = 503
    publish: bool | None = None  # None: the mode's own default
    hang_seconds: float | None = None  # None: until stop


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    fault: _Fault = field(default_factory=_Fault)
    received: list[Received] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1_400_000_000_000_000_001))


def _too_long(limit: int) -> dict[str, Any]:
    return {
        "_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
        ]
    }


def _form_error(errors: dict[str, Any]) -> dict[str, Any]:
    return {"message": "Invalid Form Body", "code": 50035, "errors": errors}


def _embed_total(embed: dict[str, Any]) -> int:
    size = len(str(embed.get("title") or "").strip()) + len(
        str(embed.get("description") or "").strip()
    )
    for item in embed.get("fields") or []:
        size += len(str(item.get("name") or "")) + len(str(item.get("value") or ""))
    size += len(str((embed.get("footer") or {}).get("text") or ""))
    size += len(str((embed.get("author") or {}).get("name") or ""))
    return size


def check_post(payload: Any) -> tuple[int, dict[str, Any]] | None:
    """Discord's validation of an Execute Webhook body: (status, error body), or None if fine."""
    if not isinstance(payload, dict):
        return 400, _form_error(
            {
                "_errors": [
                    {
                        "code": "DICT_TYPE_CONVERT",
                        "message": "Only dictionaries may be used in a DictType",
                    }
                ]
            }
        )
    errors: dict[str, Any] = {}
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        errors["content"] = {
            "_errors": [
                {
                    "code": "STRING_TYPE_CONVERT",
                    "message": "Could not interpret the value as string.",
                }
            ]
        }
    elif isinstance(content, str) and len(content.strip()) > 2000:  # code points, as Python counts
        errors["content"] = _too_long(2000)
    embeds = payload.get("embeds") or []
    if not isinstance(embeds, list) or len(embeds) > 10:
        errors["embeds"] = _too_long(10)
        embeds = []
    for index, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            errors.setdefault("embeds", {})[str(index)] = {
                "_errors": [
                    {
                        "code": "DICT_TYPE_CONVERT",
                        "message": "Only dictionaries may be used in a DictType",
                    }
                ]
            }
            continue
        problems: dict[str, Any] = {}
        if len(str(embed.get("title") or "").strip()) > 256:
            problems["title"] = _too_long(256)
        if len(str(embed.get("description") or "").strip()) > 4096:
            problems["description"] = _too_long(4096)
        stamp = embed.get("timestamp")
        if stamp is not None:
            try:
                datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            except ValueError:
                problems["timestamp"] = {
                    "_errors": [
                        {"code": "DATE_TIME_TYPE_PARSE", "message": "Could not parse the date."}
                    ]
                }
        url = embed.get("url")
        if url is not None and not str(url).startswith(("http://", "https://")):
            problems["url"] = {
                "_errors": [{"code": "URL_TYPE_INVALID_URL", "message": "Not a well formed URL."}]
            }
        if problems:
            errors.setdefault("embeds", {})[str(index)] = problems
    mentions = payload.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse") if isinstance(mentions, dict) else None
        if not isinstance(parse, list) or not set(parse) <= _MENTION_TYPES:
            errors["allowed_mentions"] = {
                "_errors": [
                    {
                        "code": "ENUM_TYPE_COERCE",
                        "message": "Value must be one of {'users', 'roles', 'everyone'}.",
                    }
                ]
            }
    if errors:
        return 400, _form_error(errors)
    if sum(_embed_total(e) for e in embeds if isinstance(e, dict)) > 6000:
        return 400, {"message": "Embed size exceeds maximum size of 6000", "code": 50035}
    if not (isinstance(content, str) and content.strip()) and not embeds:
        return 400, {"message": "Cannot send an empty message", "code": 50006}
    return None


def pinged(content: str, allowed_mentions: dict[str, Any] | None) -> tuple[str, ...]:
    """The mass mentions that notify people; webhooks parse only user mentions by default."""
    parse = (allowed_mentions or {}).get("parse", ["users"] if allowed_mentions is None else [])
    if "everyone" not in (parse or []):
        return ()
    return tuple(m for m in ("@everyone", "@here") if m in content)


class DiscordStandIn(LoopbackServer):
    """The loopback webhook server; start() it, use `webhook_url`, stop() it."""

    name = "the Discord stand-in"

    def __init__(
        self,
        *,
        webhook_id: str = WEBHOOK_ID,
        token: str = TOKEN,
        channel_id: str = CHANNEL_ID,
        guild_id: str = GUILD_ID,
    ) -> None:
        self.webhook_id = webhook_id
        self.token = token
        self.channel_id = channel_id
        self.guild_id = guild_id
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return self.origin

    @property
    def webhook_url(self) -> str:
        """The value for DISCORD_WEBHOOK_URL."""
        return f"{self.base_url}/api/webhooks/{self.webhook_id}/{self.token}"

    def url_for(self, webhook_id: str | None = None, token: str | None = None) -> str:
        """A webhook URL on this server with another id or token (unknown or wrong)."""
        return f"{self.base_url}/api/webhooks/{webhook_id or self.webhook_id}/{token or self.token}"

    def set_fault(
        self,
        mode: str,
        *,
        times: int | None = None,
        retry_after: float = 1.0,
        reset_epoch: float | None = None,
        global_: bool = False,
        status: int = 503,
        publish: bool | None = None,
        hang_seconds: float | None = None,
    ) -> None:
        """Answer the next `times` webhook requests (all, when None) with `mode`, then `ok`."""
        if mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULTS)}")
        if mode == "status_5xx" and not 500 <= status <= 599:
            raise ValueError(f"status_5xx takes a 5xx status, not {status}")
        with self._state.lock:
            self._state.fault = _Fault(
                mode, times, retry_after, reset_epoch, global_, status, publish, hang_seconds
            )

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order."""
        with self._state.lock:
            return list(self._state.received)

    @property
    def posts(self) -> list[Received]:
        """Every POST received, taken or refused."""
        return [r for r in self.requests if r.method == "POST"]

    @property
    def messages(self) -> list[Posted]:
        """The messages the channel shows, in order."""
        with self._state.lock:
            return list(self._state.posted)

    def _take_fault(self) -> _Fault:
        with self._state.lock:
            fault = self._state.fault
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._state.fault = _Fault()
            return fault


def _handler_for(standin: DiscordStandIn) -> type[BaseHTTPRequestHandler]:
    state = standin._state

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean (and the token out of it)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            segments = parts.path.strip("/").split("/")
            if len(segments) == 5 and segments[1].startswith("v"):  # /api/v10/webhooks/…
                segments.pop(1)
            status, payload, fault = self._route(segments, query, body)
            with state.lock:
                state.received.append(
                    Received(
                        method=self.command,
                        path=self.path,
                        query=query,
                        headers=dict(self.headers.items()),
                        body=body,
                        received_at=datetime.now(UTC),
                        fault=fault.mode,
                        status=status,
                    )
                )
            if fault.mode == "hang":
                state.stopping.wait(fault.hang_seconds)
                if state.stopping.is_set():
                    self.close_connection = True
                    return
            self._reply(status, payload, fault)

        def _route(
            self, segments: list[str], query: dict[str, list[str]], body: bytes
        ) -> tuple[int, dict[str, Any] | None, _Fault]:
            """The answer, storing the message when the post is taken."""
            if len(segments) != 4 or segments[:2] != ["api", "webhooks"]:
                return 404, {"message": "404: Not Found", "code": 0}, _Fault()
            if self.command not in ("GET", "POST"):
                return 405, {"message": "405: Method Not Allowed", "code": 0}, _Fault()
            webhook_id, token = segments[2], segments[3]
            if webhook_id != standin.webhook_id:
                return 404, UNKNOWN_WEBHOOK, _Fault()
            if token != standin.token:
                return 401, INVALID_TOKEN, _Fault()
            fault = standin._take_fault()
            if fault.mode == "status_401":
                return 401, INVALID_TOKEN, fault
            if fault.mode == "status_429":
                return (
                    429,
                    {
                        "message": "You are being rate limited.",
                        "retry_after": fault.retry_after,
                        "global": fault.global_,
                    },
                    fault,
                )
            if self.command == "GET":
                if fault.mode == "status_5xx":
                    return fault.status, {"message": "500: Internal Server Error", "code": 0}, fault
                return 200, self._webhook_object(), fault
            return self._post(query, body, fault)

        def _post(
            self, query: dict[str, list[str]], body: bytes, fault: _Fault
        ) -> tuple[int, dict[str, Any] | None, _Fault]:
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                return 400, {"message": "Invalid Form Body", "code": 50035}, fault
            try:
                payload = json.loads(body or b"null")
            except ValueError:
                return (
                    400,
                    {"message": "The request body contains invalid JSON.", "code": 50109},
                    fault,
                )
            refused = check_post(payload)
            if refused is not None:
                return refused[0], refused[1], fault
            waited = query.get("wait", ["false"])[-1].lower() == "true"
            publish = fault.publish
            if publish is None:
                publish = fault.mode in ("ok", "hang", "no_body")
            message: dict[str, Any] | None = None
            if publish:
                message = self._store(payload, waited, fault)
            if fault.mode == "status_5xx":
                reason = _REASONS.get(fault.status, "Server Error")
                return fault.status, {"message": f"{fault.status}: {reason}", "code": 0}, fault
            if not waited:
                return 204, None, fault
            return 200, message, fault

        def _store(self, payload: dict[str, Any], waited: bool, fault: _Fault) -> dict[str, Any]:
            content = str(payload.get("content") or "")
            mentions = payload.get("allowed_mentions")
            embeds = [dict(e, type="rich") for e in payload.get("embeds") or []]
            with state.lock:
                message_id = str(next(state.ids))
                posted = Posted(
                    id=message_id,
                    content=content,
                    embeds=embeds,
                    allowed_mentions=mentions,
                    pinged=pinged(content, mentions),
                    waited=waited,
                    fault=fault.mode,
                )
                state.posted.append(posted)
            return {
                "id": message_id,
                "type": 0,
                "content": content,
                "channel_id": standin.channel_id,
                "author": {
                    "id": standin.webhook_id,
                    "username": WEBHOOK_NAME,
                    "avatar": None,
                    "discriminator": "0000",
                    "bot": True,
                },
                "attachments": [],
                "embeds": embeds,
                "mentions": [],
                "mention_roles": [],
                "mention_everyone": bool(posted.pinged),
                "pinned": False,
                "tts": False,
                "timestamp": datetime.now(UTC).isoformat(),
                "edited_timestamp": None,
                "flags": 0,
                "components": [],
                "webhook_id": standin.webhook_id,
            }

        def _webhook_object(self) -> dict[str, Any]:
            return {
                "application_id": None,
                "avatar": None,
                "channel_id": standin.channel_id,
                "guild_id": standin.guild_id,
                "id": standin.webhook_id,
                "name": WEBHOOK_NAME,
                "type": 1,
                "token": standin.token,  # Discord returns it: the client must never show it
            }

        def _reply(self, status: int, payload: dict[str, Any] | None, fault: _Fault) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.close_connection = True
            now = time.time()
            if status == 429:
                reset = (
                    fault.reset_epoch if fault.reset_epoch is not None else now + fault.retry_after
                )
                self.send_header("Retry-After", str(math.ceil(fault.retry_after)))
                self.send_header("X-RateLimit-Limit", "5")
                self.send_header("X-RateLimit-Remaining", "0")
                self.send_header("X-RateLimit-Reset", f"{reset:.3f}")
                self.send_header("X-RateLimit-Reset-After", f"{fault.retry_after:.3f}")
                self.send_header("X-RateLimit-Bucket", "d6e2a9b1c0f3")
                self.send_header("X-RateLimit-Scope", "global" if fault.global_ else "user")
                if fault.global_:
                    self.send_header("X-RateLimit-Global", "true")
            elif status < 300:
                self.send_header("X-RateLimit-Limit", "5")
                self.send_header("X-RateLimit-Remaining", "4")
                self.send_header("X-RateLimit-Reset", f"{now + 2:.3f}")
                self.send_header("X-RateLimit-Reset-After", "2.000")
                self.send_header("X-RateLimit-Bucket", "d6e2a9b1c0f3")
            self.end_headers()
            if fault.mode == "no_body":
                self.wfile.flush()
                state.stopping.wait()  # the body never comes
                return
            self.wfile.write(data)

    return Handler


@pytest.fixture
def discord_server() -> Iterator[DiscordStandIn]:
    """A started Discord stand-in, stopped after the test."""
    with DiscordStandIn() as server:
        yield server
