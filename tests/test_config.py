"""Settings: parsed once, every problem reported at once, secrets never shown."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import (
    Reminder,
    Secret,
    format_duration,
    load_env,
    load_settings,
    parse_duration,
)
from bot.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("0m", timedelta(0)),
        ("30s", timedelta(seconds=30)),
    ],
)
def test_durations_parse_and_format_back(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("text", ["", "7", "d", "-1d", "1.5h", "1h1d", "7 days"])
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite:///bot.db"
    assert settings.channels == ("console",)
    assert settings.reminders == (
        Reminder("announce", timedelta(days=7), ("console",)),
        Reminder("reminder", timedelta(days=1), ("console",)),
        Reminder("starting", timedelta(hours=1), ("console",)),
    )
    assert settings.display_timezones == ("America/New_York", "Europe/Paris")
    assert settings.poll_interval == timedelta(seconds=30)
    assert settings.lease == timedelta(minutes=5)


def test_reminders_may_name_their_channels() -> None:
    env = {
        "CHANNELS": "console,email",
        "REMINDERS": "announce=7d@email,starting=0m@console+email",
        "SMTP_HOST": "smtp.example.org",
        "EMAIL_FROM": "a@example.org",
        "EMAIL_TO": "list@example.org",
    }
    reminders = load_settings(env).reminders
    assert reminders == (
        Reminder("announce", timedelta(days=7), ("email",)),
        Reminder("starting", timedelta(0), ("console", "email")),
    )


def test_every_problem_is_reported_at_once_one_line_per_variable() -> None:
    env = {
        "CHANNELS": "console,pigeon",
        "REMINDERS": "announce=7x,reminder=1d@x",
        "DISPLAY_TIMEZONES": "America/New_York,Mars/Olympus",
        "POLL_INTERVAL": "soon",
        "LOG_FORMAT": "xml",
        "DATABASE_URL": "mysql://db",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    problems = caught.value.problems
    assert sorted(p.split(":")[0] for p in problems) == [
        "CHANNELS",
        "DATABASE_URL",
        "DISPLAY_TIMEZONES",
        "LOG_FORMAT",
        "POLL_INTERVAL",
        "REMINDERS",
        "REMINDERS",
    ]
    assert any(p.startswith("CHANNELS:") and "(pigeon)" in p for p in problems)
    assert any(p.startswith("DISPLAY_TIMEZONES:") and "(Mars/Olympus)" in p for p in problems)


def test_reserved_and_duplicate_reminder_names_are_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"REMINDERS": "cancelled=1d,a=1d,a=2d"})
    assert len(caught.value.problems) == 2


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2-very-secret")
    assert repr(secret) == "'***'"
    assert str(secret) == "'***'"
    assert f"{secret}" == "'***'"
    assert "hunter2" not in repr({"password": secret})
    assert secret.get() == "hunter2-very-secret"


def test_environment_wins_over_the_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("CHANNELS=email\nGROUP_NAME=From file\n")
    env = load_env(str(env_file), base={"CHANNELS": "console"})
    assert env["CHANNELS"] == "console"
    assert env["GROUP_NAME"] == "From file"


def test_a_missing_env_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--env-file"):
        load_env(str(tmp_path / "nope.env"), base={})
