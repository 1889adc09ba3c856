"""Subscribers end up told the truth (SPEC §6 rules 6–8): the told-state model, pass by pass.

Each test rebuilds one of the sequences of edits that broke the promise before the told-state
model (issue 7, scenarios 1, 2, 3, 5, 6 and 9), through the real dispatcher and the real
`sessions set` / import code, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from bot.config import Reminder, Settings
from bot.dispatch import Dispatcher
from bot.domain import Notice, SessionData, Speaker
from bot.errors import MaybeSentError
from bot.notifiers.base import Message
from bot.operator import resolve
from bot.rules.planner import plan
from bot.store import tables
from bot.store.edits import edit_session
from bot.store.imports import import_sessions
from bot.store.reads import get_session, load_window
from bot.testing import FrozenClock, RecordingNotifier
from tests.support.data import deliveries

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
A = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)  # Monday 10:00 New York
B = A + 2 * D
REMINDERS = (
    Reminder("announce", 7 * D, ("email", "x")),
    Reminder("reminder", 1 * D, ("email", "x")),
)
SETTINGS = Settings(channels=("email", "x"), reminders=REMINDERS, recording_channels=("x",))
SESSION = SessionData(
    id="diffucoder",
    title="DiffuCoder: Masked Diffusion Models for Code Generation",
    starts_at=A,
    timezone="America/New_York",
    speakers=(Speaker("Shansan Gong", x="@gong"),),
    meeting_url="https://example.zoom.us/j/123",
)
Posts = list[tuple[str, str]]


class Group:
    """One database, a clock, and two recording channels behind the real dispatcher."""

    def __init__(self, engine: Engine, now: datetime, settings: Settings = SETTINGS) -> None:
        self.engine = engine
        self.clock = FrozenClock(now)
        self.email, self.x = RecordingNotifier(), RecordingNotifier()
        self.settings = settings
        self.dispatcher = self.make_dispatcher(settings, self.clock)

    def make_dispatcher(self, settings: Settings, clock: Callable[[], datetime]) -> Dispatcher:
        return Dispatcher(self.engine, settings, clock, {"email": self.email, "x": self.x})

    def save(self, session: SessionData = SESSION, **changes: object) -> None:
        import_sessions(self.engine, [replace(session, **changes)], now=self.clock.now)

    def set(self, *assignments: str) -> None:
        edit_session(self.engine, SESSION.id, assignments, self.clock.now)

    def run(self, at: datetime | None = None, *channels: str) -> list[tuple[str, str, str]]:
        if at is not None:
            self.clock.set(at)
        result = self.dispatcher.run_pass(channels=channels or None)
        return sorted((o.key.notice, o.key.channel, o.status) for o in result.outcomes)

    def session(self) -> SessionData:
        found = get_session(self.engine, SESSION.id)
        assert found is not None
        return found

    def dispatcher_plan(self) -> list[Notice]:
        """What a pass would plan now, without acting on it."""
        sessions, rows = load_window(self.engine, None, None, session_id=SESSION.id)
        return plan(sessions, rows, self.settings, self.clock.now)

    def posts(self, channel: str = "x") -> Posts:
        """(notice, first line) of what went out on a channel, in order."""
        sent = self.x.sent if channel == "x" else self.email.sent
        return [(m.key.notice, (m.subject or m.text).splitlines()[0]) for m in sent]

    def notices(self, channel: str = "x") -> list[str]:
        return [notice for notice, _ in self.posts(channel)]


def both(notice: str, status: str = "sent") -> list[tuple[str, str, str]]:
    return [(notice, "email", status), (notice, "x", status)]


# ---------------------------------------------------------------- scenario 1: a second cancel


def test_a_second_cancellation_after_a_reinstatement_is_announced(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    assert g.run(A - 7 * D) == both("announce")
    g.clock.set(A - 6 * D)
    g.set("status=cancelled")
    assert g.run(A - 6 * D + M) == both("cancelled")
    g.clock.set(A - 5 * D)
    g.set("status=scheduled")
    assert g.run(A - 5 * D + M) == both("reinstated")  # subscribers hear it is back on
    assert g.run(A - D) == both("reminder")
    g.clock.set(A - D + H)
    g.set("status=cancelled")
    assert g.run(A - D + H + M) == both("cancelled")  # the second cancellation, announced
    assert g.run(A - D + 2 * H) == []  # once
    assert g.notices() == ["announce", "cancelled", "reinstated", "reminder", "cancelled"]
    texts = [m.text for m in g.x.sent]
    assert len(set(texts)) == len(texts)  # X would refuse a repeated text
    assert "Back on" in g.x.sent[2].text and "Cancelled (update 3)" in g.x.sent[4].text


def test_a_second_cancellation_through_prune_and_reimport_is_announced(engine: Engine) -> None:
    other = replace(SESSION, id="other", title="Another session", starts_at=A + 7 * D)
    g = Group(engine, A - 10 * D)
    import_sessions(engine, [SESSION, other], now=g.clock.now)
    g.run(A - 7 * D)

    def reimport(*sessions: SessionData, at: datetime) -> None:
        g.clock.set(at)
        import_sessions(engine, list(sessions), now=at, prune=True)

    reimport(other, at=A - 6 * D)  # missing from the file: cancelled, it was announced
    assert g.run(A - 6 * D + M) == both("cancelled")
    reimport(SESSION, other, at=A - 5 * D)  # back in the file, scheduled
    assert g.run(A - 5 * D + M) == both("reinstated")
    reimport(other, at=A - 4 * D)
    assert g.run(A - 4 * D + M) == both("cancelled")
    assert g.notices() == ["announce", "cancelled", "reinstated", "cancelled"]


def test_a_reinstatement_before_the_cancel_notice_went_out_sends_nothing(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    g.clock.set(A - 6 * D)
    g.set("status=cancelled")
    g.set("status=scheduled")
    assert g.run(A - 6 * D + M) == []
    assert g.notices() == ["announce"]


def test_a_reinstatement_at_a_new_time_says_both_times(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    g.clock.set(A - 6 * D)
    g.set("status=cancelled")
    g.run(A - 6 * D + M)
    g.clock.set(A - 5 * D)
    g.set("status=scheduled", f"starts_at={B:%Y-%m-%dT%H:%M}Z")
    # The new time's announce was due already: the notice stands in for it.
    assert g.run(A - 5 * D + M) == both("announce", "skipped") + both("reinstated")
    post = g.x.sent[-1].text
    assert "Back on" in post and "Wed Dec 16" in post and "was Mon Dec 14" in post
    mail = g.email.sent[-1]
    assert mail.subject is not None and mail.subject.startswith("Back on (update 2)")


def test_channels_told_nothing_hear_nothing_of_a_cancel_and_reinstatement(engine: Engine) -> None:
    settings = replace(SETTINGS, reminders=(Reminder("announce", 7 * D, ("email",)),))
    g = Group(engine, A - 10 * D, settings)
    g.save()
    g.run(A - 7 * D)  # email only
    g.clock.set(A - 6 * D)
    g.set("status=cancelled")
    assert g.run(A - 6 * D + M) == [("cancelled", "email", "sent")]
    g.clock.set(A - 5 * D)
    g.set("status=scheduled")
    assert g.run(A - 5 * D + M) == [("reinstated", "email", "sent")]
    assert g.x.sent == []


def test_the_calendar_sequence_rises_with_every_change_cancel_and_reinstate_included(
    engine: Engine,
) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    for step, change in enumerate(("status=cancelled", "status=scheduled", "title=New title")):
        g.clock.set(A - 6 * D + step * H)
        g.set(change)
        g.run(A - 6 * D + step * H + M)
    sequences = [
        int(line.split(b":")[1])
        for mail in g.email.sent
        for line in mail.attachments[0].data.splitlines()
        if line.startswith(b"SEQUENCE:")
    ]
    assert sequences == [0, 1, 2]  # announce, cancelled, reinstated (the title change says nothing)
    with engine.connect() as conn:
        assert conn.scalar(select(tables.sessions.c.sequence)) == 3


# ---------------------------------------------------------------- scenario 2: database order


def test_hosts_with_skewed_clocks_do_not_reorder_what_a_channel_was_told(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    ahead = FrozenClock(A)  # a second host whose clock is 30 minutes fast
    fast = g.make_dispatcher(SETTINGS, ahead)
    g.save()
    g.run(A - 7 * D)
    g.clock.set(A - 6 * D)
    g.set(f"starts_at={B:%Y-%m-%dT%H:%M}Z")
    ahead.set(A - 6 * D + M + 30 * M)
    assert {o.key.notice for o in fast.run_pass().outcomes} == {"rescheduled"}  # told B
    g.clock.set(A - 6 * D + 10 * M)
    g.set(f"starts_at={A:%Y-%m-%dT%H:%M}Z")
    assert g.run(A - 6 * D + 11 * M) == both("rescheduled")  # told A, recorded "earlier"
    g.clock.set(A - 6 * D + 20 * M)
    g.set(f"starts_at={B:%Y-%m-%dT%H:%M}Z")
    assert g.run(A - 6 * D + 21 * M) == both("rescheduled")  # the move back to B is announced
    assert [m.key.occurrence for m in g.x.sent] == [A, B, A, B]


def test_a_slow_post_recorded_after_a_later_one_keeps_the_database_order(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    in_flight, release = threading.Event(), threading.Event()

    def slow(message: Message) -> None:
        if message.key.notice == "announce" and message.key.channel == "x":
            in_flight.set()
            assert release.wait(30)

    g.x.fail_with = slow  # the announce on X hangs until released (it is not a failure)
    g.clock.set(A - 7 * D)
    worker = threading.Thread(target=lambda: g.dispatcher.run_pass(channels=["x"]))
    worker.start()
    assert in_flight.wait(30)
    # While the announce of A is on its way, the session moves; another pass tells X of B.
    later = FrozenClock(A - 7 * D + 5 * M)
    g.clock.set(A - 7 * D + 4 * M)
    g.set(f"starts_at={B:%Y-%m-%dT%H:%M}Z")
    other = g.make_dispatcher(SETTINGS, later)
    assert [o.key.notice for o in other.run_pass(channels=["x"]).outcomes] == ["rescheduled"]
    g.clock.set(A - 7 * D + 10 * M)  # the slow announce's outcome is written last
    release.set()
    worker.join(30)
    assert [(m.key.notice, m.key.occurrence) for m in g.x.sent] == [
        ("rescheduled", B),
        ("announce", A),
    ]
    # The announce was granted its mark first: X was last told B. A move back is announced.
    g.clock.set(A - 6 * D)
    g.set(f"starts_at={A:%Y-%m-%dT%H:%M}Z")
    assert g.run(A - 6 * D + M, "x") == [("rescheduled", "x", "sent")]
    assert g.x.sent[-1].key.occurrence == A


# ---------------------------------------------------------------- scenario 3: the sixth move


def test_six_moves_back_and_forth_are_each_announced_with_a_text_of_their_own(
    engine: Engine,
) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    for step, start in enumerate((B, A, B, A, B, A), start=1):
        g.clock.set(A - 7 * D + step * H)
        g.set(f"starts_at={start:%Y-%m-%dT%H:%M}Z")
        assert g.run(A - 7 * D + step * H + M) == both("rescheduled"), step
    texts = [m.text for m in g.x.sent]
    assert len(texts) == 7 and len(set(texts)) == 7
    assert texts[5].startswith("New time (update 5)")
    subjects = [m.subject for m in g.email.sent]
    assert len(set(subjects)) == 7
    message_ids = {m.key.message_id("example.org") for m in g.email.sent}
    assert len(message_ids) == 7


# ---------------------------------------------------------------- scenario 5: the pre-send check


def test_a_cancelled_notice_is_not_sent_after_the_uncancel_committed(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    g.clock.set(A - 6 * D)
    g.set("status=cancelled")

    def uncancel_while_posting(message: Message) -> None:
        if message.key.notice == "cancelled":
            g.email.fail_with = None
            edit_session(engine, SESSION.id, ["status=scheduled"], A - 6 * D + 2 * M)

    g.email.fail_with = uncancel_while_posting  # the email goes out; X's turn comes after
    # X's cancelled notice is refused at its mark and given back; planning again, the email
    # list, told "cancelled", hears it is back on, and X, told nothing new, hears nothing.
    assert g.run(A - 6 * D + 3 * M) == [
        ("cancelled", "email", "sent"),
        ("cancelled", "x", "skipped"),
        ("reinstated", "email", "sent"),
    ]
    assert g.notices("x") == ["announce"]
    assert g.notices("email") == ["announce", "cancelled", "reinstated"]
    assert g.run(A - 6 * D + 10 * M) == []


def test_a_reminder_is_not_sent_for_the_time_the_session_left_while_posting(
    engine: Engine,
) -> None:
    g = Group(engine, A - 10 * D)
    g.save()

    def move_while_posting(message: Message) -> None:
        if message.key.channel == "email":
            g.email.fail_with = None
            edit_session(engine, SESSION.id, [f"starts_at={B:%Y-%m-%dT%H:%M}Z"], A - 7 * D)

    g.email.fail_with = move_while_posting
    # X's announce of the old time is given back at its mark, and the new plan drops it; the
    # email list, which got the old time, hears of the move.
    assert g.run(A - 7 * D + M) == [
        ("announce", "email", "sent"),
        ("announce", "x", "skipped"),
        ("rescheduled", "email", "sent"),
    ]
    assert g.x.sent == []
    assert g.notices("email") == ["announce", "rescheduled"]


def test_a_notice_whose_session_changed_meanwhile_is_rendered_again(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()

    def retitle_while_posting(message: Message) -> None:
        g.email.fail_with = None
        edit_session(engine, SESSION.id, ["title=A better title"], A - 7 * D)

    g.email.fail_with = retitle_while_posting
    assert g.run(A - 7 * D + M) == both("announce")
    assert "A better title" in g.x.sent[0].text  # X's announce was rendered from the new title
    assert "DiffuCoder" in (g.email.sent[0].subject or "")


# ---------------------------------------------------------------- scenario 6: config changes


def test_adding_a_week_ahead_notice_after_the_day_before_reminder_sends_nothing(
    engine: Engine,
) -> None:
    settings = replace(SETTINGS, reminders=(Reminder("reminder", D, ("email", "x")),))
    g = Group(engine, A - 10 * D, settings)
    g.save()
    assert g.run(A - D) == both("reminder")
    g.dispatcher = g.make_dispatcher(SETTINGS, g.clock)  # announce=7d added afterwards
    assert g.run(A - D + H) == both("announce", "skipped")
    assert g.notices() == ["reminder"]


def test_renaming_a_notice_whose_twin_was_sent_sends_nothing(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    renamed = (Reminder("preview", 7 * D, ("email", "x")), REMINDERS[1])
    g.dispatcher = g.make_dispatcher(replace(SETTINGS, reminders=renamed), g.clock)
    outcomes = g.run(A - 7 * D + H)
    assert outcomes == both("preview", "skipped")
    with engine.connect() as conn:
        reasons = set(conn.scalars(select(tables.deliveries.c.reason).distinct()))
    assert "superseded by announce, already sent" in reasons
    assert g.run(A - D) == both("reminder")  # the nearer reminder still goes out
    assert g.notices() == ["announce", "reminder"]


# ---------------------------------------------------------------- scenario 9: recording


def test_a_recording_set_before_the_end_waits_for_the_end(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    g.run(A - D)
    g.clock.set(A - H)
    g.set("recording_url=https://www.youtube.com/watch?v=early")
    assert g.run(A) == []  # the start: the session is still running
    assert g.run(A + 59 * M) == []
    assert g.run(A + H) == [("recording", "x", "sent")]  # its end (60 minutes)
    assert g.notices() == ["announce", "reminder", "recording"]


# ---------------------------------------------------------------- uncertain counts as told


def test_an_uncertain_message_counts_as_told_until_resolved(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.x.fail_with = MaybeSentError("timeout after the request")
    assert ("announce", "x", "uncertain") in g.run(A - 7 * D)
    g.x.fail_with = None
    g.clock.set(A - 6 * D)
    g.set(f"starts_at={B:%Y-%m-%dT%H:%M}Z")
    # X may have shown the announcement: it hears of the move.
    assert g.run(A - 6 * D + M) == both("rescheduled")
    x_rows = [d for d in deliveries(engine) if d.channel == "x" and d.notice == "announce"]
    resolve(engine, x_rows[0].id, "failed", A - 6 * D + 2 * M)
    g.clock.set(A - 6 * D + H)
    g.set(f"starts_at={A:%Y-%m-%dT%H:%M}Z")
    assert g.run(A - 6 * D + H + M) == both("rescheduled")  # X was told B by the notice


def test_a_change_notice_is_refused_once_its_channel_was_told_something_newer(
    engine: Engine,
) -> None:
    from bot.store import ledger

    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    moved = A - 2 * D + 12 * H  # the day-before reminder of the new time is due at once
    g.clock.set(A - 2 * D)
    g.set(f"starts_at={moved:%Y-%m-%dT%H:%M}Z")
    g.clock.set(A - 2 * D + M)
    planned = [n for n in g.dispatcher_plan() if n.action == "send" and n.key.channel == "x"]
    assert [n.key.notice for n in planned] == ["rescheduled"]
    (held,) = ledger.claim(engine, planned, g.clock.now, SETTINGS.lease)
    # Before this process marks it, another one tells X of the new time, by the reminder.
    assert g.run(A - 2 * D + 2 * M, "x") == [
        ("announce", "x", "skipped"),
        ("reminder", "x", "sent"),
    ]
    mark = ledger.mark_sending(
        engine, held, g.clock.now, SETTINGS.lease, version=g.session().sequence
    )
    assert mark == "changed"  # X was told the current time after the notice was planned


def test_a_change_undone_while_its_notice_went_out_and_made_again_is_announced(
    engine: Engine,
) -> None:
    g = Group(engine, A - 10 * D)
    g.save()
    g.run(A - 7 * D)
    g.clock.set(A - 6 * D)
    g.set("status=cancelled")

    def uncancel_while_posting(message: Message) -> None:
        g.email.fail_with = None
        edit_session(engine, SESSION.id, ["status=scheduled"], A - 6 * D)

    g.email.fail_with = uncancel_while_posting
    g.run(A - 6 * D + M)  # email: cancelled, then reinstated; X's cancelled notice dropped
    assert g.notices("x") == ["announce"]
    g.clock.set(A - 5 * D)
    g.set("status=cancelled")  # the same change as the one X never heard of, made again
    assert g.run(A - 5 * D + M) == both("cancelled")
    assert g.notices("x") == ["announce", "cancelled"]
