"""A real SMTP server on 127.0.0.1 (aiosmtpd), with TLS, AUTH and switchable faults.

    with SmtpStandIn(security="starttls", username="bot", password="pw") as server:
        env = server.env()          # SMTP_*, EMAIL_*, SSL_CERT_FILE for this server
        ...                         # send from this process or from a subprocess
        server.mode = "reply_451"   # the next message gets a 451 after its data
        assert server.accepted == 1 and server.messages[0].message["Subject"] == "..."

Certificates come from the `openssl` command line, made once per process in a temporary
folder: a test CA (`ca_file`) and a server certificate for `localhost` and 127.0.0.1 signed
by it. A client trusts it when `SSL_CERT_FILE` names `ca_file` (ssl.create_default_context()
reads that variable each time it is called); without it the handshake fails, as it should.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Security = Literal["none", "starttls", "ssl"]
MODES = (
    "ok",  # accept everything
    "reply_421",  # greet every connection with 421 and close it
    "reply_451",  # take the data, then answer 451 (try again later)
    "reply_550",  # refuse every recipient with 550
    "reply_550_data",  # take the data, then answer 554 (rejected for good)
    "drop_after_data",  # take the data, then close the connection without answering
    "hang_after_data",  # take the data, then never answer
    "refuse",  # nothing listens: connection refused
)
HOST = "127.0.0.1"


@dataclass(frozen=True)
class TlsFiles:
    """A test CA and a server certificate/key it signed, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def openssl_available() -> bool:
    """Whether the `openssl` command line is there to make certificates."""
    return shutil.which("openssl") is not None


def make_tls_files(folder: Path) -> TlsFiles:
    """Make a new CA and a `localhost`/127.0.0.1 server certificate in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"
    ext = folder / "server.ext"
    ext.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [
            *("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2"),
            *("-subj", "/CN=reading-group-bot test CA"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        ],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        [
            *("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"),
            *("-out", cert, "-days", "2", "-extfile", ext),
        ],
    ]
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True)
    return TlsFiles(ca, cert, key)


@functools.cache
def shared_tls_files() -> TlsFiles:
    """One CA and certificate per process, removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="smtp-standin-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return make_tls_files(folder)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One message the server read to its end (whatever it answered afterwards)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    login: str | None  # the user it authenticated as, if any


class _Handler:
    """aiosmtpd hooks that consult the stand-in's current mode."""

    def __init__(self, standin: SmtpStandIn) -> None:
        self.standin = standin

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.standin.mode == "reply_550" or address in self.standin.reject_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mode = self.standin.mode
        if mode == "reply_451":
            return "451 4.3.0 Temporary failure, try again later"
        if mode == "reply_550_data":
            return "554 5.7.1 Message rejected as spam"
        self.standin._record(envelope, session)
        if mode == "drop_after_data":
            assert server.transport is not None
            server.transport.close()
        if mode in ("drop_after_data", "hang_after_data"):
            await asyncio.Event().wait()  # cancelled when the connection or the server ends
        self.standin._accept()
        return "250 2.0.0 OK: queued"


class _Smtp(SMTP):
    """aiosmtpd's server, able to refuse a connection at the greeting."""

    def __init__(self, standin: SmtpStandIn, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.standin = standin

    async def _handle_client(self) -> None:
        if self.standin.mode == "reply_421":
            await self.push("421 4.3.2 Service not available, closing transmission channel")
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def __init__(self, standin: SmtpStandIn, **kwargs: Any) -> None:
        super().__init__(_Handler(standin), **kwargs)
        self.standin = standin

    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH without TLS is what `none` tests ask for
            warnings.simplefilter("ignore")
            return _Smtp(self.standin, self.handler, **self.SMTP_kwargs)


class SmtpStandIn:
    """A loopback SMTP server for tests: real sockets, real TLS, real AUTH, chosen faults."""

    def __init__(
        self,
        security: Security = "none",
        username: str | None = None,
        password: str | None = None,
        port: int | None = None,
    ) -> None:
        self.security = security
        self.username = username
        self.password = password
        self.host = HOST
        self.port = port or free_port()
        self.tls = shared_tls_files() if security != "none" else None
        self.reject_recipients: set[str] = set()  # refused with 550 in any mode
        self._messages: list[Received] = []
        self._accepted = 0
        self._lock = threading.Lock()
        self._mode = "ok"
        self._controller: _Controller | None = None
        self._started = False

    @property
    def ca_file(self) -> Path:
        """The CA to trust (via SSL_CERT_FILE) for this server's certificate."""
        if self.tls is None:
            raise RuntimeError("a plain (security='none') stand-in has no certificate")
        return self.tls.ca_file

    @property
    def mode(self) -> str:
        """The current fault mode, one of MODES."""
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self._mode = mode
        if mode == "refuse":
            self._stop_listening()
        elif self._controller is None and self._started:
            self._listen()

    @property
    def messages(self) -> list[Received]:
        """Every message read to its end, in order (also those then dropped or refused)."""
        with self._lock:
            return list(self._messages)

    @property
    def accepted(self) -> int:
        """How many messages got a 250 after their data."""
        with self._lock:
            return self._accepted

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment variables that point the bot's email channel at this server."""
        env = {
            "SMTP_HOST": self.host,
            "SMTP_PORT": str(self.port),
            "SMTP_SECURITY": self.security,
            "SMTP_TIMEOUT": "10",
            "EMAIL_FROM": "Reading Group <bot@example.org>",
            "EMAIL_TO": "list@example.org",
        }
        if self.username is not None and self.password is not None:
            env |= {"SMTP_USERNAME": self.username, "SMTP_PASSWORD": self.password}
        if self.tls is not None:
            env["SSL_CERT_FILE"] = str(self.tls.ca_file)
        return env | overrides

    def start(self) -> SmtpStandIn:
        """Start listening (unless the mode is `refuse`)."""
        self._started = True
        if self._mode != "refuse":
            self._listen()
        return self

    def stop(self) -> None:
        """Stop listening and end every open connection."""
        self._started = False
        self._stop_listening()

    def __enter__(self) -> SmtpStandIn:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _listen(self) -> None:
        tls = self.tls
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "localhost",  # skips a DNS lookup for the greeting
            "ready_timeout": 10.0,
        }
        if tls is not None and self.security == "ssl":
            kwargs["ssl_context"] = tls.server_context()
        if tls is not None and self.security == "starttls":
            kwargs |= {"tls_context": tls.server_context(), "require_starttls": True}
        if self.username is not None:
            kwargs |= {
                "authenticator": self._authenticate,
                "auth_required": True,
                # aiosmtpd only sees STARTTLS; implicit TLS is secure already.
                "auth_require_tls": self.security == "starttls",
            }
        self._controller = _Controller(self, **kwargs)
        self._controller.start()

    def _stop_listening(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.username is not None
            and self.password is not None
            and data.login == self.username.encode()
            and data.password == self.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def _record(self, envelope: Envelope, session: Session) -> None:
        raw = bytes(envelope.original_content or b"")
        parsed = message_from_bytes(raw, policy=default_policy)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        received = Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), raw, parsed, login)
        with self._lock:
            self._messages.append(received)

    def _accept(self) -> None:
        with self._lock:
            self._accepted += 1


@pytest.fixture(name="smtp_server")
def smtp_server() -> Iterator[SmtpStandIn]:
    """A started plain-SMTP stand-in (security `none`, no AUTH)."""
    with SmtpStandIn() as server:
        yield server


@pytest.fixture(name="smtp_tls_server")
def smtp_tls_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpStandIn]:
    """A started STARTTLS stand-in whose CA this test process trusts (SSL_CERT_FILE)."""
    if not openssl_available():
        pytest.skip("the openssl command line is needed to make a test certificate")
    with SmtpStandIn(security="starttls") as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server
