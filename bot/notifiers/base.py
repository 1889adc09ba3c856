"""The notifier contract: one small class per channel over this shared base."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from bot.domain import DeliveryKey

__all__ = [
    "Attachment",
    "Card",
    "DeliveryKey",
    "Message",
    "Notifier",
    "Receipt",
    "Settlement",
    "State",
]


class State(Protocol):
    """Where a channel keeps values between processes (bot.store.channel_state)."""

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str) -> None: ...

    def drop(self, name: str) -> None: ...


@dataclass(frozen=True)
class Card:
    """The session as a link card or embed (Bluesky's external embed, Discord's embed)."""

    url: str  # the session's page when SITE_URL is set, else the group's site
    title: str
    description: str = ""
    starts_at: datetime | None = None


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
    card: Card | None = None  # the session as a link card, for channels that show one
    # What the channel can find this post by (rule 5a), the same on every attempt; set by the
    # dispatcher from Notifier.new_reference() before the `sending` mark.
    reference: str | None = None

    @property
    def summary(self) -> str:
        """What the ledger and `send --json` show: the subject, or the text."""
        return self.subject if self.subject is not None else self.text


@dataclass(frozen=True)
class Receipt:
    """Proof that a channel took a message."""

    external_id: str | None = None


@dataclass(frozen=True)
class Settlement:
    """A channel's answer about an uncertain post (SPEC §6 rule 5a).

    `exists`: it was posted (external_id is its id); `absent`: it provably was not, so sending
    it again is safe; `unknown`: no answer now (`final`: and never, so an operator decides).
    """

    status: Literal["exists", "absent", "unknown"]
    external_id: str | None = None
    reason: str = ""
    final: bool = False


class Notifier(ABC):
    """A channel. Subclasses declare their name, parts and limit, and implement send()."""

    name: ClassVar[str]
    parts: ClassVar[tuple[str, ...]] = ("txt",)
    max_length: ClassVar[int | None] = None  # in the channel's own unit, see measure()
    length_unit: ClassVar[str] = "characters"
    # Variables holding passwords, tokens, keys or secret URLs: never shown, redacted from logs.
    secret_variables: ClassVar[tuple[str, ...]] = ()
    # A plugin's own templates: a folder holding `<name>/NOTICE.PART.j2` (its package's
    # `templates/`, say). Only the `<name>/` subfolder is used, searched after TEMPLATES_DIR and
    # the built-in folder: a plugin can neither replace nor add another channel's templates.
    templates_dir: ClassVar[Path | None] = None
    # Self-settling (rule 5a): a channel that can prove whether a post exists sets `settles`,
    # mints references and answers settle(); `settle_delay` is how long after an attempt an
    # "absent" answer can be trusted (a message still being written may not show yet).
    settles: ClassVar[bool] = False
    settle_delay: ClassVar[timedelta] = timedelta(0)

    def __init__(self, config: Any) -> None:
        from bot.store.channel_state import MemoryState

        self.config = config
        self.state: State = MemoryState()  # the dispatcher binds the database's

    def bind_state(self, state: State) -> None:
        """Keep values (sessions, resolved ids) in `state` from now on."""
        self.state = state

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

    def can_settle(self) -> bool:
        """True when this instance can settle (a channel whose proof depends on its mode,
        like Slack's webhook vs bot token, overrides this)."""
        return self.settles

    def limit_problem(self, text: str) -> str | None:
        """A reason when `text` does not fit this channel as configured (an instance's own
        limit, read online, may differ from the class's); the dispatcher calls this."""
        return self.over_limit(text)

    def new_reference(self, key: DeliveryKey, now: datetime) -> str | None:
        """A fresh reference for `key`'s first attempt (stored with the `sending` mark and
        reused on every later attempt); None for channels that do not settle."""
        return None

    def settle(
        self, reference: str, text: str, referenced_at: datetime, now: datetime
    ) -> Settlement:
        """Whether the post made under `reference` exists (`text`: what was sent, for a channel
        whose proof is a safe re-send). Only called when `settles` is True."""
        return Settlement("unknown", reason=f"the {self.name} channel cannot settle", final=True)

    def check_online(self) -> None:
        """Log in without posting; raise a NotifierError when that fails."""

    def close(self) -> None:
        """Release connections."""
