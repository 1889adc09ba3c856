"""The `mastodon` channel: `POST /api/v1/statuses` over raw HTTP, with an `Idempotency-Key`.

Every delivery carries a key minted once (a digest of the delivery plus a random nonce) and
stored with the `sending` mark, so every attempt of one delivery sends the same key. Mastodon
keeps a key for one hour per account (`PostStatusService#with_idempotency`: a redis lock around
the create, then `setex(..., 3_600, status.id)`): a request that repeats a stored key gets the
status already made, and one that arrives while the first is still being processed gets 503
("There was a temporary problem serving your request"), creating nothing. So a maybe-sent
delivery settles itself (SPEC §6 rule 5a) by re-sending the same text with the same key while
the key is surely still kept (50 minutes after it was first used): the answer is the status,
created once whatever happened to the first request. Later, nothing can be proven: it stays
`uncertain` for an operator.

Failures (SPEC §6 rule 5): a connection that never opened, 429 (its `X-RateLimit-Reset` is an
ISO 8601 time) and 503 are not taken; 401, 403, 404 and 422 (e.g. "Validation failed: Text
character limit of 500 exceeded") are refused for good; a timeout or a lost connection after
the request went out, and 500/502/504, may have created the status.

Length: 500 characters unless `bot check --online` has read the instance's own limit
(`GET /api/v2/instance`: `configuration.statuses.max_characters` and
`characters_reserved_per_url`), kept in the channel's state for later passes. Counted as
Mastodon's StatusLengthValidator counts: every http(s) URL as 23 characters (or the instance's
figure), a mention `@user@domain` as `@user`, the rest in grapheme clusters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from bot.config import Secret
from bot.errors import MaybeSentError, NotifierError, PermanentError, TransientError
from bot.notifiers.base import DeliveryKey, Message, Receipt, Settlement
from bot.notifiers.http import DEFAULT_TIMEOUT, Answer, HttpNotifier, Variables, retry_at

log = logging.getLogger("bot.notifiers.mastodon")

DEFAULT_LIMIT: Final = 500  # Mastodon's StatusLengthValidator::MAX_CHARS
URL_LENGTH: Final = 23  # StatusLengthValidator::URL_PLACEHOLDER_CHARS
# Mastodon keeps an Idempotency-Key for 1 h (from when the status was created, which is never
# before the key's first use); a re-send is trusted to be answered from it for 50 minutes.
KEY_KEPT: Final = timedelta(hours=1)
KEY_TRUSTED: Final = timedelta(minutes=50)
VISIBILITIES: Final = ("public", "unlisted")
LANGUAGE: Final = "en"
STATE_LIMIT: Final = "instance_limit"  # JSON: base_url, max_characters, url_length, read_at
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_MAX_DETAIL: Final = 300
# Sane bounds for what an instance says about itself (anything else is ignored).
_MAX_CHARACTERS: Final = 10_000_000
_MAX_URL_LENGTH: Final = 10_000


@dataclass(frozen=True)
class MastodonConfig:
    """The `mastodon` channel's validated settings; the token stays wrapped in Secret."""

    base_url: str
    access_token: Secret
    visibility: str = "public"
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class InstanceLimit:
    """What an instance said about its statuses, read by `check --online`."""

    max_characters: int
    url_length: int = URL_LENGTH


def status_length(text: str, url_length: int = URL_LENGTH) -> int:
    """The length of `text` as Mastodon's StatusLengthValidator counts it.

    Entities are found as Mastodon's Extractor finds them (http(s) URLs by twitter-text's
    extractor, bare domains left as text; mentions; overlaps keep the earlier one), each URL is
    replaced by `url_length` characters and each mention by `@user` (a remote mention counts
    its user name only), and the result is counted in extended grapheme clusters.
    """
    from bot.render.textlimits import _MASTODON_MENTION, graphemes
    from bot.render.xurls import extract_urls

    entities = [
        (url.start, url.end, "x" * url_length) for url in extract_urls(text, without_protocol=False)
    ]
    entities += [(m.start(), m.end(), "@" + m[1]) for m in _MASTODON_MENTION.finditer(text)]
    pieces: list[str] = []
    last_end = 0
    for start, end, replacement in sorted(entities):
        if start < last_end:
            continue
        pieces += [text[last_end:start], replacement]
        last_end = end
    pieces.append(text[last_end:])
    return graphemes("".join(pieces))


def _base_url_problem(url: str) -> str | None:
    """https only (the token travels with every request), http for a loopback stand-in."""
    parts = urlsplit(url)
    if parts.scheme == "http" and (parts.hostname or "") not in _LOOPBACK:
        return (
            f"must be the instance's https:// URL; http:// only for 127.0.0.1 or localhost "
            f"(the access token would travel in clear text) ({url})"
        )
    return None


def _detail(answer: Answer) -> str:
    """Mastodon's own words for an error (`{"error": …}`), on one line, shortened."""
    body = answer.body
    found: list[str] = []
    if isinstance(body, dict):
        for name in ("error", "error_description"):
            value = body.get(name)
            if isinstance(value, str) and value.strip() and value.strip() not in found:
                found.append(value.strip())
    text = " ".join(": ".join(found).split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _status_id(answer: Answer) -> str | None:
    """The id of the status in a 2xx answer, or None."""
    body = answer.body
    value = body.get("id") if isinstance(body, dict) else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _bounded(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def _read_limit(body: Any) -> InstanceLimit | None:
    """max_characters (and characters_reserved_per_url) from an /api/v2 or /api/v1 instance
    answer; `max_toot_chars` is what some Mastodon-compatible servers say instead."""
    if not isinstance(body, dict):
        return None
    configuration = body.get("configuration")
    statuses = configuration.get("statuses") if isinstance(configuration, dict) else None
    statuses = statuses if isinstance(statuses, dict) else {}
    most = _bounded(statuses.get("max_characters"), 1, _MAX_CHARACTERS)
    if most is None:
        most = _bounded(body.get("max_toot_chars"), 1, _MAX_CHARACTERS)
    if most is None:
        return None
    per_url = _bounded(statuses.get("characters_reserved_per_url"), 0, _MAX_URL_LENGTH)
    return InstanceLimit(most, URL_LENGTH if per_url is None else per_url)


def _age(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


class MastodonNotifier(HttpNotifier):
    """Posts statuses to one Mastodon account with an access token (`write:statuses`)."""

    name = "mastodon"
    max_length = DEFAULT_LIMIT
    length_unit = "characters"
    secret_variables = ("MASTODON_ACCESS_TOKEN",)
    settles = True
    settle_delay = timedelta(0)  # a re-send with the key is safe at once (rule 5a)
    label = "Mastodon"
    where = "MASTODON_BASE_URL"

    def __init__(self, config: MastodonConfig) -> None:
        super().__init__(config)
        self.config: MastodonConfig = config

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> MastodonConfig:
        """Read MASTODON_* variables; raise ConfigError listing every problem, never the token."""
        variables = Variables(env, cls.name)
        base_url = ""
        if variables.required("MASTODON_BASE_URL"):
            before = len(variables.problems)
            base_url = variables.url("MASTODON_BASE_URL")
            if len(variables.problems) == before and (problem := _base_url_problem(base_url)):
                variables.problems.append(f"MASTODON_BASE_URL: {problem}")
        token = variables.secret("MASTODON_ACCESS_TOKEN")
        visibility = variables.choice("MASTODON_VISIBILITY", "public", VISIBILITIES)
        timeout = variables.timeout("MASTODON_TIMEOUT")
        variables.done()
        return MastodonConfig(base_url, token, visibility, timeout)

    # Length ------------------------------------------------------------------------------------

    @classmethod
    def measure(cls, text: str) -> int:
        """Mastodon's count with its default URL length (see status_length)."""
        return status_length(text)

    def instance_limit(self) -> InstanceLimit | None:
        """The limit `check --online` read from this channel's instance, if it has."""
        raw = self.state.get(STATE_LIMIT)
        if not raw:
            return None
        try:
            stored = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(stored, dict) or stored.get("base_url") != self.config.base_url:
            return None  # read from another instance (MASTODON_BASE_URL changed since)
        return _read_limit({"configuration": {"statuses": stored}})

    def limit_problem(self, text: str) -> str | None:
        """Too long for the instance's own limit when known, else for Mastodon's default 500."""
        known = self.instance_limit()
        most, per_url = (
            (known.max_characters, known.url_length) if known else (DEFAULT_LIMIT, URL_LENGTH)
        )
        length = status_length(text, per_url)
        if length <= most:
            return None
        where = (
            "the instance's own limit, read by `bot check --online`"
            if known
            else "Mastodon's default; `bot check --online` reads the instance's own"
        )
        return f"message is {length} characters, over the mastodon limit of {most} ({where})"

    # Sending -----------------------------------------------------------------------------------

    def new_reference(self, key: DeliveryKey, now: datetime) -> str:
        """An Idempotency-Key for `key`: a digest naming the delivery, and a random nonce.

        The digest makes the key traceable to its delivery; the nonce keeps two deliveries that
        share a key (a second database posting to the same account, a database rebuilt and the
        same sessions imported again) from sharing an Idempotency-Key, which Mastodon would
        answer with the other's status: recorded as sent, never posted. Minted once and
        stored, it is the same on every attempt of the delivery.
        """
        occurrence = key.occurrence.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = (key.session_id, key.notice, key.channel, occurrence, str(key.change))
        digest = hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:24]
        return f"rgb-{digest}-{secrets.token_hex(8)}"

    def send(self, message: Message, now: datetime) -> Receipt:
        """Post `message.text` under its Idempotency-Key; the receipt carries the status id."""
        problem = self.limit_problem(message.text)
        if problem is not None:
            raise PermanentError(problem)
        if not message.text.strip():
            raise PermanentError("the message is empty; Mastodon refuses an empty status")
        answer = self._post(message.text, message.reference)
        if 200 <= answer.status < 300:
            status_id = _status_id(answer)
            if status_id is None:
                raise MaybeSentError("Mastodon accepted the status but its answer carried no id")
            return Receipt(external_id=status_id)
        raise self._refusal(answer, now)

    def settle(
        self, reference: str, text: str, referenced_at: datetime, now: datetime
    ) -> Settlement:
        """Re-send `text` with the same Idempotency-Key while Mastodon surely keeps it."""
        age = now - referenced_at
        if age >= KEY_TRUSTED:
            return Settlement(
                "unknown",
                reason=(
                    f"its Idempotency-Key was first used {_age(age)} ago and Mastodon keeps one "
                    "for an hour: a re-send could post twice"
                ),
                final=True,
            )
        log.info(
            "re-sending an uncertain status with its Idempotency-Key %s",
            reference,
            extra={"event": "mastodon_resend"},
        )
        try:
            answer = self._post(text, reference)
        except NotifierError as exc:
            return Settlement("unknown", reason=f"the re-send with its key failed: {exc}")
        if 200 <= answer.status < 300:
            status_id = _status_id(answer)
            if status_id is None:
                return Settlement("unknown", reason="Mastodon's answer to the re-send had no id")
            return Settlement(
                "exists", external_id=status_id, reason="re-sent with the same Idempotency-Key"
            )
        detail = str(self._refusal(answer, now))
        if answer.status == 422:  # a stored key is answered before any validation
            return Settlement("absent", reason=f"the re-send was refused ({detail})")
        if answer.status == 404:  # the status made under this key is gone (deleted since?)
            return Settlement("unknown", reason=f"the re-send found nothing ({detail})", final=True)
        return Settlement("unknown", reason=f"the re-send did not settle it ({detail})")

    def check_online(self) -> None:
        """Read the instance's limit, and try the token, posting nothing.

        `verify_credentials` needs a read scope (`profile`, `read:accounts`) that a token made
        for `write:statuses` alone lacks (403: still a valid token), and cannot show the write
        scope; a status with no text shows it: Mastodon checks the token and its scope, then
        refuses the empty text (422) and creates nothing.
        """
        limit = self._read_instance()
        if limit is not None:
            self._remember(limit)
        answer = self.call("GET", self._url("/api/v1/accounts/verify_credentials"), **self._auth())
        if answer.status != 403 and not 200 <= answer.status < 300:
            raise self._refusal(answer, None)
        answer = self.call(
            "POST", self._url("/api/v1/statuses"), json={"status": ""}, **self._auth()
        )
        if answer.status in (400, 422):
            return
        if 200 <= answer.status < 300:
            raise PermanentError(
                f"Mastodon created a status from an empty text (id {_status_id(answer)}); "
                "it is not the server this channel expects"
            )
        error = self._refusal(answer, None)
        if answer.status == 403:
            error = PermanentError(f"{error}: MASTODON_ACCESS_TOKEN needs the write:statuses scope")
        raise self.scrub(error)

    # Internals ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.config.base_url + path

    def _auth(self, reference: str | None = None) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self.config.access_token.get()}",
            "Accept": "application/json",
        }
        if reference:
            headers["Idempotency-Key"] = reference
        return {"headers": headers}

    def _post(self, text: str, reference: str | None) -> Answer:
        payload = {"status": text, "visibility": self.config.visibility, "language": LANGUAGE}
        return self.call(
            "POST", self._url("/api/v1/statuses"), json=payload, **self._auth(reference)
        )

    def _read_instance(self) -> InstanceLimit | None:
        """GET /api/v2/instance (or /api/v1/instance on servers without it)."""
        answer = self.call("GET", self._url("/api/v2/instance"), **self._auth())
        if answer.status == 404:
            answer = self.call("GET", self._url("/api/v1/instance"), **self._auth())
        if not 200 <= answer.status < 300:
            raise self._refusal(answer, None)
        limit = _read_limit(answer.body)
        if limit is None:
            log.warning(
                "the Mastodon instance did not say its character limit; keeping %d",
                DEFAULT_LIMIT,
                extra={"event": "mastodon_limit_unknown"},
            )
        return limit

    def _remember(self, limit: InstanceLimit) -> None:
        value = json.dumps(
            {
                "base_url": self.config.base_url,
                "max_characters": limit.max_characters,
                "characters_reserved_per_url": limit.url_length,
                "read_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        try:
            self.state.put(STATE_LIMIT, value)
        except Exception as exc:  # a database this process may not write: keep checking
            log.warning(
                "could not keep the Mastodon instance's limit (%s)",
                type(exc).__name__,
                extra={"event": "mastodon_limit_not_kept"},
            )

    def _refusal(self, answer: Answer, now: datetime | None) -> NotifierError:
        """The failure an unsuccessful answer means (SPEC §6 rule 5), secrets scrubbed."""
        status = answer.status
        detail = _detail(answer)
        text = f"Mastodon answered {status}" + (f": {detail}" if detail else "")
        error: NotifierError
        if status in (429, 503):  # rate limited; busy, or the key in use by another request
            error = TransientError(text, retry_at=retry_at(answer.headers, now))
        elif status >= 500:
            error = MaybeSentError(f"{text} (the status may have been created)")
        elif 300 <= status < 400:
            error = PermanentError(
                f"{text}, a redirect (to {answer.headers.get('Location') or 'nowhere'}): "
                "MASTODON_BASE_URL must be the instance's own address"
            )
        elif status == 401:
            error = PermanentError(f"{text} (check MASTODON_ACCESS_TOKEN)")
        else:
            error = PermanentError(text)
        return self.scrub(error)
