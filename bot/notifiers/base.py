"""The notifier contract: one small class per channel over this shared base."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from bot.domain import DeliveryKey

__all__ = ["Attachment", "DeliveryKey", "Message", "Notifier", "Receipt"]


@dataclass(frozen=True)
class Attachment:
    """A file sent along with a message (email only)."""

    filename: str
    content_type: str  # e.g. "text/calendar; method=PUBLISH"
    data: bytes


@dataclass(frozen=True)
class Message:
    """A rendered message, ready for one channel."""

    key: DeliveryKey
    text: str  # the `txt` part: the post, or the plain-text body of an email
    subject: str | None = None  # email only
    html: str | None = None  # email only
    attachments: tuple[Attachment, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # extra headers (email only)
    replies_to: tuple[str, ...] = ()  # ids of earlier messages this one follows up, oldest first

    @property
    def summary(self) -> str:
        """What the ledger and `send --json` show: the subject, or the text."""
        return self.subject if self.subject is not None else self.text


@dataclass(frozen=True)
class Receipt:
    """Proof that a channel took a message."""

    external_id: str | None = None


class Notifier(ABC):
    """A channel. Subclasses declare their name, parts and limit, and implement send()."""

    name: ClassVar[str]
    parts: ClassVar[tuple[str, ...]] = ("txt",)
    max_length: ClassVar[int | None] = None  # in the channel's own unit, see measure()
    length_unit: ClassVar[str] = "characters"
    # Variables holding passwords, tokens, keys or secret URLs: never shown, redacted from logs.
    secret_variables: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def parse_config(cls, env: Mapping[str, str]) -> Any:
        """Read and validate this channel's variables; raise ConfigError listing every problem."""
        return None

    @classmethod
    def measure(cls, text: str) -> int:
        """The length of `text` as this channel counts it."""
        return len(text)

    @classmethod
    def over_limit(cls, text: str) -> str | None:
        """A reason when `text` is too long for this channel, else None."""
        if cls.max_length is None:
            return None
        length = cls.measure(text)
        if length <= cls.max_length:
            return None
        return (
            f"message is {length} {cls.length_unit}, over the {cls.name} limit of {cls.max_length}"
        )

    @abstractmethod
    def send(self, message: Message, now: datetime) -> Receipt:
        """Send one message; raise TransientError, PermanentError or MaybeSentError on failure."""

    def check_online(self) -> None:
        """Log in without posting; raise a NotifierError when that fails."""

    def close(self) -> None:
        """Release connections."""
