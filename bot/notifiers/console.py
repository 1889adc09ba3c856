"""The `console` channel: prints each message to standard output."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import ClassVar, TextIO

from bot.notifiers.base import Message, Notifier, Receipt


class ConsoleNotifier(Notifier):
    """Prints the message; the default channel, and the safe way to try a setup."""

    name = "console"
    stream: ClassVar[TextIO | None] = None  # None: standard output at the time of sending

    def send(self, message: Message, now: datetime) -> Receipt:
        key = message.key
        header = f"--- {key.session_id} · {key.notice} · {key.channel} ---"
        out = self.stream or sys.stdout
        out.write(f"{header}\n{message.text.rstrip()}\n\n")
        out.flush()
        return Receipt(external_id=None)
