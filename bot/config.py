"""Frozen settings, built and validated once from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain import SPECIAL_NOTICES
from bot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///bot.db"
DEFAULT_REMINDERS = "announce=7d,reminder=1d,starting=1h"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The real value, for the one place that hands it to a network library."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def parse_duration(text: str) -> timedelta:
    """Parse `1d`, `12h`, `90m`, `1d12h`, `30s`, `0m` into a timedelta; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"not a duration like 1d, 12h, 90m, 1d12h or 30s: {text!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError as exc:
        raise ValueError(f"duration out of range: {text!r}") from exc


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration: `1d12h`, `90m` → `1h30m`, zero → `0m`."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(
        f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n
    )
    return text or "0m"


@dataclass(frozen=True)
class Reminder:
    """One `REMINDERS` entry: a notice sent `offset` before the start, on `channels`."""

    name: str
    offset: timedelta
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    """Everything the program reads from the environment, validated."""

    database_url: str = DEFAULT_DATABASE_URL
    channels: tuple[str, ...] = ("console",)
    reminders: tuple[Reminder, ...] = ()
    change_notices: bool = True
    recording_channels: tuple[str, ...] = ("console",)
    recording_window: timedelta = timedelta(days=14)
    display_timezones: tuple[str, ...] = ("America/New_York", "Europe/Paris")
    group_name: str = ""
    group_url: str = ""
    group_youtube_url: str = ""
    templates_dir: Path | None = None
    poll_interval: timedelta = timedelta(seconds=30)
    lease: timedelta = timedelta(minutes=5)
    log_format: str = "text"
    log_level: str = "INFO"
    channel_configs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reference_zone(self) -> ZoneInfo:
        """The first display zone: the one whose calendar dates are used."""
        return ZoneInfo(self.display_timezones[0])

    def reminder(self, name: str) -> Reminder | None:
        """The reminder called `name`, if configured."""
        return next((r for r in self.reminders if r.name == name), None)


def load_env(env_file: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment with a dotenv file under it (variables already set win)."""
    from dotenv import dotenv_values

    env = dict(os.environ if base is None else base)
    path = Path(env_file) if env_file else Path(".env")
    if env_file and not path.is_file():
        raise ConfigError([f"--env-file: no such file ({env_file})"])
    if path.is_file():
        for key, value in dotenv_values(path).items():
            if value is not None:
                env.setdefault(key, value)
    return env


class _Reader:
    """Reads variables, collecting every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, default: str = "") -> str:
        value = self.env.get(name)
        return default if value is None or value.strip() == "" else value.strip()

    def problem(self, name: str, what: str, value: str | None = None) -> None:
        shown = f" ({value})" if value is not None else ""
        self.problems.append(f"{name}: {what}{shown}")

    def duration(self, name: str, default: str) -> timedelta:
        raw = self.get(name, default)
        try:
            return parse_duration(raw)
        except ValueError:
            self.problem(name, "not a duration like 30s, 5m, 12h, 1d or 1d12h", raw)
            return parse_duration(default)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.get(name, default)
        if raw.lower() not in choices:
            self.problem(name, f"must be one of {', '.join(choices)}", raw)
            return default
        return raw.lower()

    def names(self, name: str, default: str) -> tuple[str, ...]:
        raw = self.env.get(name)
        text = default if raw is None else raw
        return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def _parse_reminders(reader: _Reader, channels: tuple[str, ...]) -> tuple[Reminder, ...]:
    raw = reader.get("REMINDERS", DEFAULT_REMINDERS)
    reminders: list[Reminder] = []
    for entry in (p.strip() for p in raw.split(",")):
        name, sep, rest = entry.partition("=")
        offset_text, _, chans = rest.partition("@")
        if not sep or not _NAME.match(name.strip()):
            reader.problem("REMINDERS", "each entry must be NAME=OFFSET[@CH+CH]", entry)
            continue
        name = name.strip()
        if name in SPECIAL_NOTICES or name == "default":
            reader.problem("REMINDERS", f"{name!r} is a reserved notice name", entry)
            continue
        if any(r.name == name for r in reminders):
            reader.problem("REMINDERS", f"reminder {name!r} is listed twice", entry)
            continue
        try:
            offset = parse_duration(offset_text)
        except ValueError:
            reader.problem("REMINDERS", "offset must be like 7d, 12h, 90m, 1d12h or 0m", entry)
            continue
        wanted = tuple(c.strip() for c in chans.split("+") if c.strip()) if chans else channels
        unknown = [c for c in wanted if c not in channels]
        if unknown:
            reader.problem("REMINDERS", f"channel not in CHANNELS: {', '.join(unknown)}", entry)
            continue
        reminders.append(Reminder(name, offset, wanted))
    return tuple(reminders)


def _parse_zones(reader: _Reader) -> tuple[str, ...]:
    zones = reader.names("DISPLAY_TIMEZONES", "America/New_York,Europe/Paris")
    for zone in zones:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem("DISPLAY_TIMEZONES", "unknown IANA time zone", zone)
    if not zones:
        reader.problem("DISPLAY_TIMEZONES", "needs at least one zone", "")
    return zones or ("UTC",)


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping, or raise ConfigError listing every problem."""
    from bot.notifiers import PluginError, registry

    reader = _Reader(env)
    channels = reader.names("CHANNELS", "console")
    if not channels:
        reader.problem("CHANNELS", "names no channel", env.get("CHANNELS", ""))
    configs: dict[str, Any] = {}
    for name in channels:
        try:
            notifier = registry.get(name)
        except PluginError as exc:
            reader.problem("CHANNELS", f"plugin channel cannot be used: {exc}")
            continue
        except KeyError:
            known = ", ".join(registry.names())
            reader.problem("CHANNELS", f"unknown channel (known: {known})", name)
            continue
        try:
            configs[name] = notifier.parse_config(env)
        except ConfigError as exc:
            reader.problems.extend(exc.problems)
    recording = reader.names("RECORDING_CHANNELS", ",".join(channels))
    for name in recording:
        if name not in channels:
            reader.problem("RECORDING_CHANNELS", "channel not in CHANNELS", name)
    templates_dir = reader.get("TEMPLATES_DIR")
    if templates_dir and not Path(templates_dir).is_dir():
        reader.problem("TEMPLATES_DIR", "not a directory", templates_dir)
    database_url = reader.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", database_url):
        reader.problem("DATABASE_URL", "must start with sqlite:// or postgresql+psycopg://")
    settings = Settings(
        database_url=database_url,
        channels=channels,
        reminders=_parse_reminders(reader, channels),
        change_notices=reader.choice(
            "CHANGE_NOTICES", "on", ("on", "off", "true", "false", "1", "0")
        )
        in ("on", "true", "1"),
        recording_channels=recording,
        recording_window=reader.duration("RECORDING_WINDOW", "14d"),
        display_timezones=_parse_zones(reader),
        group_name=reader.get("GROUP_NAME"),
        group_url=reader.get("GROUP_URL"),
        group_youtube_url=reader.get("GROUP_YOUTUBE_URL"),
        templates_dir=Path(templates_dir) if templates_dir else None,
        poll_interval=reader.duration("POLL_INTERVAL", "30s"),
        lease=reader.duration("LEASE", "5m"),
        log_format=reader.choice("LOG_FORMAT", "text", ("text", "json")),
        log_level=reader.choice("LOG_LEVEL", "INFO", ("debug", "info", "warning", "error")).upper(),
        channel_configs=configs,
    )
    if settings.poll_interval < timedelta(seconds=1):
        reader.problem("POLL_INTERVAL", "must be at least 1s", reader.get("POLL_INTERVAL"))
    if settings.lease < timedelta(seconds=10):
        reader.problem("LEASE", "must be at least 10s", reader.get("LEASE"))
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings
