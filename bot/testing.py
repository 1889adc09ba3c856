"""Fakes that live in the package, so tests exercise the production paths."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.notifiers.base import Message, Notifier, Receipt


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
