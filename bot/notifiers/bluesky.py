"""The `bluesky` channel: raw XRPC over HTTP to the account's PDS (or the bsky.social entryway).

Posting is `com.atproto.repo.createRecord` of an `app.bsky.feed.post` with:

- `text`: the rendered text with each link shown short (no scheme; a path longer than 15
  characters cut to 13 and "…", as the Bluesky app shows links); the full URL is in the link's
  facet. `measure()` and the limit (300 graphemes and 3,000 UTF-8 bytes) count this text as
  posted; nothing is ever cut to fit.
- `facets`: links (http(s) URLs and bare domains, as twitter-text's extractor in
  `bot.render.xurls` finds them), mentions (`@handle.domain`, resolved to a DID with
  `com.atproto.identity.resolveHandle`, cached in the channel's state; a handle that does not
  resolve stays plain text) and hashtags, each with UTF-8 byte offsets (end exclusive).
- `embed`: an `app.bsky.embed.external` link card built from the message's card (the session's
  page when SITE_URL is set).

Login. The app password buys a session (`com.atproto.server.createSession`), kept in the
database (`channel_state`, name `session`) so a cron pass with nothing due never logs in and a
busy one logs in once: createSession is limited to 30 per 5 minutes and 300 per day. An access
token past its `exp` is refreshed before use (`com.atproto.server.refreshSession`); one the
server calls expired or invalid (400 or 401 `ExpiredToken` / `InvalidToken`) is refreshed and
the call made once more; a refresh the server refuses falls back to one new login.

Self-settling (SPEC §6 rule 5a). The bot chooses the record key: a TID minted once per delivery
and stored with the `sending` mark, reused on every attempt. After a maybe-sent attempt,
`com.atproto.repo.getRecord` decides: found (with the same text) → sent; `RecordNotFound` →
provably absent, posted again under the same key, so a duplicate post is impossible (the PDS
refuses a second record at a taken key, with a 500). The receipt's external id is the post's
`at://` URI; the web address is `https://bsky.app/profile/<handle>/post/<rkey>`.

Secrets: the app password and the session's JWTs never reach output, errors or logs; none of
them is ever in a URL (urllib3 logs URLs at DEBUG), and every reason is scrubbed of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from bot.config import Secret
from bot.errors import MaybeSentError, NotifierError, PermanentError, TransientError
from bot.logs import Redactor
from bot.notifiers.base import Card, DeliveryKey, Message, Receipt, Settlement
from bot.notifiers.http import DEFAULT_TIMEOUT, Answer, HttpNotifier, Variables, retry_at

log = logging.getLogger(__name__)

DEFAULT_SERVICE = "https://bsky.social"
POST = "app.bsky.feed.post"
CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
GET_SESSION = "com.atproto.server.getSession"
CREATE_RECORD = "com.atproto.repo.createRecord"
GET_RECORD = "com.atproto.repo.getRecord"
RESOLVE_HANDLE = "com.atproto.identity.resolveHandle"
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
MAX_TAG = 64  # graphemes of a hashtag (app.bsky.richtext.facet#tag: 64 graphemes, 640 bytes)
ELLIPSIS = "…"
SHORT_PATH = 15  # a link's path longer than this is shown cut to SHORT_KEEP characters + "…"
SHORT_KEEP = 13
STATE_SESSION = "session"
DID_TTL = timedelta(days=7)  # a handle can change hands: look it up again after a week
UNRESOLVED_TTL = timedelta(hours=1)  # a handle that did not resolve, asked again after this
EARLY_REFRESH = 60.0  # seconds before its `exp` an access token is refreshed instead of used
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_HANDLE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]+$")
_SCHEME = re.compile(r"^https?://", re.IGNORECASE)
_TAKEN = re.compile(r"already exists|AlreadyExists|already a value", re.IGNORECASE)
# After a line start, a space or "(" (the Bluesky app's own rule): "@name.domain".
_MENTION = re.compile(r"(?<![^\s(])@([a-zA-Z0-9.-]+)")
_TAG_STOP = r"\s\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
# The Bluesky app's hashtag rule: "#" after a line start or a space, not a keycap (#️⃣), holding
# at least one character that is not a digit or punctuation; trailing punctuation is not part
# of it.
_TAG_PATTERN = rf"(?<!\S)[#＃]((?!\ufe0f)[^{_TAG_STOP}]*[^\d\p{{P}}{_TAG_STOP}]+[^{_TAG_STOP}]*)?"


@cache
def _patterns() -> tuple[Any, Any, Any]:
    """The hashtag, trailing-punctuation and grapheme patterns (`regex`, imported only when a
    post is built: a pass with nothing due never pays for it)."""
    import regex  # type: ignore[import-untyped, unused-ignore]

    return regex.compile(_TAG_PATTERN), regex.compile(r"\p{P}+$"), regex.compile(r"\X")


# ---------------------------------------------------------------- the post's text and facets


@dataclass(frozen=True)
class Span:
    """A link, mention or hashtag in the posted text, by code point indices [start, end)."""

    start: int
    end: int
    kind: Literal["link", "mention", "tag"]
    value: str  # link: the full URL; mention: the handle (lower case); tag: without "#"


@dataclass(frozen=True)
class Post:
    """The text as posted (links shown short) and its rich-text spans."""

    text: str
    spans: tuple[Span, ...]

    def byte_range(self, span: Span) -> tuple[int, int]:
        """The span's UTF-8 byte offsets in the text, end exclusive (what a facet carries)."""
        start = len(self.text[: span.start].encode("utf-8"))
        return start, start + len(self.text[span.start : span.end].encode("utf-8"))


def full_url(found: str) -> str:
    """The address a link facet points to: a bare domain gets `https://`."""
    return found if _SCHEME.match(found) else f"https://{found}"


def short_link(url: str) -> str:
    """How a link is shown: without its scheme, a long path cut to 13 characters and "…"."""
    parts = urlsplit(url)
    rest = "" if parts.path == "/" and not (parts.query or parts.fragment) else parts.path
    if parts.query:
        rest += f"?{parts.query}"
    if parts.fragment:
        rest += f"#{parts.fragment}"
    if len(rest) > SHORT_PATH:
        rest = rest[:SHORT_KEEP] + ELLIPSIS
    return parts.netloc + rest


def is_handle(text: str) -> bool:
    """True for a syntactically valid handle (`name.bsky.social`, `example.org`)."""
    return len(text) <= 253 and _HANDLE.match(text) is not None


def _found_spans(text: str) -> list[Span]:
    """Every link, mention and hashtag in `text`, in order, overlaps dropped (first wins)."""
    from bot.render.xurls import extract_urls

    spans: list[Span] = [
        Span(u.start, u.end, "link", full_url(text[u.start : u.end])) for u in extract_urls(text)
    ]
    for match in _MENTION.finditer(text):
        handle = match[1].rstrip(".-")
        if is_handle(handle):
            spans.append(Span(match.start(), match.start() + 1 + len(handle), "mention", handle))
    tags, trailing_punct, grapheme = _patterns()
    for found in tags.finditer(text):
        tag = trailing_punct.sub("", found[1] or "")
        if tag and len(grapheme.findall(tag)) <= MAX_TAG:
            spans.append(Span(found.start(), found.start() + 1 + len(tag), "tag", tag))
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return kept


def compose(text: str) -> Post:
    """The post Bluesky gets for `text`: links shown short, every span at its new place."""
    pieces: list[str] = []
    spans: list[Span] = []
    position = 0  # in `text`
    length = 0  # of the output so far, in code points
    for span in _found_spans(text):
        before = text[position : span.start]
        pieces.append(before)
        length += len(before)
        shown = short_link(span.value) if span.kind == "link" else text[span.start : span.end]
        value = span.value.lower() if span.kind == "mention" else span.value
        pieces.append(shown)
        spans.append(Span(length, length + len(shown), span.kind, value))
        length += len(shown)
        position = span.end
    pieces.append(text[position:])
    return Post("".join(pieces), tuple(spans))


# ---------------------------------------------------------------- record keys


def tid(micros: int, clock_id: int) -> str:
    """A TID (atproto record key): 53 bits of microseconds and a 10-bit clock id, in 13
    base32-sortable characters."""
    if not 0 <= micros < 2**53 or not 0 <= clock_id < 2**10:
        raise ValueError("a TID holds 53 bits of microseconds and a 10-bit clock id")
    value = (micros << 10) | clock_id
    return "".join(TID_ALPHABET[(value >> (5 * i)) & 31] for i in range(12, -1, -1))


def tid_parts(key: str) -> tuple[int, int]:
    """(microseconds, clock id) of a TID; ValueError when `key` is not one."""
    if len(key) != 13 or any(c not in TID_ALPHABET for c in key):
        raise ValueError(f"not a TID: {key!r}")
    value = 0
    for char in key:
        value = value * 32 + TID_ALPHABET.index(char)
    if value >> 63:
        raise ValueError(f"not a TID (top bit set): {key!r}")
    return value >> 10, value & 0x3FF


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class BlueskyConfig:
    """The `bluesky` channel's validated settings; the app password stays wrapped in Secret."""

    handle: str  # the account's handle (or DID), without "@"
    app_password: Secret
    service_url: str = DEFAULT_SERVICE
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class _Session:
    did: str
    handle: str
    access: str
    refresh: str

    def as_json(self, config: BlueskyConfig) -> str:
        return json.dumps(
            {
                "did": self.did,
                "handle": self.handle,
                "accessJwt": self.access,
                "refreshJwt": self.refresh,
                # Which login it is: another handle, service or app password makes it useless.
                "identifier": config.handle,
                "service": config.service_url,
                "login": _fingerprint(config),
            }
        )


def _fingerprint(config: BlueskyConfig) -> str:
    """A one-way mark of the handle and app password a session was made with: a changed
    BLUESKY_APP_PASSWORD (a revoked one replaced, say) is never hidden by the kept session."""
    seed = f"reading-group-bot bluesky session\0{config.handle}\0{config.app_password.get()}"
    return hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]


def _token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (not verified: only to refresh it in time), or None."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and math.isfinite(exp) else None


def _error_of(answer: Answer) -> tuple[str, str]:
    """The XRPC error name and message of an answer ({"error": …, "message": …})."""
    body = answer.body if isinstance(answer.body, dict) else {}
    error, message = body.get("error"), body.get("message")
    return (
        error if isinstance(error, str) else "",
        " ".join(message.split())[:300] if isinstance(message, str) else "",
    )


def _token_rejected(answer: Answer) -> bool:
    """The server says the access token is expired or no good (refresh, don't fail)."""
    return answer.status in (400, 401) and _error_of(answer)[0] in TOKEN_ERRORS


class BlueskyNotifier(HttpNotifier):
    """Posts to Bluesky with an app password; settles its own uncertain posts by record key."""

    name = "bluesky"
    max_length = MAX_GRAPHEMES
    length_unit = "graphemes"
    secret_variables = ("BLUESKY_APP_PASSWORD",)
    settles = True
    # The PDS writes a record before it answers and getRecord reads the same repository, so
    # "absent" can be trusted at once; a create still in flight at that moment cannot make a
    # duplicate either, as the re-send reuses the record key.
    settle_delay = timedelta(0)
    label: ClassVar[str] = "Bluesky"
    where: ClassVar[str] = "BLUESKY_SERVICE_URL"

    def __init__(self, config: BlueskyConfig) -> None:
        super().__init__(config)
        self.config: BlueskyConfig = config
        self._current: _Session | None = None
        # handle → (DID, or None: does not resolve; until when that holds)
        self._dids: dict[str, tuple[str | None, datetime]] = {}
        self._minted: set[str] = set()
        self._tokens: set[str] = set()
        self.wall_clock: Callable[[], float] = time.time  # what token expiry is judged by

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> BlueskyConfig:
        """Read BLUESKY_* variables; raise ConfigError listing every problem."""
        found = Variables(env, cls.name)
        handle = found.required("BLUESKY_HANDLE").removeprefix("@")
        if handle and not (is_handle(handle) or _DID.match(handle)):
            found.problems.append(
                f"BLUESKY_HANDLE: must be a handle like name.bsky.social, or a DID ({handle})"
            )
        password = found.secret("BLUESKY_APP_PASSWORD")
        service = found.url("BLUESKY_SERVICE_URL", DEFAULT_SERVICE)
        timeout = found.timeout("BLUESKY_TIMEOUT")
        found.done()
        return BlueskyConfig(handle.lower(), password, service, timeout)

    # ------------------------------------------------------------ length

    @classmethod
    def measure(cls, text: str) -> int:
        """Graphemes of the text as posted (links shown short)."""
        from bot.render.textlimits import graphemes

        return graphemes(compose(text).text)

    @classmethod
    def over_limit(cls, text: str) -> str | None:
        """Over 300 graphemes or 3,000 UTF-8 bytes, as posted."""
        too_long = super().over_limit(text)
        if too_long is not None:
            return too_long
        size = len(compose(text).text.encode("utf-8"))
        if size > MAX_BYTES:
            return f"message is {size} UTF-8 bytes, over the bluesky limit of {MAX_BYTES} bytes"
        return None

    # ------------------------------------------------------------ self-settling

    def new_reference(self, key: DeliveryKey, now: datetime) -> str | None:
        """A fresh TID record key for `key`. Its time is `now` to the second; the microseconds
        and the clock id are random, so passes sharing one frozen clock (`--now`) in several
        processes do not pick the same key."""
        seconds = math.floor(now.timestamp())
        while True:
            key_text = tid(
                seconds * 1_000_000 + secrets.randbelow(1_000_000), secrets.randbelow(1024)
            )
            if key_text not in self._minted:
                self._minted.add(key_text)
                return key_text

    def settle(
        self, reference: str, text: str, referenced_at: datetime, now: datetime
    ) -> Settlement:
        """getRecord under the record key: found → exists; RecordNotFound → absent."""
        answer = self._authed(
            "GET",
            GET_RECORD,
            now,
            params=lambda s: {"repo": s.did, "collection": POST, "rkey": reference},
        )
        error, message = _error_of(answer)
        if answer.status == 200 and isinstance(answer.body, dict):
            value = answer.body.get("value")
            posted = value.get("text") if isinstance(value, dict) else None
            if posted not in (compose(text).text, text):
                return Settlement(
                    "unknown",
                    reason=f"record {reference} holds a different post: an operator decides",
                    final=True,
                )
            uri = answer.body.get("uri")
            found = uri if isinstance(uri, str) and uri else self._uri(reference)
            return Settlement("exists", external_id=found, reason=f"record {reference} found")
        if answer.status == 400 and (
            error == "RecordNotFound" or message.startswith("Could not locate record")
        ):
            return Settlement("absent", reason=f"no record {reference}")
        return Settlement("unknown", reason=self._describe(answer, "getRecord"))

    # ------------------------------------------------------------ posting

    def send(self, message: Message, now: datetime) -> Receipt:
        """Create the post under the message's record key; the receipt is its at:// URI."""
        too_long = self.over_limit(message.text)
        if too_long:
            raise PermanentError(too_long)
        rkey = message.reference or self.new_reference(message.key, now) or ""
        post = compose(message.text)
        session = self._usable(now)  # before the mentions: a login problem says so first
        facets = self._facets(post, now)
        record: dict[str, Any] = {
            "$type": POST,
            "text": post.text,
            "createdAt": now.astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "langs": ["en"],
        }
        if facets:
            record["facets"] = facets
        if message.card is not None:
            record["embed"] = _embed(message.card)
        answer = self._authed(
            "POST",
            CREATE_RECORD,
            now,
            body=lambda s: {"repo": s.did, "collection": POST, "rkey": rkey, "record": record},
            posting=True,
            session=session,
        )
        if 200 <= answer.status < 300:
            uri = answer.body.get("uri") if isinstance(answer.body, dict) else None
            if not isinstance(uri, str) or not uri.startswith("at://"):
                raise MaybeSentError("Bluesky accepted the post but its answer carried no URI")
            return Receipt(external_id=uri)
        raise self.scrub(self._post_error(answer, now))

    def check_online(self) -> None:
        """Log in (or check the kept session with getSession), posting nothing."""
        now = datetime.now(UTC)
        if self._stored() is None:
            self._login(now)
            return
        answer = self._authed("GET", GET_SESSION, now)
        if answer.status != 200:
            raise self.scrub(self._auth_error(answer, now, "getSession"))

    # ------------------------------------------------------------ mentions

    def _facets(self, post: Post, now: datetime) -> list[dict[str, Any]]:
        facets: list[dict[str, Any]] = []
        for span in post.spans:
            feature: dict[str, str]
            if span.kind == "link":
                feature = {"$type": "app.bsky.richtext.facet#link", "uri": span.value}
            elif span.kind == "tag":
                feature = {"$type": "app.bsky.richtext.facet#tag", "tag": span.value}
            else:
                did = self._did_for(span.value, now)
                if did is None:
                    continue  # plain text: the handle does not resolve
                feature = {"$type": "app.bsky.richtext.facet#mention", "did": did}
            start, end = post.byte_range(span)
            facets.append({"index": {"byteStart": start, "byteEnd": end}, "features": [feature]})
        return facets

    def _did_for(self, handle: str, now: datetime) -> str | None:
        """The DID a handle resolves to (kept in the channel's state for a week), or None."""
        if handle in self._dids:
            did, until = self._dids[handle]
            if now < until:
                return did
        name = f"did:{handle}"
        kept = _json(self._read(name))
        if kept is not None:
            did, at = kept.get("did"), kept.get("at")
            try:
                until = datetime.fromisoformat(at) + DID_TTL if isinstance(at, str) else now
                fresh = now < until
            except (TypeError, ValueError):
                fresh = False
            if fresh and isinstance(did, str):
                self._dids[handle] = (did, until)
                return did
        answer = self._call("GET", RESOLVE_HANDLE, params={"handle": handle})
        body = answer.body if isinstance(answer.body, dict) else {}
        did = body.get("did")
        if answer.status == 200 and isinstance(did, str) and _DID.match(did):
            self._keep(name, json.dumps({"did": did, "at": now.astimezone(UTC).isoformat()}))
            self._dids[handle] = (did, now + DID_TTL)
            return did
        if answer.status == 400:
            log.info(
                "bluesky: @%s does not resolve (%s): posted as plain text",
                handle,
                _error_of(answer)[1] or _error_of(answer)[0],
                extra={"event": "bluesky_handle_unresolved"},
            )
            self._dids[handle] = (None, now + UNRESOLVED_TTL)
            return None
        failure = self._transient(answer, now, "resolveHandle", f"could not resolve @{handle}")
        raise self.scrub(failure)

    # ------------------------------------------------------------ sessions

    def _stored(self) -> _Session | None:
        """The session kept in the database, if it is this configuration's."""
        kept = _json(self._read(STATE_SESSION))
        if kept is None:
            return None
        if (kept.get("identifier"), kept.get("service"), kept.get("login")) != (
            self.config.handle,
            self.config.service_url,
            _fingerprint(self.config),
        ):
            return None
        values = [kept.get(k) for k in ("did", "handle", "accessJwt", "refreshJwt")]
        if not all(isinstance(v, str) and v for v in values):
            return None
        did, handle, access, refresh = (str(v) for v in values)
        return self._remember(_Session(did, handle, access, refresh), store=False)

    def _remember(self, session: _Session, *, store: bool = True) -> _Session:
        self._current = session
        self._tokens.update((session.access, session.refresh))  # scrubbed from every reason
        self.redactor = Redactor([*self.secret_strings(), *self._tokens])
        if store:
            self._keep(STATE_SESSION, session.as_json(self.config))
        return session

    def _forget(self) -> None:
        self._current = None
        self._keep(STATE_SESSION, None)

    def _read(self, name: str) -> str | None:
        """A value of the channel's state; None when the database cannot say (a new login or
        lookup then does instead)."""
        try:
            return self.state.get(name)
        except Exception as exc:  # the database's own error
            log.warning(
                "bluesky: could not read %s from the database (%s)",
                name,
                type(exc).__name__,
                extra={"event": "bluesky_state_not_read"},
            )
            return None

    def _keep(self, name: str, value: str | None) -> None:
        """Store (or, with None, forget) a value in the channel's state. A database that fails
        here must not stop the post: the value is used from memory, and kept next time."""
        try:
            if value is None:
                self.state.drop(name)
            else:
                self.state.put(name, value)
        except Exception as exc:  # the database's own error: never its value
            log.warning(
                "bluesky: could not keep %s in the database (%s)",
                name,
                type(exc).__name__,
                extra={"event": "bluesky_state_not_kept"},
            )

    def _usable(self, now: datetime) -> _Session:
        """A usable session: the one in hand, the one kept, or a new login."""
        session = self._current or self._stored()
        if session is None:
            return self._login(now)
        expiry = _token_expiry(session.access)
        if expiry is not None and expiry - EARLY_REFRESH <= self.wall_clock():
            return self._renew(session, now)
        return session

    def _login(self, now: datetime) -> _Session:
        """createSession with the app password."""
        answer = self._call(
            "POST",
            CREATE_SESSION,
            body={"identifier": self.config.handle, "password": self.config.app_password.get()},
        )
        if answer.status == 200:
            session = _session_from(answer)
            if session is not None:
                log.debug(
                    "bluesky: logged in as @%s",
                    session.handle,
                    extra={"event": "bluesky_login", "did": session.did},
                )
                return self._remember(session)
            raise self.scrub(TransientError("Bluesky's login answer carried no session"))
        self._current = None
        raise self.scrub(self._auth_error(answer, now, "login"))

    def _renew(self, session: _Session, now: datetime) -> _Session:
        """refreshSession with the refresh token; when the server refuses it, log in anew."""
        kept = self._stored()
        if kept is not None and kept.access != session.access:
            # Another process renewed it meanwhile: use theirs (a refresh token is rotated).
            expiry = _token_expiry(kept.access)
            if expiry is None or expiry - EARLY_REFRESH > self.wall_clock():
                return kept
            session = kept
        answer = self._call(
            "POST", REFRESH_SESSION, headers={"Authorization": f"Bearer {session.refresh}"}
        )
        if answer.status == 200:
            renewed = _session_from(answer)
            if renewed is not None:
                log.debug("bluesky: session refreshed", extra={"event": "bluesky_refresh"})
                return self._remember(renewed)
        if answer.status in (400, 401):  # expired, revoked or no good: log in once more
            log.info(
                "bluesky: the kept session could not be refreshed (%s); logging in again",
                _error_of(answer)[0] or answer.status,
                extra={"event": "bluesky_refresh_refused"},
            )
            self._forget()
            return self._login(now)
        raise self.scrub(
            self._transient(answer, now, "refreshSession", "could not refresh the session")
        )

    def _authed(
        self,
        method: str,
        nsid: str,
        now: datetime,
        *,
        params: Callable[[_Session], dict[str, str]] | None = None,
        body: Callable[[_Session], dict[str, Any]] | None = None,
        posting: bool = False,
        session: _Session | None = None,
    ) -> Answer:
        """One call with the session's access token (`session`: one just made usable); a
        token the server calls expired or invalid is renewed and the call made once more."""
        session = session or self._usable(now)
        for attempt in (1, 2):
            answer = self._call(
                method,
                nsid,
                params=params(session) if params else None,
                body=body(session) if body else None,
                headers={"Authorization": f"Bearer {session.access}"},
                posting=posting,
            )
            if not _token_rejected(answer):
                return answer
            if attempt == 2:
                self._forget()
                raise self.scrub(
                    PermanentError(f"{self._describe(answer, nsid)} even with a new session")
                )
            session = self._renew(session, now)
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(
        self,
        method: str,
        nsid: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        posting: bool = False,
    ) -> Answer:
        """One XRPC request. Only the post itself can be "maybe sent": a lost answer to any
        other call (a login, a lookup) left nothing posted, so it is not taken."""
        url = f"{self.config.service_url}/xrpc/{nsid}"
        try:
            return self.call(method, url, params=params, json=body, headers=headers)
        except MaybeSentError as exc:
            if posting:
                raise
            raise self.scrub(TransientError(f"{exc} (nothing was posted)")) from exc

    # ------------------------------------------------------------ errors

    def _uri(self, rkey: str) -> str:
        did = self._current.did if self._current else self.config.handle
        return f"at://{did}/{POST}/{rkey}"

    def _describe(self, answer: Answer, what: str) -> str:
        error, message = _error_of(answer)
        detail = ": ".join(p for p in (error, message) if p)
        if not detail and answer.text and answer.body is None:
            detail = " ".join(answer.text.split())[:120]
        text = f"Bluesky answered {answer.status} to {what}" + (f" ({detail})" if detail else "")
        return self.redactor.scrub(text)

    def _transient(self, answer: Answer, now: datetime, call: str, what: str) -> NotifierError:
        """A failure before anything was posted: retried (429 at its reset time), except a
        refusal that will not change (other 4xx)."""
        reason = f"{what}: {self._describe(answer, call)}"
        if answer.status == 429 or answer.status >= 500:
            return TransientError(reason, retry_at=retry_at(answer.headers, now))
        return PermanentError(reason)

    def _auth_error(self, answer: Answer, now: datetime, what: str) -> NotifierError:
        """createSession or getSession refused: a wrong app password fails at once."""
        described = self._describe(answer, what)
        if answer.status == 429:
            return TransientError(
                f"{described}: too many logins", retry_at=retry_at(answer.headers, now)
            )
        if answer.status >= 500:
            return TransientError(described, retry_at=retry_at(answer.headers, now))
        if answer.status in (400, 401, 403):
            self._forget()
            return PermanentError(
                f"{described}: check BLUESKY_HANDLE and BLUESKY_APP_PASSWORD "
                "(an app password from Settings → Privacy and security → App passwords)"
            )
        return PermanentError(f"{described}: check BLUESKY_SERVICE_URL")

    def _post_error(self, answer: Answer, now: datetime) -> NotifierError:
        """createRecord did not answer 2xx: SPEC §6 rule 5 with Bluesky's codes."""
        described = self._describe(answer, "the post")
        status = answer.status
        if status == 429:
            return TransientError(described, retry_at=retry_at(answer.headers, now))
        if status == 503:  # the PDS is down or overloaded: nothing was written
            return TransientError(described, retry_at=retry_at(answer.headers, now))
        error, message = _error_of(answer)
        if status == 409 or (status == 400 and _TAKEN.search(f"{error} {message}")):
            # Other PDS implementations say so plainly: the key is taken, maybe by an earlier
            # attempt of this very post; getRecord tells.
            return MaybeSentError(f"{described}: the record key is taken")
        if status in (500, 502, 504) or (status > 500 and status != 501):
            # The write may have happened (a repeated create on a taken key answers 500 too):
            # getRecord under the record key settles it.
            return MaybeSentError(described)
        if status == 401:  # not an expired token (that was renewed): the session is no good
            self._forget()
        if 300 <= status < 400:
            return PermanentError(f"{described}: a redirect; check BLUESKY_SERVICE_URL")
        return PermanentError(described)


def _json(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _session_from(answer: Answer) -> _Session | None:
    body = answer.body if isinstance(answer.body, dict) else {}
    values = [body.get(k) for k in ("did", "handle", "accessJwt", "refreshJwt")]
    if not all(isinstance(v, str) and v for v in values):
        return None
    did, handle, access, refresh = (str(v) for v in values)
    return _Session(did, handle, access, refresh)


def _embed(card: Card) -> dict[str, Any]:
    """The session as an external link card."""
    return {
        "$type": "app.bsky.embed.external",
        "external": {"uri": card.url, "title": card.title, "description": card.description},
    }


def web_url(uri: str, handle: str) -> str | None:
    """`https://bsky.app/profile/<handle>/post/<rkey>` for a post's at:// URI."""
    match = re.match(r"^at://([^/]+)/app\.bsky\.feed\.post/([^/]+)$", uri)
    if match is None:
        return None
    return f"https://bsky.app/profile/{handle or match[1]}/post/{match[2]}"


__all__ = [
    "BlueskyConfig",
    "BlueskyNotifier",
    "Post",
    "Span",
    "compose",
    "short_link",
    "tid",
    "tid_parts",
    "web_url",
]
