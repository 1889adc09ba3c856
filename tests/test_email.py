"""The email channel against a real SMTP server on 127.0.0.1 (tests/support/smtp.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ConfigError, MaybeSentError, PermanentError, TransientError
from bot.notifiers import registry
from bot.notifiers.base import Attachment, DeliveryKey, Message
from bot.notifiers.email import EmailConfig, EmailNotifier
from tests.support.smtp import Security, SmtpStandIn, make_tls_files, openssl_available
from tests.support.smtp import smtp_server as _smtp_server  # noqa: F401 - the fixture
from tests.support.smtp import smtp_tls_server as _smtp_tls_server  # noqa: F401 - the fixture

NOW = datetime(2025, 12, 8, 15, 0, tzinfo=UTC)
KEY = DeliveryKey("diffucoder", "announce", "email", datetime(2025, 12, 15, 15, 0, tzinfo=UTC))
ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nBEGIN:VEVENT\r\n"
    b"UID:diffucoder@example.org\r\nSEQUENCE:0\r\nSUMMARY:DiffuCoder\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)
PASSWORD = "hunter2-Very-Secret"
needs_openssl = pytest.mark.skipif(not openssl_available(), reason="needs the openssl CLI")


def make_message(**changes: Any) -> Message:
    fields: dict[str, Any] = {
        "key": KEY,
        "subject": "DiffuCoder — Monday 15 December",
        "text": "Hello,\n.\n..a line that starts with dots\nSee you there.\n",
        "html": "<p>Hello, <b>see you there</b>.</p>\n",
        "attachments": (Attachment("session.ics", "text/calendar; method=PUBLISH", ICS),),
        "headers": {"In-Reply-To": "<previous@example.org>"},
    }
    return Message(**(fields | changes))


def notifier(env: Mapping[str, str]) -> EmailNotifier:
    return EmailNotifier(EmailNotifier.parse_config(env))


def send(env: Mapping[str, str], **changes: Any) -> str | None:
    return notifier(env).send(make_message(**changes), NOW).external_id


@pytest.fixture
def nothing_trusted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing trusted by default; tests that trust a stand-in set SSL_CERT_FILE themselves."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    yield


def parts(mail: EmailMessage) -> dict[str, EmailMessage]:
    return {part.get_content_type(): part for part in mail.walk()}


def content(part: EmailMessage) -> str:
    """A text part's content with the wire's CRLF line ends turned back into LF."""
    return str(part.get_content()).replace("\r\n", "\n")


# --- what arrives ---------------------------------------------------------------------------


def test_message_arrives_as_text_and_html_with_ics_and_right_headers(
    smtp_server: SmtpStandIn,
) -> None:
    env = smtp_server.env(
        EMAIL_TO="list@example.org, Second List <second@example.org>",
        EMAIL_REPLY_TO="Organisers <organisers@example.org>",
    )
    external_id = send(env)

    assert smtp_server.accepted == 1
    (got,) = smtp_server.messages
    mail = got.message
    assert external_id == KEY.message_id("example.org") == mail["Message-ID"]
    assert got.mail_from == "bot@example.org"
    assert got.rcpt_tos == ("list@example.org", "second@example.org")
    assert mail["From"] == "Reading Group <bot@example.org>"
    assert [a.addr_spec for a in mail["To"].addresses] == ["list@example.org", "second@example.org"]
    assert mail["Reply-To"] == "Organisers <organisers@example.org>"
    assert mail["In-Reply-To"] == "<previous@example.org>"
    assert mail["Subject"] == "DiffuCoder — Monday 15 December"
    assert parsedate_to_datetime(mail["Date"]) == NOW
    assert mail.get_content_type() == "multipart/mixed"
    by_type = parts(mail)
    assert by_type["multipart/alternative"].is_multipart()
    assert content(by_type["text/plain"]) == make_message().text
    assert content(by_type["text/html"]) == make_message().html
    ics = by_type["text/calendar"]
    assert ics.get_filename() == "session.ics"
    assert ics.get_param("method") == "PUBLISH"
    assert ics.get_payload(decode=True) == ICS


def test_message_id_is_the_same_on_every_attempt(smtp_server: SmtpStandIn) -> None:
    first, second = send(smtp_server.env()), send(smtp_server.env())
    assert first == second == "<diffucoder.announce.20251215T1500Z.email@example.org>"
    assert [m.message["Message-ID"] for m in smtp_server.messages] == [first, second]


def test_non_ascii_body_is_quoted_printable_and_round_trips(smtp_server: SmtpStandIn) -> None:
    send(smtp_server.env(), text="Café — 10:00 ET / 16:00 CET\n", html=None, attachments=())
    (got,) = smtp_server.messages
    assert got.raw.isascii()
    assert got.message.get_content_type() == "text/plain"
    assert content(got.message) == "Café — 10:00 ET / 16:00 CET\n"


def test_header_injection_through_subject_or_header_is_folded(smtp_server: SmtpStandIn) -> None:
    send(
        smtp_server.env(),
        subject="Hello\r\nBcc: x@y.example",
        headers={"References": "<a@example.org>\nBcc: z@y.example"},
    )
    (got,) = smtp_server.messages
    assert got.message["Bcc"] is None
    assert got.message["Subject"] == "Hello Bcc: x@y.example"
    assert got.message["References"] == "<a@example.org> Bcc: z@y.example"
    assert got.rcpt_tos == ("list@example.org",)
    assert b"\r\nBcc:" not in got.raw


def test_some_recipients_refused_still_sends_and_logs_them(
    smtp_server: SmtpStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.reject_recipients = {"gone@example.org"}
    env = smtp_server.env(EMAIL_TO="list@example.org, gone@example.org")
    with caplog.at_level(logging.WARNING, logger="bot.notifiers.email"):
        assert send(env) is not None
    assert smtp_server.messages[0].rcpt_tos == ("list@example.org",)
    assert "gone@example.org" in caplog.text and "550" in caplog.text


# --- TLS and login --------------------------------------------------------------------------


@needs_openssl
def test_starttls_with_trusted_certificate_delivers(smtp_tls_server: SmtpStandIn) -> None:
    send(smtp_tls_server.env())
    assert smtp_tls_server.accepted == 1


@needs_openssl
@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_a_certificate_that_does_not_verify_is_refused_for_good(
    security: Security, nothing_trusted: None
) -> None:
    with SmtpStandIn(security=security) as server:
        with pytest.raises(PermanentError) as caught:
            notifier(server.env()).send(make_message(), NOW)
        reason = str(caught.value)
        assert reason.startswith(f"the TLS certificate of 127.0.0.1:{server.port} does not verify")
        assert "unable to get local issuer certificate" in reason
        assert reason.endswith("; trust its CA with SMTP_CA_FILE")
        assert server.messages == []
        with pytest.raises(PermanentError, match="certificate"):
            notifier(server.env()).check_online()


@needs_openssl
@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_smtp_ca_file_trusts_a_private_ca(security: Security, nothing_trusted: None) -> None:
    with SmtpStandIn(security=security, username="bot", password=PASSWORD) as server:
        env = {k: v for k, v in server.env().items() if k != "SSL_CERT_FILE"}
        send(env | {"SMTP_CA_FILE": str(server.ca_file)})
        assert [m.login for m in server.messages] == ["bot"]


@needs_openssl
def test_a_wrong_ca_is_refused_for_good_naming_the_certificate(
    nothing_trusted: None, tmp_path: Path
) -> None:
    other = make_tls_files(tmp_path / "other-ca")  # a CA that did not sign the server's certificate
    with SmtpStandIn(security="starttls") as server:
        env = {k: v for k, v in server.env().items() if k != "SSL_CERT_FILE"}
        refused = r"certificate of 127\.0\.0\.1:\d+ does not verify"
        with pytest.raises(PermanentError, match=refused):
            send(env | {"SMTP_CA_FILE": str(other.ca_file)})
        assert server.messages == []


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "no such file"), (b"not a certificate\n", "not a readable PEM file of certificates")],
)
def test_a_bad_smtp_ca_file_is_a_configuration_error(
    smtp_server: SmtpStandIn, tmp_path: Path, content: bytes | None, says: str
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        EmailNotifier.parse_config(smtp_server.env(SMTP_CA_FILE=str(path)))
    assert caught.value.problems == [f"SMTP_CA_FILE: {says} ({path})"]


def test_starttls_not_offered_never_falls_back_to_plain(smtp_server: SmtpStandIn) -> None:
    with pytest.raises(PermanentError, match="STARTTLS"):
        send(smtp_server.env(SMTP_SECURITY="starttls"))
    assert smtp_server.messages == []


@needs_openssl
def test_ssl_mode_delivers_over_implicit_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpStandIn(security="ssl") as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        send(server.env())
        assert server.accepted == 1


@needs_openssl
@pytest.mark.parametrize("security", ["starttls", "ssl", "none"])
def test_login_then_send(security: Security, monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpStandIn(security=security, username="bot", password=PASSWORD) as server:
        if security != "none":
            monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        send(server.env())
        assert [m.login for m in server.messages] == ["bot"]


def test_server_requiring_login_refuses_a_client_without_one() -> None:
    with SmtpStandIn(username="bot", password=PASSWORD) as server:
        env = {k: v for k, v in server.env().items() if k not in ("SMTP_USERNAME", "SMTP_PASSWORD")}
        with pytest.raises(PermanentError, match="530"):
            send(env)


def test_wrong_password_is_permanent_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    with SmtpStandIn(username="bot", password="the-right-one") as server:
        email = notifier(server.env(SMTP_USERNAME="bot", SMTP_PASSWORD=PASSWORD))
        with caplog.at_level(logging.DEBUG), pytest.raises(PermanentError) as caught:
            email.send(make_message(), NOW)
        assert "535" in str(caught.value) and "authentication" in str(caught.value)
        for text in (str(caught.value), repr(caught.value), repr(email.config), caplog.text):
            assert PASSWORD not in text
        with pytest.raises(PermanentError, match="535"):
            email.check_online()
        assert server.messages == []


def test_check_online_logs_in_without_sending() -> None:
    with SmtpStandIn(username="bot", password=PASSWORD) as server:
        notifier(server.env()).check_online()
        assert server.messages == [] and server.accepted == 0


def test_check_online_maps_a_refused_connection(smtp_server: SmtpStandIn) -> None:
    smtp_server.mode = "refuse"
    with pytest.raises(TransientError, match="refused"):
        notifier(smtp_server.env()).check_online()


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("reply_421", TransientError, "421"),
        ("reply_451", TransientError, "451"),
        ("reply_550", PermanentError, "550"),
        ("reply_550_data", PermanentError, "554"),
    ],
)
def test_smtp_replies_map_to_their_kind(
    smtp_server: SmtpStandIn, mode: str, error: type[Exception], code: str
) -> None:
    smtp_server.mode = mode
    with pytest.raises(error, match=code) as caught:
        send(smtp_server.env())
    assert type(caught.value) is error
    assert smtp_server.accepted == 0


def test_refused_connection_is_transient_and_recovers(smtp_server: SmtpStandIn) -> None:
    smtp_server.mode = "refuse"
    with pytest.raises(TransientError, match="connection refused"):
        send(smtp_server.env())
    smtp_server.mode = "ok"
    send(smtp_server.env())
    assert smtp_server.accepted == 1


def test_unknown_host_is_transient() -> None:
    env = {"SMTP_HOST": "smtp.nonexistent.invalid", "SMTP_SECURITY": "none"}
    env |= {"EMAIL_FROM": "bot@example.org", "EMAIL_TO": "list@example.org"}
    with pytest.raises(TransientError, match=r"smtp\.nonexistent\.invalid"):
        send(env)


def test_connection_dropped_after_data_may_have_been_sent(smtp_server: SmtpStandIn) -> None:
    smtp_server.mode = "drop_after_data"
    with pytest.raises(MaybeSentError):
        send(smtp_server.env())
    assert len(smtp_server.messages) == 1 and smtp_server.accepted == 0


def test_no_answer_after_data_may_have_been_sent(smtp_server: SmtpStandIn) -> None:
    smtp_server.mode = "hang_after_data"
    with pytest.raises(MaybeSentError, match="timed out"):
        send(smtp_server.env(SMTP_TIMEOUT="1"))
    assert len(smtp_server.messages) == 1 and smtp_server.accepted == 0


# --- configuration --------------------------------------------------------------------------

GOOD = {"SMTP_HOST": "smtp.example.org", "EMAIL_FROM": "bot@example.org", "EMAIL_TO": "l@x.org"}


def test_config_defaults_and_secret() -> None:
    config = EmailNotifier.parse_config(GOOD | {"SMTP_USERNAME": "u", "SMTP_PASSWORD": PASSWORD})
    assert isinstance(config, EmailConfig)
    assert (config.port, config.security, config.timeout) == (587, "starttls", 30.0)
    assert config.password is not None and config.password.get() == PASSWORD
    assert PASSWORD not in repr(config) and PASSWORD not in repr(EmailNotifier(config).__dict__)
    assert config.domain == "example.org" and config.recipients == ("l@x.org",)


def test_config_reads_every_variable() -> None:
    config = EmailNotifier.parse_config(
        GOOD
        | {
            "SMTP_PORT": "465",
            "SMTP_SECURITY": "SSL",
            "SMTP_TIMEOUT": "1.5",
            "EMAIL_FROM": '"Group, The" <bot@example.org>',
            "EMAIL_TO": "a@example.org, B <b@example.org>",
            "EMAIL_REPLY_TO": "r@example.org",
        }
    )
    assert (config.port, config.security, config.timeout) == (465, "ssl", 1.5)
    assert config.sender == "bot@example.org"
    assert config.recipients == ("a@example.org", "b@example.org")
    assert config.email_reply_to == ("r@example.org",)
    assert EmailNotifier.parse_config(GOOD | {"SMTP_TIMEOUT": "2m"}).timeout == 120.0


def test_email_channel_is_registered() -> None:
    assert registry.get("email") is EmailNotifier


def test_missing_variables_each_get_their_line() -> None:
    with pytest.raises(ConfigError) as caught:
        EmailNotifier.parse_config({})
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "SMTP_HOST",
        "EMAIL_FROM",
        "EMAIL_TO",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SMTP_HOST", "smtp://host"),
        ("SMTP_PORT", "0"),
        ("SMTP_PORT", "65536"),
        ("SMTP_PORT", "twenty-five"),
        ("SMTP_SECURITY", "tls"),
        ("SMTP_TIMEOUT", "0"),
        ("SMTP_TIMEOUT", "-1"),
        ("SMTP_TIMEOUT", "soon"),
        ("EMAIL_FROM", "not an address"),
        ("EMAIL_FROM", "a@example.org, b@example.org"),
        ("EMAIL_TO", "ok@example.org, broken@"),
        ("EMAIL_REPLY_TO", "nobody"),
    ],
)
def test_malformed_variable_gives_one_line_naming_it(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EmailNotifier.parse_config(GOOD | {variable: value})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{variable}: ") and problem.endswith(")")


def test_username_and_password_come_together_and_the_password_is_never_shown() -> None:
    with pytest.raises(ConfigError) as only_password:
        EmailNotifier.parse_config(GOOD | {"SMTP_PASSWORD": PASSWORD})
    with pytest.raises(ConfigError) as only_username:
        EmailNotifier.parse_config(GOOD | {"SMTP_USERNAME": "bot"})
    with pytest.raises(ConfigError) as everything_wrong:
        EmailNotifier.parse_config({"SMTP_PASSWORD": PASSWORD, "SMTP_PORT": "x"})
    assert [p.split(":")[0] for p in only_password.value.problems] == ["SMTP_USERNAME"]
    assert [p.split(":")[0] for p in only_username.value.problems] == ["SMTP_PASSWORD"]
    assert len(everything_wrong.value.problems) == 5
    for caught in (only_password, only_username, everything_wrong):
        assert PASSWORD not in str(caught.value)


def test_the_calendar_attachment_declares_utf8_so_a_non_ascii_title_survives(
    smtp_server: SmtpStandIn,
) -> None:
    from bot.render.renderer import ICS_CONTENT_TYPE

    title = "Diffusion für Code — 拡散モデル (Ünïcode)"
    ics = ICS.replace(b"SUMMARY:DiffuCoder", f"SUMMARY:{title}".encode())
    send(smtp_server.env(), attachments=(Attachment("session.ics", ICS_CONTENT_TYPE, ics),))
    calendar = parts(smtp_server.messages[0].message)["text/calendar"]
    assert calendar.get_content_charset() == "utf-8"
    assert calendar.get_param("method") == "PUBLISH"
    assert f"SUMMARY:{title}" in content(calendar)  # decoded as UTF-8, not as US-ASCII
