"""Frozen settings, built and validated once from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain import SPECIAL_NOTICES
from bot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///bot.db"
DEFAULT_REMINDERS = "announce=7d,reminder=1d,starting=1h"
MAX_OFFSET = timedelta(days=365)  # reminder offsets and RECORDING_WINDOW
# Variables that point TLS at a private CA: taken from a .env file into the process environment,
# where OpenSSL (SSL_CERT_FILE, SSL_CERT_DIR) and requests (REQUESTS_CA_BUNDLE) look for them.
TLS_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
UID_FALLBACK = "reading-group-bot"
YOUTUBE_FEED = "https://www.youtube.com/feeds/videos.xml?channel_id={id}"
# A YouTube channel id: "UC" and 22 characters of URL-safe base64.
_CHANNEL_ID = re.compile(
    r"^UC[A-Za-z0-9_-]{22}$"
)  # no SITE_URL, GROUP_URL or EMAIL_FROM to name the group


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
    site_url: str = ""
    site_dir: Path | None = None
    site_meeting_link: bool = False
    # Channels whose messages carry the meeting link (None: every channel); the others say
    # where to find it.
    meeting_link_channels: tuple[str, ...] | None = None
    # Recordings (SPEC §10): the group's YouTube channel and its feed; "" turns them off.
    youtube_channel_id: str = ""
    youtube_feed_url: str = ""
    recordings_poll: timedelta = timedelta(minutes=15)
    recordings_auto: bool = True
    channel_configs: Mapping[str, Any] = field(default_factory=dict)
    # Problems of the channels' own variables: commands that send (and `check`) refuse to run
    # with them; commands that only read or manage data work, with a one-line warning.
    channel_problems: tuple[str, ...] = ()
    secret_texts: tuple[str, ...] = ()  # every channel secret found, for redacting logs

    def require_channels(self) -> None:
        """Raise ConfigError naming every channel variable problem (a command about to send)."""
        if self.channel_problems:
            raise ConfigError(list(self.channel_problems))

    @property
    def uid_domain(self) -> str:
        """The right-hand side of calendar UIDs: the site's host, the group's, or the sender's."""
        for url in (self.site_url, self.group_url):
            host = urlsplit(url).hostname if url else None
            if host:
                return host
        email = self.channel_configs.get("email")
        domain = getattr(email, "domain", None)
        return domain if isinstance(domain, str) and domain else UID_FALLBACK

    @property
    def reference_zone(self) -> ZoneInfo:
        """The first display zone: the one whose calendar dates are used."""
        return ZoneInfo(self.display_timezones[0])

    def carries_meeting_link(self, channel: str) -> bool:
        """True when `channel`'s messages may show the meeting link (MEETING_LINK_CHANNELS)."""
        return self.meeting_link_channels is None or channel in self.meeting_link_channels

    def reminder(self, name: str) -> Reminder | None:
        """The reminder called `name`, if configured."""
        return next((r for r in self.reminders if r.name == name), None)


def load_env(env_file: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment with a dotenv file under it (variables already set win).

    The TLS variables of a dotenv file (TLS_VARIABLES) also go into the process environment,
    where OpenSSL and requests read them, so a private CA set in `.env` is trusted like one set
    in the environment.
    """
    import io

    from dotenv import dotenv_values

    env = dict(os.environ if base is None else base)
    path = Path(env_file) if env_file else Path(".env")
    if env_file and not path.is_file():
        raise ConfigError([f"--env-file: no such file ({env_file})"])
    if not path.is_file():
        return env
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
        raise ConfigError([f"{path}: not UTF-8 text ({where})"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from exc
    for key, value in dotenv_values(stream=io.StringIO(text)).items():
        if value is not None and key not in env:
            env[key] = value
            if base is None and key in TLS_VARIABLES:
                os.environ[key] = value
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

    def duration(self, name: str, default: str, *, least: timedelta, most: timedelta) -> timedelta:
        raw = self.get(name, default)
        try:
            value = parse_duration(raw)
        except ValueError:
            self.problem(name, "not a duration like 30s, 5m, 12h, 1d or 1d12h", raw)
            return parse_duration(default)
        if not least <= value <= most:
            bounds = f"from {format_duration(least)} to {format_duration(most)}"
            self.problem(name, f"must be {bounds}", raw)
            return parse_duration(default)
        return value

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
        if offset > MAX_OFFSET:
            reader.problem("REMINDERS", "offset must be at most 365d", entry)
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


def _database_url(reader: _Reader) -> str:
    """DATABASE_URL, with the problems that can be seen without opening it."""
    url = reader.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
        reader.problem("DATABASE_URL", "must start with sqlite:// or postgresql+psycopg://")
        return url
    if url.startswith("sqlite"):
        _, _, rest = url.partition("://")
        path = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
        if path in ("", ":memory:") or "mode=memory" in url:
            reader.problem(
                "DATABASE_URL", "an in-memory SQLite database keeps nothing; name a file", url
            )
        elif not Path(path).parent.is_dir():
            reader.problem("DATABASE_URL", "the folder does not exist", str(Path(path).parent))
    return url


def _url(reader: _Reader, name: str, *, private: bool = False) -> str:
    """An http(s) URL with a host, or "" with a problem; `private` shows only its scheme and
    host in the problem (a proxy's key may be in the rest)."""
    value = reader.get(name)
    if value:
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            origin = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "not a URL"
        except ValueError:
            ok, origin = False, "not a URL"
        if not ok or any(c.isspace() for c in value):
            reader.problem(name, "must be an http(s) URL with a host", origin if private else value)
            return ""
    return value


def _youtube(reader: _Reader) -> tuple[str, str]:
    """YOUTUBE_CHANNEL_ID and the feed URL read for it (YOUTUBE_FEED_URL, else YouTube's own)."""
    channel_id = reader.get("YOUTUBE_CHANNEL_ID")
    if channel_id and not _CHANNEL_ID.match(channel_id):
        reader.problem(
            "YOUTUBE_CHANNEL_ID",
            "must be a channel id: UC and 22 letters, digits, - or _",
            channel_id,
        )
        channel_id = ""
    feed = _url(reader, "YOUTUBE_FEED_URL", private=True)
    if feed and not reader.get("YOUTUBE_CHANNEL_ID"):
        reader.problem("YOUTUBE_FEED_URL", "set without YOUTUBE_CHANNEL_ID (recordings need it)")
        feed = ""
    if not feed and channel_id:
        feed = YOUTUBE_FEED.format(id=channel_id)
    return channel_id, feed


def _feed_secrets(feed: str, channel_id: str) -> list[str]:
    """A YOUTUBE_FEED_URL of one's own (a proxy) may hold a key: kept out of every log line."""
    if not feed or feed == YOUTUBE_FEED.format(id=channel_id):
        return []
    parts = urlsplit(feed)
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return [feed] + ([rest] if len(rest) > 1 else [])


def _channel_configs(
    env: Mapping[str, str], reader: _Reader, channels: tuple[str, ...]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Each channel's parsed variables, the problems with them, and every secret value seen."""
    from bot.notifiers import PluginError, registry

    configs: dict[str, Any] = {}
    problems: list[str] = []
    secrets: list[str] = []
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
        secrets.extend(env[v] for v in notifier.secret_variables if env.get(v, "").strip())
        try:
            configs[name] = notifier.parse_config(env)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return configs, problems, secrets


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping, or raise ConfigError listing every problem.

    Problems with a channel's own variables do not raise: they are kept in
    `Settings.channel_problems` for the commands that send to refuse (`require_channels`).
    """
    reader = _Reader(env)
    channels = reader.names("CHANNELS", "console")
    if not channels:
        reader.problem("CHANNELS", "names no channel", env.get("CHANNELS", ""))
    configs, channel_problems, secrets = _channel_configs(env, reader, channels)
    recording = reader.names("RECORDING_CHANNELS", ",".join(channels))
    for name in recording:
        if name not in channels:
            reader.problem("RECORDING_CHANNELS", "channel not in CHANNELS", name)
    meeting = reader.names("MEETING_LINK_CHANNELS", "") if "MEETING_LINK_CHANNELS" in env else None
    for name in meeting or ():
        if name not in channels:
            reader.problem("MEETING_LINK_CHANNELS", "channel not in CHANNELS", name)
    site_dir = reader.get("SITE_DIR")
    templates_dir = reader.get("TEMPLATES_DIR")
    if templates_dir and not Path(templates_dir).is_dir():
        reader.problem("TEMPLATES_DIR", "not a directory", templates_dir)
    day = timedelta(days=1)
    youtube_id, youtube_feed = _youtube(reader)
    settings = Settings(
        database_url=_database_url(reader),
        channels=channels,
        reminders=_parse_reminders(reader, channels),
        change_notices=reader.choice(
            "CHANGE_NOTICES", "on", ("on", "off", "true", "false", "1", "0")
        )
        in ("on", "true", "1"),
        recording_channels=recording,
        recording_window=reader.duration(
            "RECORDING_WINDOW", "14d", least=timedelta(minutes=1), most=MAX_OFFSET
        ),
        display_timezones=_parse_zones(reader),
        group_name=reader.get("GROUP_NAME"),
        group_url=_url(reader, "GROUP_URL"),
        group_youtube_url=_url(reader, "GROUP_YOUTUBE_URL"),
        templates_dir=Path(templates_dir) if templates_dir else None,
        poll_interval=reader.duration(
            "POLL_INTERVAL", "30s", least=timedelta(seconds=1), most=timedelta(hours=1)
        ),
        lease=reader.duration("LEASE", "5m", least=timedelta(seconds=10), most=day),
        log_format=reader.choice("LOG_FORMAT", "text", ("text", "json")),
        log_level=reader.choice("LOG_LEVEL", "INFO", ("debug", "info", "warning", "error")).upper(),
        site_url=_url(reader, "SITE_URL").rstrip("/"),
        site_dir=Path(site_dir) if site_dir else None,
        site_meeting_link=reader.choice(
            "SITE_MEETING_LINK", "off", ("on", "off", "true", "false", "1", "0")
        )
        in ("on", "true", "1"),
        meeting_link_channels=meeting,
        youtube_channel_id=youtube_id,
        youtube_feed_url=youtube_feed,
        recordings_poll=reader.duration(
            "RECORDINGS_POLL", "15m", least=timedelta(minutes=1), most=day
        ),
        recordings_auto=reader.choice(
            "RECORDINGS_AUTO", "on", ("on", "off", "true", "false", "1", "0")
        )
        in ("on", "true", "1"),
        channel_configs=configs,
        channel_problems=tuple(channel_problems),
        secret_texts=tuple(secrets + _feed_secrets(youtube_feed, youtube_id)),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings
