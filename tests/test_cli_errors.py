"""Bad input through the real command line: session files, configuration, usage, secrets in output,
`--env-file`, and help text. Every case runs `python -m bot` as a subprocess (SQLite).

What each error must look like (SPEC §3-§5): exit status 2, one line per problem on stderr naming
the field or variable, never a traceback, and nothing written or sent.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

from tests.support.cli import BotCli, iso, json_lines, run_bot
from tests.support.smtp import Security, SmtpStandIn, openssl_available
from tests.support.xapi import XStandIn

# A start far enough ahead of the real clock that the import is not "quiet history".
START = (datetime.now(UTC) + timedelta(days=30)).replace(hour=15, minute=0, second=0, microsecond=0)
ANNOUNCE = START - timedelta(days=7)
X_KEYS = {
    "X_API_KEY": "test-api-key",
    "X_API_KEY_SECRET": "test-api-key-secret",
    "X_ACCESS_TOKEN": "test-access-token",
    "X_ACCESS_TOKEN_SECRET": "test-access-token-secret",
}


def no_traceback(*outputs: str) -> None:
    for text in outputs:
        assert "Traceback" not in text, text
        assert 'File "' not in text, text


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# ---------------------------------------------------------------- session files

SEEDED = f"""\
sessions:
  - id: seeded
    title: Seeded session
    starts_at: {iso(START)}
    speakers:
      - name: Shansan Gong
    meeting_url: https://example.zoom.us/j/1
"""

# Every bad file starts with two good entries (a change to `seeded` and a new session), so an
# unchanged database shows that the import is all or nothing.
GOOD_PART = f"""\
sessions:
  - id: seeded
    title: Seeded session, retitled
    starts_at: {iso(START + timedelta(hours=1))}
    meeting_url: https://example.zoom.us/j/2
  - id: fresh
    title: A session that is not there yet
    starts_at: 2027-01-11 10:00
    timezone: America/New_York
"""

BAD_BASE = {
    "id": "bad-one",
    "title": "The bad one",
    "starts_at": "2027-01-18 10:00",
    "timezone": "America/New_York",
    "duration": "60m",
    "meeting_url": "https://example.zoom.us/j/3",
}
DROP = None

# name -> (changes to BAD_BASE (None drops the key), the field the error must name)
SESSION_CASES: dict[str, tuple[dict[str, str | None], str]] = {
    "missing id": ({"id": DROP}, "id"),
    "duplicate id": ({"id": "fresh"}, "id"),
    "missing title": ({"title": DROP}, "title"),
    "dst gap": ({"starts_at": "2026-03-08 02:30"}, "starts_at"),
    "dst fold": ({"starts_at": "2026-11-01 01:30"}, "starts_at"),
    "unknown zone": ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    "naive time without timezone": ({"timezone": DROP}, "starts_at"),
    "offset time with timezone": ({"starts_at": "2027-01-18T10:00:00-05:00"}, "starts_at|timezone"),
    "malformed url": ({"meeting_url": "https//example.zoom.us/j/3"}, "meeting_url"),
    "negative duration": ({"duration": "-30m"}, "duration"),
    "unknown field": ({"venue": "Room 101"}, "venue"),
    "malformed paper url": (
        {"papers": "[{title: LLaDA, url: arxiv.org/abs/2502.09992}]"},
        r"papers\[0\]\.url",
    ),
}


def bad_entry(changes: dict[str, str | None]) -> str:
    """One `- id: …` entry, values written as a person would (unquoted)."""
    fields = {**BAD_BASE, **changes}
    lines = [f"{key}: {value}" for key, value in fields.items() if value is not None]
    return "  - " + "\n    ".join(lines) + "\n"


@dataclass
class SeededDb:
    bot: BotCli
    folder: Path
    exported: str

    def snapshot(self) -> dict[str, bytes]:
        """The database files' bytes (SQLite file, and WAL/SHM if any)."""
        return {p.name: p.read_bytes() for p in sorted(self.folder.glob("bot.db*"))}

    def export(self) -> str:
        code, out, err = self.bot("sessions", "export")
        assert code == 0, err
        return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededDb:
    """A SQLite database holding one session, imported through the CLI."""
    folder = tmp_path_factory.mktemp("seeded")
    bot = BotCli(folder / "cwd", {"DATABASE_URL": f"sqlite:///{folder}/bot.db"})
    (folder / "seed.yaml").write_text(SEEDED, encoding="utf-8")
    code, _, err = bot("sessions", "import", str(folder / "seed.yaml"))
    assert code == 0, err
    db = SeededDb(bot, folder, "")
    db.exported = db.export()
    assert "id: seeded" in db.exported
    return db


@pytest.mark.parametrize("case", SESSION_CASES, ids=lambda c: c.replace(" ", "-"))
def test_bad_session_file_is_refused_whole(seeded: SeededDb, tmp_path: Path, case: str) -> None:
    changes, field = SESSION_CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD_PART + bad_entry(changes), encoding="utf-8")
    before = seeded.snapshot()

    code, out, err = seeded.bot("sessions", "import", str(path))

    assert code == 2, (out, err)
    no_traceback(out, err)
    lines = problem_lines(err)
    pattern = re.compile(rf"^{re.escape(str(path))}: sessions\[2\]\.({field}): \S")
    assert any(pattern.match(line) for line in lines), lines
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    assert seeded.snapshot() == before  # not a byte changed (`export` is compared below)


def test_every_error_in_a_file_is_listed(seeded: SeededDb, tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    entries = [
        bad_entry({"id": "no-title", "title": DROP}),
        bad_entry({"id": "gap", "starts_at": "2026-03-08 02:30"}),
        bad_entry({"id": "two-problems", "duration": "-1h", "venue": "Room 101"}),
        bad_entry({"id": "Not An Id"}),
    ]
    path.write_text(GOOD_PART + "".join(entries), encoding="utf-8")
    before = seeded.snapshot()

    code, out, err = seeded.bot("sessions", "import", str(path))

    assert code == 2, (out, err)
    no_traceback(out, err)
    lines = problem_lines(err)
    for where in (
        "sessions[2].title",
        "sessions[3].starts_at",
        "sessions[4].duration",
        "sessions[4].venue",
        "sessions[5].id",
    ):
        assert any(line.startswith(f"{path}: {where}: ") for line in lines), (where, lines)
    assert len(lines) == 5, lines
    assert seeded.snapshot() == before
    assert seeded.export() == seeded.exported


# ---------------------------------------------------------------- configuration


@dataclass
class DueDb:
    """A database with a session whose announce is due at ANNOUNCE, and live stand-ins."""

    folder: Path
    url: str
    smtp: SmtpStandIn
    x: XStandIn

    def good_env(self) -> dict[str, str]:
        return (
            self.smtp.env()
            | X_KEYS
            | {
                "X_API_BASE_URL": self.x.base_url,
                "DATABASE_URL": self.url,
                "CHANNELS": "email,x",
            }
        )

    def nothing_sent(self) -> None:
        assert self.smtp.messages == [] and self.x.requests == []


@pytest.fixture(scope="module")
def due(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DueDb]:
    folder = tmp_path_factory.mktemp("due")
    url = f"sqlite:///{folder}/bot.db"
    (folder / "s.yaml").write_text(SEEDED, encoding="utf-8")
    code, _, err = BotCli(folder / "cwd", {"DATABASE_URL": url})(
        "sessions", "import", str(folder / "s.yaml")
    )
    assert code == 0, err
    with SmtpStandIn() as smtp, XStandIn() as x:
        yield DueDb(folder, url, smtp, x)


def test_the_good_configuration_is_good(due: DueDb, tmp_path: Path) -> None:
    """The baseline the configuration cases break one variable of."""
    bot = BotCli(tmp_path, due.good_env())
    code, out, err = bot("send", "--dry-run", "--now", iso(ANNOUNCE), "--json")
    assert code == 0, err
    assert sorted((r["channel"], r["status"]) for r in json_lines(out)) == [
        ("email", "would_send"),
        ("x", "would_send"),
    ]
    code, out, err = bot("check", "--now", iso(ANNOUNCE))
    assert code == 0, (out, err)
    due.nothing_sent()


# name -> (changes to the good environment (None removes), the variable the error names)
CONFIG_CASES: dict[str, tuple[dict[str, str | None], str]] = {
    "unknown channel": ({"CHANNELS": "email,x,pigeon"}, "CHANNELS"),
    "smtp host missing": ({"CHANNELS": "email", "SMTP_HOST": None}, "SMTP_HOST"),
    "bad smtp port": ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
    "bad smtp security": ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY"),
    "x key missing": ({"CHANNELS": "x", "X_API_KEY": None}, "X_API_KEY"),
    "bad reminders": ({"REMINDERS": "announce=7d,reminder=one day"}, "REMINDERS"),
    "bad zone": ({"DISPLAY_TIMEZONES": "America/New_York,Mars/Olympus"}, "DISPLAY_TIMEZONES"),
    "bad poll interval": ({"POLL_INTERVAL": "often"}, "POLL_INTERVAL"),
    "bad database url": ({"DATABASE_URL": "mysql://bot@localhost/bot"}, "DATABASE_URL"),
}


@pytest.mark.parametrize("command", ["send", "check"])
@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.replace(" ", "-"))
def test_bad_configuration_exits_2_naming_the_variable(
    due: DueDb, tmp_path: Path, case: str, command: str
) -> None:
    changes, variable = CONFIG_CASES[case]
    bot = BotCli(tmp_path, due.good_env())

    code, out, err = bot(command, "--now", iso(ANNOUNCE), env=changes)

    assert code == 2, (out, err)
    no_traceback(out, err)
    lines = problem_lines(err)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{variable}: "), lines
    due.nothing_sent()


USAGE_CASES: dict[str, tuple[list[str], str]] = {
    "now-yesterday": (["send", "--now", "yesterday"], "(yesterday)"),
    "now-without-offset": (["send", "--now", "2026-12-20T15:00:00"], "(2026-12-20T15:00:00)"),
    "channel-not-configured": (["send", "--now", iso(ANNOUNCE), "--channel", "slack"], "slack"),
    "preview-unknown-session": (["preview", "no-such-session"], "no-such-session"),
    "unknown-command": (["sendd"], "sendd"),
}


@pytest.mark.parametrize("case", USAGE_CASES)
def test_bad_usage_exits_2(due: DueDb, tmp_path: Path, case: str) -> None:
    args, shown = USAGE_CASES[case]
    code, out, err = BotCli(tmp_path, due.good_env())(*args)
    assert code == 2, (out, err)
    no_traceback(out, err)
    assert shown in err
    due.nothing_sent()


def test_bad_now_names_the_option(due: DueDb, tmp_path: Path) -> None:
    code, _, err = BotCli(tmp_path, due.good_env())("send", "--now", "yesterday")
    assert code == 2
    assert "--now" in err


# ---------------------------------------------------------------- secrets

SMTP_SECRET = "s3cr3t-smtp-pass-XYZ"
WRONG_SMTP_SECRET = "wr0ng-smtp-pass-QRS"
X_SECRETS = {
    "X_API_KEY": "xk-s3cr3t-api-key-111",
    "X_API_KEY_SECRET": "xks-s3cr3t-api-secret-222",
    "X_ACCESS_TOKEN": "xat-s3cr3t-access-token-333",
    "X_ACCESS_TOKEN_SECRET": "xats-s3cr3t-token-secret-444",
}
SPACED_TOKEN = "xat-s3cr3t-spaced token-555"
DB_SECRET = "s3cr3t-db-pass-777"


def forms(secret: str, user: str = "bot") -> list[str]:
    """The value, and the ways it could leak in encoded form (SMTP AUTH PLAIN / LOGIN)."""
    plain = base64.b64encode(f"\0{user}\0{secret}".encode()).decode()
    login = base64.b64encode(secret.encode()).decode()
    return [secret, plain, login]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_never_appear_in_output(tmp_path: Path, log_format: str) -> None:
    secrets = [
        *forms(SMTP_SECRET),
        *forms(WRONG_SMTP_SECRET),
        *X_SECRETS.values(),
        SPACED_TOKEN,
        "spaced token",
        DB_SECRET,
    ]
    seen: list[str] = []
    security: Security = "starttls" if openssl_available() else "none"
    with (
        SmtpStandIn(security, username="bot", password=SMTP_SECRET) as smtp,
        XStandIn() as x,
    ):
        env = (
            smtp.env()
            | X_SECRETS
            | {
                "X_API_BASE_URL": x.base_url,
                "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
                "CHANNELS": "email,x",
                "LOG_FORMAT": log_format,
            }
        )
        bot = BotCli(tmp_path / "cwd", env)
        (tmp_path / "s.yaml").write_text(SEEDED, encoding="utf-8")

        def run(*args: str, code: int, env: dict[str, str | None] | None = None) -> list[str]:
            rc, out, err = bot(*args, env=env)
            assert rc == code, (out, err)
            no_traceback(out, err)
            seen.extend([out, err])
            return problem_lines(err)

        run("sessions", "import", str(tmp_path / "s.yaml"), "-v", code=0)
        # Real sends, with DEBUG logs.
        run("send", "-v", "--now", iso(ANNOUNCE), code=0)
        assert smtp.accepted == 1 and len(x.posts) == 1
        # Logging in to each channel without posting.
        run("check", "-v", "--online", "--now", iso(ANNOUNCE), code=0)
        # Refused: a wrong SMTP password (535) and X credentials refused (401).
        x.set_fault("status_401")
        logs = run(
            "send",
            "-v",
            "--json",
            "--now",
            iso(START - timedelta(days=1)),
            code=1,
            env={"SMTP_PASSWORD": WRONG_SMTP_SECRET},
        )
        assert any("535" in line for line in logs), logs
        # Configuration errors, one involving a secret's value.
        run(
            "send",
            "-v",
            "--now",
            iso(START - timedelta(hours=1)),
            code=2,
            env={"X_ACCESS_TOKEN": SPACED_TOKEN, "SMTP_PORT": "smtp"},
        )
        # A database password is a secret too, also when the database cannot be reached.
        run(
            "send",
            "-v",
            "--now",
            iso(ANNOUNCE),
            code=1,
            env={"DATABASE_URL": f"postgresql+psycopg://bot:{DB_SECRET}@127.0.0.1:9/bot"},
        )
        assert smtp.accepted == 1 and len(x.posts) == 1

    first_send_logs = problem_lines(seen[3])
    assert len(first_send_logs) >= 2, first_send_logs  # one event per delivery at least
    if log_format == "json":
        assert all(isinstance(json.loads(line), dict) for line in first_send_logs)
    everything = "\n".join(seen)
    for secret in secrets:
        assert secret not in everything, f"secret leaked: {secret!r}"


# ---------------------------------------------------------------- --env-file


def test_env_file_is_read_before_or_after_the_command(due: DueDb, tmp_path: Path) -> None:
    env_file = tmp_path / "bot.env"
    env_file.write_text(
        f"# settings for the test\nDATABASE_URL={due.url}\nCHANNELS=console\n", encoding="utf-8"
    )
    bot = BotCli(tmp_path / "cwd", {})
    when = ("--now", iso(ANNOUNCE))

    for args in (
        ("-v", "--env-file", str(env_file), "send", "--dry-run", *when, "--json"),
        ("send", "--dry-run", *when, "--json", "--env-file", str(env_file), "-v"),
    ):
        code, out, err = bot(*args)
        assert code == 0, (args, err)
        records = json_lines(out)
        assert [(r["session"], r["channel"], r["status"]) for r in records] == [
            ("seeded", "console", "would_send")
        ], args
    assert not (tmp_path / "cwd" / "bot.db").exists()

    # The environment wins over the file.
    env = {k: v for k, v in due.good_env().items() if k != "DATABASE_URL"}
    code, out, err = bot("send", "--env-file", str(env_file), "--dry-run", *when, "--json", env=env)
    assert code == 0, err
    assert sorted(r["channel"] for r in json_lines(out)) == ["email", "x"]

    code, out, err = bot("--env-file", str(tmp_path / "missing.env"), "send", "--dry-run")
    assert code == 2, (out, err)
    no_traceback(out, err)
    assert "--env-file" in err
    due.nothing_sent()


def test_dotenv_in_the_working_folder_is_read(due: DueDb, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"DATABASE_URL={due.url}\nCHANNELS=console\nDISPLAY_TIMEZONES=Europe/Paris\n",
        encoding="utf-8",
    )
    code, out, err = run_bot(
        ["send", "--dry-run", "--now", iso(ANNOUNCE), "--json"],
        {"DISPLAY_TIMEZONES": "Mars/Olympus"},
        tmp_path,
    )
    # The .env file was read (its DATABASE_URL), and the environment won (the bad zone).
    assert code == 2, (out, err)
    assert problem_lines(err) == ["DISPLAY_TIMEZONES: unknown IANA time zone (Mars/Olympus)"]


# ---------------------------------------------------------------- help


def _command_paths() -> list[tuple[str, ...]]:
    from bot.cli import cli

    paths: list[tuple[str, ...]] = [()]

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in sorted(group.commands.items()):
            paths.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(cli, ())
    return paths


def test_every_command_has_help(tmp_path: Path) -> None:
    paths = _command_paths()
    for wanted in [("send",), ("sessions", "import"), ("deliveries", "resolve"), ("db", "upgrade")]:
        assert wanted in paths
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: run_bot([*p, "--help"], {}, tmp_path), paths))
    for path, (code, out, err) in zip(paths, results, strict=True):
        name = " ".join(("bot", *path))
        assert code == 0, (name, err)
        assert out.startswith(f"Usage: {name}"), (name, out)
        _, _, rest = out.partition("\n\n")
        description, _, _ = rest.partition("Options:")
        assert description.strip(), f"{name} --help has no description"
        assert "--help" in out
