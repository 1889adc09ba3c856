"""The `discord` channel: a channel webhook, executed with `?wait=true`.

`POST {webhook}?wait=true` with `{content, embeds, allowed_mentions: {"parse": []}}`. With `wait`
Discord answers with the message it created, whose `id` is the proof of posting; without it the
answer is a bare 204 and proves nothing. `allowed_mentions` with an empty `parse` list means no
mention in the text notifies anyone: a session title holding `@everyone` is shown, never pinged.

The session rides along as one rich embed built from the message's card (title, link, short
summary, start time). The text is sent whole or not at all; only the embed is fitted to Discord's
embed limits, its title cut with "…" (and a log line saying so) rather than failing the post.

Webhooks have no idempotency key and no way to find a message by anything the bot chose, so a
post that may have gone out (a timeout after the request, a 5xx) stays `uncertain` (rule 4).

The webhook URL is the credential: its token sits in the path. It never reaches output, errors
or logs: it is a Secret, every reason is scrubbed, and urllib3's request lines (which show the
path at DEBUG) are filtered through the channel's redactor.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import bot
from bot.config import Secret
from bot.errors import MaybeSentError, NotifierError, PermanentError, TransientError
from bot.logs import Redactor
from bot.notifiers.base import Card, Message, Receipt
from bot.notifiers.http import DEFAULT_TIMEOUT, Answer, HttpNotifier, Variables, retry_at

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

VARIABLE = "DISCORD_WEBHOOK_URL"
MAX_CONTENT = 2000  # characters of `content`: Unicode code points, as Discord's API counts them
MAX_TITLE = 256  # an embed's title
MAX_DESCRIPTION = 4096  # an embed's description
MAX_EMBEDS_TOTAL = 6000  # title + description + fields + footer + author, over all embeds
ELLIPSIS = "…"
SHAPE = "must be a Discord webhook URL like https://discord.com/api/webhooks/ID/TOKEN"
_WEBHOOK_PATH = re.compile(
    r"^(?:/[^/]+)*?/api(?:/v\d{1,3})?/webhooks/(?P<id>\d{1,25})/(?P<token>[A-Za-z0-9_-]{1,200})$"
)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# Loggers that write a request's path (and so the webhook token) at DEBUG.
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")
_GONE = (
    "the webhook is invalid or was deleted: make a new one in the channel's Integrations "
    f"settings and set {VARIABLE}"
)


@dataclass(frozen=True)
class DiscordConfig:
    """The `discord` channel's validated settings; the webhook URL stays wrapped in Secret."""

    webhook_url: Secret  # the whole URL, token included
    token: Secret  # the token alone, to scrub text that shows only the URL's path
    webhook_id: str = ""
    timeout: float = DEFAULT_TIMEOUT


def webhook_problem(url: str) -> str | None:
    """Why `url` is not a usable webhook URL, or None; never shows the value."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return f"{SHAPE} (value hidden)"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password (value hidden)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{SHAPE} (value hidden)"
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        return "must be an https:// URL: the token in it must not travel in clear (value hidden)"
    if parts.query or parts.fragment:
        return f"{SHAPE}, without a query or fragment (value hidden)"
    if _WEBHOOK_PATH.match(parts.path) is None:
        return f"{SHAPE} (value hidden)"
    return None


def fit(text: str, limit: int) -> str:
    """`text` stripped (Discord trims embed fields), cut to `limit` characters with "…"."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def embed_for(card: Card | None) -> dict[str, Any] | None:
    """The session as a rich embed, within Discord's embed limits; None without a card."""
    if card is None:
        return None
    embed: dict[str, Any] = {}
    title = fit(card.title, MAX_TITLE)
    if title != card.title.strip():
        log.info(
            "discord embed title cut to %d characters (the message text is sent whole)",
            MAX_TITLE,
            extra={"event": "discord_embed_title_cut", "title_length": len(card.title.strip())},
        )
    if title:
        embed["title"] = title
    if card.url.startswith(("https://", "http://")):
        embed["url"] = card.url
    room = min(MAX_DESCRIPTION, MAX_EMBEDS_TOTAL - embed_size(embed))
    description = fit(card.description, room)
    if description:
        embed["description"] = description
    if not embed:
        return None
    if card.starts_at is not None:
        embed["timestamp"] = card.starts_at.astimezone(UTC).isoformat()
    return embed


def embed_size(embed: Mapping[str, Any]) -> int:
    """The characters Discord counts against the 6,000 of a message's embeds."""
    size = len(str(embed.get("title", ""))) + len(str(embed.get("description", "")))
    for field in embed.get("fields") or ():
        size += len(str(field.get("name", ""))) + len(str(field.get("value", "")))
    size += len(str((embed.get("footer") or {}).get("text", "")))
    size += len(str((embed.get("author") or {}).get("name", "")))
    return size


def _form_errors(errors: Any, path: str = "") -> list[str]:
    """Discord's nested `errors` object as "content: Must be 2000 or fewer in length." lines."""
    found: list[str] = []
    if not isinstance(errors, dict):
        return found
    for key, value in errors.items():
        if key == "_errors" and isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and item.get("message"):
                    found.append(f"{path or 'body'}: {item['message']}")
        else:
            found.extend(_form_errors(value, f"{path}.{key}" if path else str(key)))
    return found


def _detail(answer: Answer) -> str:
    """Discord's own words for an error: its message, code and any form errors."""
    body = answer.body
    if not isinstance(body, dict):
        text = " ".join(answer.text.split())[:200]
        return f": {text}" if text and not text.startswith("<") else ""
    parts: list[str] = []
    if body.get("message"):  # "500: Internal Server Error" repeats the status: drop it
        parts.append(str(body["message"]).removeprefix(f"{answer.status}: "))
    code = body.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:  # 0: general error
        parts.append(f"(code {code})")
    text = " ".join(parts)
    if errors := _form_errors(body.get("errors")):
        text = f"{text}; {'; '.join(errors)}" if text else "; ".join(errors)
    return f": {text[:400]}" if text else ""


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


class DiscordNotifier(HttpNotifier):
    """Posts through a channel webhook; needs DISCORD_WEBHOOK_URL (the URL is the secret)."""

    name = "discord"
    label = "Discord"
    where = VARIABLE
    max_length = MAX_CONTENT
    length_unit = "characters"
    secret_variables = (VARIABLE,)
    settles = False  # no idempotency, nothing to look a message up by: rule 4 holds
    user_agent: ClassVar[str] = f"reading-group-bot/{bot.__version__}"

    def __init__(self, config: DiscordConfig) -> None:
        super().__init__(config)
        self.config: DiscordConfig = config

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> DiscordConfig:
        """Read DISCORD_* variables; raise ConfigError listing every problem, never the URL."""
        variables = Variables(env, cls.name)
        url = variables.secret(VARIABLE)
        timeout = variables.timeout("DISCORD_TIMEOUT")
        webhook_id, token = "", ""
        value = url.get().rstrip("/")
        if value and not any(ch.isspace() for ch in value):  # spaces: already a problem
            problem = webhook_problem(value)
            if problem is not None:
                variables.problems.append(f"{VARIABLE}: {problem}")
            else:
                match = _WEBHOOK_PATH.match(urlsplit(value).path)
                assert match is not None  # webhook_problem checked it
                webhook_id, token = match["id"], match["token"]
        variables.done()
        return DiscordConfig(
            webhook_url=Secret(value), token=Secret(token), webhook_id=webhook_id, timeout=timeout
        )

    @classmethod
    def over_limit(cls, text: str) -> str | None:
        """Too long (in code points), or empty: Discord refuses a message with no content."""
        if not text.strip():
            return "message is empty; Discord refuses an empty message"
        return super().over_limit(text)

    def payload(self, message: Message) -> dict[str, Any]:
        """The JSON body of the post: the text whole, one embed for the session, no mentions."""
        embed = embed_for(message.card)
        return {
            "content": message.text,
            "embeds": [embed] if embed is not None else [],
            "allowed_mentions": {"parse": []},
        }

    def send(self, message: Message, now: datetime) -> Receipt:
        """Post `message`; the receipt carries the new message's id."""
        problem = self.limit_problem(message.text)
        if problem:
            raise PermanentError(problem)
        payload = self.payload(message)
        answer = self.call(
            "POST",
            self.config.webhook_url.get(),
            params={"wait": "true"},
            json=payload,
            headers={"User-Agent": self.user_agent},
        )
        if not 200 <= answer.status < 300:
            raise self.scrub(self._refusal(answer, now, posting=True))
        body = answer.body
        message_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(message_id, str | int) or isinstance(message_id, bool) or not message_id:
            raise self.scrub(
                MaybeSentError(
                    f"Discord answered {answer.status} but its answer carried no message id"
                )
            )
        channel_id = body.get("channel_id") if isinstance(body, dict) else None
        log.debug(
            "discord message posted",
            extra={
                "event": "discord_posted",
                "message_id": str(message_id),
                "discord_channel_id": channel_id,
            },
        )
        return Receipt(external_id=str(message_id))

    def check_online(self) -> None:
        """GET the webhook (name, channel, guild) without posting anything."""
        answer = self.call(
            "GET", self.config.webhook_url.get(), headers={"User-Agent": self.user_agent}
        )
        body = answer.body
        if answer.status == 200 and isinstance(body, dict) and body.get("id"):
            log.info(
                "discord webhook %r posts to channel %s",
                str(body.get("name") or ""),
                body.get("channel_id"),
                extra={"event": "discord_webhook_ok"},
            )
            return
        if answer.status == 200:
            raise self.scrub(PermanentError("Discord answered 200 without a webhook object"))
        raise self.scrub(self._refusal(answer, None, posting=False))

    def session(self) -> requests.Session:
        """The HTTP session; on first use, urllib3's DEBUG lines get the token scrubbed."""
        if self._session is None:
            _guard(self.redactor)
        return super().session()

    def _refusal(self, answer: Answer, now: datetime | None, *, posting: bool) -> NotifierError:
        """Map an HTTP answer that is not a success (SPEC §6 rule 5, Discord's status codes)."""
        status = answer.status
        text = f"Discord answered {status}{_detail(answer)}"
        if status == 429:
            body = answer.body if isinstance(answer.body, dict) else {}
            after = _seconds(body.get("retry_after"))
            scope = " (global)" if body.get("global") is True else ""
            wait = f"; retry after {after:g}s" if after is not None else ""
            return TransientError(
                f"{text}{scope}{wait}", retry_at=retry_at(answer.headers, now, after=after)
            )
        if status in (401, 404):  # 50027 Invalid Webhook Token, 10015 Unknown Webhook
            return PermanentError(f"{text}; {_GONE}")
        if status == 403:
            return PermanentError(f"{text}; the webhook may not post in its channel")
        if 300 <= status < 400:
            return PermanentError(f"{text} (a redirect, not followed); check {VARIABLE}")
        if status >= 500:
            if posting:
                return MaybeSentError(f"{text}; the message may have been posted")
            return TransientError(text)
        return PermanentError(text)


def _guard(redactor: Redactor) -> None:
    """Add `redactor` to the loggers that show request paths, once per set of secrets."""
    for logger in map(logging.getLogger, _URL_LOGGERS):
        known = (f.secrets for f in logger.filters if isinstance(f, Redactor))
        if redactor.secrets not in known:
            logger.addFilter(redactor)
