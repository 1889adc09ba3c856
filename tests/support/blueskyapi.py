"""A stand-in for a Bluesky PDS: a real XRPC server on 127.0.0.1 with faults set at run time.

It answers the calls the `bluesky` channel makes the way the PDS does (bluesky-social/atproto
`packages/pds`): JSON bodies, XRPC error bodies `{"error": NAME, "message": TEXT}`, status codes
and `ratelimit-*` headers.

- `com.atproto.server.createSession` (app password → JWT-shaped access and refresh tokens with
  `exp`; a wrong password is `401 AuthenticationRequired`), `refreshSession` (rotates both
  tokens; the old refresh token is then revoked), `getSession`;
- `com.atproto.repo.createRecord` (a post is validated like the lexicon says: at most 300
  graphemes and 3,000 bytes of text, a TID record key, facets and an external embed well
  formed), `putRecord` (`swapRecord: null` means "only if absent": `400 InvalidSwap`
  otherwise), `getRecord` (`400 RecordNotFound` when absent, no auth needed);
- `com.atproto.identity.resolveHandle` (`400 InvalidRequest "Unable to resolve handle"`).

An access token the test has expired (`expire_access_tokens()`) or one past its `exp` answers
`400 ExpiredToken`, as the PDS's auth verifier does; a forged one `400 InvalidToken`. A second
create at a taken record key answers `500 InternalServerError` and creates nothing: the real PDS
throws a plain error in its MST code there (bluesky-social/atproto#3718,
bluesky-social/indigo#873).

    with BlueskyStandIn() as pds:             # or the `bluesky_server` fixture
        env = pds.env()                       # BLUESKY_HANDLE, _APP_PASSWORD, _SERVICE_URL
        pds.set_fault("hang", times=1)        # the next createRecord: created, answered late
        ...
        assert [p.text for p in pds.posts] == [text]
        assert len(pds.calls(CREATE_SESSION)) == 1

Faults (`set_fault(mode, method=CREATE_RECORD, times=None, …)`, `method="*"` for every call):
`ok`; `status_NNN` (400, 401, 403, 413, 429, 500, 502, 503, 504: answered with the PDS's body for
it and nothing done; 429 carries `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` (the
given `reset_epoch`) and `ratelimit-policy`; `process=True` does the work first, as a proxy that
fails after the PDS wrote the record); `hang` (the work is done, the answer held until stop():
"hang after processing"); `no_body` (the work is done, status and headers sent, the body
withheld until stop()); `drop` (the work is done, the socket closed unanswered). `process=False`
makes `hang`, `no_body` and `drop` lose the request before any work.

Another process can use it through its base URL; `python -m tests.support.blueskyapi` runs one
on its own, and `GET /_standin/state` and `POST /_standin/fault` let another process read what it
holds and set a fault.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import regex  # type: ignore[import-untyped, unused-ignore]

from tests.support.standin import LoopbackServer

CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
GET_SESSION = "com.atproto.server.getSession"
CREATE_RECORD = "com.atproto.repo.createRecord"
PUT_RECORD = "com.atproto.repo.putRecord"
GET_RECORD = "com.atproto.repo.getRecord"
RESOLVE_HANDLE = "com.atproto.identity.resolveHandle"
POST = "app.bsky.feed.post"
METHODS = {
    CREATE_SESSION: "POST",
    REFRESH_SESSION: "POST",
    GET_SESSION: "GET",
    CREATE_RECORD: "POST",
    PUT_RECORD: "POST",
    GET_RECORD: "GET",
    RESOLVE_HANDLE: "GET",
}
HANDLE = "readinggroup.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
DID = "did:plc:readinggroupstandin23456"
ACCESS_LIFETIME = timedelta(hours=2)
REFRESH_LIFETIME = timedelta(days=90)
FAULTS = (
    "ok",
    "status_400",
    "status_401",
    "status_403",
    "status_413",
    "status_429",
    "status_500",
    "status_502",
    "status_503",
    "status_504",
    "hang",
    "no_body",
    "drop",
)
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidRequest", "Invalid request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("Forbidden", "Forbidden"),
    413: ("PayloadTooLarge", "request entity too large"),
    429: ("RateLimitExceeded", "Rate Limit Exceeded"),
    500: ("InternalServerError", "Internal Server Error"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Service Unavailable"),
    504: ("UpstreamTimeout", "Upstream Timeout"),
}
_POLICY = {CREATE_SESSION: ("30", "30;w=300"), CREATE_RECORD: ("5000", "5000;w=3600")}
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_GRAPHEME = regex.compile(r"\X")


class XrpcError(Exception):
    """An XRPC error answer."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


@dataclass(frozen=True)
class Received:
    """One request as the server saw it (the Authorization header's value is not kept)."""

    method: str
    path: str
    nsid: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    token: str | None  # "access", "refresh", "expired", "invalid", or None (no bearer token)
    fault: str
    status: int | None  # what it answered (None: no answer)
    received_at: datetime


@dataclass(frozen=True)
class StoredRecord:
    """A record in the stand-in's repository."""

    repo: str
    collection: str
    rkey: str
    value: dict[str, Any]
    cid: str
    created_at: datetime

    @property
    def uri(self) -> str:
        return f"at://{self.repo}/{self.collection}/{self.rkey}"

    @property
    def text(self) -> str | None:
        """A post's text."""
        text = self.value.get("text")
        return text if isinstance(text, str) else None

    @property
    def facets(self) -> list[tuple[str, str, str]]:
        """(kind, value, covered text) of each facet: the bytes sliced by its UTF-8 offsets."""
        data = (self.text or "").encode("utf-8")
        found = []
        for facet in self.value.get("facets") or []:
            index = facet["index"]
            covered = data[index["byteStart"] : index["byteEnd"]].decode("utf-8")
            for feature in facet["features"]:
                kind = feature["$type"].rpartition("#")[2]
                value = feature.get("uri") or feature.get("did") or feature.get("tag")
                found.append((kind, str(value), covered))
        return found


@dataclass
class _Fault:
    mode: str = "ok"
    method: str = CREATE_RECORD
    remaining: int | None = None  # None: until changed
    process: bool | None = None
    reset_epoch: int | None = None
    limit_remaining: int = 0


@dataclass
class _Account:
    did: str
    handle: str
    password: str


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    fault: _Fault = field(default_factory=_Fault)
    received: list[Received] = field(default_factory=list)
    records: dict[tuple[str, str, str], StoredRecord] = field(default_factory=dict)
    handles: dict[str, str] = field(default_factory=dict)  # handle → DID, for resolveHandle
    accounts: dict[str, _Account] = field(default_factory=dict)  # DID → account
    expired: set[str] = field(default_factory=set)  # jti of tokens the test has expired
    revoked: set[str] = field(default_factory=set)  # jti of rotated refresh tokens
    issued: list[str] = field(default_factory=list)  # every token string handed out
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    access_lifetime: timedelta = ACCESS_LIFETIME


class BlueskyStandIn(LoopbackServer):
    """The loopback PDS; start() it, point BLUESKY_SERVICE_URL at `base_url`, stop() it."""

    name = "the Bluesky stand-in"

    def __init__(
        self, *, handle: str = HANDLE, password: str = APP_PASSWORD, did: str = DID
    ) -> None:
        self.handle, self.password, self.did = handle, password, did
        self._state = _State()
        self._state.accounts[did] = _Account(did, handle, password)
        self._state.handles[handle] = did
        self._secret = hashlib.sha256(f"standin-{id(self)}-{time.time()}".encode()).digest()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the value for BLUESKY_SERVICE_URL."""
        return self.origin

    def env(self, **more: str) -> dict[str, str]:
        """The variables a bot process needs to post here."""
        return {
            "BLUESKY_HANDLE": self.handle,
            "BLUESKY_APP_PASSWORD": self.password,
            "BLUESKY_SERVICE_URL": self.base_url,
            **more,
        }

    # ------------------------------------------------------------ what a test sets

    def set_fault(
        self,
        mode: str,
        *,
        method: str = CREATE_RECORD,
        times: int | None = None,
        process: bool | None = None,
        reset_epoch: int | None = None,
        limit_remaining: int = 0,
    ) -> None:
        """Answer the next `times` calls of `method` ("*": any) with `mode`, then `ok` again."""
        if mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}; one of {', '.join(FAULTS)}")
        if method != "*" and method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        with self._state.lock:
            self._state.fault = _Fault(mode, method, times, process, reset_epoch, limit_remaining)

    def add_handle(self, handle: str, did: str) -> None:
        """Make `handle` resolve to `did` (someone to mention)."""
        with self._state.lock:
            self._state.handles[handle.lower()] = did

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far now answers 400 ExpiredToken."""
        self._expire("com.atproto.access")

    def expire_refresh_tokens(self) -> None:
        """Every refresh token handed out so far now answers 400 ExpiredToken."""
        self._expire("com.atproto.refresh")

    @property
    def access_lifetime(self) -> timedelta:
        """How long new access tokens last (their `exp`; default 2 hours, as the PDS)."""
        return self._state.access_lifetime

    @access_lifetime.setter
    def access_lifetime(self, value: timedelta) -> None:
        with self._state.lock:
            self._state.access_lifetime = value

    # ------------------------------------------------------------ what a test reads

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order."""
        with self._state.lock:
            return list(self._state.received)

    def calls(self, nsid: str) -> list[Received]:
        """The requests to one XRPC method."""
        return [r for r in self.requests if r.nsid == nsid]

    @property
    def records(self) -> list[StoredRecord]:
        """Every record in the repository, oldest first."""
        with self._state.lock:
            return sorted(self._state.records.values(), key=lambda r: r.created_at)

    @property
    def posts(self) -> list[StoredRecord]:
        """The posts Bluesky would show: each created one, once."""
        return [r for r in self.records if r.collection == POST]

    @property
    def tokens(self) -> list[str]:
        """Every token string handed out (to check none leaks into output)."""
        with self._state.lock:
            return list(self._state.issued)

    def snapshot(self) -> dict[str, Any]:
        """What another process sees at GET /_standin/state."""
        calls: dict[str, int] = {}
        for r in self.requests:
            calls[r.nsid] = calls.get(r.nsid, 0) + 1
        return {
            "records": [
                {"uri": r.uri, "rkey": r.rkey, "cid": r.cid, "value": r.value} for r in self.records
            ],
            "calls": calls,
        }

    # ------------------------------------------------------------ internals

    def _expire(self, scope: str) -> None:
        with self._state.lock:
            for token in self._state.issued:
                claims = _claims(token)
                if claims and claims.get("scope") == scope:
                    self._state.expired.add(str(claims["jti"]))

    def _take_fault(self, nsid: str) -> _Fault:
        with self._state.lock:
            fault = self._state.fault
            if fault.mode == "ok" or fault.method not in ("*", nsid):
                return _Fault()
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._state.fault = _Fault()
            return fault

    def _token(self, did: str, scope: str, lifetime: timedelta) -> str:
        """A JWT-shaped token (HS256 over the stand-in's secret) with sub, scope, exp, jti."""
        now = time.time()
        jti = f"{scope.rpartition('.')[2]}-{next(self._state.ids)}"
        header = _b64(
            {"typ": "at+jwt" if scope.endswith("access") else "refresh+jwt", "alg": "HS256"}
        )
        payload = _b64(
            {
                "scope": scope,
                "sub": did,
                "aud": "did:web:pds.stand-in.test",
                "iat": int(now),
                "exp": int(now + lifetime.total_seconds()),
                "jti": jti,
            }
        )
        signature = hmac.new(self._secret, f"{header}.{payload}".encode(), "sha256").digest()
        token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"
        self._state.issued.append(token)
        return token

    def _verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; XrpcError as the PDS's auth verifier answers."""
        parts = token.split(".")
        claims = _claims(token)
        if len(parts) != 3 or claims is None:
            raise XrpcError(400, "InvalidToken", "Malformed token")
        expected = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode(), "sha256").digest()
        given = parts[2] + "=" * (-len(parts[2]) % 4)
        try:
            signature = base64.urlsafe_b64decode(given)
        except ValueError:
            signature = b""
        if not hmac.compare_digest(signature, expected):
            raise XrpcError(400, "InvalidToken", "Token could not be verified")
        if str(claims.get("jti")) in self._state.expired or claims["exp"] <= time.time():
            raise XrpcError(400, "ExpiredToken", "Token has expired")
        if str(claims.get("jti")) in self._state.revoked:
            raise XrpcError(400, "ExpiredToken", "Token has been revoked")
        return claims

    def _session_for(self, account: _Account) -> dict[str, Any]:
        lifetime = self._state.access_lifetime
        return {
            "did": account.did,
            "handle": account.handle,
            "accessJwt": self._token(account.did, "com.atproto.access", lifetime),
            "refreshJwt": self._token(account.did, "com.atproto.refresh", REFRESH_LIFETIME),
            "active": True,
        }

    def _cid(self, value: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
        return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")[:52]


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _claims(token: str) -> dict[str, Any] | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) and isinstance(claims.get("exp"), int) else None


def _check_post(record: Any) -> None:
    """Validate an app.bsky.feed.post as the lexicon does (what the channel can get wrong)."""

    def bad(why: str) -> XrpcError:
        return XrpcError(400, "InvalidRecord", f"Invalid app.bsky.feed.post record: {why}")

    if not isinstance(record, dict) or record.get("$type") != POST:
        raise bad("Record/$type must be app.bsky.feed.post")
    text = record.get("text")
    if not isinstance(text, str):
        raise bad('Record must have the property "text"')
    if len(text.encode("utf-8")) > 3000:
        raise bad("Record/text must not be longer than 3000 characters")
    if len(_GRAPHEME.findall(text)) > 300:
        raise bad("Record/text must not be longer than 300 graphemes")
    created = record.get("createdAt")
    try:
        ok = isinstance(created, str) and datetime.fromisoformat(created).tzinfo is not None
    except ValueError:
        ok = False
    if not ok:
        raise bad("Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)")
    size = len(text.encode("utf-8"))
    for n, facet in enumerate(record.get("facets") or []):
        index = facet.get("index") if isinstance(facet, dict) else None
        start = index.get("byteStart") if isinstance(index, dict) else None
        end = index.get("byteEnd") if isinstance(index, dict) else None
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= size):
            raise bad(f"Record/facets/{n}/index must have byteStart <= byteEnd within the text")
        for feature in facet.get("features") or []:
            kind = feature.get("$type") if isinstance(feature, dict) else None
            if kind == "app.bsky.richtext.facet#link" and not re.match(
                r"^[a-z][a-z0-9+.-]*:\S+$", str(feature.get("uri"))
            ):
                raise bad(f"Record/facets/{n}/features/0/uri must be a uri")
            if kind == "app.bsky.richtext.facet#mention" and not str(feature.get("did")).startswith(
                "did:"
            ):
                raise bad(f"Record/facets/{n}/features/0/did must be a did")
            if kind == "app.bsky.richtext.facet#tag" and not (
                isinstance(feature.get("tag"), str) and 0 < len(feature["tag"]) <= 640
            ):
                raise bad(f"Record/facets/{n}/features/0/tag must be 1 to 640 characters")
    embed = record.get("embed")
    if embed is not None:
        external = embed.get("external") if isinstance(embed, dict) else None
        if embed.get("$type") != "app.bsky.embed.external" or not isinstance(external, dict):
            raise bad("Record/embed must be an app.bsky.embed.external")
        for name in ("uri", "title", "description"):
            if not isinstance(external.get(name), str):
                raise bad(f'Record/embed/external must have the property "{name}"')


def _handler_for(standin: BlueskyStandIn) -> type[BaseHTTPRequestHandler]:
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
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            if parts.path.startswith("/_standin/"):
                self._admin(parts.path, raw)
                return
            nsid = parts.path.removeprefix("/xrpc/") if parts.path.startswith("/xrpc/") else ""
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
            fault = standin._take_fault(nsid) if nsid in METHODS else _Fault()
            process = fault.process
            if process is None:
                process = fault.mode in ("hang", "no_body", "drop")
            status, kind = 200, None  # lost before any work: an empty 200
            payload: dict[str, Any] = {}
            if fault.mode == "ok" or process:
                status, payload, kind = self._answer(nsid, query, body, token)
            if fault.mode.startswith("status_"):
                status = int(fault.mode[-3:])
                error, message = _ERRORS[status]
                payload = {"error": error, "message": message}
            answered = status if fault.mode not in ("hang", "drop") else None
            with state.lock:
                state.received.append(
                    Received(
                        method=self.command,
                        path=self.path,
                        nsid=nsid,
                        query=query,
                        body=body,
                        headers={
                            k: v for k, v in self.headers.items() if k.lower() != "authorization"
                        },
                        token=kind,
                        fault=fault.mode,
                        status=answered,
                        received_at=datetime.now(UTC),
                    )
                )
            if fault.mode in ("hang", "drop"):
                if fault.mode == "hang":
                    state.stopping.wait()
                self.close_connection = True
                return
            self._reply(status, payload, nsid, fault)

        def _answer(
            self, nsid: str, query: dict[str, str], body: Any, token: str | None
        ) -> tuple[int, dict[str, Any], str | None]:
            """Do the call's work; (status, JSON body, which kind of token came)."""
            kind: str | None = None
            try:
                if nsid not in METHODS:
                    raise XrpcError(501, "MethodNotImplemented", "Method Not Implemented")
                if METHODS[nsid] != self.command:
                    raise XrpcError(400, "InvalidRequest", "Incorrect HTTP method")
                claims: dict[str, Any] | None = None
                if token is not None and nsid not in (CREATE_SESSION, RESOLVE_HANDLE):
                    try:
                        claims = standin._verify(token)
                        kind = str(claims["scope"]).rpartition(".")[2]
                    except XrpcError as exc:
                        kind = "expired" if exc.error == "ExpiredToken" else "invalid"
                        raise
                with state.lock:
                    return 200, self._work(nsid, query, body, claims), kind
            except XrpcError as exc:
                return exc.status, {"error": exc.error, "message": exc.message}, kind

        def _work(
            self, nsid: str, query: dict[str, str], body: Any, claims: dict[str, Any] | None
        ) -> dict[str, Any]:
            data = body if isinstance(body, dict) else {}
            if nsid == CREATE_SESSION:
                for name in ("identifier", "password"):
                    if not isinstance(data.get(name), str):
                        raise XrpcError(
                            400, "InvalidRequest", f'Input must have the property "{name}"'
                        )
                who = data["identifier"].lower().removeprefix("@")
                did = state.handles.get(who, who)
                account = state.accounts.get(did)
                if account is None or not hmac.compare_digest(account.password, data["password"]):
                    raise XrpcError(401, "AuthenticationRequired", "Invalid identifier or password")
                return standin._session_for(account)
            if nsid == RESOLVE_HANDLE:
                handle = query.get("handle", "").lower()
                if not handle:
                    raise XrpcError(400, "InvalidRequest", 'Params must have the property "handle"')
                if handle not in state.handles:
                    raise XrpcError(400, "InvalidRequest", "Unable to resolve handle")
                return {"did": state.handles[handle]}
            if nsid == GET_RECORD:
                return self._get_record(query)
            # Everything else needs a session.
            if claims is None:
                raise XrpcError(401, "AuthenticationRequired", "Authentication Required")
            account = state.accounts[str(claims["sub"])]
            if nsid == REFRESH_SESSION:
                if claims["scope"] != "com.atproto.refresh":
                    raise XrpcError(400, "InvalidToken", "Invalid token type")
                state.revoked.add(str(claims["jti"]))
                return standin._session_for(account)
            if claims["scope"] != "com.atproto.access":
                raise XrpcError(400, "InvalidToken", "Bad token scope")
            if nsid == GET_SESSION:
                return {"did": account.did, "handle": account.handle, "active": True}
            return self._write(nsid, data, account)

        def _get_record(self, query: dict[str, str]) -> dict[str, Any]:
            for name in ("repo", "collection", "rkey"):
                if not query.get(name):
                    raise XrpcError(
                        400, "InvalidRequest", f'Params must have the property "{name}"'
                    )
            repo = state.handles.get(query["repo"].lower(), query["repo"])
            if repo not in state.accounts:
                raise XrpcError(400, "InvalidRequest", f"Could not find repo: {query['repo']}")
            found = state.records.get((repo, query["collection"], query["rkey"]))
            if found is None:
                uri = f"at://{repo}/{query['collection']}/{query['rkey']}"
                raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
            return {"uri": found.uri, "cid": found.cid, "value": found.value}

        def _write(self, nsid: str, data: dict[str, Any], account: _Account) -> dict[str, Any]:
            for name in ("repo", "collection", "record"):
                if name not in data:
                    raise XrpcError(400, "InvalidRequest", f'Input must have the property "{name}"')
            repo = state.handles.get(str(data["repo"]).lower(), str(data["repo"]))
            if repo != account.did:
                raise XrpcError(401, "AuthenticationRequired", "Authentication Required")
            collection = str(data["collection"])
            rkey = data.get("rkey")
            if nsid == PUT_RECORD and not isinstance(rkey, str):
                raise XrpcError(400, "InvalidRequest", 'Input must have the property "rkey"')
            if rkey is None:
                rkey = _next_tid()
            if collection == POST:
                if not isinstance(rkey, str) or not _TID.match(rkey):
                    raise XrpcError(400, "InvalidRequest", f"Invalid TID: {rkey}")
                _check_post(data["record"])
            key = (repo, collection, str(rkey))
            existing = state.records.get(key)
            if nsid == CREATE_RECORD and existing is not None:
                # The real PDS fails in its MST code: a plain 500, nothing written.
                raise XrpcError(500, "InternalServerError", "Internal Server Error")
            if nsid == PUT_RECORD and "swapRecord" in data:
                swap = data["swapRecord"]
                current = existing.cid if existing else None
                if swap != current:
                    raise XrpcError(400, "InvalidSwap", f"Record was at {current}")
            value = dict(data["record"])
            stored = StoredRecord(
                repo, collection, str(rkey), value, standin._cid(value), datetime.now(UTC)
            )
            state.records[key] = stored
            return {
                "uri": stored.uri,
                "cid": stored.cid,
                "commit": {"cid": standin._cid({"commit": stored.cid}), "rev": _next_tid()},
                "validationStatus": "valid",
            }

        def _reply(self, status: int, payload: dict[str, Any], nsid: str, fault: _Fault) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if nsid in _POLICY:
                limit, policy = _POLICY[nsid]
                reset = fault.reset_epoch or int(time.time()) + 300
                remaining = fault.limit_remaining if status == 429 else int(limit) - 1
                self.send_header("ratelimit-limit", limit)
                self.send_header("ratelimit-remaining", str(remaining))
                self.send_header("ratelimit-reset", str(reset))
                self.send_header("ratelimit-policy", policy)
            elif status == 429:
                reset = fault.reset_epoch or int(time.time()) + 300
                self.send_header("ratelimit-limit", "3000")
                self.send_header("ratelimit-remaining", str(fault.limit_remaining))
                self.send_header("ratelimit-reset", str(reset))
                self.send_header("ratelimit-policy", "3000;w=300")
            if self.close_connection:  # the client asked for it; say so, as real servers do
                self.send_header("Connection", "close")
            self.end_headers()
            if fault.mode == "no_body":
                self.wfile.flush()
                state.stopping.wait()
                self.close_connection = True
                return
            self.wfile.write(data)

        def _admin(self, path: str, raw: bytes) -> None:
            """The stand-in's own endpoints, for a test in another process."""
            status = 200
            payload: dict[str, Any] = {}
            if path == "/_standin/state" and self.command == "GET":
                payload = standin.snapshot()
            elif path == "/_standin/fault" and self.command == "POST":
                try:
                    given = json.loads(raw or b"{}")
                    standin.set_fault(
                        str(given.pop("mode")),
                        **{k: v for k, v in given.items() if k in _FAULT_OPTIONS},
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    status, payload = 400, {"error": "InvalidRequest", "message": str(exc)}
            elif path == "/_standin/expire" and self.command == "POST":
                standin.expire_access_tokens()
            else:
                status, payload = 404, {"error": "NotFound", "message": "Not Found"}
            data = json.dumps(payload, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


_FAULT_OPTIONS = frozenset({"method", "times", "process", "reset_epoch", "limit_remaining"})
_tid_lock = threading.Lock()
_tid_last = [0]


def _next_tid() -> str:
    """A TID for a record key the server chooses (and for commit revisions)."""
    from bot.notifiers.bluesky import tid

    with _tid_lock:
        micros = max(int(time.time() * 1_000_000), _tid_last[0] + 1)
        _tid_last[0] = micros
    return tid(micros, 0)


@pytest.fixture
def bluesky_server() -> Iterator[BlueskyStandIn]:
    """A started Bluesky stand-in, stopped after the test."""
    with BlueskyStandIn() as server:
        yield server


def main() -> None:  # pragma: no cover - a tool for running the stand-in by hand
    import argparse

    parser = argparse.ArgumentParser(description="Run the Bluesky PDS stand-in.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = BlueskyStandIn().start(args.port)
    print(json.dumps(server.env()), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
