"""The `slack` channel: `chat.postMessage` with a bot token, or an incoming webhook.

Bot-token mode proves its posts: the answer carries the message's `ts` (turned into a permalink),
and every message carries the delivery's reference in its metadata, so after an answer that never
came `settle()` finds it in `conversations.history` (SPEC §6 rule 5a). An incoming webhook answers
a bare `ok` and offers nothing to look up: a maybe-sent post stays `uncertain` (rule 4).

The plain text the templates render is what is measured and stored; Slack gets it as mrkdwn
(`&`, `<`, `>` escaped, links as `<url>`) in section blocks, with a context line.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from bot.config import Secret
from bot.errors import MaybeSentError, NotifierError, PermanentError, TransientError
from bot.notifiers.base import DeliveryKey, Message, Receipt, Settlement
from bot.notifiers.http import DEFAULT_TIMEOUT, Answer, HttpNotifier, Variables, retry_at

SLACK_API = "https://slack.com/api"
EVENT_TYPE = "reading_group_delivery"  # metadata.event_type of every bot-token post
SECTION_LIMIT = 3000  # characters of one section block's mrkdwn text (Block Kit)
HISTORY_PAGE = 200  # messages asked for per conversations.history page
HISTORY_PAGES = 25  # pages read before giving up (5,000 messages since the attempt)
CLOCK_SKEW = timedelta(seconds=60)  # our clock against Slack's, when reading history

log = logging.getLogger("bot.notifiers.slack")
_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_NAME = re.compile(r"^#?[^\s#,<>|@]{1,80}$")
_URL = re.compile(r"https?://[^\s<>|]+")
_TRAILING = ".,;:!?'\""
# ok:false errors that mean "not taken, try later"; and those after which the post may exist.
_NOT_TAKEN = frozenset(
    {"ratelimited", "rate_limited", "request_timeout", "team_added_to_org", "org_login_required"}
)
_MAYBE_POSTED = frozenset({"internal_error", "fatal_error", "service_unavailable"})
_TOKEN_HINT = "check SLACK_BOT_TOKEN"
_HINTS = {
    "invalid_auth": _TOKEN_HINT,
    "not_authed": _TOKEN_HINT,
    "account_inactive": _TOKEN_HINT,
    "token_revoked": "the app was removed or its token revoked: " + _TOKEN_HINT,
    "token_expired": "token rotation is not supported: use a non-expiring bot token",
    "not_in_channel": "invite the app to the channel (/invite @app) or give it chat:write.public",
    "channel_not_found": "check SLACK_CHANNEL; a private channel needs the app invited",
    "is_archived": "the channel is archived",
}
_WEBHOOK_HINTS = {
    400: "Slack could not read the message",
    403: "posting through this webhook is not allowed",
    404: "the webhook or its channel no longer exists: check SLACK_WEBHOOK_URL",
    410: "the webhook's channel is archived",
}
_HISTORY_SCOPES = "channels:history (groups:history for a private channel)"


@dataclass(frozen=True)
class SlackConfig:
    """The `slack` channel's settings: a bot token and channel, or a webhook URL (secrets)."""

    token: Secret  # empty with a webhook
    channel: str  # an ID, or a name without its "#"; empty with a webhook
    webhook_url: Secret  # empty with a bot token
    # What urllib3 and proxies may show of the webhook URL: hidden from logs as well.
    webhook_path: Secret
    webhook_key: Secret
    base_url: str = SLACK_API
    timeout: float = DEFAULT_TIMEOUT

    @property
    def webhook(self) -> bool:
        """True when posting through an incoming webhook (no proof of posting)."""
        return bool(self.webhook_url.get())


class SlackRefused(PermanentError):
    """Slack answered ok:false with an error that retrying will not mend."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error  # Slack's code: "not_in_channel", "missing_scope", …


def escape(text: str) -> str:
    """`&`, `<` and `>` as the entities Slack reads as plain characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _url_end(url: str) -> str:
    """The link without the punctuation that ends the sentence around it."""
    while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
        url = url[:-1]
    return url


def mrkdwn(text: str) -> str:
    """Plain text as Slack mrkdwn: control characters escaped, every URL an explicit link."""
    parts: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = _url_end(match.group(0))
        if url.endswith("://"):  # a scheme with nothing after it is no link
            continue
        parts.append(escape(text[position : match.start()]))
        parts.append(f"<{escape(url)}>")
        position = match.start() + len(url)
    parts.append(escape(text[position:]))
    return "".join(parts)


def _pieces(text: str, seps: tuple[str, ...] = ("\n\n", "\n", " ")) -> Iterator[tuple[str, str]]:
    """(glue, piece) pairs that rebuild `text`, each piece's mrkdwn short enough for a section:
    cut between paragraphs, then lines, then words; a run with none of them is cut into parts
    that fit even if every character needs escaping."""
    sep, *finer = seps
    for index, piece in enumerate(text.split(sep)):
        glue = sep if index else ""
        if len(mrkdwn(piece)) <= SECTION_LIMIT:
            yield glue, piece
        elif finer:
            for inner, (inner_glue, part) in enumerate(_pieces(piece, tuple(finer))):
                yield (inner_glue if inner else glue), part
        else:
            size = SECTION_LIMIT // len("&amp;")  # the longest escape
            for at in range(0, len(piece), size):
                yield (glue if at == 0 else ""), piece[at : at + size]


def sections(text: str) -> list[str]:
    """The message as mrkdwn texts of at most SECTION_LIMIT characters each, never dropping a
    character (a cut falls between blocks instead of a blank line, a newline or a space)."""
    chunks: list[str] = []
    current: str | None = None
    for glue, piece in _pieces(text):
        if current is None:
            current = piece
        elif len(mrkdwn(current + glue + piece)) > SECTION_LIMIT:
            chunks.append(current)
            current = piece
        else:
            current = current + glue + piece
    chunks.append(current or "")
    return [mrkdwn(chunk) for chunk in chunks]


def _when(moment: datetime) -> str:
    """The session's start in each reader's own time zone (Slack's date formatting)."""
    epoch = int(moment.timestamp())
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"In your time zone: <!date^{epoch}^{{date_long_pretty}} at {{time}}|{fallback}>"


def blocks(message: Message) -> list[dict[str, Any]]:
    """Block Kit: the text in section blocks (its first line bold), then a context line with
    the start in the reader's time zone, and the card's page unless the text links it."""
    texts = sections(message.text)
    first, newline, rest = texts[0].partition("\n")
    if first.strip() and "*" not in first and len(texts[0]) + 2 <= SECTION_LIMIT:
        texts[0] = f"*{first}*{newline}{rest}"
    layout: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in texts
    ]
    context: list[dict[str, Any]] = []
    key = message.key
    if key.notice not in ("cancelled", "recording"):
        context.append({"type": "mrkdwn", "text": _when(key.occurrence)})
    if message.card is not None and message.card.url and message.card.url not in message.text:
        url = message.card.url
        page = url.rstrip("/").endswith(f"/sessions/{key.session_id}")
        label = "Session page" if page else "Group website"
        context.append({"type": "mrkdwn", "text": f"<{escape(url)}|{label}>"})
    if context:
        layout.append({"type": "context", "elements": context})
    return layout


def _metadata(message: Message) -> dict[str, Any]:
    key: DeliveryKey = message.key
    payload: dict[str, Any] = {
        "session": key.session_id,
        "notice": key.notice,
        "occurrence": key.occurrence.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if message.reference is not None:
        payload = {"reference": message.reference, **payload}
    return {"event_type": EVENT_TYPE, "event_payload": payload}


def _reference_of(item: Any) -> str | None:
    """The reference a message from conversations.history carries in its metadata."""
    metadata = item.get("metadata") if isinstance(item, dict) else None
    if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_TYPE:
        return None
    payload = metadata.get("event_payload")
    value = payload.get("reference") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


class SlackNotifier(HttpNotifier):
    """Posts to Slack with a bot token (proof, self-settling) or an incoming webhook (none)."""

    name = "slack"
    max_length = 4000  # SPEC §8; Slack itself truncates `text` past 40,000 characters
    length_unit = "characters"
    secret_variables = ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL")
    settles = True  # in bot-token mode only: see can_settle()
    settle_delay = timedelta(minutes=2)
    label: ClassVar[str] = "Slack"
    where: ClassVar[str] = "Slack's server (SLACK_API_BASE_URL, or SLACK_WEBHOOK_URL's host)"

    def __init__(self, config: SlackConfig) -> None:
        super().__init__(config)
        self.config: SlackConfig = config

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> SlackConfig:
        """Read SLACK_* variables: exactly one of a bot token (with SLACK_CHANNEL) or a webhook."""
        v = Variables(env, "slack")
        token = v.secret("SLACK_BOT_TOKEN", required=False)
        webhook = v.url("SLACK_WEBHOOK_URL", secret=True)
        channel = v.get("SLACK_CHANNEL")
        base_url = v.url("SLACK_API_BASE_URL", SLACK_API)
        timeout = v.timeout("SLACK_TIMEOUT")
        if token.get() and webhook:
            v.problems.append(
                "SLACK_BOT_TOKEN, SLACK_WEBHOOK_URL: set only one of them (the slack channel "
                "posts with a bot token or through an incoming webhook)"
            )
        elif not token.get() and not webhook and not v.problems:
            v.problems.append(
                "SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL: required by the slack channel (missing)"
            )
        elif token.get():
            if not token.get().startswith("xoxb-"):
                v.problems.append("SLACK_BOT_TOKEN: must be a bot token, xoxb-… (value hidden)")
            if not channel:
                v.required("SLACK_CHANNEL")
            elif not (_ID.match(channel) or _NAME.match(channel)):
                v.problems.append(
                    f"SLACK_CHANNEL: must be a channel ID (C0123ABCD) or #name ({channel})"
                )
        elif channel:
            v.problems.append(
                "SLACK_CHANNEL: not used with SLACK_WEBHOOK_URL, which posts to the channel it "
                f"was made for; remove it ({channel})"
            )
        v.done()
        path = urlsplit(webhook).path if webhook else ""
        return SlackConfig(
            token=token,
            channel=channel.lstrip("#") if not _ID.match(channel) else channel,
            base_url=base_url,
            webhook_url=Secret(webhook),
            webhook_path=Secret(path if len(path) > 1 else ""),
            webhook_key=Secret(path.rsplit("/", 1)[-1] if len(path) > 1 else ""),
            timeout=timeout,
        )

    # The contract ---------------------------------------------------------------------------

    def can_settle(self) -> bool:
        """Only a bot token can read the channel back; a webhook offers nothing to look up."""
        return not self.config.webhook

    def new_reference(self, key: DeliveryKey, now: datetime) -> str | None:
        """A fresh id for the message's metadata, the same on every attempt of the delivery."""
        return uuid.uuid4().hex if self.can_settle() else None

    def send(self, message: Message, now: datetime) -> Receipt:
        """Post `message`; the receipt is the message's permalink (or CHANNEL/ts), or None for
        a webhook, which answers only `ok`."""
        too_long = self.over_limit(message.text)
        if too_long:
            raise PermanentError(too_long)
        if not message.text.strip():
            raise PermanentError("the message is empty; Slack posts no empty message")
        if self.config.webhook:
            return self._send_webhook(message, now)
        reference = message.reference
        if reference is not None:
            if (earlier := self._posted_before(reference, now)) is not None:
                return earlier
            # settle() counts its delay from the last attempt; a later send() looks first.
            self.state.put(self._attempt_key(reference), now.astimezone(UTC).isoformat())
        try:
            body = self._web(
                "POST",
                "chat.postMessage",
                now,
                posting=True,
                json={
                    "channel": self.config.channel,
                    "text": mrkdwn(message.text),
                    "blocks": blocks(message),
                    "unfurl_links": False,
                    "metadata": _metadata(message),
                },
            )
        except (TransientError, PermanentError):
            if reference is not None:  # not taken: nothing to look for next time
                self.state.drop(self._attempt_key(reference))
            raise
        ts, channel = body.get("ts"), body.get("channel")
        if not isinstance(ts, str) or not ts or not isinstance(channel, str) or not channel:
            raise MaybeSentError("Slack said ok to chat.postMessage but gave no ts or channel")
        self._remember_channel(channel)
        if reference is not None:
            self.state.drop(self._attempt_key(reference))
        return Receipt(external_id=self._external_id(channel, ts, now))

    def _posted_before(self, reference: str, now: datetime) -> Receipt | None:
        """The receipt of an earlier attempt that did post, when one may have (an operator's
        `deliveries retry` of an uncertain delivery); None when it cannot be found."""
        earlier = self._last_attempt(reference)
        if earlier is None:
            return None
        try:
            channel = self._channel_id(now)
            ts = self._find(channel, reference, earlier, now)
        except NotifierError as exc:  # the operator asked for a retry: post
            log.info(
                "slack: could not look for an earlier attempt (%s); posting",
                exc,
                extra={"event": "precheck_failed", "channel": "slack"},
            )
            return None
        if ts is None:
            return None
        self.state.drop(self._attempt_key(reference))
        log.info(
            "slack: an earlier attempt was posted (ts %s); not posting again",
            ts,
            extra={"event": "already_posted", "channel": "slack"},
        )
        return Receipt(external_id=self._external_id(channel, ts, now))

    def settle(
        self, reference: str, text: str, referenced_at: datetime, now: datetime
    ) -> Settlement:
        """Look for the message carrying `reference` in the channel's history since the first
        attempt; absent only once settle_delay has passed since the last attempt."""
        if not self.can_settle():
            return super().settle(reference, text, referenced_at, now)
        try:
            channel = self._channel_id(now)
            ts = self._find(channel, reference, referenced_at, now)
        except PermanentError as exc:
            return Settlement("unknown", reason=str(exc), final=True)
        except NotifierError as exc:
            return Settlement("unknown", reason=str(exc))
        if ts is not None:
            self.state.drop(self._attempt_key(reference))
            external_id = self._external_id(channel, ts, now)
            return Settlement("exists", external_id, reason=f"found in the channel at ts {ts}")
        last = self._last_attempt(reference) or referenced_at
        if now < max(last, referenced_at) + self.settle_delay:
            return Settlement("unknown", reason="not in the channel's history yet")
        self.state.drop(self._attempt_key(reference))
        return Settlement("absent", reason="not in the channel's history")

    def check_online(self) -> None:
        """Bot token: auth.test, then read one message of the channel (what settling needs).
        A webhook cannot be checked without posting: say so, and raise nothing."""
        if self.config.webhook:
            log.warning(
                "slack: an incoming webhook cannot be checked without posting; "
                "SLACK_WEBHOOK_URL was checked for its form only",
                extra={"event": "check_not_online", "channel": "slack"},
            )
            return
        who = self._web("POST", "auth.test", None)
        log.info(
            "slack: logged in as %s on %s",
            who.get("user") or who.get("user_id") or "?",
            who.get("team") or who.get("team_id") or "?",
            extra={"event": "check_online", "channel": "slack"},
        )
        try:
            channel = self._channel_id(None)
            self._web("GET", "conversations.history", None, params={"channel": channel, "limit": 1})
        except SlackRefused as exc:
            if exc.error not in ("missing_scope", "not_in_channel"):
                raise
            log.warning(
                "slack: uncertain posts cannot be settled by themselves (%s)",
                exc,
                extra={"event": "check_cannot_settle", "channel": "slack"},
            )

    # The Web API ----------------------------------------------------------------------------

    def _web(
        self,
        http_method: str,
        method: str,
        now: datetime | None,
        *,
        posting: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One Web API call with the bot token; its body when ok, else the failure raised."""
        headers = {"Authorization": f"Bearer {self.config.token.get()}"}
        if "json" in kwargs:
            headers["Content-Type"] = "application/json; charset=utf-8"
        url = f"{self.config.base_url}/{method}"
        answer = self.call(http_method, url, headers=headers, **kwargs)
        return self._web_answer(answer, method, now, posting)

    def _web_answer(
        self, answer: Answer, method: str, now: datetime | None, posting: bool
    ) -> dict[str, Any]:
        status, body = answer.status, answer.body
        if status == 429:
            raise TransientError(
                f"Slack rate-limited {method} (HTTP 429)", retry_at=retry_at(answer.headers, now)
            )
        if status >= 500:
            text = f"Slack answered {method} with HTTP {status}"
            raise MaybeSentError(f"{text}; it may have posted") if posting else TransientError(text)
        if 300 <= status < 400:
            raise PermanentError(
                f"Slack answered {method} with a redirect ({status}), not followed"
            )
        if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
            text = f"Slack's answer to {method} could not be read (HTTP {status})"
            if status < 300 and posting:
                raise MaybeSentError(text)
            raise PermanentError(text) if status >= 400 else TransientError(text)
        if body["ok"]:
            return body
        raise self.scrub(self._refusal(method, body, answer, now, posting))

    def _refusal(
        self,
        method: str,
        body: dict[str, Any],
        answer: Answer,
        now: datetime | None,
        posting: bool,
    ) -> NotifierError:
        error = str(body.get("error") or "unknown_error")[:100]
        hint = _HINTS.get(error)
        if error == "missing_scope":
            hint = f"the token needs {body.get('needed') or 'another scope'}; add it and reinstall"
        reason = f"Slack refused {method}: {error}" + (f" ({hint})" if hint else "")
        if error in ("ratelimited", "rate_limited"):
            return TransientError(reason, retry_at=retry_at(answer.headers, now))
        if error in _MAYBE_POSTED:
            return (
                MaybeSentError(f"{reason}; it may have posted")
                if posting
                else TransientError(reason)
            )
        if error in _NOT_TAKEN:
            return TransientError(reason)
        return SlackRefused(reason, error)

    def _external_id(self, channel: str, ts: str, now: datetime | None) -> str:
        """The message's permalink; CHANNEL/ts when Slack does not give one (the post stands)."""
        try:
            body = self._web(
                "GET", "chat.getPermalink", now, params={"channel": channel, "message_ts": ts}
            )
        except NotifierError as exc:
            log.warning(
                "slack: no permalink for %s/%s (%s); keeping CHANNEL/ts",
                channel,
                ts,
                exc,
                extra={"event": "permalink_missing", "channel": "slack"},
            )
            return f"{channel}/{ts}"
        link = body.get("permalink")
        return link if isinstance(link, str) and link else f"{channel}/{ts}"

    # Settling -------------------------------------------------------------------------------

    def _pages(self, method: str, params: dict[str, Any], now: datetime | None) -> Iterator[Any]:
        """The `messages`/`channels` items of a paged Web API method, page after page."""
        params = dict(params)
        for _ in range(HISTORY_PAGES):
            body = self._web("GET", method, now, params=params)
            yield from body.get("messages") or body.get("channels") or []
            meta = body.get("response_metadata")
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not cursor:
                return
            params["cursor"] = cursor
        raise SlackRefused(f"{method}: more than {HISTORY_PAGES} pages to read", "too_many_pages")

    def _find(
        self, channel: str, reference: str, referenced_at: datetime, now: datetime
    ) -> str | None:
        """The ts of the message carrying `reference`, newest first, since the first attempt
        (less the clocks' possible skew)."""
        params = {
            "channel": channel,
            "oldest": f"{(referenced_at - CLOCK_SKEW).timestamp():.6f}",
            "include_all_metadata": "true",
            "limit": HISTORY_PAGE,
        }
        try:
            for item in self._pages("conversations.history", params, now):
                if _reference_of(item) == reference:
                    return str(item.get("ts"))
        except SlackRefused as exc:
            if exc.error != "missing_scope":
                raise
            raise SlackRefused(
                f"cannot read the channel's history: the token needs {_HISTORY_SCOPES}",
                exc.error,
            ) from exc
        return None

    def _channel_id(self, now: datetime | None) -> str:
        """SLACK_CHANNEL as an ID (conversations.history takes no name), looked up once."""
        channel = self.config.channel
        known = channel if _ID.match(channel) else self.state.get(f"channel-id:{channel}")
        if known:
            return known
        params = {"types": "public_channel,private_channel", "exclude_archived": "true"}
        try:
            for item in self._pages("conversations.list", params | {"limit": 200}, now):
                if isinstance(item, dict) and item.get("name") == channel and item.get("id"):
                    self._remember_channel(str(item["id"]))
                    return str(item["id"])
        except SlackRefused as exc:
            raise SlackRefused(
                f"cannot find #{channel}'s ID ({exc}): set SLACK_CHANNEL to the channel ID",
                exc.error,
            ) from exc
        raise SlackRefused(
            f"no channel named #{channel} is visible to the app (SLACK_CHANNEL)",
            "channel_not_found",
        )

    def _remember_channel(self, channel_id: str) -> None:
        if (
            not _ID.match(self.config.channel)
            and self.state.get(f"channel-id:{self.config.channel}") != channel_id
        ):
            self.state.put(f"channel-id:{self.config.channel}", channel_id)

    @staticmethod
    def _attempt_key(reference: str) -> str:
        return f"attempt:{reference}"

    def _last_attempt(self, reference: str) -> datetime | None:
        raw = self.state.get(self._attempt_key(reference))
        try:
            return datetime.fromisoformat(raw) if raw else None
        except ValueError:
            return None

    # The webhook ----------------------------------------------------------------------------

    def _send_webhook(self, message: Message, now: datetime) -> Receipt:
        answer = self.call(
            "POST",
            self.config.webhook_url.get(),
            json={"text": mrkdwn(message.text), "blocks": blocks(message), "unfurl_links": False},
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        status, said = answer.status, answer.text.strip()[:100]
        if status == 200 and said == "ok":
            return Receipt(external_id=None)
        detail = f"{status}" + (f" {said}" if said else "")
        if status == 429:
            raise TransientError(
                f"Slack rate-limited the webhook (HTTP {detail})",
                retry_at=retry_at(answer.headers, now),
            )
        if status >= 500 or status < 300:
            error: NotifierError = MaybeSentError(
                f"the Slack webhook answered HTTP {detail}; it may have posted"
            )
        elif status < 400:
            error = PermanentError(
                f"the Slack webhook answered a redirect ({status}), not followed"
            )
        else:
            hint = _WEBHOOK_HINTS.get(status)
            error = PermanentError(
                f"the Slack webhook refused the message: HTTP {detail}"
                + (f" ({hint})" if hint else "")
            )
        raise self.scrub(error)
