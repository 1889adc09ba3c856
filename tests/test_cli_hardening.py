"""Edges a review found: each is one line and the right exit status, never a traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.logs import _QUIET, setup_logging
from tests.support.cli import BotCli


@pytest.fixture
def bot(tmp_path: Path) -> BotCli:
    cli = BotCli(tmp_path / "cwd", {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"})
    (tmp_path / "s.yaml").write_text(
        "sessions:\n  - id: s1\n    title: T\n    starts_at: 2030-01-07T15:00:00Z\n"
    )
    code, _, err = cli("sessions", "import", str(tmp_path / "s.yaml"))
    assert code == 0, err
    return cli


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("sessions", "export", "/no/such/dir/x.yaml"), 2, "/no/such/dir/x.yaml: cannot write"),
        (("ics", "-o", "/no/such/dir/x.ics"), 2, "/no/such/dir/x.ics: cannot write"),
        (("deliveries", "retry", "99999999999999999999"), 2, "DELIVERY_ID"),
        (("deliveries", "resolve", "0", "--as", "sent"), 2, "DELIVERY_ID"),
        (("send", "--now", "9999-12-31T23:00:00Z"), 2, "--now"),
        (("plan", "--now", "0001-01-01T00:00:00Z"), 2, "--now"),
        (("send", "--session", "typo"), 2, "--session: no session with id 'typo'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    bot: BotCli, args: tuple[str, ...], code: int, says: str
) -> None:
    result, out, err = bot(*args)
    assert result == code, out + err
    assert says in err
    assert "Traceback" not in out + err


def test_a_database_url_that_is_not_a_database_is_one_line(bot: BotCli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all, just some bytes" * 100)
    code, out, err = bot("sessions", "list", env={"DATABASE_URL": f"sqlite:///{junk}"})
    assert code == 2  # a configuration problem (SPEC §3)
    assert err == f"DATABASE_URL: {junk} cannot be used as a database (file is not a database)\n"
    assert "Traceback" not in out + err


def test_a_broken_plugin_is_a_channels_problem(bot: BotCli, tmp_path: Path) -> None:
    info = tmp_path / "broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bot.notifiers]\nbroken = no_such_module:Thing\n")
    code, out, err = bot("check", env={"CHANNELS": "broken", "PYTHONPATH": str(tmp_path)})
    assert code == 2
    assert err.startswith("CHANNELS: plugin channel cannot be used: broken: cannot load")
    assert "Traceback" not in out + err


def test_a_non_ascii_smtp_password_is_a_configuration_error(bot: BotCli) -> None:
    env = {
        "CHANNELS": "email",
        "SMTP_HOST": "127.0.0.1",
        "EMAIL_FROM": "a@example.org",
        "EMAIL_TO": "l@example.org",
        "SMTP_USERNAME": "a@example.org",
        "SMTP_PASSWORD": "pässwörd-geheim",
    }
    code, out, err = bot("check", env=env)
    assert code == 2
    assert err.strip() == "SMTP_PASSWORD: must be ASCII for SMTP login (value hidden)"
    assert "pässwörd" not in out + err


def test_a_secret_inside_a_logged_traceback_is_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in _QUIET})
    try:
        setup_logging("INFO", "text", ["hunter2-secret-token"])
        try:
            raise RuntimeError("posting to https://hooks.example/hunter2-secret-token failed")
        except RuntimeError:
            logging.getLogger("bot.test").exception("notifier crashed")
        err = capsys.readouterr().err
    finally:  # logging is process-wide: leave it as other tests expect it
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    assert "notifier crashed" in err and "RuntimeError" in err
    assert "hunter2-secret-token" not in err
