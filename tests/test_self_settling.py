"""Self-settling (SPEC §6 rule 5a) in the dispatcher, against a real database (both engines).

The channel is bot.testing.SettlingNotifier: it keeps its posts by reference (as Bluesky keeps
records by key) and answers settle() from them; the ledger, claims and marks are the real ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.config import Reminder, Settings
from bot.dispatch import Dispatcher
from bot.operator import retry
from bot.store import ledger
from bot.testing import FrozenClock, SettlingNotifier
from tests.support.data import add_session, deliveries

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
START = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)
SETTINGS = Settings(
    channels=("settling",),
    reminders=(Reminder("announce", 7 * D, ("settling",)),),
)


def make(engine: Engine, now: datetime) -> tuple[Dispatcher, FrozenClock, SettlingNotifier]:
    clock = FrozenClock(now)
    channel = SettlingNotifier()
    return Dispatcher(engine, SETTINGS, clock, {"settling": channel}), clock, channel


def test_the_reference_is_stored_with_the_sending_mark_and_carried_by_the_message(
    engine: Engine,
) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    assert [o.status for o in dispatcher.run_pass().outcomes] == ["sent"]
    (row,) = deliveries(engine)
    [message] = channel.attempts
    assert message.reference is not None and row.reference == message.reference
    assert row.referenced_at == clock.now and row.settle_after is None
    assert row.external_id == channel.posts[message.reference]


def test_an_answer_lost_after_the_post_settles_as_sent_in_the_same_pass(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, _clock, channel = make(engine, START - 7 * D)
    channel.answer_lost = 1
    result = dispatcher.run_pass()
    assert [o.status for o in result.outcomes] == ["uncertain", "sent"]
    assert result.exit_code == 0  # it settled: nothing for an operator
    (row,) = deliveries(engine)
    assert row.status == "sent" and "settled by the channel" in (row.reason or "")
    assert len(channel.posts) == 1 and len(channel.attempts) == 1
    assert row.external_id == "post-1" and row.settle_after is None


def test_a_post_provably_not_made_is_sent_again_once_with_the_same_reference(
    engine: Engine,
) -> None:
    add_session(engine, "s1", START)
    dispatcher, _clock, channel = make(engine, START - 7 * D)
    channel.lost_before = 1
    result = dispatcher.run_pass()
    assert [o.status for o in result.outcomes] == ["uncertain", "retrying", "sent"]
    assert result.exit_code == 0
    first, second = channel.attempts
    assert first.reference == second.reference  # the same key: a duplicate is impossible
    assert len(channel.posts) == 1 and channel.minted == 1
    (row,) = deliveries(engine)
    assert (row.status, row.attempts, row.reason) == ("sent", 2, None)


def test_no_answer_keeps_it_uncertain_and_a_later_pass_asks_again(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    channel.answer_lost, channel.lookup = 1, "unknown"
    assert dispatcher.run_pass().exit_code == 1
    (row,) = deliveries(engine)
    assert row.status == "uncertain" and row.settle_after == clock.now + M  # at least a minute
    asked = len(channel.asked)
    assert dispatcher.run_pass().outcomes == [] and len(channel.asked) == asked  # not yet
    clock.advance(M)
    channel.lookup = None
    result = dispatcher.run_pass()
    assert [o.status for o in result.outcomes] == ["sent"]
    assert len(channel.posts) == 1 and len(channel.attempts) == 1


def test_the_wait_between_asks_grows_with_the_age_and_stops_at_thirty_minutes(
    engine: Engine,
) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    channel.answer_lost, channel.lookup = 1, "unknown"
    dispatcher.run_pass()
    waits = []
    for _ in range(14):
        (row,) = deliveries(engine)
        assert row.settle_after is not None
        clock.set(row.settle_after)
        dispatcher.run_pass()
        (after,) = deliveries(engine)
        assert after.settle_after is not None
        waits.append(after.settle_after - clock.now)
    assert waits == sorted(waits) and waits[-1] == 30 * M and waits[0] >= M


def test_a_final_no_leaves_it_to_an_operator_and_is_never_asked_again(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    channel.answer_lost, channel.lookup = 1, "final"
    result = dispatcher.run_pass()
    assert [o.status for o in result.outcomes] == ["uncertain", "uncertain"]
    (row,) = deliveries(engine)
    assert row.settle_after is None and "cannot be settled" in (row.reason or "")
    asked = len(channel.asked)
    clock.advance(D)
    assert dispatcher.run_pass().outcomes == [] and len(channel.asked) == asked


def test_a_sender_killed_mid_send_is_settled_by_the_next_pass_after_its_lease(
    engine: Engine,
) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    # A process that marked `sending` with a reference, posted, and died before recording.
    notices = [n for n in ledger_due(dispatcher)]
    (held,) = ledger.claim(engine, notices, clock.now, SETTINGS.lease)
    reference = "ref-killed"
    mark = ledger.mark_sending(
        engine, held, clock.now, SETTINGS.lease, "text", version=0, reference=reference
    )
    assert mark == "sending"
    channel.posts[reference] = "post-killed"
    assert dispatcher.run_pass().outcomes == []  # inside the lease: nothing moves
    clock.advance(SETTINGS.lease + M)
    result = dispatcher.run_pass()
    assert [o.status for o in result.outcomes] == ["uncertain", "sent"]
    (row,) = deliveries(engine)
    assert (row.status, row.external_id) == ("sent", "post-killed")
    assert channel.attempts == []  # settled by looking, not by posting


def test_a_killed_sender_whose_post_never_arrived_is_sent_once_by_the_next_pass(
    engine: Engine,
) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    (held,) = ledger.claim(engine, ledger_due(dispatcher), clock.now, SETTINGS.lease)
    ledger.mark_sending(engine, held, clock.now, SETTINGS.lease, "t", version=0, reference="r1")
    clock.advance(SETTINGS.lease + M)
    result = dispatcher.run_pass()
    assert [o.status for o in result.outcomes] == ["uncertain", "retrying", "sent"]
    assert list(channel.posts) == ["r1"] and [m.reference for m in channel.attempts] == ["r1"]


def test_past_the_deadline_a_post_provably_not_made_is_missed(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    channel.lost_before, channel.lookup = 1, "unknown"
    dispatcher.run_pass()
    clock.set(START + M)  # the channel answers again only after the start
    channel.lookup = None
    result = dispatcher.run_pass()
    assert [o.status for o in result.outcomes] == ["missed"]
    assert channel.posts == {} and len(channel.attempts) == 1


def test_an_operator_retry_reuses_the_reference(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    channel.answer_lost, channel.lookup = 1, "final"
    dispatcher.run_pass()
    (row,) = deliveries(engine)
    retry(engine, row.id, clock.now)
    result = dispatcher.run_pass()
    # The channel refuses a second post under the same reference: no duplicate, a clear failure.
    assert [o.status for o in result.outcomes] == ["failed"]
    assert len(channel.posts) == 1
    assert {m.reference for m in channel.attempts} == {row.reference}


def test_a_dry_run_never_asks_the_channel(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    channel.answer_lost, channel.lookup = 1, "unknown"
    dispatcher.run_pass()
    clock.advance(H)
    asked = len(channel.asked)
    dispatcher.run_pass(dry_run=True)
    assert len(channel.asked) == asked


def test_two_processes_never_ask_about_the_same_delivery_at_once(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    channel.answer_lost, channel.lookup = 1, "unknown"
    dispatcher.run_pass()
    clock.advance(H)
    first = ledger.take_unsettled(engine, ["settling"], clock.now, SETTINGS.lease)
    second = ledger.take_unsettled(engine, ["settling"], clock.now, SETTINGS.lease)
    assert len(first) == 1 and second == []


def ledger_due(dispatcher: Dispatcher) -> list:  # type: ignore[type-arg]
    from bot.rules.planner import plan, session_window
    from bot.store.reads import load_window

    now = dispatcher.clock()
    sessions, rows = load_window(dispatcher.engine, *session_window(SETTINGS, now))
    return [n for n in plan(sessions, rows, SETTINGS, now) if n.action == "send"]


def test_a_channel_that_loses_every_request_is_not_hammered(engine: Engine) -> None:
    add_session(engine, "s1", START)
    dispatcher, clock, channel = make(engine, START - 7 * D)
    channel.lost_before = 100  # every request lost before it posts: provably absent each time
    result = dispatcher.run_pass()
    # The first re-send goes at once; the next waits like any failure (1m, then 2m …).
    assert [o.status for o in result.outcomes] == ["uncertain", "retrying", "uncertain", "retrying"]
    assert len(channel.attempts) == 2
    (row,) = deliveries(engine)
    assert row.status == "retrying" and row.next_attempt_at == clock.now + M
    assert dispatcher.run_pass().outcomes == [] and len(channel.attempts) == 2
    clock.advance(M)
    dispatcher.run_pass()
    (row,) = deliveries(engine)
    assert len(channel.attempts) == 3 and row.next_attempt_at == clock.now + 2 * M
    assert channel.posts == {} and {m.reference for m in channel.attempts} == {row.reference}
