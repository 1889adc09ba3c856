"""The `webhook` channel: a worked example of a reading-group-bot plugin.

Each message is POSTed as JSON to WEBHOOK_URL. The receiver's side of the contract:

- `POST {WEBHOOK_URL}` with `{"text", "session", "notice", "occurrence", "reference", "card"}`:
  store the message, then answer 2xx with `{"id": "..."}` (the id is optional). A POST whose
  `reference` was already stored creates nothing and is answered 200 with the stored id.
- 429 with `Retry-After` (seconds or an HTTP date) or 503: not stored, come back later. 408:
  not stored (it gave up reading the request). Other 4xx and 3xx: refused for good. 500, 502,
  504 and other 5xx: maybe stored.
- `GET {WEBHOOK_URL}` answers 2xx without storing anything (`bot check --online`).
- Only with WEBHOOK_LOOKUP=on: `GET {WEBHOOK_URL}/{reference}` answers 200 `{"id": ...,
  "reference": REFERENCE}` when a message with that reference is stored, and 404 `{"reference":
  REFERENCE}` when none is. An answer whose body does not name the reference proves nothing.

Importing this module imports neither `requests` nor anything that does: the registry loads it
for every command that names the channel, even one that sends nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from bot.config import Secret
from bot.errors import MaybeSentError, NotifierError, PermanentError, TransientError
from bot.logs import Redactor
from bot.notifiers.base import Card, DeliveryKey, Message, Receipt, Settlement
from bot.notifiers.http import DEFAULT_TIMEOUT, Answer, HttpNotifier, Variables, retry_at

if TYPE_CHECKING:
    import requests

__all__ = ["TEMPLATES", "WebhookConfig", "WebhookNotifier"]
__version__ = "0.1.0"

# The folder holding `webhook/*.txt.j2`: the renderer finds it through `templates_dir`; a user
# overrides one file by putting `webhook/NOTICE.txt.j2` in TEMPLATES_DIR.
TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_LENGTH = 4000  # the receiver keeps text in a column of 4,000 UTF-16 code units
_DETAIL = 200  # characters of a receiver's error message kept in a reason
# Loggers that write a request's path (the secret part of the URL) at DEBUG. The bot keeps
# urllib3 at WARNING, but a host that turns it up (pytest's caplog, say) must not see the path.
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.connection")


@dataclass(frozen=True)
class WebhookConfig:
    """The `webhook` channel's validated settings.

    The URL is a Secret: whoever knows it can post. Its path is kept as a Secret too, because
    the path is what makes most webhook URLs secret and a library may log it without the host.
    Every Secret field is scrubbed from errors (HttpNotifier) and redacted from logs (bot.logs).
    """

    url: Secret
    url_path: Secret
    timeout: float = DEFAULT_TIMEOUT
    lookup: bool = False


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _card(card: Card | None) -> dict[str, Any] | None:
    if card is None:
        return None
    return {
        "url": card.url,
        "title": card.title,
        "description": card.description,
        "starts_at": _iso(card.starts_at) if card.starts_at else None,
    }


def _detail(answer: Answer) -> str:
    """The receiver's own words about a refusal (a JSON `error`, `message` or `detail`), or ""."""
    body = answer.body if isinstance(answer.body, dict) else {}
    for name in ("error", "message", "detail"):
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            text = " ".join(value.split())
            return f": {text[:_DETAIL]}"
    return ""


def _message_id(answer: Answer) -> str | None:
    """The `id` of a 2xx answer's JSON body, when it has one."""
    value = answer.body.get("id") if isinstance(answer.body, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


class WebhookNotifier(HttpNotifier):
    """POSTs each message as JSON to WEBHOOK_URL; settles itself with WEBHOOK_LOOKUP=on."""

    name = "webhook"
    parts = ("txt",)
    max_length = MAX_LENGTH
    length_unit = "UTF-16 code units"
    secret_variables = ("WEBHOOK_URL",)
    label = "the webhook"
    where = "WEBHOOK_URL"
    templates_dir = TEMPLATES  # its `webhook/` folder, searched after TEMPLATES_DIR and built-ins
    # Self-settling is possible only with WEBHOOK_LOOKUP=on (can_settle() says which), and asked
    # a minute after the first attempt: the receiver stores a message before it answers, so a
    # minute after an unanswered request an "absent" answer can be trusted.
    settles = True
    settle_delay = timedelta(minutes=1)

    def __init__(self, config: WebhookConfig) -> None:
        super().__init__(config)
        self.config: WebhookConfig = config

    # Configuration --------------------------------------------------------------------------

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> WebhookConfig:
        """Read WEBHOOK_*; raise ConfigError listing every problem, never the URL's value."""
        v = Variables(env, cls.name)
        url = ""
        if v.required("WEBHOOK_URL"):
            if any(ch.isspace() for ch in v.get("WEBHOOK_URL")):
                v.problems.append("WEBHOOK_URL: must not contain spaces (value hidden)")
            else:
                url = v.url("WEBHOOK_URL", secret=True)
        timeout = v.timeout("WEBHOOK_TIMEOUT")
        lookup = v.choice("WEBHOOK_LOOKUP", "off", ("on", "off")) == "on"
        v.done()
        return WebhookConfig(
            url=Secret(url),
            url_path=Secret(urlsplit(url).path),
            timeout=timeout,
            lookup=lookup,
        )

    # Limits ---------------------------------------------------------------------------------

    @classmethod
    def measure(cls, text: str) -> int:
        """UTF-16 code units, as the receiver counts: an emoji counts 2, "é" 1."""
        return len(text.encode("utf-16-le")) // 2

    @classmethod
    def over_limit(cls, text: str) -> str | None:
        """Too long, or empty (a template that rendered nothing)."""
        if not text.strip():
            return "message is empty"
        return super().over_limit(text)

    # Sending --------------------------------------------------------------------------------

    def send(self, message: Message, now: datetime) -> Receipt:
        """POST the message; the receipt carries the receiver's id for it."""
        problem = self.limit_problem(message.text)  # before any request, whoever calls
        if problem is not None:
            raise PermanentError(problem)
        key = message.key
        payload = {
            "text": message.text,
            "session": key.session_id,
            "notice": key.notice,
            "occurrence": _iso(key.occurrence),
            "reference": message.reference,
            "card": _card(message.card),
        }
        answer = self.call("POST", self.config.url.get(), json=payload, headers=self._headers())
        if 200 <= answer.status < 300:
            return Receipt(external_id=_message_id(answer))
        raise self.scrub(self._failure(answer, now))

    def _failure(self, answer: Answer, now: datetime | None) -> NotifierError:
        """Map a non-2xx answer to one of the three kinds of failure (SPEC §6 rule 5)."""
        status = answer.status
        text = f"the webhook answered {status}{_detail(answer)}"
        if status in (429, 503):  # not stored; come back when it says
            return TransientError(text, retry_at=retry_at(answer.headers, now))
        if status == 408:  # the receiver gave up reading the request: nothing was stored
            return TransientError(text)
        if 300 <= status < 400:  # redirects are not followed: a POST would become a GET
            return PermanentError(f"{text} (a redirect: set WEBHOOK_URL to the final address)")
        if 400 <= status < 500:
            return PermanentError(text)
        return MaybeSentError(f"{text}; it may have stored the message")

    def session(self) -> requests.Session:
        """The HTTP session; on first use, urllib3's DEBUG lines get the URL scrubbed."""
        if self._session is None:
            for logger in map(logging.getLogger, _URL_LOGGERS):
                known = (f.secrets for f in logger.filters if isinstance(f, Redactor))
                if self.redactor.secrets not in known:
                    logger.addFilter(self.redactor)
        return super().session()

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": f"rgb-webhook-channel/{__version__}"}

    # Self-settling (SPEC §6 rule 5a) --------------------------------------------------------

    def can_settle(self) -> bool:
        """Only when the receiver answers the lookup: a 404 from a receiver that has no
        lookup would read as "not stored" and send the message twice."""
        return self.config.lookup

    def new_reference(self, key: DeliveryKey, now: datetime) -> str | None:
        """A random, URL-safe reference, stored with the `sending` mark and sent on every
        attempt; random so that two databases posting to one receiver never share one."""
        return secrets.token_hex(16) if self.config.lookup else None

    def settle(
        self, reference: str, text: str, referenced_at: datetime, now: datetime
    ) -> Settlement:
        """Ask the receiver whether it stored the message sent under `reference`."""
        answer = self._lookup(reference)  # a network failure raises: the dispatcher asks later
        if answer.status in (200, 404) and not self._names(answer, reference):
            # Not the lookup's answer (a catch-all page, a server without the lookup): taking
            # it for "absent" would send twice, for "exists" would lose the message. Never ask
            # again; an operator decides.
            return Settlement(
                "unknown",
                reason=f"the receiver's {answer.status} does not name the reference: "
                "it has no lookup",
                final=True,
            )
        if answer.status == 200:
            return Settlement("exists", external_id=_message_id(answer))
        if answer.status == 404:
            return Settlement("absent")
        return Settlement("unknown", reason=f"the lookup answered {answer.status}")

    def _lookup(self, reference: str) -> Answer:
        url = f"{self.config.url.get()}/{quote(reference, safe='')}"
        return self.call("GET", url, headers=self._headers())

    @staticmethod
    def _names(answer: Answer, reference: str) -> bool:
        return isinstance(answer.body, dict) and answer.body.get("reference") == reference

    # Checking -------------------------------------------------------------------------------

    def check_online(self) -> None:
        """GET the webhook (posting nothing); with WEBHOOK_LOOKUP=on, also look up a reference
        that cannot exist, to prove the receiver answers the lookup as settling needs."""
        answer = self.call("GET", self.config.url.get(), headers=self._headers())
        if not 200 <= answer.status < 300:
            raise self.scrub(self._failure(answer, None))
        if self.config.lookup:
            probe = f"check-{secrets.token_hex(8)}"
            answer = self._lookup(probe)
            if answer.status != 404 or not self._names(answer, probe):
                raise PermanentError(
                    f"WEBHOOK_LOOKUP=on but the receiver's lookup answered {answer.status} "
                    "for a reference it cannot have (404 naming the reference expected)"
                )
