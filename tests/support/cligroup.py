"""The CLI bound to a database and the SMTP and X stand-ins: what the end-to-end change tests share.

`sessions import`, `set` and `cancel` stamp the real clock as the moment of a change, and a change
notice is due from that moment. So sessions start a few days after the real now, and every `send`
runs with `--now` a minute after the real moment of the change just made (`soon()`).
With REMINDERS `announce=7d,reminder=1d`, a session starting in 5 days has its announce due at
once: the first pass sends it (the nearest reminder of a session added late goes out).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

from tests.support.cli import BotCli, iso, json_lines, session_yaml
from tests.support.smtp import SmtpStandIn
from tests.support.xapi import XStandIn

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
REMINDERS = "announce=7d,reminder=1d"
MEETING = "https://example.zoom.us/j/81234567890"
RECORDING = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
X_KEYS = {
    "X_API_KEY": "test-api-key",
    "X_API_KEY_SECRET": "test-api-key-secret",
    "X_ACCESS_TOKEN": "test-access-token",
    "X_ACCESS_TOKEN_SECRET": "test-access-token-secret",
}
Records = list[dict[str, Any]]


# ---------------------------------------------------------------- helpers


def real_now() -> datetime:
    return datetime.now(UTC)


def soon() -> datetime:
    """A pass moment just after the change the test has just made (the real clock + 1 minute)."""
    return real_now() + M


def on_the_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def a_session(session_id: str, starts_at: datetime, **more: Any) -> dict[str, Any]:
    """One session as the file holds it; the title carries the id, so posts never repeat."""
    return {
        "id": session_id,
        "title": f"Masked diffusion for code ({session_id})",
        "starts_at": starts_at,
        "duration": "60m",
        "speakers": [{"name": "Shansan Gong", "affiliation": "HKU", "x": "@gong"}],
        "abstract": "Diffusion language models generate text by denoising an entire sequence.",
        "papers": [{"title": "DiffuCoder", "url": "https://arxiv.org/abs/2506.20639"}],
        "meeting_url": MEETING,
        **more,
    }


class Group:
    """The CLI bound to one database and working folder, with the calls these tests repeat."""

    def __init__(self, bot: BotCli, folder: Path) -> None:
        self.bot = bot
        self.folder = folder
        self._files = 0
        self.err = ""  # the standard error of the last call

    def run(self, *args: str, code: int = 0, env: dict[str, str | None] | None = None) -> str:
        rc, out, err = self.bot(*args, env=env)
        assert rc == code, (args, rc, out, err)
        assert "Traceback" not in out + err, err
        self.err = err
        return out

    def import_(self, *sessions: dict[str, Any]) -> str:
        self._files += 1
        path = self.folder / f"sessions-{self._files}.yaml"
        path.write_text(session_yaml(sessions), encoding="utf-8")
        return self.run("sessions", "import", str(path))

    def set(self, session_id: str, *assignments: str) -> str:
        return self.run("sessions", "set", session_id, *assignments)

    def send(self, now: datetime, *args: str, code: int = 0) -> Records:
        return json_lines(self.run("send", "--now", iso(now), "--json", *args, code=code))

    def plan(self, now: datetime) -> Records:
        return json_lines(self.run("plan", "--now", iso(now), "--json"))

    def deliveries(self) -> Records:
        return json_lines(self.run("deliveries", "--json"))

    def check(self, *args: str, code: int, env: dict[str, str | None] | None = None) -> list[str]:
        return self.run("check", *args, code=code, env=env).splitlines()


def got(records: Records) -> list[tuple[str, str, str, str]]:
    """(session, notice, channel, status) of each record, sorted."""
    return sorted((r["session"], r["notice"], r["channel"], r["status"]) for r in records)


def by_channel(records: Records) -> dict[str, dict[str, Any]]:
    found = {r["channel"]: r for r in records}
    assert len(found) == len(records), records
    return found


def calendar_event(mail: EmailMessage) -> Any:
    """The one VEVENT of an email's iCalendar attachment."""
    parts = [p for p in mail.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in mail.walk()]
    data = parts[0].get_content()
    calendar = Calendar.from_ical(data if isinstance(data, bytes) else data.encode())
    [event] = calendar.walk("VEVENT")
    return event


def hv(mail: EmailMessage, name: str) -> str:
    """A header's value unfolded (a long Message-ID may be folded onto a line of its own)."""
    return " ".join(str(mail[name] or "").split())


def mail_for(smtp: SmtpStandIn, record: dict[str, Any]) -> EmailMessage:
    """The email a `send --json` record of the email channel put on the wire."""
    # A long Message-ID may be folded onto its own header line: compare it unfolded.
    found = [
        m.message for m in smtp.messages if hv(m.message, "Message-ID") == record["external_id"]
    ]
    assert len(found) == 1, (record, [hv(m.message, "Message-ID") for m in smtp.messages])
    return found[0]


def channels_env(smtp: SmtpStandIn, x: XStandIn, db_url: str, **more: str) -> dict[str, str]:
    return (
        smtp.env()
        | X_KEYS
        | {
            "X_API_BASE_URL": x.base_url,
            "DATABASE_URL": db_url,
            "CHANNELS": "email,x",
            "REMINDERS": REMINDERS,
        }
        | more
    )


MakeGroup = Callable[..., Group]


@pytest.fixture
def make_group(tmp_path: Path) -> MakeGroup:
    """A Group on the given environment; PostgreSQL is migrated with `bot db upgrade` first."""

    def make(env: dict[str, str]) -> Group:
        group = Group(BotCli(tmp_path / "cwd", env), tmp_path)
        if not env["DATABASE_URL"].startswith("sqlite"):
            group.run("db", "upgrade")
        return group

    return make


@pytest.fixture
def group(
    make_group: MakeGroup, db_url: str, smtp_server: SmtpStandIn, x_server: XStandIn
) -> Group:
    """CHANNELS=email,x at both stand-ins, REMINDERS=announce=7d,reminder=1d, on db_url."""
    return make_group(channels_env(smtp_server, x_server, db_url))
