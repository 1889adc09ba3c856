"""The planner is a pure function: these are tables of (sessions, ledger, now) → decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Reminder, Settings
from bot.domain import SessionData
from bot.notifiers.base import DeliveryKey
from bot.rules.planner import LedgerRow, Notice, plan, wake_times

D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
START = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)  # 10:00 New York
REMINDERS = (
    Reminder("announce", 7 * D, ("email", "x")),
    Reminder("reminder", 1 * D, ("email", "x")),
    Reminder("starting", 1 * H, ("email", "x")),
)
SETTINGS = Settings(channels=("email", "x"), reminders=REMINDERS)


def session(start: datetime = START, since: datetime | None = None, **kw: object) -> SessionData:
    return SessionData(
        id="s1",
        title="T",
        starts_at=start,
        occurrence_since=since if since is not None else start - 30 * D,
        **kw,  # type: ignore[arg-type]
    )


def row(notice: str, status: str, channel: str = "email", **kw: object) -> LedgerRow:
    """A ledger row as the dispatcher writes it: a reminder is due at its start − its offset."""
    occurrence = kw.pop("occurrence", START)
    key = DeliveryKey("s1", notice, channel, occurrence)  # type: ignore[arg-type]
    offset = next((r.offset for r in REMINDERS if r.name == notice), timedelta(0))
    return LedgerRow(
        id=hash((notice, channel)) % 1000,
        key=key,
        status=status,
        due_at=kw.pop("due_at", occurrence - offset),  # type: ignore[operator]
        deadline=START,
        **kw,
    )  # type: ignore[arg-type]


def actions(notices: list[Notice], channel: str = "email") -> dict[str, str]:
    return {n.key.notice: n.action for n in notices if n.key.channel == channel}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (START - 8 * D, {"announce": "wait", "reminder": "wait", "starting": "wait"}),
        (START - 7 * D - M, {"announce": "wait", "reminder": "wait", "starting": "wait"}),
        (START - 7 * D, {"announce": "send", "reminder": "wait", "starting": "wait"}),
        (START - 2 * D, {"announce": "send", "reminder": "wait", "starting": "wait"}),
        (START - 1 * D, {"announce": "skip", "reminder": "send", "starting": "wait"}),
        (START - 30 * M, {"announce": "skip", "reminder": "skip", "starting": "send"}),
        (START, {"announce": "skip", "reminder": "skip", "starting": "miss"}),
    ],
)
def test_due_times_and_nearest_wins_with_an_empty_ledger(
    now: datetime, expected: dict[str, str]
) -> None:
    assert actions(plan([session()], [], SETTINGS, now)) == expected


def test_reminder_is_due_exactly_offset_before_start_in_utc() -> None:
    notices = plan([session()], [], SETTINGS, START - 10 * D)
    due = {n.key.notice: n.due_at for n in notices if n.key.channel == "x"}
    assert due == {"announce": START - 7 * D, "reminder": START - D, "starting": START - H}


def test_offsets_are_exact_durations_across_new_york_spring_forward() -> None:
    # 2026-03-09 10:00 EDT = 14:00Z; New York changed clocks on 2026-03-08 at 02:00.
    start = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    notices = plan([session(start)], [], SETTINGS, start - 10 * D)
    due = {n.key.notice: n.due_at for n in notices if n.key.channel == "email"}
    # 7 days earlier is 2026-03-02 14:00Z, i.e. 09:00 EST: 168 hours, not the same wall-clock time
    assert due["announce"] == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    assert due["reminder"] == datetime(2026, 3, 8, 14, 0, tzinfo=UTC)


def test_offsets_are_exact_in_the_weeks_new_york_and_paris_differ_by_five_hours() -> None:
    # 2026-10-26 10:00 EDT (Paris already on CET since 10-25): 14:00Z.
    start = datetime(2026, 10, 26, 14, 0, tzinfo=UTC)
    notices = plan([session(start)], [], SETTINGS, start - 2 * H)
    assert actions(notices) == {"announce": "skip", "reminder": "send", "starting": "wait"}
    starting = next(n for n in notices if n.key.notice == "starting")
    assert starting.due_at == datetime(2026, 10, 26, 13, 0, tzinfo=UTC)


def test_zero_offset_may_go_out_until_ten_minutes_after_the_start() -> None:
    settings = Settings(channels=("x",), reminders=(Reminder("now", timedelta(0), ("x",)),))
    assert actions(plan([session()], [], settings, START + 9 * M), "x") == {"now": "send"}
    assert actions(plan([session()], [], settings, START + 10 * M), "x") == {"now": "miss"}


def test_nearest_reminder_wins_for_late_session_and_carries_first() -> None:
    added = START - 2 * H
    notices = plan([session(since=added)], [], SETTINGS, START - 30 * M)
    by_notice = {n.key.notice: n for n in notices if n.key.channel == "x"}
    assert by_notice["starting"].action == "send"
    assert by_notice["starting"].first is True
    assert by_notice["announce"].action == "skip"
    assert by_notice["announce"].reason == "superseded by starting"


def test_first_is_false_once_something_was_sent_on_that_channel() -> None:
    rows = [row("announce", "sent", "email")]
    notices = plan([session()], rows, SETTINGS, START - D)
    first = {(n.key.channel, n.key.notice): n.first for n in notices if n.action == "send"}
    assert first == {("email", "reminder"): False, ("x", "reminder"): True}


def test_sent_announcement_is_not_superseded_or_resent() -> None:
    rows = [row("announce", "sent")]
    notices = plan([session()], rows, SETTINGS, START - D)
    assert actions(notices) == {"announce": "done", "reminder": "send", "starting": "wait"}


def test_quiet_history_past_session_imported_late_plans_nothing() -> None:
    past = START - 3 * D
    assert plan([session(past, since=START)], [], SETTINGS, START) == []


def test_worker_down_through_the_whole_window_reports_one_miss_per_channel() -> None:
    notices = plan([session()], [], SETTINGS, START + 2 * H)
    assert actions(notices, "x") == {"announce": "skip", "reminder": "skip", "starting": "miss"}


def test_miss_only_when_the_occurrence_existed_at_its_due_time() -> None:
    # moved to this start 30 minutes before it, i.e. after `starting` (1h) fell due
    notices = plan([session(since=START - 30 * M)], [], SETTINGS, START + M)
    assert notices == []


@pytest.mark.parametrize(
    ("retry_at", "expected"),
    [(START - D + 5 * M, "wait"), (START - D + 1 * M, "send")],
)
def test_retrying_waits_for_its_next_attempt(retry_at: datetime, expected: str) -> None:
    rows = [row("reminder", "retrying", next_attempt_at=retry_at, attempts=1)]
    notices = plan([session()], rows, SETTINGS, START - D + 2 * M)
    assert actions(notices)["reminder"] == expected


def test_retrying_past_its_deadline_is_missed_with_the_last_reason() -> None:
    rows = [row("starting", "retrying", next_attempt_at=START + M, reason="HTTP 503")]
    notices = plan([session()], rows, SETTINGS, START + 2 * M)
    missed = [n for n in notices if n.action == "miss" and n.key.channel == "email"]
    assert [(n.key.notice, n.reason) for n in missed] == [("starting", "HTTP 503")]


def test_cancelled_session_plans_no_reminders_and_skips_open_rows() -> None:
    rows = [row("reminder", "retrying", next_attempt_at=START - D + M)]
    notices = plan([session(status="cancelled")], rows, SETTINGS, START - D + 2 * M)
    assert [(n.key.notice, n.action, n.reason) for n in notices] == [
        ("reminder", "skip", "session cancelled")
    ]


def test_open_rows_of_an_old_start_time_never_go_out() -> None:
    old = START - 2 * D
    rows = [row("reminder", "retrying", occurrence=old, next_attempt_at=old - D + M)]
    notices = plan([session()], rows, SETTINGS, START - 3 * D)
    stale = [n for n in notices if n.key.occurrence == old]
    assert [(n.action, n.reason) for n in stale] == [("skip", "session moved to another time")]


def test_reminder_channels_restrict_where_it_goes() -> None:
    settings = Settings(
        channels=("email", "x"),
        reminders=(Reminder("announce", 7 * D, ("email",)), Reminder("starting", H, ("x",))),
    )
    keys = {(n.key.notice, n.key.channel) for n in plan([session()], [], settings, START - 8 * D)}
    assert keys == {("announce", "email"), ("starting", "x")}


def test_channel_filter_plans_only_those_channels() -> None:
    notices = plan([session()], [], SETTINGS, START - 8 * D, channels=["x"])
    assert {n.key.channel for n in notices} == {"x"}


def test_next_wake_is_the_earliest_future_due_or_retry_time() -> None:
    rows = [row("announce", "retrying", next_attempt_at=START - 7 * D + 4 * M)]
    notices = plan([session()], rows, SETTINGS, START - 7 * D + M)
    assert wake_times(notices, START - 7 * D + M)[0] == START - 7 * D + 4 * M
    later = wake_times(plan([session()], [], SETTINGS, START - 8 * D), START - 8 * D)
    assert later == [START - 7 * D, START - D, START - H]
