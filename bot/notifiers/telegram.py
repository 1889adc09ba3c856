"""The `telegram` channel: the Bot API's `sendMessage`, the text escaped for HTML parse mode.

The bot token is part of every URL (`{base}/bot{token}/sendMessage`), so it is scrubbed from
every reason, kept out of exception chains, and redacted from urllib3's own DEBUG lines.

The Bot API has no idempotency key and no way to look a message up by anything the bot chose,
so a maybe-sent message (a timeout after the request, a lost connection, a 5xx) stays
`uncertain` for an operator (SPEC §6 rule 4); a 429 waits for `parameters.retry_after`.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.config import Secret
from bot.errors import MaybeSentError, NotifierError, PermanentError, TransientError
from bot.logs import Redactor
from bot.notifiers.base import Message, Receipt
from bot.notifiers.http import DEFAULT_TIMEOUT, Answer, HttpNotifier, Variables, retry_at

TELEGRAM_API = "https://api.telegram.org"
# As @BotFather gives it: the bot's numeric id, a colon, then (today 35) URL-safe characters.
_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}")
# A public chat's username (5-32 characters; a few old ones are shorter) or a numeric id.
_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{2,31}")
_NUMERIC_ID = re.compile(r"-?[0-9]{1,20}")
# Loggers that write the request line, and so the token in the URL path, at DEBUG. The central
# redactor covers configured handlers; this covers any other (pytest's caplog, say).
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")
_DETAIL = 300  # characters of Telegram's description kept in a reason


@dataclass(frozen=True)
class TelegramConfig:
    """The `telegram` channel's validated settings; the token stays wrapped in Secret."""

    token: Secret
    chat_id: str  # "@channelname" or a numeric id such as -1001234567890
    base_url: str = TELEGRAM_API
    timeout: float = DEFAULT_TIMEOUT

    @property
    def chat(self) -> int | str:
        """The chat as the Bot API takes it: an integer id, or the "@username" string."""
        return int(self.chat_id) if _NUMERIC_ID.fullmatch(self.chat_id) else self.chat_id


def html_text(text: str) -> str:
    """`text` for parse_mode HTML: &, < and > as entities, so Telegram shows it as written.

    URLs are left as text: Telegram links them by itself, and no markup is added, so what is
    counted (the plain text) is exactly what the chat shows.
    """
    return html.escape(text, quote=False)


def _token_problem(value: str) -> str | None:
    if not value or _TOKEN.fullmatch(value):
        return None
    hint = ""
    if value.lower().startswith("bot") and _TOKEN.fullmatch(value[3:]):
        hint = ", without the leading 'bot' of the URL path"
    elif "/" in value:
        hint = ", the token alone, not a URL"
    return (
        "TELEGRAM_BOT_TOKEN: must look like 123456789:AAE… (the bot's id, a colon, then letters,"
        f" digits, - or _) as @BotFather gives it{hint} (value hidden)"
    )


def _chat_problem(value: str) -> str | None:
    if not value or _USERNAME.fullmatch(value) or _NUMERIC_ID.fullmatch(value):
        return None
    hint = ""
    name = value.removeprefix("https://").removeprefix("http://").removeprefix("t.me/")
    if _USERNAME.fullmatch("@" + name):
        hint = f"; for a public channel write @{name}"
    return (
        "TELEGRAM_CHAT_ID: must be @channelname or a numeric chat id such as -1001234567890"
        f"{hint} ({value})"
    )


def _number(value: Any) -> int | float | None:
    """A JSON number that is not a boolean."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


class TelegramNotifier(HttpNotifier):
    """Posts to one Telegram chat (a channel, group or user) as a bot."""

    name = "telegram"
    max_length = 4096
    length_unit = "characters"
    secret_variables = ("TELEGRAM_BOT_TOKEN",)
    settles = False  # no idempotency in the Bot API: a maybe-sent message stays uncertain
    label = "Telegram"
    where = "TELEGRAM_API_BASE_URL"

    def __init__(self, config: TelegramConfig) -> None:
        super().__init__(config)
        self.config: TelegramConfig = config
        self._logs_guarded = False

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> TelegramConfig:
        """Read TELEGRAM_* variables; raise ConfigError listing every problem, never the token."""
        read = Variables(env, cls.name)
        before = len(read.problems)
        token = read.secret("TELEGRAM_BOT_TOKEN")
        if len(read.problems) == before and (problem := _token_problem(token.get())):
            read.problems.append(problem)
        chat_id = read.required("TELEGRAM_CHAT_ID")
        if (problem := _chat_problem(chat_id)) is not None:
            read.problems.append(problem)
        base_url = read.url("TELEGRAM_API_BASE_URL", TELEGRAM_API)
        timeout = read.timeout("TELEGRAM_TIMEOUT")
        read.done()
        return TelegramConfig(token=token, chat_id=chat_id, base_url=base_url, timeout=timeout)

    def secret_strings(self) -> Iterable[str]:
        """The token, its URL path segment and its percent-encoded form."""
        config = self.config
        token = config.token.get() if isinstance(config, TelegramConfig) else ""
        return [token, f"bot{token}", quote(token, safe="")] if token else []

    @classmethod
    def measure(cls, text: str) -> int:
        """Unicode code points of the plain text, as the Bot API counts "1-4096 characters
        after entities parsing" (tdlib compares utf8_length(), code points, with
        message_text_length_max). The text goes out escaped, so parsing gives it back whole."""
        return len(text)

    @classmethod
    def over_limit(cls, text: str) -> str | None:
        """Too long, or empty (Telegram refuses a message with no text)."""
        if not text.strip():
            return "message is empty; Telegram refuses a message without text"
        return super().over_limit(text)

    def send(self, message: Message, now: datetime) -> Receipt:
        """Post `message.text` to TELEGRAM_CHAT_ID; the receipt carries the new message_id."""
        problem = self.limit_problem(message.text)
        if problem is not None:
            raise PermanentError(problem)
        preview: dict[str, Any] = {"is_disabled": False}
        if message.card is not None and message.card.url:
            preview["url"] = message.card.url  # the session's page, even where text has others
        payload = {
            "chat_id": self.config.chat,
            "text": html_text(message.text),
            "parse_mode": "HTML",
            "link_preview_options": preview,
        }
        result = self._method("sendMessage", payload, now, posting=True)
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise MaybeSentError("Telegram took the message but its answer carried no message_id")
        return Receipt(external_id=str(message_id))

    def check_online(self) -> None:
        """getMe (the token works) and getChat (the bot can see TELEGRAM_CHAT_ID; a group that
        became a supergroup shows here too), posting nothing."""
        self._method("getMe", {}, None, posting=False)
        self._method("getChat", {"chat_id": self.config.chat}, None, posting=False)

    # ------------------------------------------------------------------------------------------

    def _method(
        self, method: str, payload: Mapping[str, Any], now: datetime | None, *, posting: bool
    ) -> Any:
        """Call one Bot API method; its `result`, or the failure as a NotifierError."""
        self._guard_logs()
        url = f"{self.config.base_url}/bot{self.config.token.get()}/{method}"
        try:
            answer = self.call("POST", url, json=dict(payload))
        except NotifierError as exc:
            # The reason is already scrubbed; the requests exception behind it names the URL,
            # token and all, so it is not chained (a traceback would print it).
            raise exc from None
        body = answer.body if isinstance(answer.body, dict) else None
        if 200 <= answer.status < 300 and body is not None and body.get("ok") is True:
            return body.get("result")
        raise self.scrub(self._refusal(answer, body, now, posting))

    def _refusal(
        self, answer: Answer, body: dict[str, Any] | None, now: datetime | None, posting: bool
    ) -> NotifierError:
        """Map a Bot API error ({ok: false, error_code, description, parameters}) to its kind."""
        status = answer.status
        code = _number(body.get("error_code")) if body is not None else None
        if 200 <= status < 300:
            if code is None:  # a 2xx without ok: true (a proxy's page?) may still have posted
                what = "Telegram answered without ok: true"
                if posting:
                    return MaybeSentError(f"{what}; the message may have been posted")
                return PermanentError(f"{what} (is TELEGRAM_API_BASE_URL the Bot API?)")
            status = int(code)
        description = str(body.get("description") or "") if body is not None else ""
        text = f"Telegram answered {status}" + (f": {description[:_DETAIL]}" if description else "")
        raw = body.get("parameters") if body is not None else None
        parameters: dict[str, Any] = raw if isinstance(raw, dict) else {}
        new_chat = parameters.get("migrate_to_chat_id")
        if isinstance(new_chat, int) and not isinstance(new_chat, bool):
            return PermanentError(
                "TELEGRAM_CHAT_ID: the group became a supergroup; "
                f"set TELEGRAM_CHAT_ID={new_chat} ({text})"
            )
        if status == 429:
            after = _number(parameters.get("retry_after"))
            return TransientError(text, retry_at=retry_at(answer.headers, now, after=after))
        if status >= 500:
            if posting:  # nothing says whether the message went out before the failure
                return MaybeSentError(f"{text}; the message may have been posted")
            return TransientError(text)
        return PermanentError(text + _hint(status, description))

    def _guard_logs(self) -> None:
        """Redact the token from urllib3's request lines on these loggers' own filters."""
        if self._logs_guarded:
            return
        for logger in map(logging.getLogger, _URL_LOGGERS):
            known = (f.secrets for f in logger.filters if isinstance(f, Redactor))
            if self.redactor.secrets not in known:
                logger.addFilter(self.redactor)
        self._logs_guarded = True


def _hint(status: int, description: str) -> str:
    """What to do about a refusal, naming the variable to look at."""
    lower = description.lower()
    if status == 401:
        return " (TELEGRAM_BOT_TOKEN is not a valid bot token: ask @BotFather for the current one)"
    if status == 404:
        return " (check TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL)"
    if status == 403:
        return (
            " (the bot cannot post in TELEGRAM_CHAT_ID: add it to the chat; in a channel, as an"
            " administrator allowed to post messages)"
        )
    if status == 400 and "chat not found" in lower:
        return " (check TELEGRAM_CHAT_ID, and that the bot was added to the chat)"
    if 300 <= status < 400:
        return " (redirects are not followed: check TELEGRAM_API_BASE_URL)"
    if status == 400 and "too long" in lower:
        return " (longer than Telegram's 4,096 characters)"
    return ""
