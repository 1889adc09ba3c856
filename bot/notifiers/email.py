"""The `email` channel: one multipart message over SMTP, with the session's calendar file."""

from __future__ import annotations

import logging
import math
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, getaddresses
from typing import TYPE_CHECKING

from bot.config import Secret, parse_duration
from bot.errors import ConfigError, MaybeSentError, NotifierError, PermanentError, TransientError
from bot.notifiers.base import Message, Notifier, Receipt
from bot.tls import (
    ca_file_problem,
    certificate_failure,
    client_context,
    describe_certificate_failure,
)

log = logging.getLogger(__name__)

SECURITY_MODES = ("starttls", "ssl", "none")
MAX_TIMEOUT = 600.0  # seconds: a longer wait is a mistake (and would overflow the socket's)
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_LABEL}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:-]+$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_COMMA_OUTSIDE_QUOTES = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')
# smtplib and email.message are imported where a message is built or sent: a pass with
# nothing due (a cron minute) only parses the variables.
if TYPE_CHECKING:
    import smtplib
    from email.message import EmailMessage
_STAGES = {
    "SMTPConnectError": "greeting",
    "SMTPHeloError": "EHLO",
    "SMTPAuthenticationError": "authentication failed",
}


@dataclass(frozen=True)
class EmailConfig:
    """The `email` channel's settings, validated; the password is a Secret from the start."""

    host: str
    email_from: str  # as written: `bot@example.org` or `Reading Group <bot@example.org>`
    email_to: tuple[str, ...]
    port: int = 587
    security: str = "starttls"  # one of SECURITY_MODES
    username: str | None = None
    password: Secret | None = None
    timeout: float = 30.0  # seconds, for every socket operation
    email_reply_to: tuple[str, ...] = ()
    ca_file: str | None = None  # SMTP_CA_FILE: a private CA trusted besides the system's

    @property
    def sender(self) -> str:
        """The bare envelope sender address."""
        return getaddresses([self.email_from])[0][1]

    @property
    def domain(self) -> str:
        """The sender's domain: the right-hand side of every Message-ID."""
        return self.sender.rpartition("@")[2]

    @property
    def recipients(self) -> tuple[str, ...]:
        """The bare envelope recipient addresses."""
        return tuple(addr for _, addr in getaddresses(list(self.email_to)))


def _address(text: str) -> str | None:
    """The bare address in `a@b.org` or `Name <a@b.org>`, or None when it is not one address."""
    if "\r" in text or "\n" in text:
        return None
    pairs = getaddresses([text])
    if len(pairs) != 1 or not _ADDR_SPEC.match(pairs[0][1]):
        return None
    return pairs[0][1]


def _address_list(name: str, raw: str, problems: list[str]) -> tuple[str, ...]:
    entries = tuple(e.strip() for e in _COMMA_OUTSIDE_QUOTES.split(raw) if e.strip())
    for entry in entries:
        if _address(entry) is None:
            problems.append(f"{name}: not a valid email address ({entry})")
    return entries


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = parse_duration(raw).total_seconds()  # `30s`, `1m` also read naturally
    if not math.isfinite(value) or value <= 0:
        raise ValueError(raw)
    return value


def parse_email_config(env: Mapping[str, str]) -> EmailConfig:
    """Read SMTP_* and EMAIL_*, or raise ConfigError with one line per problem."""
    problems: list[str] = []

    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    host = get("SMTP_HOST")
    if not host:
        problems.append("SMTP_HOST: required by the email channel")
    elif not _HOST.match(host) or host.startswith("-"):
        problems.append(f"SMTP_HOST: not a host name or IP address ({host})")
    port = 587
    if raw := get("SMTP_PORT"):
        port = int(raw) if raw.isdigit() else 0
        if not 1 <= port <= 65535:
            problems.append(f"SMTP_PORT: must be a whole number from 1 to 65535 ({raw})")
    security = (get("SMTP_SECURITY") or "starttls").lower()
    if security not in SECURITY_MODES:
        problems.append(f"SMTP_SECURITY: must be one of {', '.join(SECURITY_MODES)} ({security})")
    username = get("SMTP_USERNAME") or None
    password = Secret(get("SMTP_PASSWORD")) if get("SMTP_PASSWORD") else None
    if password is not None and not password.get().isascii():  # smtplib logs in with ASCII only
        problems.append("SMTP_PASSWORD: must be ASCII for SMTP login (value hidden)")
    if username is not None and not username.isascii():
        problems.append(f"SMTP_USERNAME: must be ASCII for SMTP login ({username})")
    if username and password is None:
        problems.append("SMTP_PASSWORD: missing (required when SMTP_USERNAME is set)")
    if password is not None and not username:
        problems.append("SMTP_USERNAME: missing (required when SMTP_PASSWORD is set)")
    timeout = 30.0
    if raw := get("SMTP_TIMEOUT"):
        try:
            timeout = _seconds(raw)
        except ValueError:
            problems.append(f"SMTP_TIMEOUT: must be a positive number of seconds ({raw})")
        else:
            if timeout > MAX_TIMEOUT:
                problems.append(f"SMTP_TIMEOUT: must be at most {MAX_TIMEOUT:g} seconds ({raw})")
    email_from = get("EMAIL_FROM")
    if not email_from:
        problems.append("EMAIL_FROM: required by the email channel")
    elif _address(email_from) is None:
        problems.append(f"EMAIL_FROM: not a valid email address ({email_from})")
    email_to = _address_list("EMAIL_TO", get("EMAIL_TO"), problems)
    if not email_to:
        problems.append("EMAIL_TO: required by the email channel")
    reply_to = _address_list("EMAIL_REPLY_TO", get("EMAIL_REPLY_TO"), problems)
    ca_file = get("SMTP_CA_FILE") or None
    if ca_file is not None and (problem := ca_file_problem(ca_file)) is not None:
        problems.append(f"SMTP_CA_FILE: {problem}")
    if problems:
        raise ConfigError(problems)
    return EmailConfig(
        host, email_from, email_to, port, security, username, password, timeout, reply_to, ca_file
    )


def _one_line(value: str) -> str:
    """Fold every line break to a space, so a value can never start a header of its own."""
    return " ".join(value.splitlines())


def _text_cte(text: str) -> str | None:
    # Non-ASCII bodies go quoted-printable: 8bit would need the server's 8BITMIME.
    return None if text.isascii() else "quoted-printable"


def _content_type(value: str) -> tuple[str, str, dict[str, str]]:
    from email.message import EmailMessage

    holder = EmailMessage()
    holder["Content-Type"] = _one_line(value)
    params = {k: str(v) for k, v in (holder.get_params() or [])[1:]}
    return holder.get_content_maintype(), holder.get_content_subtype(), params


def build_email(
    config: EmailConfig, message: Message, now: datetime, message_id: str
) -> EmailMessage:
    """The MIME message: text with an HTML alternative, attachments, one-line headers."""
    from email.message import EmailMessage
    from email.policy import SMTP as SMTP_POLICY

    mail = EmailMessage(policy=SMTP_POLICY)
    mail["From"] = config.email_from
    mail["To"] = ", ".join(config.email_to)
    if config.email_reply_to:
        mail["Reply-To"] = ", ".join(config.email_reply_to)
    mail["Subject"] = _one_line(message.subject or "")
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = message_id
    if message.replies_to:  # a change notice: thread it under what the list already received
        mail["In-Reply-To"] = message.replies_to[-1]
        mail["References"] = " ".join(message.replies_to)
    for name, value in message.headers.items():
        if not _HEADER_NAME.match(name):
            raise PermanentError(f"invalid email header name {name!r}")
        del mail[name]
        mail[name] = _one_line(value)
    mail.set_content(message.text, cte=_text_cte(message.text))
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html", cte=_text_cte(message.html))
    for attachment in message.attachments:
        maintype, subtype, params = _content_type(attachment.content_type)
        mail.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=_one_line(attachment.filename),
            params=params,
        )
    return mail


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, the lone dot at the end."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except OSError:  # smtplib's errors included
        smtp.close()


class EmailNotifier(Notifier):
    """Sends each message once, to every EMAIL_TO address, through one SMTP server."""

    name = "email"
    parts = ("subject", "txt", "html")
    secret_variables = ("SMTP_PASSWORD",)
    config: EmailConfig

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> EmailConfig:
        """Read and validate the SMTP_* and EMAIL_* variables."""
        return parse_email_config(env)

    def send(self, message: Message, now: datetime) -> Receipt:
        """Send one email; the receipt carries its Message-ID."""
        message_id = message.key.message_id(self.config.domain)
        mail = build_email(self.config, message, now, message_id)
        with self._session() as smtp:
            self._transfer(smtp, mail.as_bytes(), message)
        return Receipt(external_id=message_id)

    def check_online(self) -> None:
        """Connect, secure, log in and NOOP, sending nothing."""
        with self._session() as smtp:
            code, reply = smtp.noop()
            if code != 250:
                raise self._refusal(code, reply, "NOOP")

    @contextmanager
    def _session(self) -> Iterator[smtplib.SMTP]:
        """A connected, secured, logged-in client; every failure becomes a NotifierError."""
        try:
            smtp = self._connect()
            try:
                yield smtp
            finally:
                _quit(smtp)
        except NotifierError:
            raise
        except OSError as exc:  # smtplib's and ssl's errors are OSErrors too
            raise self._failure(exc) from exc

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        import smtplib

        smtp: smtplib.SMTP
        # local_hostname avoids socket.getfqdn(), a DNS lookup with no timeout.
        if cfg.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                cfg.host,
                cfg.port,
                local_hostname=cfg.domain,
                timeout=cfg.timeout,
                context=client_context(cfg.ca_file),
            )
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, local_hostname=cfg.domain, timeout=cfg.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if cfg.security == "starttls":  # raises when not offered: never falls back to plain
                smtp.starttls(context=client_context(cfg.ca_file))
                smtp.ehlo_or_helo_if_needed()
            if cfg.username and cfg.password is not None:
                smtp.login(cfg.username, cfg.password.get())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _transfer(self, smtp: smtplib.SMTP, data: bytes, message: Message) -> None:
        """MAIL, RCPT and DATA driven by hand, so a failure's phase is known."""
        code, reply = smtp.mail(self.config.sender)
        if code != 250:
            raise self._refusal(code, reply, "MAIL FROM")
        refused: dict[str, tuple[int, bytes]] = {}
        for rcpt in self.config.recipients:
            code, reply = smtp.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, reply)
        if len(refused) == len(self.config.recipients):
            # The lowest code wins: if any refusal was temporary, a retry may get through.
            code, reply = min(refused.values(), key=lambda item: item[0])
            raise self._refusal(code, reply, "RCPT TO")
        if refused:
            listed = "; ".join(f"{r}: {c} {self._text(t)}" for r, (c, t) in refused.items())
            log.warning(
                "email recipients refused, sending to the others: %s",
                listed,
                extra={
                    "event": "email_recipients_refused",
                    "session": message.key.session_id,
                    "channel": self.name,
                },
            )
        code, reply = smtp.docmd("DATA")
        if code != 354:
            raise self._refusal(code, reply, "DATA")
        try:
            smtp.send(_dot_stuffed(data))
            code, reply = smtp.getreply()
        except OSError as exc:
            raise MaybeSentError(
                f"connection to {self.config.host}:{self.config.port} lost after the message "
                f"was handed over; it may have been sent ({exc})"
            ) from exc
        if code != 250:
            raise self._refusal(code, reply, "end of DATA")

    def _text(self, reply: bytes | str) -> str:
        """A server's reply as one line, with the password (should a server echo it) hidden."""
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
        text = " ".join(text.split())
        secret = self.config.password.get() if self.config.password is not None else ""
        return text.replace(secret, "***") if secret else text

    def _refusal(self, code: int, reply: bytes | str, stage: str) -> NotifierError:
        """4xx (or anything odd) is worth retrying; 5xx is refused for good."""
        reason = f"{stage}: SMTP {code} {self._text(reply)}".rstrip()
        return PermanentError(reason) if 500 <= code < 600 else TransientError(reason)

    def _failure(self, exc: OSError) -> NotifierError:
        where = f"{self.config.host}:{self.config.port}"
        import smtplib

        if isinstance(exc, smtplib.SMTPResponseException):
            stage = _STAGES.get(type(exc).__name__, "SMTP reply")
            return self._refusal(exc.smtp_code, exc.smtp_error, stage)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return TransientError(f"connection to {where} lost before the message was sent ({exc})")
        if isinstance(exc, smtplib.SMTPException):  # e.g. no AUTH offered, no usable mechanism
            return PermanentError(f"{where}: {self._text(str(exc))}")
        if (bad := certificate_failure(exc)) is not None:  # retrying will not make it verify
            hint = "; trust its CA with SMTP_CA_FILE" if self.config.ca_file is None else ""
            return PermanentError(describe_certificate_failure(bad, where) + hint)
        if isinstance(exc, ssl.SSLError):
            return TransientError(f"TLS handshake with {where} failed ({exc})")
        if isinstance(exc, socket.gaierror):
            return TransientError(f"cannot resolve SMTP_HOST {self.config.host} ({exc.strerror})")
        if isinstance(exc, ConnectionRefusedError):
            return TransientError(f"connection refused by {where}")
        if isinstance(exc, TimeoutError):
            return TransientError(f"timed out talking to {where}")
        return TransientError(f"network error talking to {where} ({exc})")
