"""Rescheduled, cancelled and recording notices through real passes on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from bot.config import Reminder, Settings
from bot.dispatch import Dispatcher
from bot.domain import SessionData, Speaker
from bot.store import tables
from bot.store.imports import import_sessions
from bot.testing import FrozenClock, RecordingNotifier
from tests.support.data import statuses

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
A = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)  # Monday 10:00 New York
B = A + 2 * D
SETTINGS = Settings(
    channels=("email", "x"),
    reminders=(
        Reminder("announce", 7 * D, ("email", "x")),
        Reminder("reminder", 1 * D, ("email", "x")),
    ),
    recording_channels=("x",),
)
SESSION = SessionData(
    id="diffucoder",
    title="DiffuCoder: Masked Diffusion Models for Code Generation",
    starts_at=A,
    timezone="America/New_York",
    speakers=(Speaker("Shansan Gong"),),
    meeting_url="https://example.zoom.us/j/123",
)


class Group:
    """A database, a clock and two recording channels."""

    def __init__(self, engine: Engine, now: datetime, settings: Settings = SETTINGS) -> None:
        self.engine = engine
        self.clock = FrozenClock(now)
        self.email, self.x = RecordingNotifier(), RecordingNotifier()
        notifiers = {"email": self.email, "x": self.x}
        self.dispatcher = Dispatcher(engine, settings, self.clock, notifiers)

    def save(self, session: SessionData) -> None:
        import_sessions(self.engine, [session], now=self.clock.now)

    def run(self, at: datetime) -> list[tuple[str, str, str]]:
        self.clock.set(at)
        result = self.dispatcher.run_pass()
        return sorted((o.key.notice, o.key.channel, o.status) for o in result.outcomes)

    def sent(self, channel: str = "x") -> list[str]:
        return [m.key.notice for m in (self.x if channel == "x" else self.email).sent]


def test_a_move_after_the_announcement_sends_one_rescheduled_notice_per_channel(
    engine: Engine,
) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.run(A - 7 * D)  # announce for A
    g.clock.set(A - 6 * D)
    g.save(replace(SESSION, starts_at=B))
    assert g.run(A - 6 * D) == [
        ("rescheduled", "email", "sent"),
        ("rescheduled", "x", "sent"),
    ]
    assert g.run(A - 6 * D + H) == []  # once
    post = g.x.sent[-1]
    assert post.key.occurrence == B
    assert "Mon Dec 14" in post.text and "Wed Dec 16" in post.text  # old and new time
    mail = g.email.sent[-1]
    assert mail.replies_to == ("rec-1",)  # threads under the announcement's id
    assert b"SEQUENCE:1" in mail.attachments[0].data
    # Nothing more for the old time; the new time's reminders go out as usual.
    assert g.run(B - 7 * D - M) == []
    assert g.run(B - 7 * D) == [("announce", "email", "sent"), ("announce", "x", "sent")]
    assert g.run(A - D) == []  # the old start's reminder never goes out
    assert g.run(B - D) == [("reminder", "email", "sent"), ("reminder", "x", "sent")]
    assert g.sent() == ["announce", "rescheduled", "announce", "reminder"]


def test_a_move_before_any_announcement_is_silent(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.clock.set(A - 9 * D)
    g.save(replace(SESSION, starts_at=B))
    g.clock.set(A - 8 * D)
    g.save(replace(SESSION, starts_at=B + H))
    assert g.run(A - 7 * D) == []  # nothing for the old time
    assert g.run(B + H - 7 * D) == [("announce", "email", "sent"), ("announce", "x", "sent")]
    assert "rescheduled" not in g.sent()


def test_reminders_already_due_at_the_new_time_are_superseded_by_the_notice(
    engine: Engine,
) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.run(A - 7 * D)
    moved = A - 6 * D + 12 * H  # the new start is 12 hours after the move: `reminder` is due
    g.clock.set(A - 6 * D)
    g.save(replace(SESSION, starts_at=moved))
    outcomes = g.run(A - 6 * D)
    assert ("rescheduled", "x", "sent") in outcomes
    assert ("reminder", "x", "skipped") in outcomes
    assert ("announce", "x", "skipped") in outcomes
    assert g.sent() == ["announce", "rescheduled"]


def test_moves_back_and_forth_send_one_notice_per_actual_change(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.run(A - 7 * D)
    for step, start in enumerate((B, A, B), start=1):
        g.clock.set(A - 7 * D + step * H)
        g.save(replace(SESSION, starts_at=start))
        assert g.run(A - 7 * D + step * H) == [
            ("rescheduled", "email", "sent"),
            ("rescheduled", "x", "sent"),
        ]
    assert g.sent() == ["announce", "rescheduled", "rescheduled", "rescheduled"]
    assert [m.key.occurrence for m in g.x.sent[1:]] == [B, A, B]


def test_moved_and_moved_back_before_a_pass_sends_nothing(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.run(A - 7 * D)
    g.clock.set(A - 7 * D + H)
    g.save(replace(SESSION, starts_at=B))
    g.save(replace(SESSION, starts_at=A))
    assert g.run(A - 7 * D + 2 * H) == []
    assert g.sent() == ["announce"]


def test_cancel_after_the_announcement_tells_each_channel_that_had_it_once(
    engine: Engine,
) -> None:
    settings = Settings(
        channels=("email", "x"),
        reminders=(Reminder("announce", 7 * D, ("email",)), Reminder("reminder", D, ("x",))),
    )
    g = Group(engine, A - 10 * D, settings)
    g.save(SESSION)
    g.run(A - 7 * D)  # announce on email only
    g.clock.set(A - 3 * D)
    g.save(replace(SESSION, status="cancelled"))
    assert g.run(A - 3 * D) == [("cancelled", "email", "sent")]
    assert g.run(A - D) == []  # no reminder on x, no second notice
    mail = g.email.sent[-1]
    assert b"STATUS:CANCELLED" in mail.attachments[0].data
    assert mail.replies_to == ("rec-1",)


def test_cancel_before_any_announcement_sends_nothing(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.clock.set(A - 9 * D)
    g.save(replace(SESSION, status="cancelled"))
    for at in (A - 7 * D, A - D, A - H):
        assert g.run(at) == []
    assert g.sent() == [] and g.sent("email") == []


def test_recording_inside_the_window_is_announced_once(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.run(A - 7 * D)
    g.run(A - D)
    g.clock.set(A + 3 * D)
    g.save(replace(SESSION, recording_url="https://www.youtube.com/watch?v=abc"))
    assert g.run(A + 3 * D) == [("recording", "x", "sent")]
    assert g.run(A + 4 * D) == []
    assert "https://www.youtube.com/watch?v=abc" in g.x.sent[-1].text


def test_recording_after_the_window_is_not_announced(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.clock.set(A + 15 * D)
    g.save(replace(SESSION, recording_url="https://www.youtube.com/watch?v=abc"))
    assert g.run(A + 15 * D) == []
    assert statuses(engine) == {}


def test_every_change_is_recorded_with_its_time(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.clock.set(A - 6 * D)
    g.save(replace(SESSION, starts_at=B))
    with engine.connect() as conn:
        rows = conn.execute(
            select(tables.session_changes).order_by(tables.session_changes.c.id)
        ).all()
    assert [(r.field, r.old_value, r.new_value) for r in rows] == [
        ("created", None, "2026-12-14T15:00:00Z"),
        ("starts_at", "2026-12-14T15:00:00Z", "2026-12-16T15:00:00Z"),
    ]
    assert rows[1].changed_at == A - 6 * D


def test_change_notices_off_sends_none(engine: Engine) -> None:
    g = Group(engine, A - 10 * D, replace(SETTINGS, change_notices=False))
    g.save(SESSION)
    g.run(A - 7 * D)
    g.clock.set(A - 6 * D)
    g.save(replace(SESSION, starts_at=B))
    assert g.run(A - 6 * D) == []


def test_importing_a_past_session_with_its_recording_sends_nothing(engine: Engine) -> None:
    g = Group(engine, A + 2 * D)
    g.save(replace(SESSION, recording_url="https://www.youtube.com/watch?v=abc"))
    assert g.run(A + 2 * D) == []
    assert statuses(engine) == {}


def test_a_recording_added_ten_days_after_the_session_is_still_announced(engine: Engine) -> None:
    g = Group(engine, A - 10 * D)
    g.save(SESSION)
    g.run(A - 7 * D)
    g.run(A - D)
    g.clock.set(A + 10 * D)  # older than the 7 days a pass reads for reminders
    g.save(replace(SESSION, recording_url="https://www.youtube.com/watch?v=late"))
    assert g.run(A + 10 * D) == [("recording", "x", "sent")]
