"""The `x` channel: posts through tweepy's X API v2 client, OAuth 1.0a user context."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.config import Secret
from bot.errors import (
    ConfigError,
    DuplicateContentError,
    MaybeSentError,
    NotifierError,
    PermanentError,
    TransientError,
)
from bot.logs import Redactor
from bot.notifiers.base import Message, Notifier, Receipt
from bot.notifiers.http import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    make_session,
    network_error,
    positive_seconds,
    retry_at,
    url_problem,
)

TWITTER_API = "https://api.twitter.com"  # what tweepy hard-codes
_CREDENTIALS = ("X_API_KEY", "X_API_KEY_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET")
_DUPLICATE_MARKERS = ("duplicate content", "status is a duplicate")
# These log the consumer key, the access token and the Authorization header at DEBUG; the
# central redactor covers configured handlers, this covers any other (pytest's caplog, say).
_SIGNING_LOGGERS = ("oauthlib.oauth1.rfc5849", "requests_oauthlib.oauth1_auth", "tweepy.client")


@dataclass(frozen=True)
class XConfig:
    """The `x` channel's validated settings; credentials stay wrapped in Secret."""

    api_key: Secret
    api_key_secret: Secret
    access_token: Secret
    access_token_secret: Secret
    base_url: str = TWITTER_API
    timeout: float = DEFAULT_TIMEOUT

    def secrets(self) -> tuple[Secret, ...]:
        """Every credential, for scrubbing text that came back from the network."""
        return (self.api_key, self.api_key_secret, self.access_token, self.access_token_secret)


def _to_base(base_url: str) -> Callable[[str], str]:
    """Send tweepy's requests to X_API_BASE_URL: rewritten before signing, so the OAuth
    signature covers the URL actually requested."""

    def rewrite(url: str) -> str:
        return base_url + url[len(TWITTER_API) :] if url.startswith(TWITTER_API + "/") else url

    return rewrite


def _http_error(exc: Any, now: datetime | None) -> NotifierError:
    """Map tweepy's HTTPException by status: 429 and 5xx are Transient, other 4xx Permanent."""
    response = exc.response
    status = int(response.status_code)
    messages = [str(m) for m in getattr(exc, "api_messages", [])]
    detail = "; ".join(messages)[:300]
    text = f"X answered {status} {response.reason}" + (f": {detail}" if detail else "")
    if status == 429 or status >= 500:
        return TransientError(text, retry_at=retry_at(response.headers, now))
    if status == 403 and any(m in detail.lower() for m in _DUPLICATE_MARKERS):
        return DuplicateContentError()
    return PermanentError(text)


def _scrubbed(error: NotifierError, redactor: Redactor) -> NotifierError:
    """The same error with any credential (echoed by a server, say) blanked out of its text."""
    error.args = (redactor.scrub(str(error)),)
    return error


class XNotifier(Notifier):
    """Posts to X; needs the four OAuth 1.0a user-context credentials."""

    name = "x"
    max_length = 280
    length_unit = "weighted characters"
    secret_variables = _CREDENTIALS

    def __init__(self, config: XConfig) -> None:
        super().__init__(config)
        self.config: XConfig = config
        self._client: Any = None
        self._redactor = Redactor(s.get() for s in config.secrets())

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> XConfig:
        """Read X_* variables; raise ConfigError listing every problem, never a secret's value."""
        problems: list[str] = []
        secrets: dict[str, Secret] = {}
        for name in _CREDENTIALS:
            value = (env.get(name) or "").strip()
            if not value:
                problems.append(f"{name}: required by the x channel (missing)")
            elif any(ch.isspace() for ch in value):
                problems.append(f"{name}: must not contain spaces (value hidden)")
            secrets[name] = Secret(value)
        base_url = (env.get("X_API_BASE_URL") or "").strip() or TWITTER_API
        problem = url_problem(base_url)
        if problem:
            problems.append(f"X_API_BASE_URL: {problem}")
        raw_timeout = (env.get("X_TIMEOUT") or "").strip()
        timeout = positive_seconds(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT
        if timeout is None or timeout > MAX_TIMEOUT:
            problems.append(
                f"X_TIMEOUT: must be a number of seconds above 0, at most {MAX_TIMEOUT:g} "
                f"({raw_timeout})"
            )
        if problems:
            raise ConfigError(problems)
        return XConfig(
            api_key=secrets["X_API_KEY"],
            api_key_secret=secrets["X_API_KEY_SECRET"],
            access_token=secrets["X_ACCESS_TOKEN"],
            access_token_secret=secrets["X_ACCESS_TOKEN_SECRET"],
            base_url=base_url.rstrip("/"),
            timeout=timeout or DEFAULT_TIMEOUT,
        )

    @classmethod
    def measure(cls, text: str) -> int:
        """X's weighted length: a URL counts 23, CJK and emoji count 2."""
        from bot.render.textlimits import x_weighted_length

        return x_weighted_length(text)

    @classmethod
    def over_limit(cls, text: str) -> str | None:
        """Too long, or holding a character X refuses in any post (U+FFFE, U+FEFF, U+FFFF)."""
        from bot.render.textlimits import x_invalid_character

        bad = x_invalid_character(text)
        if bad is not None:
            return f"message holds {bad}, a character X refuses in a post"
        return super().over_limit(text)

    def send(self, message: Message, now: datetime) -> Receipt:
        """Post `message.text`; the receipt carries the new post's id."""
        too_long = self.over_limit(message.text)
        if too_long:
            raise PermanentError(too_long)
        reply = self._call(
            lambda client: client.create_tweet(text=message.text, user_auth=True), now
        )
        data = reply.get("data") if isinstance(reply, dict) else None
        post_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(post_id, str | int) or isinstance(post_id, bool):
            raise MaybeSentError("X accepted the request but its answer carried no post id")
        return Receipt(external_id=str(post_id))

    def check_online(self) -> None:
        """Log in with GET /2/users/me, posting nothing."""
        self._call(lambda client: client.get_me(user_auth=True), None)

    def close(self) -> None:
        """Close the HTTP session."""
        if self._client is not None:
            self._client.session.close()
            self._client = None

    def _tweepy(self) -> Any:
        if self._client is None:
            import tweepy

            config = self.config
            for logger in map(logging.getLogger, _SIGNING_LOGGERS):
                known = (f.secrets for f in logger.filters if isinstance(f, Redactor))
                if self._redactor.secrets not in known:
                    logger.addFilter(self._redactor)
            client = tweepy.Client(
                consumer_key=config.api_key.get(),
                consumer_secret=config.api_key_secret.get(),
                access_token=config.access_token.get(),
                access_token_secret=config.access_token_secret.get(),
                return_type=dict,
            )
            client.session.close()
            client.session = make_session(config.timeout, rewrite=_to_base(config.base_url))
            self._client = client
        return self._client

    def _call(self, action: Callable[[Any], Any], now: datetime | None) -> Any:
        import requests
        import tweepy

        client = self._tweepy()
        try:
            return action(client)
        except tweepy.errors.HTTPException as e:
            raise _scrubbed(_http_error(e, now), self._redactor) from e
        except requests.RequestException as e:
            error = network_error(e, "X", self.config.timeout, "X_API_BASE_URL")
            raise _scrubbed(error, self._redactor) from e
        except tweepy.errors.TweepyException as e:
            raise PermanentError(f"tweepy refused the request ({type(e).__name__})") from e
