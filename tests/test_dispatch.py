"""A pass against a real database (SQLite and PostgreSQL) with recording notifiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, update

from bot.config import Reminder, Settings
from bot.dispatch import Dispatcher, retry_delay
from bot.errors import DuplicateContentError, MaybeSentError, PermanentError, TransientError
from bot.operator import retry
from bot.store import ledger, tables
from bot.store.db import write_transaction
from bot.testing import FrozenClock, RecordingNotifier
from tests.support.data import add_session, deliveries, statuses

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
START = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)
SETTINGS = Settings(
    channels=("email", "x"),
    reminders=(
        Reminder("announce", 7 * D, ("email", "x")),
        Reminder("reminder", 1 * D, ("email", "x")),
        Reminder("starting", 1 * H, ("email", "x")),
    ),
)


def make(engine: Engine, now: datetime) -> tuple[Dispatcher, FrozenClock, RecordingNotifier]:
    clock = FrozenClock(now)
    email, x = RecordingNotifier(), RecordingNotifier()
    return Dispatcher(engine, SETTINGS, clock, {"email": email, "x": x}), clock, x


def test_each_notice_goes_out_once_at_its_time(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 8 * D)
    assert dispatcher.run_pass().outcomes == []
    for due in (START - 7 * D, START - D, START - H):
        clock.set(due)
        first = dispatcher.run_pass()
        again = dispatcher.run_pass()
        assert {o.status for o in first.outcomes} == {"sent"}
        assert len(first.outcomes) == 2  # email and x
        assert again.outcomes == []
    assert [m.key.notice for m in x.sent] == ["announce", "reminder", "starting"]
    assert set(statuses(engine).values()) == {"sent"}


def test_dry_run_renders_but_writes_and_sends_nothing(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, _clock, x = make(engine, START - 7 * D)
    result = dispatcher.run_pass(dry_run=True)
    assert [o.status for o in result.outcomes] == ["would_send", "would_send"]
    assert all(o.text and "Session s1" in o.text for o in result.outcomes)
    assert x.attempts == []
    assert deliveries(engine) == []


def test_transient_failures_back_off_1_2_4_minutes_then_send(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 7 * D)
    x.fail_with = TransientError("HTTP 503")
    waits = []
    for _ in range(3):
        result = dispatcher.run_pass(channels=["x"])
        assert [o.status for o in result.outcomes] == ["retrying"]
        row = deliveries(engine)[0]
        assert row.next_attempt_at is not None
        waits.append(row.next_attempt_at - clock.now)
        assert dispatcher.run_pass(channels=["x"]).outcomes == []  # not before its time
        clock.set(row.next_attempt_at)
    assert waits == [1 * M, 2 * M, 4 * M]
    x.fail_with = None
    assert [o.status for o in dispatcher.run_pass(channels=["x"]).outcomes] == ["sent"]
    assert len(x.sent) == 1 and len(x.attempts) == 4
    (row,) = deliveries(engine)
    assert (row.status, row.reason, row.attempts) == ("sent", None, 4)  # no earlier error kept


def test_backoff_is_capped_at_thirty_minutes() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 5, 6, 9)] == [M, 2 * M, 4 * M, 16 * M, 30 * M, 30 * M]


def test_rate_limit_reset_is_honoured(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, _clock, x = make(engine, START - 7 * D)
    reset = START - 7 * D + 17 * M
    x.fail_with = TransientError("HTTP 429", retry_at=reset)
    dispatcher.run_pass(channels=["x"])
    assert deliveries(engine)[0].next_attempt_at == reset


def test_rate_limit_reset_after_the_deadline_is_missed(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, _clock, x = make(engine, START - 30 * M)
    x.fail_with = TransientError("HTTP 429", retry_at=START + H)
    result = dispatcher.run_pass(channels=["x"])
    assert [o.status for o in result.outcomes if o.key.notice == "starting"] == ["missed"]
    assert result.exit_code == 1


def test_permanent_failure_is_not_retried(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 7 * D)
    x.fail_with = PermanentError("HTTP 401 Unauthorized")
    result = dispatcher.run_pass(channels=["x"])
    assert [(o.status, o.reason) for o in result.outcomes] == [("failed", "HTTP 401 Unauthorized")]
    assert result.exit_code == 1
    clock.advance(H)
    x.fail_with = None
    assert dispatcher.run_pass(channels=["x"]).outcomes == []
    assert len(x.attempts) == 1


def test_maybe_sent_becomes_uncertain_and_is_never_resent_by_itself(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 7 * D)
    x.fail_with = MaybeSentError("read timeout after the request was sent")
    assert dispatcher.run_pass(channels=["x"]).exit_code == 1
    clock.advance(2 * H)
    x.fail_with = None
    assert dispatcher.run_pass(channels=["x"]).outcomes == []
    assert statuses(engine) == {("s1", "announce", "x"): "uncertain"}


def test_duplicate_content_on_an_operator_retry_proves_the_post_exists(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 7 * D)
    x.fail_with = MaybeSentError("dropped")
    dispatcher.run_pass(channels=["x"])
    retry(engine, deliveries(engine)[0].id, clock.now)
    x.fail_with = DuplicateContentError()
    result = dispatcher.run_pass(channels=["x"])
    assert [o.status for o in result.outcomes] == ["sent"]
    assert "duplicate" in (deliveries(engine)[0].reason or "")


def test_duplicate_content_on_a_first_attempt_fails(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, _clock, x = make(engine, START - 7 * D)
    x.fail_with = DuplicateContentError()
    result = dispatcher.run_pass(channels=["x"])
    assert [(o.status, o.reason) for o in result.outcomes] == [("failed", "duplicate content")]


def test_expired_sending_mark_becomes_uncertain_and_a_late_success_is_recorded(
    engine: Engine,
) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 7 * D)
    notices = [n for n in _due(dispatcher) if n.key.channel == "x"]
    (held,) = ledger.claim(engine, notices, clock.now, SETTINGS.lease)
    assert ledger.mark_sending(engine, held, clock.now, SETTINGS.lease, version=0) == "sending"
    clock.advance(SETTINGS.lease + M)  # the sender is slow; another pass sweeps
    result = dispatcher.run_pass(channels=["x"])
    assert [o.status for o in result.outcomes] == ["uncertain"]
    assert x.attempts == []  # the sweep never re-sends
    assert ledger.record(engine, held, "sent", clock.now, external_id="late-1")
    assert statuses(engine) == {("s1", "announce", "x"): "sent"}


def test_expired_claim_without_a_sending_mark_goes_back_in_line(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 7 * D)
    notices = [n for n in _due(dispatcher) if n.key.channel == "x"]
    (held,) = ledger.claim(engine, notices, clock.now, SETTINGS.lease)
    clock.advance(SETTINGS.lease + M)
    result = dispatcher.run_pass(channels=["x"])
    assert [o.status for o in result.outcomes] == ["sent"]
    assert ledger.mark_sending(engine, held, clock.now, SETTINGS.lease, version=0) == "lost"
    assert len(x.sent) == 1


def test_a_reminder_is_not_sent_once_its_deadline_passed_during_the_pass(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 2 * M)
    notices = [n for n in _due(dispatcher) if n.key.channel == "x" and n.action == "send"]
    (held,) = ledger.claim(engine, notices, clock.now, SETTINGS.lease)
    clock.set(START + M)
    outcome = dispatcher._deliver(held, dispatcher_session(engine))
    assert outcome.status == "missed"
    assert x.attempts == []


def test_a_session_cancelled_while_the_pass_runs_is_not_sent(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - 7 * D)
    notices = [n for n in _due(dispatcher) if n.key.channel == "x"]
    (held,) = ledger.claim(engine, notices, clock.now, SETTINGS.lease)
    with write_transaction(engine) as conn:  # an operator cancels between claim and send
        conn.execute(update(tables.sessions).values(status="cancelled"))
    assert dispatcher._deliver(held, dispatcher_session(engine)) is None  # given back
    assert statuses(engine) == {("s1", "announce", "x"): "pending"}
    assert x.attempts == []
    result = dispatcher.run_pass(channels=["x"])  # the next plan sees the cancellation
    assert [(o.status, o.reason) for o in result.outcomes] == [("skipped", "session cancelled")]
    assert x.attempts == []


def test_clock_going_backwards_after_a_send_does_not_resend(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, x = make(engine, START - D)
    dispatcher.run_pass(channels=["x"])
    clock.advance(-2 * H)
    clock.advance(2 * H + M)
    assert dispatcher.run_pass(channels=["x"]).outcomes == []
    assert len(x.sent) == 1


def test_stopping_releases_unsent_claims(engine: Engine) -> None:
    for n in range(3):
        add_session(engine, f"s{n}", START)
    dispatcher, _clock, x = make(engine, START - 7 * D)
    x.fail_with = lambda _m: (setattr(dispatcher, "should_stop", lambda: True), None)[1]
    dispatcher.run_pass(channels=["x"])
    assert len(x.sent) == 1
    assert sorted(statuses(engine).values()) == ["pending", "pending", "sent"]
    dispatcher.should_stop = lambda: False
    x.fail_with = None
    assert [o.status for o in dispatcher.run_pass(channels=["x"]).outcomes] == ["sent", "sent"]


def test_operator_cannot_retry_after_the_deadline(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, _clock, x = make(engine, START - 7 * D)
    x.fail_with = PermanentError("HTTP 403")
    dispatcher.run_pass(channels=["x"])
    row_id = deliveries(engine)[0].id
    import pytest

    from bot.errors import UsageError

    with pytest.raises(UsageError, match="deadline"):
        retry(engine, row_id, START + M)
    with write_transaction(engine) as conn:
        conn.execute(update(ledger.TABLE).values(status="failed"))


def _due(dispatcher: Dispatcher) -> list:  # type: ignore[type-arg]
    from bot.rules.planner import plan, session_window
    from bot.store.reads import load_window

    now = dispatcher.clock()
    sessions, rows = load_window(dispatcher.engine, *session_window(SETTINGS, now))
    return [n for n in plan(sessions, rows, SETTINGS, now) if n.action == "send"]


def dispatcher_session(engine: Engine):  # type: ignore[no-untyped-def]
    from bot.store.reads import get_session

    return get_session(engine, "s1")
