"""Hostile configuration (issue 8, items 8 and 10): the exact inputs of the field report, each a
one-line error with exit status 2 and no traceback; and a misconfigured channel that no longer
blocks the commands that only manage data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import BotCli, base_env, iso, session_yaml

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
SESSION = {"id": "s1", "title": "Masked diffusion for code", "starts_at": SOON}


@pytest.fixture
def bot(tmp_path: Path) -> BotCli:
    cli = BotCli(tmp_path / "cwd", {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"})
    (tmp_path / "s.yaml").write_text(session_yaml([SESSION]), encoding="utf-8")
    code, _, err = cli("sessions", "import", str(tmp_path / "s.yaml"))
    assert code == 0, err
    return cli


def one_line(err: str) -> str:
    assert "Traceback" not in err and "Usage:" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("REMINDERS", "announce=3000000d", "REMINDERS: offset must be at most 365d"),
        ("RECORDING_WINDOW", "999999999d", "RECORDING_WINDOW: must be from 1m to 365d"),
        ("LEASE", "3000000d", "LEASE: must be from 10s to 1d"),
        ("POLL_INTERVAL", "999999999d", "POLL_INTERVAL: must be from 1s to 1h"),
        ("DATABASE_URL", "sqlite://", "DATABASE_URL: an in-memory SQLite database keeps nothing"),
        ("DATABASE_URL", "sqlite:///:memory:", "DATABASE_URL: an in-memory SQLite database"),
        ("DATABASE_URL", "sqlite:////no/such/folder/bot.db", "DATABASE_URL: the folder does not"),
    ],
)
@pytest.mark.parametrize("command", [("check",), ("plan",), ("send",), ("sessions", "list")])
def test_out_of_range_and_impossible_values_are_one_line_and_exit_2(
    bot: BotCli, variable: str, value: str, says: str, command: tuple[str, ...]
) -> None:
    # LEASE passed `check` and crashed once something was due: make something due.
    now = ("--now", iso(SOON - timedelta(hours=1))) if command[0] != "sessions" else ()
    code, out, err = bot(*command, *now, env={variable: value})
    assert code == 2, out + err
    line = one_line(err)
    assert line.startswith(says), line
    named = "/no/such/folder" if "folder" in value else value
    assert f"({named})" in line, line
    assert out == ""


def test_a_dotenv_file_that_is_not_utf8_is_named(bot: BotCli) -> None:
    (bot.cwd / ".env").write_bytes(b"CHANNELS=console\nGROUP_NAME=Caf\xe9 \xff\n")
    for command in (("plan",), ("sessions", "list"), ("check",), ("send", "--dry-run")):
        code, out, err = bot(*command)
        assert code == 2, (command, out, err)
        assert one_line(err) == ".env: not UTF-8 text (byte 0xe9 at offset 31)"


def test_a_malformed_now_is_one_line_without_a_usage_block(bot: BotCli) -> None:
    code, _, err = bot("plan", "--now", "next tuesday")
    assert code == 2
    assert one_line(err).startswith("bot plan: Invalid value for '--now': ISO 8601")
    code, _, err = bot("plan", "--no-such-option")
    assert code == 2
    assert one_line(err) == "bot plan: No such option '--no-such-option'."


# ---------------------------------------------------------------- a database nobody may write


@pytest.fixture
def locked_folder() -> Iterator[Path]:
    """A folder this test's commands may read but not write (they run as `nobody` under root)."""
    folder = Path(tempfile.mkdtemp(prefix="bot-ro-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_locked_out(folder: Path, *args: str) -> tuple[int, str, str]:
    """`python -m bot ARGS` in `folder`, by a user who cannot write there."""
    env = base_env() | {"DATABASE_URL": f"sqlite:///{folder}/bot.db", "HOME": str(folder)}
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "bot", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_reading_commands_work_on_a_database_they_may_not_write(locked_folder: Path) -> None:
    owner = BotCli(locked_folder, {"DATABASE_URL": f"sqlite:///{locked_folder}/bot.db"})
    (locked_folder / "s.yaml").write_text(session_yaml([SESSION]), encoding="utf-8")
    assert owner("sessions", "import", str(locked_folder / "s.yaml"))[0] == 0
    if os.geteuid() != 0:
        locked_folder.chmod(0o555)
    before = sorted(p.name for p in locked_folder.iterdir())
    due = iso(SOON - timedelta(days=7))
    for args in (
        ("plan", "--now", due),
        ("sessions", "list"),
        ("sessions", "show", "s1"),
        ("send", "--dry-run", "--now", due),
        ("ics",),
        ("deliveries",),
    ):
        code, out, err = run_locked_out(locked_folder, *args)
        assert code == 0, (args, out, err)
        assert "Traceback" not in err
    code, out, _ = run_locked_out(locked_folder, "plan", "--now", due)
    assert "s1  announce  console  planned" in out
    code, _, err = run_locked_out(locked_folder, "send", "--now", due)
    assert code == 2
    assert one_line(err).endswith("bot.db cannot be written, and this command changes it")
    assert sorted(p.name for p in locked_folder.iterdir()) == before  # nothing written
    locked_folder.chmod(0o755)


def test_a_database_that_cannot_be_created_is_one_line(locked_folder: Path) -> None:
    if os.geteuid() != 0:
        locked_folder.chmod(0o555)
    code, out, err = run_locked_out(locked_folder, "sessions", "list")
    assert code == 2, out + err
    assert one_line(err) == (
        f"DATABASE_URL: cannot create {locked_folder}/bot.db: its folder cannot be written"
    )
    locked_folder.chmod(0o755)


# ---------------------------------------------------------------- a channel not set up yet


def test_a_misconfigured_channel_does_not_block_managing_data(bot: BotCli, tmp_path: Path) -> None:
    x_half_set = {"CHANNELS": "console,x", "X_API_KEY": "key-only"}
    warning = "warning: 3 problems with the channels' variables; `bot check` lists them"
    (tmp_path / "more.yaml").write_text(
        session_yaml([SESSION | {"title": "Masked diffusion for code, part 2"}]), encoding="utf-8"
    )
    for command in (
        ("sessions", "import", str(tmp_path / "more.yaml")),
        ("sessions", "list"),
        ("sessions", "set", "s1", "title=Masked diffusion, revised"),
        ("plan",),
        ("ics",),
        ("deliveries",),
        ("preview", "s1"),
        ("send", "--dry-run", "--now", iso(SOON - timedelta(days=7))),
    ):
        code, out, err = bot(*command, env=x_half_set)
        assert code == 0, (command, out, err)
        assert err.splitlines()[0] == warning, (command, err)
    for command in (("send",), ("check",), ("run",)):
        code, out, err = bot(*command, env=x_half_set)
        assert code == 2, (command, out, err)
        assert err.splitlines() == [
            "X_API_KEY_SECRET: required by the x channel (missing)",
            "X_ACCESS_TOKEN: required by the x channel (missing)",
            "X_ACCESS_TOKEN_SECRET: required by the x channel (missing)",
        ]
        assert "key-only" not in out + err


@pytest.mark.parametrize("how", ["import", "set"])
def test_control_characters_never_reach_a_database(tmp_path: Path, db_url: str, how: str) -> None:
    bot = BotCli(tmp_path / "cwd", {"DATABASE_URL": db_url})
    if not db_url.startswith("sqlite"):
        assert bot("db", "upgrade")[0] == 0
    (tmp_path / "s.yaml").write_text(session_yaml([SESSION]), encoding="utf-8")
    assert bot("sessions", "import", str(tmp_path / "s.yaml"))[0] == 0
    before = bot("sessions", "export")[1]
    if how == "import":  # a NUL cannot travel in a command's arguments, but can in a file
        bad = tmp_path / "bad.yaml"
        bad.write_text(session_yaml([SESSION | {"title": "DiffuCoder\x00"}]), encoding="utf-8")
        code, out, err = bot("sessions", "import", str(bad))
        field, found = f"{bad}: sessions[0].title", "U+0000"
    else:
        code, out, err = bot("sessions", "set", "s1", "title=\x1b[31mDiffuCoder")
        field, found = "title", "U+001B"
    assert code == 2, out + err
    line = one_line(err)
    assert line.startswith(f"{field}: must not hold control characters ({found} found)"), line
    assert "DATABASE_URL" not in line and "\x00" not in line and "\x1b" not in line
    assert bot("sessions", "export")[1] == before  # nothing written
