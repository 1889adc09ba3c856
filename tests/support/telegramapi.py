"""A stand-in for the Telegram Bot API: a real HTTP server on 127.0.0.1, faults set at run time.

It answers `/bot{token}/sendMessage`, `getMe` and `getChat` (GET or POST; JSON, form or query
parameters; method names in any case) with the Bot API's JSON shapes: `{"ok": true, "result": …}`
or `{"ok": false, "error_code": …, "description": …, "parameters": …}`, the HTTP status being the
error code. A wrong token is 401 `Unauthorized`; a path without `/bot` is 404 `Not Found`; a chat
configured as migrated (a group that became a supergroup) is 400 with
`parameters.migrate_to_chat_id`; an unknown chat is 400 `chat not found`. Text in parse mode HTML
is parsed as Telegram parses it (supported tags become entities, `&lt;` `&gt;` `&amp;` `&quot;`
and numeric entities are decoded, any other tag is 400 `can't parse entities`), and stored with
its entities, so tests count posts and see what the chat would show.

    with TelegramStandIn() as tg:              # or the `telegram_server` fixture
        env = tg.env()                         # TELEGRAM_BOT_TOKEN, _CHAT_ID, _API_BASE_URL
        tg.set_fault("status_429", retry_after=30, times=1)   # the next request only
        ...
        assert [m.text for m in tg.messages] == [text]       # posted exactly once

Faults: `ok`, `status_429` (`retry_after` seconds, in the body's parameters and a Retry-After
header), `status_500` (JSON), `status_502` (nginx's HTML page), `status_401`, `hang` (the
message is stored, the answer comes `late` seconds later, or never until stop), `no_body` (the
message is stored, the status line and headers are sent, the body never arrives), `drop` (the
message is stored, the socket is closed without an answer). A 5xx stores the message first when
`publish=True` (the ambiguous case). `method=` limits a fault to one Bot API method.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.support.standin import LoopbackServer

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # the shape @BotFather gives, not real
BOT_ID = 123456789
CHANNEL = "@readinggroup"
CHANNEL_ID = -1001234567890
OLD_GROUP_ID = -412345678  # a basic group, since upgraded to ...
SUPERGROUP_ID = -1009876543210  # ... this supergroup
FAULTS = (
    "ok",
    "status_429",
    "status_500",
    "status_502",
    "status_401",
    "hang",
    "no_body",
    "drop",
)
METHODS = ("getme", "getchat", "sendmessage")
MAX_TEXT = 4096  # characters (code points) after entities parsing, as tdlib counts
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]+));")
_ATTRIBUTE = re.compile(r"""\s*([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"']+))""")


class ParseError(ValueError):
    """Text that Telegram's HTML parser refuses."""


@dataclass(frozen=True)
class Entity:
    """A MessageEntity: offsets and lengths in UTF-16 code units, as the Bot API gives them."""

    type: str
    offset: int
    length: int
    url: str | None = None


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode(match: re.Match[str]) -> str | None:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        return _NAMED.get(name)
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else None


def _unescape(value: str) -> str:
    """An attribute's value with its entities decoded."""
    return _ENTITY.sub(lambda m: _decode(m) or m.group(0), value)


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """The plain text and entities of `text` in parse mode HTML; ParseError as Telegram says."""
    out: list[str] = []
    opened: list[tuple[str, int, dict[str, str]]] = []
    entities: list[Entity] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "&":
            match = _ENTITY.match(text, i)
            decoded = _decode(match) if match else None
            if match and decoded is not None:
                out.append(decoded)
                i = match.end()
                continue
            out.append("&")  # an unknown entity stays as written
            i += 1
            continue
        if char != "<":
            out.append(char)
            i += 1
            continue
        at = len(text[:i].encode())
        end = text.find(">", i)
        if end < 0:
            raise ParseError(f"Unclosed start tag at byte offset {at}")
        inner = text[i + 1 : end]
        i = end + 1
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not opened:
                raise ParseError(f'Unexpected end tag at byte offset {at}, found "</{name}>"')
            tag, start, attributes = opened.pop()
            if name != tag:
                raise ParseError(
                    f'Unmatched end tag at byte offset {at}, expected "</{tag}>", found "</{name}>"'
                )
            offset = _utf16("".join(out))
            url = attributes.get("href") if tag == "a" else None
            entities.append(Entity(_TAGS[tag], start, offset - start, url))
            continue
        name, _, rest = inner.partition(" ")
        name = name.strip().lower()
        if name not in _TAGS:
            raise ParseError(f'Unsupported start tag "{name}" at byte offset {at}')
        attributes = {
            m.group(1).lower(): _unescape(next(g for g in m.groups()[1:] if g is not None))
            for m in _ATTRIBUTE.finditer(rest)
        }
        opened.append((name, _utf16("".join(out)), attributes))
    if opened:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{opened[-1][0]}"')
    return "".join(out), sorted(entities, key=lambda e: (e.offset, -e.length))


@dataclass(frozen=True)
class Posted:
    """One message the chat shows."""

    message_id: int
    chat_id: int
    text: str  # as the chat shows it (entities parsed)
    raw_text: str  # as the bot sent it
    parse_mode: str | None
    entities: tuple[Entity, ...]
    link_preview_options: dict[str, Any] | None


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    http_method: str
    path: str
    method: str  # the Bot API method, lower case ("" when the path names none)
    token_ok: bool
    params: dict[str, Any]
    headers: dict[str, str]
    fault: str  # the mode that answered it


@dataclass
class _Fault:
    mode: str = "ok"
    remaining: int | None = None  # None: until changed
    retry_after: int | None = None
    late: float | None = None
    publish: bool = False
    method: str | None = None


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    fault: _Fault = field(default_factory=_Fault)
    received: list[Received] = field(default_factory=list)
    messages: list[Posted] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(101))


def _chat(chat_id: int, kind: str, title: str, username: str | None = None) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": chat_id, "title": title, "type": kind}
    if username:
        chat["username"] = username
    return chat


class TelegramStandIn(LoopbackServer):
    """The loopback Bot API; start() it, point TELEGRAM_API_BASE_URL at `base_url`, stop() it."""

    name = "the Telegram stand-in"

    def __init__(self, *, token: str = TOKEN) -> None:
        self.token = token
        self.chats: dict[int, dict[str, Any]] = {
            CHANNEL_ID: _chat(CHANNEL_ID, "channel", "Reading Group", CHANNEL[1:]),
            SUPERGROUP_ID: _chat(SUPERGROUP_ID, "supergroup", "Reading Group chat"),
        }
        self.migrated: dict[int, int] = {OLD_GROUP_ID: SUPERGROUP_ID}
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.server_class = _QuietServer  # a client that gave up is no error here

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the value for TELEGRAM_API_BASE_URL."""
        return self.origin

    def env(self, chat: str = CHANNEL, **more: str) -> dict[str, str]:
        """The variables of a `telegram` channel posting to `chat` here."""
        return {
            "TELEGRAM_BOT_TOKEN": self.token,
            "TELEGRAM_CHAT_ID": chat,
            "TELEGRAM_API_BASE_URL": self.base_url,
            **more,
        }

    def set_fault(
        self,
        mode: str,
        *,
        times: int | None = None,
        retry_after: int | None = None,
        late: float | None = None,
        publish: bool = False,
        method: str | None = None,
    ) -> None:
        """Answer the next `times` requests (all, when None) with `mode`, then `ok` again."""
        if mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULTS)}")
        with self._state.lock:
            self._state.fault = _Fault(
                mode, times, retry_after, late, publish, method.lower() if method else None
            )

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order."""
        with self._state.lock:
            return list(self._state.received)

    @property
    def messages(self) -> list[Posted]:
        """Every message the chats show, in order."""
        with self._state.lock:
            return list(self._state.messages)

    def _take_fault(self, method: str) -> _Fault:
        with self._state.lock:
            fault = self._state.fault
            if fault.method is not None and fault.method != method:
                return _Fault()
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._state.fault = _Fault()
            return fault

    def _find_chat(self, raw: Any) -> tuple[int, dict[str, Any] | None, int | None]:
        """(id, chat or None, the supergroup it migrated to or None) for a chat_id parameter."""
        text = str(raw if raw is not None else "").strip()
        if text.startswith("@"):
            for chat_id, chat in self.chats.items():
                if str(chat.get("username", "")).lower() == text[1:].lower():
                    return chat_id, chat, None
            return 0, None, None
        try:
            chat_id = int(text)
        except ValueError:
            return 0, None, None
        return chat_id, self.chats.get(chat_id), self.migrated.get(chat_id)

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The Bot API's answer to one call (storing a message sendMessage posts)."""
        if method == "getme":
            bot = {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Reading Group",
                "username": "rg_bot",
            }
            return 200, {"ok": True, "result": bot}
        chat_id, chat, moved_to = self._find_chat(params.get("chat_id"))
        if moved_to is not None:
            return _error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": moved_to},
            )
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        if method == "getchat":
            return 200, {"ok": True, "result": {**chat, "has_visible_history": True}}
        raw = params.get("text")
        if not isinstance(raw, str):
            return _error(400, "Bad Request: message text is empty")
        mode = params.get("parse_mode")
        try:
            text, entities = parse_html(raw) if str(mode).lower() == "html" else (raw, [])
        except ParseError as exc:
            return _error(400, f"Bad Request: can't parse entities: {exc}")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        preview = params.get("link_preview_options")
        if isinstance(preview, str):
            preview = json.loads(preview)
        with self._state.lock:
            posted = Posted(
                message_id=next(self._state.ids),
                chat_id=chat_id,
                text=text,
                raw_text=raw,
                parse_mode=mode if isinstance(mode, str) else None,
                entities=tuple(entities),
                link_preview_options=preview if isinstance(preview, dict) else None,
            )
            self._state.messages.append(posted)
        result: dict[str, Any] = {
            "message_id": posted.message_id,
            "sender_chat": chat,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            result["entities"] = [
                {k: v for k, v in vars(e).items() if v is not None} for e in entities
            ]
        if posted.link_preview_options:
            result["link_preview_options"] = posted.link_preview_options
        return 200, {"ok": True, "result": result}


def _error(
    code: int, description: str, parameters: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return code, body


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a late answer is expected here


def _params(handler: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
    """Query-string, form and JSON parameters, as the Bot API takes them."""
    params: dict[str, Any] = dict(parse_qsl(urlsplit(handler.path).query))
    kind = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if kind == "application/json" and body:
        parsed = json.loads(body)
        if isinstance(parsed, dict):
            params.update(parsed)
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode()))
    return params


def _handler_for(standin: TelegramStandIn) -> type[BaseHTTPRequestHandler]:
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
            route = urlsplit(self.path).path
            token, method = "", ""
            if route.startswith("/bot"):
                token, _, method = route[4:].partition("/")
                method = method.lower()
            try:
                params = _params(self, body)
            except ValueError:
                params = {}
            token_ok = token == standin.token
            fault = _Fault()
            if not route.startswith("/bot"):
                status, payload = _error(404, "Not Found")
            elif not token_ok:
                status, payload = _error(401, "Unauthorized")
            elif method not in METHODS:
                status, payload = _error(404, "Not Found: method not found")
            else:
                fault = standin._take_fault(method)
                status, payload = self._decide(fault, method, params)
            with state.lock:
                state.received.append(
                    Received(
                        self.command,
                        self.path,
                        method,
                        token_ok,
                        params,
                        dict(self.headers.items()),
                        fault.mode,
                    )
                )
            self._reply(status, payload, fault)

        def _decide(
            self, fault: _Fault, method: str, params: dict[str, Any]
        ) -> tuple[int, dict[str, Any]]:
            if fault.mode == "status_401":
                return _error(401, "Unauthorized")
            if fault.mode == "status_429":
                after = fault.retry_after if fault.retry_after is not None else 5
                return _error(
                    429, f"Too Many Requests: retry after {after}", {"retry_after": after}
                )
            if fault.mode in ("status_500", "status_502"):
                if fault.publish:
                    standin.answer(method, params)
                return _error(int(fault.mode[-3:]), "Internal Server Error")
            return standin.answer(method, params)

        def _reply(self, status: int, payload: dict[str, Any], fault: _Fault) -> None:
            if fault.mode == "drop":
                self.close_connection = True
                return
            if fault.mode == "hang" and state.stopping.wait(fault.late):
                self.close_connection = True
                return
            data = json.dumps(payload).encode()
            kind = "application/json"
            if fault.mode == "status_502":
                data, kind = NGINX_502.encode(), "text/html"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            if fault.mode == "status_429":
                self.send_header("Retry-After", str(payload["parameters"]["retry_after"]))
            self.end_headers()
            if fault.mode == "no_body":
                self.wfile.flush()
                state.stopping.wait()
                self.close_connection = True
                return
            self.wfile.write(data)

    return Handler


@pytest.fixture
def telegram_server() -> Iterator[TelegramStandIn]:
    """A started Telegram stand-in, stopped after the test."""
    with TelegramStandIn() as server:
        yield server
