"""The exception hierarchy. Each class's docstring is its default message."""

from __future__ import annotations

from datetime import datetime


class BotError(Exception):
    """Something went wrong."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ProblemsError(BotError):
    """Input was rejected; every problem is listed, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(ProblemsError):
    """The configuration is invalid."""


class DatabaseGoneError(ConfigError):
    """The SQLite database file was deleted or replaced under a running process."""


class DataError(ProblemsError):
    """The session data is invalid."""


class UsageError(BotError):
    """The command was used wrongly."""


class SchemaError(BotError):
    """The database schema is not at the version this program needs; run `bot db upgrade`."""

    found: str | None = None  # the revision the database is at (None: no schema at all)


class TemplateProblem(BotError):
    """A template could not be rendered."""


class NotifierError(BotError):
    """A channel did not take the message."""


class TransientError(NotifierError):
    """The channel did not take the message this time; it may be retried later."""

    def __init__(self, message: str | None = None, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class PermanentError(NotifierError):
    """The channel refused the message for good; retrying will not help."""


class DuplicateContentError(PermanentError):
    """duplicate content"""


class MaybeSentError(NotifierError):
    """The message was handed over but no answer came back: it may or may not have gone out."""
