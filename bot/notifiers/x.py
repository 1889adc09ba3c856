"""The `x` channel: posts through tweepy's X API v2 client, OAuth 1.0a user context."""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
from bot.tls import (
    certificate_failure,
    describe_certificate_failure,
    exception_chain,
    http_verify,
)

if TYPE_CHECKING:
    import requests

TWITTER_API = "https://api.twitter.com"  # what tweepy hard-codes
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0
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


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return f"not a valid URL ({url})"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password (value hidden)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host ({url})"
    if parts.query or parts.fragment:
        return f"must not have a query or fragment ({url})"
    return None


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _make_session(base_url: str, timeout: float) -> requests.Session:
    import requests

    class _XSession(requests.Session):
        """Sends tweepy's requests to X_API_BASE_URL, each with a timeout and a fresh connection."""

        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            target = url.decode() if isinstance(url, bytes) else url
            if target.startswith(TWITTER_API + "/"):
                # Rewritten before signing: the OAuth signature covers the URL actually requested.
                target = base_url + target[len(TWITTER_API) :]
            kwargs.setdefault("timeout", timeout)  # tweepy sets none
            # A redirected POST would turn into a GET; better a clear refusal.
            kwargs.setdefault("allow_redirects", False)
            # Posts are rare: a pooled connection would be stale, and a stale one that fails
            # after the request was written would look like "maybe sent".
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Connection": "close"}
            return super().request(method, target, *args, **kwargs)

    session = _XSession()
    session.verify = http_verify()
    return session


def _in_handshake(exc: BaseException) -> bool:
    """True when an ssl error in the chain was raised by the TLS handshake itself."""
    for err in exception_chain(exc):
        tb = err.__traceback__ if isinstance(err, ssl.SSLError) else None
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "do_handshake":
                return True
            tb = tb.tb_next
    return False


def _network_error(exc: Exception, timeout: float) -> NotifierError:
    """Map a requests exception: nothing sent → Transient; maybe handed over → MaybeSent."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError  # DNS: a subclass

    name = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return TransientError(f"could not reach X ({name})")
    if isinstance(exc, requests.Timeout):
        return MaybeSentError(f"X did not answer within {timeout:g}s after the request was sent")
    if isinstance(exc, requests.exceptions.SSLError):
        if (bad := certificate_failure(exc)) is not None:  # retrying will not make it verify
            return PermanentError(describe_certificate_failure(bad, "X_API_BASE_URL"))
        if _in_handshake(exc):
            return TransientError(f"TLS handshake with X failed ({name})")
        return MaybeSentError(f"the TLS connection to X failed after the request was sent ({name})")
    if isinstance(exc, requests.ConnectionError):
        if any(
            isinstance(e, ConnectTimeoutError | NewConnectionError) for e in exception_chain(exc)
        ):
            return TransientError(f"could not connect to X ({name})")
        return MaybeSentError("the connection to X was lost after the request was sent")
    unreadable = requests.exceptions.ContentDecodingError | requests.exceptions.ChunkedEncodingError
    if isinstance(exc, unreadable | requests.JSONDecodeError):
        return MaybeSentError(f"X's answer could not be read ({name})")
    return PermanentError(f"the request to X could not be made ({name})")


def _retry_after(headers: Mapping[str, str], now: datetime | None) -> datetime | None:
    reset = headers.get("x-rate-limit-reset", "").strip()
    if reset.isdigit():
        return datetime.fromtimestamp(int(reset), UTC)
    value = headers.get("retry-after", "").strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value)) if now is not None else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.astimezone(UTC) if when.tzinfo is not None else None


def _http_error(exc: Any, now: datetime | None) -> NotifierError:
    """Map tweepy's HTTPException by status: 429 and 5xx are Transient, other 4xx Permanent."""
    response = exc.response
    status = int(response.status_code)
    messages = [str(m) for m in getattr(exc, "api_messages", [])]
    detail = "; ".join(messages)[:300]
    text = f"X answered {status} {response.reason}" + (f": {detail}" if detail else "")
    if status == 429 or status >= 500:
        return TransientError(text, retry_at=_retry_after(response.headers, now))
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
        url_problem = _url_problem(base_url)
        if url_problem:
            problems.append(f"X_API_BASE_URL: {url_problem}")
        raw_timeout = (env.get("X_TIMEOUT") or "").strip()
        timeout = _seconds(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT
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
            client.session = _make_session(config.base_url, config.timeout)
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
            raise _scrubbed(_network_error(e, self.config.timeout), self._redactor) from e
        except tweepy.errors.TweepyException as e:
            raise PermanentError(f"tweepy refused the request ({type(e).__name__})") from e
