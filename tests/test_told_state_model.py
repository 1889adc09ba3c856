"""A model-based test of the told-state promise (SPEC §6 rules 4–7), with hypothesis.

A `RuleBasedStateMachine` drives the real dispatcher, the real `sessions set` code and the real
operator commands against a real database (SQLite, and PostgreSQL where it runs) with random
sequences of moves, moves back, cancellations, reinstatements, other edits, reminder changes,
passes at advancing and skewed clocks, failing sends (not taken, refused, maybe sent with or
without a post) and slow sends during which an edit lands. After every settled pass (an operator
settles what needs one, then passes run until nothing more goes out) it checks:

- each channel that was told anything was last told the session's current state;
- no delivery went out twice, and every post is a `sent` row and the other way round;
- no two consecutive posts on a channel carry the same text, and no two on X at all;
- and, at every post, that the session was still in the state the post describes.

The budget is modest by default; `BOT_MODEL_EXAMPLES` and `BOT_MODEL_STEPS` make a soak run.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, delete, select

from bot.config import Reminder, Settings
from bot.dispatch import Dispatcher
from bot.domain import SessionData
from bot.errors import MaybeSentError, PermanentError, TransientError
from bot.notifiers.base import Message, Notifier, Receipt
from bot.operator import resolve, retry
from bot.store import tables
from bot.store.edits import edit_session
from bot.store.imports import import_sessions
from bot.store.reads import get_session
from tests.support.data import deliveries

EXAMPLES = int(os.environ.get("BOT_MODEL_EXAMPLES", "50"))
STEPS = int(os.environ.get("BOT_MODEL_STEPS", "30"))

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
BASE = datetime(2027, 2, 1, 15, 0, tzinfo=UTC)  # no clock change near it in the display zones
STARTS = (BASE, BASE + D + 2 * H, BASE + 3 * D)
T0 = BASE - 6 * D  # the first announcements are due at once
HORIZON = BASE - 3 * H  # the model's clock stays before every start: changes stay announceable
SESSIONS = ("s1", "s2")
CHANNELS = ("email", "x")
BOTH = ("email", "x")
CONFIGS: dict[str, tuple[Reminder, ...]] = {
    "default": (
        Reminder("announce", 7 * D, BOTH),
        Reminder("reminder", D, BOTH),
        Reminder("starting", H, BOTH),
    ),
    "no announce": (Reminder("reminder", D, BOTH), Reminder("starting", H, BOTH)),
    "announce renamed": (
        Reminder("preview", 7 * D, BOTH),
        Reminder("reminder", D, BOTH),
        Reminder("starting", H, BOTH),
    ),
    "announce on email only": (
        Reminder("announce", 7 * D, ("email",)),
        Reminder("reminder", D, BOTH),
        Reminder("starting", H, BOTH),
    ),
}
FAILURES = ("not taken", "refused", "maybe sent, posted", "maybe sent, not posted")
EDITS = ("move", "cancel", "reinstate")
CHANGES = ("move", "move", "cancel", "reinstate", "retitle")  # moves are the commonest edit
THEN = (None, -30, 0, 30)  # no pass yet, or a pass on a host 30 minutes slow, right or fast
EDITED = ("s1", "s1", "s2")  # most edits go to one session, so that they pile up on it


def described(message: Message) -> tuple[datetime, bool]:
    """The (start, cancelled) a message tells its readers."""
    return message.key.occurrence, message.key.notice == "cancelled"


class ModelChannel(Notifier):
    """A channel that records its posts; the next send may fail or be slow (an edit lands)."""

    name = "model"

    def __init__(self, channel: str, check: Callable[[Message], None]) -> None:
        super().__init__(None)
        self.channel = channel
        self.check = check
        self.posts: list[Message] = []
        self.failure: str | None = None
        self.during: Callable[[], None] | None = None

    def send(self, message: Message, now: datetime) -> Receipt:
        self.check(message)
        failure, self.failure = self.failure, None
        if failure == "not taken":
            raise TransientError("the channel was busy")
        if failure == "refused":
            raise PermanentError("the channel refused it")
        if failure == "maybe sent, not posted":
            raise MaybeSentError("no answer (the post did not happen)")
        self.posts.append(message)
        during, self.during = self.during, None
        if during is not None:
            during()  # an edit commits while the post is still on its way
        if failure == "maybe sent, posted":
            raise MaybeSentError("no answer (the post did happen)")
        return Receipt(external_id=f"{self.channel}-{len(self.posts)}")


class ToldState(RuleBasedStateMachine):
    """Random organiser edits and passes; what each channel was told is checked against them."""

    engine: Engine
    runs: list[int]  # settled passes per run, for the test's report

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.config = "default"
        self.channels = {c: ModelChannel(c, self.check_post_is_current) for c in CHANNELS}
        self.settled = False
        self.runs.append(0)
        with self.engine.begin() as conn:
            for table in reversed(tables.metadata.sorted_tables):
                conn.execute(delete(table))

    # ------------------------------------------------------------ helpers

    def dispatcher(self, clock: Callable[[], datetime]) -> Dispatcher:
        config = Settings(channels=CHANNELS, reminders=CONFIGS[self.config], recording_channels=())
        notifiers: dict[str, Notifier] = dict(self.channels)
        return Dispatcher(self.engine, config, clock, notifiers)

    def session(self, session_id: str) -> SessionData:
        found = get_session(self.engine, session_id)
        assert found is not None
        return found

    def edit(self, session_id: str, *assignments: str) -> None:
        edit_session(self.engine, session_id, assignments, self.now)

    def apply(self, what: str, session_id: str, start: datetime) -> None:
        if what == "move":
            self.edit(session_id, f"starts_at={start:%Y-%m-%dT%H:%M}Z")
        elif what == "retitle":
            self.edit(session_id, f"title=Masked diffusion, part {session_id} ({start:%d %H})")
        else:
            self.edit(session_id, f"status={'cancelled' if what == 'cancel' else 'scheduled'}")

    def run_pass(self, at: datetime) -> list[str]:
        result = self.dispatcher(lambda: at).run_pass()
        return [o.status for o in result.outcomes]

    def check_post_is_current(self, message: Message) -> None:
        """At the moment of posting, the session is in the state the post describes."""
        session = self.session(message.key.session_id)
        assert described(message) == (session.starts_at, session.cancelled), message.key

    # ------------------------------------------------------------ rules

    @initialize(starts=st.lists(st.sampled_from(STARTS), min_size=2, max_size=2))
    def add_sessions(self, starts: list[datetime]) -> None:
        sessions = [
            SessionData(
                id=sid,
                title=f"Masked diffusion, part {sid}",
                starts_at=start,
                timezone="America/New_York",
                meeting_url="https://example.zoom.us/j/123",
            )
            for sid, start in zip(SESSIONS, starts, strict=True)
        ]
        import_sessions(self.engine, sessions, now=self.now)

    @rule(
        session_id=st.sampled_from(EDITED),
        what=st.sampled_from(CHANGES),
        start=st.sampled_from(STARTS),
        then=st.sampled_from(THEN),
    )
    def change(self, session_id: str, what: str, start: datetime, then: int | None) -> None:
        """An organiser's edit, and maybe a pass right after it on a host whose clock is off."""
        self.settled = False
        self.apply(what, session_id, start)
        if then is not None:
            self.run_pass(self.now + then * M)

    @rule(config=st.sampled_from(sorted(CONFIGS)))
    def reconfigure(self, config: str) -> None:
        self.settled = False
        self.config = config

    @rule(minutes=st.integers(1, 24 * 60))
    def advance(self, minutes: int) -> None:
        self.now = min(self.now + minutes * M, HORIZON - H)

    @rule(channel=st.sampled_from(CHANNELS), failure=st.sampled_from(FAILURES))
    def failing_pass(self, channel: str, failure: str) -> None:
        self.settled = False
        self.channels[channel].failure = failure
        self.run_pass(self.now)
        self.channels[channel].failure = None

    @rule(
        channel=st.sampled_from(CHANNELS),
        what=st.sampled_from(EDITS),
        session_id=st.sampled_from(SESSIONS),
        start=st.sampled_from(STARTS),
    )
    def slow_pass(self, channel: str, what: str, session_id: str, start: datetime) -> None:
        self.settled = False
        self.channels[channel].during = lambda: self.apply(what, session_id, start)
        self.run_pass(self.now)
        self.channels[channel].during = None

    @rule(skew=st.sampled_from((0, 30)))
    def settle(self, skew: int) -> None:
        """An operator settles what needs one; passes run until nothing more goes out.

        The passes run at the model's time or on a host 30 minutes fast: a host whose clock is
        slow sends a change notice once its clock reaches the change, which is later.
        """
        rows = deliveries(self.engine)
        if any(row.status == "retrying" for row in rows):
            self.now = min(self.now + 31 * M, HORIZON)  # past any backoff
        posted = {m.key for c in self.channels.values() for m in c.posts}
        for row in rows:
            if row.status == "uncertain":
                key = (row.session_id, row.notice, row.channel, row.occurrence, row.change)
                was_posted = any(
                    (k.session_id, k.notice, k.channel, k.occurrence, k.change) == key
                    for k in posted
                )
                if was_posted:
                    resolve(self.engine, row.id, "sent", self.now)
                else:
                    retry(self.engine, row.id, self.now)
            elif row.status == "failed" and row.deadline > self.now:
                retry(self.engine, row.id, self.now)  # the operator fixed the cause
        for _ in range(6):
            outcomes = self.run_pass(self.now + skew * M)
            if not {"sent", "retrying", "failed", "uncertain"} & set(outcomes):
                break
        else:
            raise AssertionError("passes kept sending")
        self.settled = True
        self.runs[-1] += 1

    # ------------------------------------------------------------ what must hold

    @invariant()
    def each_channel_was_last_told_the_current_state(self) -> None:
        if not self.settled:
            return
        for sid in SESSIONS:
            session = self.session(sid)
            for channel in self.channels.values():
                told = [m for m in channel.posts if m.key.session_id == sid]
                if not told:
                    continue
                start, cancelled = described(told[-1])
                if cancelled and session.cancelled:
                    continue  # a cancelled session's time no longer matters
                assert (start, cancelled) == (session.starts_at, session.cancelled), (
                    channel.channel,
                    [m.key for m in told],
                    session,
                )

    @invariant()
    def nothing_went_out_twice_and_every_post_is_a_sent_row(self) -> None:
        for channel in self.channels.values():
            keys = [m.key for m in channel.posts]
            assert len(keys) == len(set(keys)), keys
        if not self.settled:
            return
        sent = sorted(
            (r.channel, r.session_id, r.notice, r.occurrence, r.change)
            for r in deliveries(self.engine)
            if r.status == "sent"
        )
        posts = sorted(
            (c.channel, k.session_id, k.notice, k.occurrence, k.change)
            for c in self.channels.values()
            for k in (m.key for m in c.posts)
        )
        assert sent == posts

    @invariant()
    def no_post_repeats_the_text_before_it(self) -> None:
        for channel in self.channels.values():
            texts = [m.summary for m in channel.posts]
            assert all(a != b for a, b in itertools.pairwise(texts)), texts
        x_texts = [m.text for m in self.channels["x"].posts]
        assert len(x_texts) == len(set(x_texts)), x_texts  # X refuses any repeated text

    @invariant()
    def no_row_is_left_in_flight(self) -> None:
        with self.engine.connect() as conn:
            left = conn.scalars(
                select(tables.deliveries.c.status).where(
                    tables.deliveries.c.status.in_(("claimed", "sending"))
                )
            ).all()
        assert left == []


def test_told_state_model(engine: Engine) -> None:
    """Random sequences of edits and passes keep every channel told the truth."""
    machine: Any = type("Machine", (ToldState,), {"engine": engine, "runs": []})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
    print(f"{len(machine.runs)} runs, {sum(machine.runs)} settled passes")
