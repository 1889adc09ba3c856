"""A relay with a private CA (issue 8, items 1 and 2), end to end through `python -m bot`.

A certificate that does not verify is refused for good, at once, with a reason that says
"certificate", and `check --online` says so; a private CA is trusted through SMTP_CA_FILE, or
through SSL_CERT_FILE / REQUESTS_CA_BUNDLE written in `.env` (not only in the environment).
Certificates come from throw-away CAs made by the test (tests/support/smtp.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import BotCli, iso, json_lines, session_yaml
from tests.support.smtp import Security, SmtpStandIn, make_tls_files, openssl_available
from tests.support.xapi import XStandIn

pytestmark = pytest.mark.skipif(not openssl_available(), reason="needs the openssl CLI")
START = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=10)
DUE = iso(START - timedelta(days=7))
X_KEYS = {
    "X_API_KEY": "k-dummy",
    "X_API_KEY_SECRET": "ks-dummy",
    "X_ACCESS_TOKEN": "t-dummy",
    "X_ACCESS_TOKEN_SECRET": "ts-dummy",
}


def group(tmp_path: Path, env: dict[str, str]) -> BotCli:
    bot = BotCli(tmp_path / "cwd", {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"} | env)
    session = {"id": "talk", "title": "Masked diffusion for code", "starts_at": START}
    (tmp_path / "s.yaml").write_text(session_yaml([session]), encoding="utf-8")
    assert bot("sessions", "import", str(tmp_path / "s.yaml"))[0] == 0
    return bot


def untrusting(server: SmtpStandIn, **more: str) -> dict[str, str]:
    """The server's variables without the SSL_CERT_FILE that would make the process trust it."""
    env = {k: v for k, v in server.env().items() if k != "SSL_CERT_FILE"}
    return env | {"CHANNELS": "email", "REMINDERS": "announce=7d"} | more


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_a_certificate_that_does_not_verify_fails_at_once_and_check_online_says_so(
    tmp_path: Path, security: Security
) -> None:
    with SmtpStandIn(security=security, username="bot", password="pw-secret") as server:
        bot = group(tmp_path, untrusting(server))
        code, out, err = bot("send", "--now", DUE, "--json")
        assert code == 1, err
        [record] = json_lines(out)
        assert record["status"] == "failed"  # not `retrying`: it would never verify
        assert "TLS certificate of 127.0.0.1" in record["reason"]
        assert "does not verify" in record["reason"]
        code, out, _ = bot("check", "--online", "--now", DUE)
        assert code == 1
        assert any(
            line.startswith("channel email: cannot log in (the TLS certificate of 127.0.0.1")
            for line in out.splitlines()
        ), out
        assert server.messages == []


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_smtp_ca_file_in_dotenv_trusts_the_relays_private_ca(
    tmp_path: Path, security: Security
) -> None:
    with SmtpStandIn(security=security) as server:
        bot = group(tmp_path, untrusting(server))
        (bot.cwd / ".env").write_text(f"SMTP_CA_FILE={server.ca_file}\n", encoding="utf-8")
        code, out, err = bot("send", "--now", DUE, "--json")
        assert code == 0, err
        assert [r["status"] for r in json_lines(out)] == ["sent"]
        assert bot("check", "--online", "--now", DUE)[0] == 0
        assert server.accepted == 1


def test_ssl_cert_file_in_dotenv_is_trusted_like_the_environment(tmp_path: Path) -> None:
    with SmtpStandIn(security="starttls") as server:
        bot = group(tmp_path, untrusting(server))
        (bot.cwd / ".env").write_text(f"SSL_CERT_FILE={server.ca_file}\n", encoding="utf-8")
        code, out, err = bot("send", "--now", DUE, "--json")
        assert code == 0, err
        assert [r["status"] for r in json_lines(out)] == ["sent"]


def test_x_over_https_with_an_untrusted_certificate_fails_at_once(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "x-ca")
    with XStandIn(tls=tls.server_context()) as x:
        env = X_KEYS | {"CHANNELS": "x", "REMINDERS": "announce=7d", "X_API_BASE_URL": x.base_url}
        bot = group(tmp_path, env)
        code, out, _ = bot("send", "--now", DUE, "--json")
        assert code == 1
        [record] = json_lines(out)
        assert record["status"] == "failed"
        assert record["reason"].startswith("the TLS certificate of X_API_BASE_URL does not verify")
        (bot.cwd / ".env").write_text(f"REQUESTS_CA_BUNDLE={tls.ca_file}\n", encoding="utf-8")
        code, out, err = bot("deliveries", "retry", str(1))
        assert code == 0, err
        code, out, err = bot("send", "--now", DUE, "--json")
        assert code == 0, err
        assert [r["status"] for r in json_lines(out)] == ["sent"]
        assert len(x.posts) == 1
