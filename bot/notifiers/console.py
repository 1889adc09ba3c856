"""The `console` channel: prints each message to standard output."""

from __future__ import annotations

import sys
from datetime import datetime

from bot.notifiers.base import Message, Notifier, Receipt


class ConsoleNotifier(Notifier):
    """Prints the message; the default channel, and the safe way to try a setup."""

    name = "console"

    def send(self, message: Message, now: datetime) -> Receipt:
        key = message.key
        header = f"--- {key.session_id} · {key.notice} · {key.channel} ---"
        sys.stdout.write(f"{header}\n{message.text.rstrip()}\n\n")
        sys.stdout.flush()
        return Receipt(external_id=None)
