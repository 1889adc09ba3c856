"""What every HTTP channel shares: its variables, one careful `requests` session, and the three
kinds of failure (SPEC §6 rule 5) read off an exception or an answer.

Every request has a timeout, follows no redirect (a redirected POST turns into a GET) and uses a
fresh connection (`Connection: close`: posts are rare, and a stale pooled connection that fails
after the request was written would look like "maybe sent"). Errors never carry a secret: the
channel's tokens and secret URLs are scrubbed from every reason.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from bot.config import Secret
from bot.errors import ConfigError, MaybeSentError, NotifierError, PermanentError, TransientError
from bot.logs import Redactor
from bot.notifiers.base import Notifier
from bot.tls import certificate_failure, describe_certificate_failure, exception_chain, http_verify

if TYPE_CHECKING:
    import requests

# Loggers that write a request's URL or path at DEBUG.
_PATH_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0


def url_problem(url: str, *, query: bool = False) -> str | None:
    """Why `url` cannot be a channel's base URL, or None (a secret URL is never shown)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return f"not a valid URL ({url})"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password (value hidden)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host ({url})"
    if not query and (parts.query or parts.fragment):
        return f"must not have a query or fragment ({url})"
    return None


def positive_seconds(text: str) -> float | None:
    """A positive, finite number of seconds, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


class Variables:
    """Reads one channel's variables, collecting every problem; secrets are never shown."""

    def __init__(self, env: Mapping[str, str], channel: str) -> None:
        self.env = env
        self.channel = channel
        self.problems: list[str] = []

    def get(self, name: str, default: str = "") -> str:
        """A variable's value, stripped (default when unset or empty)."""
        return (self.env.get(name) or "").strip() or default

    def required(self, name: str) -> str:
        """A variable the channel cannot work without."""
        value = self.get(name)
        if not value:
            self.problems.append(f"{name}: required by the {self.channel} channel (missing)")
        return value

    def secret(self, name: str, *, required: bool = True) -> Secret:
        """A token or password, wrapped at once; a problem never shows its value."""
        value = self.get(name)
        if not value and required:
            self.problems.append(f"{name}: required by the {self.channel} channel (missing)")
        elif any(ch.isspace() for ch in value):
            self.problems.append(f"{name}: must not contain spaces (value hidden)")
        return Secret(value)

    def url(self, name: str, default: str = "", *, secret: bool = False) -> str:
        """An http(s) base URL; a secret one (a webhook) is never shown in a problem."""
        value = self.get(name, default).rstrip("/")
        if value and (problem := url_problem(value)) is not None:
            self.problems.append(
                f"{name}: {'not a valid http(s) URL (value hidden)' if secret else problem}"
            )
        return value

    def timeout(self, name: str) -> float:
        """`NAME_TIMEOUT`: seconds for every request, above 0 and at most MAX_TIMEOUT."""
        raw = self.get(name)
        if not raw:
            return DEFAULT_TIMEOUT
        value = positive_seconds(raw)
        if value is None or value > MAX_TIMEOUT:
            self.problems.append(
                f"{name}: must be a number of seconds above 0, at most {MAX_TIMEOUT:g} ({raw})"
            )
            return DEFAULT_TIMEOUT
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of a few words."""
        value = self.get(name, default).lower()
        if value not in choices:
            self.problems.append(f"{name}: must be one of {', '.join(choices)} ({value})")
            return default
        return value

    def done(self) -> None:
        """Raise ConfigError naming every problem found."""
        if self.problems:
            raise ConfigError(self.problems)


def make_session(timeout: float, rewrite: Callable[[str], str] | None = None) -> requests.Session:
    """A requests session: a timeout on every request, no redirects, a fresh connection each
    time, the CA of REQUESTS_CA_BUNDLE or SSL_CERT_FILE; `rewrite` may change each URL."""
    import requests

    class _Session(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            target = url.decode() if isinstance(url, bytes) else url
            if rewrite is not None:
                target = rewrite(target)
            kwargs.setdefault("timeout", timeout)
            kwargs.setdefault("allow_redirects", False)
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Connection": "close"}
            return super().request(method, target, *args, **kwargs)

    session = _Session()
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


def network_error(exc: Exception, label: str, timeout: float, where: str) -> NotifierError:
    """Map a requests exception: nothing sent → Transient; maybe handed over → MaybeSent.

    `label` names the service in reasons ("X"); `where` names its URL variable for a
    certificate that does not verify.
    """
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError  # DNS: a subclass

    name = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return TransientError(f"could not reach {label} ({name})")
    if isinstance(exc, requests.Timeout):
        return MaybeSentError(
            f"{label} did not answer within {timeout:g}s after the request was sent"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        if (bad := certificate_failure(exc)) is not None:  # retrying will not make it verify
            return PermanentError(describe_certificate_failure(bad, where))
        if _in_handshake(exc):
            return TransientError(f"TLS handshake with {label} failed ({name})")
        return MaybeSentError(
            f"the TLS connection to {label} failed after the request was sent ({name})"
        )
    if isinstance(exc, requests.ConnectionError):
        if any(
            isinstance(e, ConnectTimeoutError | NewConnectionError) for e in exception_chain(exc)
        ):
            return TransientError(f"could not connect to {label} ({name})")
        return MaybeSentError(f"the connection to {label} was lost after the request was sent")
    unreadable = requests.exceptions.ContentDecodingError | requests.exceptions.ChunkedEncodingError
    if isinstance(exc, unreadable | requests.JSONDecodeError):
        return MaybeSentError(f"{label}'s answer could not be read ({name})")
    return PermanentError(f"the request to {label} could not be made ({name})")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def retry_at(
    headers: Mapping[str, str], now: datetime | None, *, after: float | None = None
) -> datetime | None:
    """When a rate-limited service says to come back, from whichever signal it sends.

    An epoch in `x-rate-limit-reset` (X) or `ratelimit-reset` (Bluesky); an ISO 8601 time or
    an epoch in `x-ratelimit-reset` (Mastodon, Discord); seconds in `x-ratelimit-reset-after`
    (Discord), `retry-after` or a body's `retry_after` (`after`: Discord, Telegram); an HTTP
    date in `retry-after`. The latest of them wins.
    """
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    found: list[datetime] = []
    for name in ("x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"):
        value = lower.get(name, "")
        epoch = _number(value)
        if epoch is not None and epoch > 10**9:
            found.append(datetime.fromtimestamp(epoch, UTC))
        elif value and epoch is None:
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if when.tzinfo is not None:
                found.append(when.astimezone(UTC))
    seconds = [
        s
        for s in (
            _number(lower.get("x-ratelimit-reset-after", "")),
            _number(lower.get("retry-after", "")),
            after,
        )
        if s is not None
    ]
    if now is not None:
        found.extend(now + timedelta(seconds=math.ceil(s)) for s in seconds)
    value = lower.get("retry-after", "")
    if value and _number(value) is None:
        try:
            date: datetime | None = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            date = None
        if date is not None and date.tzinfo is not None:
            found.append(date.astimezone(UTC))
    return max(found) if found else None


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read once: status, headers and the JSON body (None if it is not JSON)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str


class HttpNotifier(Notifier):
    """A channel reached over HTTP with `requests`; subclasses declare `label` and `where`."""

    label: ClassVar[str] = "the service"  # names the service in reasons
    where: ClassVar[str] = "its base URL"  # the variable naming its URL, for certificate errors

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._session: requests.Session | None = None
        self.redactor = Redactor(self.secret_strings())

    def secret_strings(self) -> Iterable[str]:
        """Every secret of the configuration (Secret fields and secret URLs), for scrubbing."""
        values = vars(self.config) if self.config is not None else {}
        return [v.get() for v in values.values() if isinstance(v, Secret) and v.get()]

    @property
    def timeout(self) -> float:
        """Seconds for every request."""
        return float(getattr(self.config, "timeout", DEFAULT_TIMEOUT))

    def session(self) -> requests.Session:
        """The channel's HTTP session, made on first use (imports requests only then).

        urllib3 logs each request's path at DEBUG (a webhook's token, a Telegram bot path): the
        channel's redactor is put on those loggers, so no handler (pytest's caplog, say) sees it.
        """
        if self._session is None:
            for logger in map(logging.getLogger, _PATH_LOGGERS):
                known = (f.secrets for f in logger.filters if isinstance(f, Redactor))
                if self.redactor.secrets not in known:
                    logger.addFilter(self.redactor)
            self._session = make_session(self.timeout)
        return self._session

    def call(self, method: str, url: str, **kwargs: Any) -> Answer:
        """One request; a network failure becomes a NotifierError with secrets scrubbed."""
        import requests

        try:
            response = self.session().request(method, url, **kwargs)
            text = response.text
        except requests.RequestException as exc:
            raise self.scrub(network_error(exc, self.label, self.timeout, self.where)) from exc
        try:
            body = response.json() if text else None
        except ValueError:
            body = None
        return Answer(response.status_code, response.headers, body, text)

    def scrub(self, error: NotifierError) -> NotifierError:
        """The same error with every secret blanked out of its text."""
        error.args = (self.redactor.scrub(str(error)),)
        return error

    def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            self._session.close()
            self._session = None
