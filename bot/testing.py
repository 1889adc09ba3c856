"""Fakes that live in the package, so tests exercise the production paths."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain import DeliveryKey
from bot.notifiers.base import Message, Notifier, Receipt, Settlement


@dataclass
class FrozenClock:
    """A clock that moves only when told to."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward (or back, with a negative delta) and return the new time."""
        self.now = self.now + delta
        return self.now

    def set(self, value: datetime) -> datetime:
        """Jump to `value`."""
        self.now = value
        return self.now


@dataclass
class RecordingNotifier(Notifier):
    """Records every message; `fail_with` (a callable or exception) makes the next sends fail."""

    name = "recording"
    sent: list[Message] = field(default_factory=list)
    attempts: list[Message] = field(default_factory=list)
    fail_with: BaseException | Callable[[Message], BaseException | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        super().__init__(None)

    def send(self, message: Message, now: datetime) -> Receipt:
        with self._lock:
            self.attempts.append(message)
        # Outside the lock: a callable may block (a slow channel) while other sends go on.
        failure = self.fail_with(message) if callable(self.fail_with) else self.fail_with
        if failure is not None:
            raise failure
        with self._lock:
            self.sent.append(message)
            return Receipt(external_id=f"rec-{len(self.sent)}")


@dataclass
class SettlingNotifier(Notifier):
    """A channel that can prove whether a post exists (rule 5a), like Bluesky's record keys.

    `posts` maps each reference to the id of the post made under it; a post under a reference
    already taken is refused (as a record key is). `answer_lost` makes the next sends post and then
    raise MaybeSentError (the answer lost after the post); `lost_before` makes them raise it
    without posting; `lookup` (a Settlement status) overrides what settle() finds.
    """

    name = "settling"
    settles = True
    posts: dict[str, str] = field(default_factory=dict)
    attempts: list[Message] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    answer_lost: int = 0
    lost_before: int = 0
    lookup: str | None = None
    minted: int = 0

    def __post_init__(self) -> None:
        super().__init__(None)

    def new_reference(self, key: DeliveryKey, now: datetime) -> str | None:
        self.minted += 1
        return f"ref-{key.session_id}-{key.notice}-{self.minted}"

    def send(self, message: Message, now: datetime) -> Receipt:
        from bot.errors import MaybeSentError, PermanentError

        self.attempts.append(message)
        reference = message.reference
        if reference is None:
            raise PermanentError("no reference")
        if self.lost_before:
            self.lost_before -= 1
            raise MaybeSentError("timed out before the post was made")
        if reference in self.posts:
            raise PermanentError(f"reference {reference} is taken")
        self.posts[reference] = f"post-{len(self.posts) + 1}"
        if self.answer_lost:
            self.answer_lost -= 1
            raise MaybeSentError("timed out after the request was sent")
        return Receipt(external_id=self.posts[reference])

    def settle(
        self, reference: str, text: str, referenced_at: datetime, now: datetime
    ) -> Settlement:
        self.asked.append(reference)
        if self.lookup == "unknown":
            return Settlement("unknown", reason="lookup failed")
        if self.lookup == "final":
            return Settlement("unknown", reason="cannot look it up", final=True)
        if reference in self.posts:
            return Settlement("exists", external_id=self.posts[reference])
        return Settlement("absent")
