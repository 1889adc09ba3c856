"""Logging: one event per line, text or JSON, with every known secret value redacted."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.config import Secret, Settings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# Libraries that log request headers or signing material at DEBUG, or chatter at INFO.
_QUIET = (
    "alembic",
    "apscheduler",
    "oauthlib",
    "requests_oauthlib",
    "urllib3",
    "tweepy",
    "requests",
    "mail.log",
    "asyncio",
)


def secret_values(settings: Settings) -> list[str]:
    """Every secret string held by the channel configurations, or seen in their variables."""
    found: list[str] = list(settings.secret_texts)
    for config in settings.channel_configs.values():
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            for f in dataclasses.fields(config):
                value = getattr(config, f.name)
                if isinstance(value, Secret) and value.get():
                    found.append(value.get())
    return found


class Redactor(logging.Filter):
    """Replaces secret values in a record's message and extras with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """`text` with every secret replaced."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            for key, value in list(record.__dict__.items()):
                if key not in _STANDARD and isinstance(value, str):
                    setattr(record, key, self.scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL message [event=… session=…]`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_") and v is not None
        )
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        if extras:
            line = f"{line} [{extras}]"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class RedactingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Scrubs the finished line too, so a secret inside a formatted traceback is replaced."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(sys.stderr)
        self.redactor = redactor
        self.addFilter(redactor)

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.scrub(super().format(record))


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    """Send logs to stderr in the chosen format; noisy libraries stay at WARNING."""
    handler = RedactingHandler(Redactor(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
