"""What a channel keeps between processes (SQL for the `channel_state` table).

A Bluesky session's tokens live here, so a cron pass with nothing due never logs in and a busy
one logs in once; resolved handles are cached here too. Values may be secrets (tokens): they are
never logged, and `deliveries`/`check` never show this table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select

from bot.store.db import write_transaction
from bot.store.tables import channel_state


class ChannelState:
    """One channel's named values in the database."""

    def __init__(self, engine: Engine, channel: str, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.channel = channel
        self.clock = clock

    def get(self, name: str) -> str | None:
        """The stored value, or None."""
        c = channel_state.c
        with self.engine.connect() as conn:
            return conn.execute(
                select(c.value).where(c.channel == self.channel, c.name == name)
            ).scalar()

    def put(self, name: str, value: str) -> None:
        """Store `value` under `name` (replacing what was there)."""
        c = channel_state.c
        now = self.clock().astimezone(UTC)
        with write_transaction(self.engine) as conn:
            conn.execute(delete(channel_state).where(c.channel == self.channel, c.name == name))
            conn.execute(
                channel_state.insert().values(
                    channel=self.channel, name=name, value=value, updated_at=now
                )
            )

    def drop(self, name: str) -> None:
        """Forget `name`."""
        c = channel_state.c
        with write_transaction(self.engine) as conn:
            conn.execute(delete(channel_state).where(c.channel == self.channel, c.name == name))


class MemoryState:
    """The same interface in memory: `check --online` and tests without a database."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        """The stored value, or None."""
        return self.values.get(name)

    def put(self, name: str, value: str) -> None:
        """Store `value` under `name`."""
        self.values[name] = value

    def drop(self, name: str) -> None:
        """Forget `name`."""
        self.values.pop(name, None)
