"""Subscribers end up told the truth, end to end: real `python -m bot` processes against the SMTP
and X stand-ins (X refuses a repeated text, as X does), on SQLite and PostgreSQL.

Issue 7's scenarios 1 (a second cancellation), 3 (the sixth move) and 4 (concurrent edits), as
an organiser meets them: `sessions cancel`, `sessions set`, and cron-style `send` passes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cli import base_env, iso, json_lines
from tests.support.cligroup import D, Group, H, M, a_session, got, on_the_minute, real_now, soon
from tests.support.smtp import SmtpStandIn
from tests.support.xapi import XStandIn


def sent(records: list[dict[str, object]]) -> list[tuple[str, str, str, str]]:
    return [r for r in got(records) if r[3] == "sent"]


# Single-process flows run on SQLite: the SQL under them (marks, edits, the planner's reads) is
# proven on both engines in-process (tests/test_told_state.py, the model test); the concurrent
# edits below run on both.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@sqlite_only
def test_a_second_cancellation_reaches_the_list_and_x(
    group: Group, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    start = on_the_minute(real_now() + 5 * D)
    group.import_(a_session("talk", start))
    assert sent(group.send(soon())) == [
        ("talk", "announce", "email", "sent"),
        ("talk", "announce", "x", "sent"),
    ]
    group.run("sessions", "cancel", "talk")
    assert sent(group.send(soon())) == [
        ("talk", "cancelled", "email", "sent"),
        ("talk", "cancelled", "x", "sent"),
    ]
    assert "changed status" in group.set("talk", "status=scheduled")
    assert sent(group.send(soon())) == [
        ("talk", "reinstated", "email", "sent"),
        ("talk", "reinstated", "x", "sent"),
    ]
    assert sent(group.send(start - D)) == [
        ("talk", "reminder", "email", "sent"),
        ("talk", "reminder", "x", "sent"),
    ]
    group.run("sessions", "cancel", "talk")
    assert sent(group.send(start - D + M)) == [
        ("talk", "cancelled", "email", "sent"),
        ("talk", "cancelled", "x", "sent"),
    ]
    assert group.send(start - D + H) == []
    posts = [p.text or "" for p in x_server.posts]
    assert [p.split(":")[0] for p in posts] == [
        "Next session",
        "Cancelled",
        "Back on (update 2)",
        "Reminder, in 1 day",
        "Cancelled (update 3)",
    ]
    assert smtp_server.accepted == 5
    assert all(r["status"] != "failed" for r in group.deliveries())


@sqlite_only
def test_the_sixth_move_reaches_x_subscribers(group: Group, x_server: XStandIn) -> None:
    a = on_the_minute(real_now() + 5 * D)
    b = a + D
    group.import_(a_session("moving", a))
    group.send(soon())
    for step, start in enumerate((b, a, b, a, b, a), start=1):
        assert "changed starts_at" in group.set("moving", f"starts_at={iso(start)}")
        records = [r for r in group.send(soon()) if r["notice"] == "rescheduled"]
        assert got(records) == [
            ("moving", "rescheduled", "email", "sent"),
            ("moving", "rescheduled", "x", "sent"),
        ], (step, records)
    texts = [p.text for p in x_server.posts]
    assert len(texts) == 7 and len(set(texts)) == 7  # X took every one
    assert (texts[-1] or "").startswith("New time (update 6)")


@pytest.mark.slow
def test_concurrent_edits_of_different_fields_all_stick(group: Group) -> None:
    first = on_the_minute(real_now() + 20 * D)
    group.import_(a_session("edited", first))
    for round_ in range(12):
        title = f"Masked diffusion for code, take {round_}"
        start = first + round_ * H
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bot", "sessions", "set", "edited", assignment],
                cwd=group.bot.cwd,
                env=base_env() | group.bot.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for assignment in (f"title={title}", f"starts_at={iso(start)}")
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert "edited: changed" in out or (round_ == 0 and "unchanged" in out), out
        [stored] = json_lines(group.run("sessions", "list", "--json"))
        assert (stored["title"], stored["starts_at"]) == (title, iso(start)), round_
