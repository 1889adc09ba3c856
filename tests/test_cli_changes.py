"""Change notices, `check`, `sessions set` and `ics` end to end (issue #4): real `python -m bot`
subprocesses, a real database, the loopback SMTP server and the loopback X API server
(`tests/support/cligroup.py` says how the clock is handled).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from icalendar import Calendar

from tests.support.cli import iso
from tests.support.cligroup import (
    RECORDING,
    D,
    Group,
    H,
    M,
    MakeGroup,
    a_session,
    by_channel,
    calendar_event,
    channels_env,
    got,
    hv,
    mail_for,
    on_the_minute,
    real_now,
    soon,
)
from tests.support.smtp import SmtpStandIn
from tests.support.xapi import XStandIn

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# ---------------------------------------------------------------- rescheduled (rule 6)


def test_a_move_after_the_announcement_sends_one_rescheduled_notice_per_channel(
    group: Group, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    old = on_the_minute(real_now() + 5 * D)
    new = old + D + 2 * H
    group.import_(a_session("moved", old))
    announced = group.send(soon())
    assert got(announced) == [
        ("moved", "announce", "email", "sent"),
        ("moved", "announce", "x", "sent"),
    ]

    assert "changed starts_at" in group.set("moved", f"starts_at={iso(new)}")
    t = soon()
    records = group.send(t)
    # The new time's announce was already due: the notice stands in for it (superseded).
    assert got(records) == [
        ("moved", "announce", "email", "skipped"),
        ("moved", "announce", "x", "skipped"),
        ("moved", "rescheduled", "email", "sent"),
        ("moved", "rescheduled", "x", "sent"),
    ]
    assert {r["occurrence"] for r in records} == {iso(new)}
    records = [r for r in records if r["status"] == "sent"]
    assert group.send(t + H) == []  # once
    assert smtp_server.accepted == 2 and len(x_server.posts) == 2

    # The email threads under the announcement; its calendar entry updates the same event.
    announce_mail = mail_for(smtp_server, by_channel(announced)["email"])
    moved_mail = mail_for(smtp_server, by_channel(records)["email"])
    assert hv(moved_mail, "In-Reply-To") == hv(announce_mail, "Message-ID")
    assert hv(moved_mail, "References") == hv(announce_mail, "Message-ID")
    before, after = calendar_event(announce_mail), calendar_event(moved_mail)
    assert str(after["UID"]) == str(before["UID"])
    assert int(after["SEQUENCE"]) > int(before["SEQUENCE"])
    assert after.decoded("DTSTART") == new and before.decoded("DTSTART") == old
    post = x_server.posts[-1].text or ""
    assert "New time" in post

    # Reminders are planned for the new time only.
    planned = group.plan(t + H)
    assert {r["occurrence"] for r in planned} == {iso(new)}  # nothing of the old time
    assert got(planned) == [
        ("moved", "announce", "email", "skipped"),
        ("moved", "announce", "x", "skipped"),
        ("moved", "reminder", "email", "planned"),
        ("moved", "reminder", "x", "planned"),
        ("moved", "rescheduled", "email", "sent"),
        ("moved", "rescheduled", "x", "sent"),
    ]
    assert {r["due_at"] for r in planned if r["notice"] == "reminder"} == {iso(new - D)}

    # Nothing for the old time, ever; the new time's reminder at its time.
    assert group.send(old - D) == []
    assert group.send(old) == []
    assert got(group.send(new - D)) == [
        ("moved", "reminder", "email", "sent"),
        ("moved", "reminder", "x", "sent"),
    ]
    assert smtp_server.accepted == 3 and len(x_server.posts) == 3


@sqlite_only
def test_a_move_before_any_announcement_is_silent(
    group: Group, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    old = on_the_minute(real_now() + 10 * D)  # its announce is due in 3 days
    new = on_the_minute(real_now() + 5 * D)  # its announce is due already
    group.import_(a_session("early", old))
    group.set("early", f"starts_at={iso(new)}")
    t = soon()
    # The nearest reminder of the new time goes out; no rescheduled notice: nobody was told.
    assert got(group.send(t)) == [
        ("early", "announce", "email", "sent"),
        ("early", "announce", "x", "sent"),
    ]
    planned = group.plan(t)
    assert {r["occurrence"] for r in planned} == {iso(new)}
    assert sorted((r["notice"], r["channel"], r["status"], r["due_at"]) for r in planned) == [
        ("announce", "email", "sent", iso(new - 7 * D)),
        ("announce", "x", "sent", iso(new - 7 * D)),
        ("reminder", "email", "planned", iso(new - D)),
        ("reminder", "x", "planned", iso(new - D)),
    ]
    assert group.send(old - 7 * D) == []  # the old time's announce never goes out
    assert got(group.send(new - D)) == [
        ("early", "reminder", "email", "sent"),
        ("early", "reminder", "x", "sent"),
    ]
    assert smtp_server.accepted == 2 and len(x_server.posts) == 2
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert not any("New time" in s for s in subjects), subjects


@sqlite_only
def test_moves_back_and_forth_send_one_notice_per_actual_change(
    group: Group, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    a = on_the_minute(real_now() + 5 * D)
    b = a + D
    group.import_(a_session("shifty", a))
    group.send(soon())  # the announce for A

    outs = []
    for start in (b, a):
        group.set("shifty", f"starts_at={iso(start)}")
        records = [r for r in group.send(soon()) if r["status"] != "skipped"]
        assert got(records) == [
            ("shifty", "rescheduled", "email", "sent"),
            ("shifty", "rescheduled", "x", "sent"),
        ]
        assert {r["occurrence"] for r in records} == {iso(start)}
        outs.append(records)

    # Moved away and back before a pass: subscribers already know A, so nothing goes out.
    group.set("shifty", f"starts_at={iso(b)}")
    group.set("shifty", f"starts_at={iso(a)}")
    assert group.send(soon()) == []
    # An edit that leaves the time as it is changes nothing and sends nothing.
    assert "shifty: unchanged" in group.set("shifty", f"starts_at={iso(a)}")
    assert group.send(soon()) == []

    assert smtp_server.accepted == 3 and len(x_server.posts) == 3
    assert [p.text for p in x_server.posts][1:] == [by_channel(r)["x"]["text"] for r in outs]
    # Each notice threads under everything the list received before it.
    mails = [m.message for m in smtp_server.messages]
    ids = [hv(m, "Message-ID") for m in mails]
    assert len(set(ids)) == 3
    assert hv(mails[1], "References") == ids[0]
    assert hv(mails[2], "References") == f"{ids[0]} {ids[1]}"
    assert hv(mails[2], "In-Reply-To") == ids[1]
    sequences = [int(calendar_event(m)["SEQUENCE"]) for m in mails]
    assert sequences == sorted(set(sequences)), sequences  # rising with each change


@sqlite_only
def test_a_second_move_to_the_same_time_gets_its_own_notice(
    group: Group, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    a = on_the_minute(real_now() + 5 * D)
    b = a + D
    group.import_(a_session("again", a))
    group.send(soon())
    for start in (b, a, b):
        group.set("again", f"starts_at={iso(start)}")
        records = [r for r in group.send(soon()) if r["status"] != "skipped"]
        assert got(records) == [
            ("again", "rescheduled", "email", "sent"),
            ("again", "rescheduled", "x", "sent"),
        ], records
    assert len(x_server.posts) == 4
    ids = [hv(m.message, "Message-ID") for m in smtp_server.messages]
    assert len(set(ids)) == 4, ids  # every email its own Message-ID (RFC 5322 §3.6.4)
    last = smtp_server.messages[-1].message
    assert hv(last, "Message-ID") not in (hv(last, "References") or "")


# ---------------------------------------------------------------- cancelled (rule 7)


@sqlite_only
def test_a_cancel_tells_each_channel_that_had_something_once(
    group: Group, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    by_cli = on_the_minute(real_now() + 5 * D)
    by_file = by_cli + 2 * H
    quiet = on_the_minute(real_now() + 10 * D)  # its announce is 3 days away
    group.import_(
        a_session("by-cli", by_cli), a_session("by-file", by_file), a_session("quiet", quiet)
    )
    # Both are announced by email; only by-cli is announced on X as well.
    announced = group.send(soon(), "--channel", "email")
    announced += group.send(soon(), "--session", "by-cli")
    assert got(announced) == [
        ("by-cli", "announce", "email", "sent"),
        ("by-cli", "announce", "x", "sent"),
        ("by-file", "announce", "email", "sent"),
    ]

    assert "quiet: changed status" in group.run("sessions", "cancel", "quiet")
    assert "by-cli: changed status" in group.run("sessions", "cancel", "by-cli")
    out = group.import_(a_session("by-file", by_file, status="cancelled"))
    assert "1 updated" in out
    t = soon()
    records = group.send(t)
    assert got(records) == [
        ("by-cli", "cancelled", "email", "sent"),
        ("by-cli", "cancelled", "x", "sent"),
        ("by-file", "cancelled", "email", "sent"),
    ]
    assert group.send(t + H) == []  # once

    for sid in ("by-cli", "by-file"):
        announce, cancel = (
            mail_for(smtp_server, next(r for r in found if r["session"] == sid))
            for found in (
                [r for r in announced if r["channel"] == "email"],
                [r for r in records if r["channel"] == "email"],
            )
        )
        assert hv(cancel, "In-Reply-To") == hv(announce, "Message-ID")
        before, after = calendar_event(announce), calendar_event(cancel)
        assert str(after["UID"]) == str(before["UID"])
        assert str(after["STATUS"]) == "CANCELLED" and str(before["STATUS"]) == "CONFIRMED"
    assert ["Cancelled" in (p.text or "") for p in x_server.posts] == [False, True]

    # No more reminders for any of them: not at the quiet one's announce, not at the reminders.
    assert group.send(quiet - 7 * D) == []
    assert group.send(by_cli - D) == []
    assert group.send(quiet - D) == []
    assert smtp_server.accepted == 4 and len(x_server.posts) == 2
    assert {r["status"] for r in group.plan(t)} == {"sent"}


# ---------------------------------------------------------------- recording (rule 8)


def test_a_recording_is_announced_inside_the_window_only(
    make_group: MakeGroup, sqlite_url: str, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    env = channels_env(
        smtp_server, x_server, sqlite_url, CHANNELS="email,x,console", RECORDING_CHANNELS="email,x"
    )
    group = make_group(env)
    recent = on_the_minute(real_now() - 3 * D)
    old = on_the_minute(real_now() - 15 * D)  # RECORDING_WINDOW is 14d
    group.import_(a_session("recent", recent), a_session("old", old))
    assert group.send(soon()) == []  # importing past sessions sends nothing
    group.set("recent", f"recording_url={RECORDING}")
    group.set("old", f"recording_url={RECORDING}")
    t = soon()
    records = group.send(t)
    assert got(records) == [
        ("recent", "recording", "email", "sent"),
        ("recent", "recording", "x", "sent"),
    ]
    assert group.send(t + H) == []  # once
    [post] = x_server.posts
    assert RECORDING in (post.text or "")
    [mail] = [m.message for m in smtp_server.messages]
    body = mail.get_body(("plain",))
    assert body is not None and RECORDING in body.get_content()
    assert {r["session"] for r in group.deliveries()} == {"recent"}


# ---------------------------------------------------------------- check


def test_check_passes_on_a_clean_setup_and_logs_in_to_each_channel(
    make_group: MakeGroup, sqlite_url: str, x_server: XStandIn
) -> None:
    with SmtpStandIn(username="bot", password="right-password") as smtp:
        group = make_group(channels_env(smtp, x_server, sqlite_url))
        group.import_(a_session("clean", on_the_minute(real_now() + 5 * D)))
        assert "check:" not in group.err  # the import ran check too, and found nothing
        assert group.check(code=0) == ["ok"]
        assert group.check("--online", code=0) == ["ok"]
        assert [r.path for r in x_server.requests] == ["/2/users/me"]  # logged in, posted nothing
        assert smtp.messages == []

        x_server.set_fault("status_401")
        lines = group.check("--online", code=1, env={"SMTP_PASSWORD": "wrong-password"})
        assert len(lines) == 2, lines
        email, x = sorted(lines)
        assert email.startswith("channel email: cannot log in") and "535" in email
        assert x.startswith("channel x: cannot log in") and "401" in x
        assert "wrong-password" not in "\n".join(lines) + group.err
        assert smtp.messages == [] and x_server.posts == []


def test_check_reports_templates_that_do_not_compile_or_do_not_fit(
    make_group: MakeGroup,
    sqlite_url: str,
    smtp_server: SmtpStandIn,
    x_server: XStandIn,
    tmp_path: Path,
) -> None:
    templates = tmp_path / "templates"
    (templates / "x").mkdir(parents=True)
    (templates / "x" / "recording.txt.j2").write_text("{% if %}broken\n", encoding="utf-8")
    (templates / "x" / "reminder.txt.j2").write_text('{{ "a" * 400 }}\n', encoding="utf-8")
    env = channels_env(smtp_server, x_server, sqlite_url, TEMPLATES_DIR=str(templates))
    group = make_group(env)
    group.import_(a_session("talk", on_the_minute(real_now() + 5 * D)))
    lines = group.check(code=1)
    assert len(lines) == 2, lines
    broken, long = lines
    assert broken.startswith("templates: ") and "x/recording.txt.j2" in broken
    assert long.startswith("session talk: reminder on x") and "400" in long and "280" in long
    assert smtp_server.messages == [] and x_server.requests == []


@sqlite_only
def test_check_reports_notices_that_will_be_skipped_or_missed(group: Group) -> None:
    start = on_the_minute(real_now() + 2 * D)
    group.import_(a_session("late", start))  # added 2 days before its start
    assert group.check(code=0) == ["ok"]  # right now, the announce simply goes out
    # A day later, with no pass in between, the reminder is due too: it wins.
    lines = group.check("--now", iso(start - D + M), code=1)
    assert sorted(lines) == [
        f"session late: announce on {c} will be skipped (superseded by reminder)"
        for c in ("email", "x")
    ]
    # After the start, with no pass at all: the reminder was missed.
    lines = group.check("--now", iso(start + M), code=1)
    assert len(lines) == 4, lines
    missed = sorted(line for line in lines if "will be missed" in line)
    assert [line.split(" will")[0] for line in missed] == [
        f"session late: reminder on {c}" for c in ("email", "x")
    ]


@sqlite_only
def test_check_reports_deliveries_waiting_for_an_operator(
    group: Group, smtp_server: SmtpStandIn, x_server: XStandIn
) -> None:
    group.import_(a_session("stuck", on_the_minute(real_now() + 5 * D)))
    x_server.set_fault("drop", times=1)  # the post is published, the answer lost
    smtp_server.mode = "reply_550"
    t = soon()
    statuses = {r["channel"]: r["status"] for r in group.send(t, code=1)}
    assert statuses == {"email": "failed", "x": "uncertain"}
    ids = {r["channel"]: r["id"] for r in group.deliveries()}
    lines = group.check("--now", iso(t + M), code=1)
    assert len(lines) == 2, lines
    failed, uncertain = sorted(lines)
    assert failed.startswith(f"delivery {ids['email']} (stuck announce email): failed (")
    assert failed.endswith(f"`bot deliveries retry {ids['email']}`")
    assert uncertain.startswith(f"delivery {ids['x']} (stuck announce x): uncertain (")
    assert uncertain.endswith(f"`bot deliveries resolve or retry {ids['x']}`")


@sqlite_only
def test_check_lists_a_delivery_that_is_still_retrying(group: Group, x_server: XStandIn) -> None:
    group.import_(a_session("slow", on_the_minute(real_now() + 5 * D)))
    x_server.set_fault("status_503")  # X keeps answering 503: not taken, retried with backoff
    t = soon()
    records = group.send(t, "--channel", "x")
    assert [(r["status"], r["reason"]) for r in records] == [
        ("retrying", "X answered 503 Service Unavailable: Service Unavailable")
    ]
    [row] = [r for r in group.deliveries() if r["channel"] == "x"]
    lines = group.check("--now", iso(t + 10 * M), code=1)
    assert lines == [
        f"delivery {row['id']} (slow announce x): retrying (X answered 503 Service Unavailable: "
        f"Service Unavailable); attempt 1, next at {iso(t + M)[:16]}Z, "
        f"deadline {row['occurrence'][:16]}Z"
    ]


# ---------------------------------------------------------------- sessions set


@sqlite_only
def test_sessions_set_refuses_bad_values_and_changes_nothing(group: Group) -> None:
    group.import_(a_session("talk", on_the_minute(real_now() + 30 * D)))
    before = group.run("sessions", "show", "talk")
    bad = {
        "starts_at": ("starts_at=2027-03-14 02:30", "timezone=America/New_York"),  # DST gap
        "duration": ("duration=-30m",),
        "speaker": ("speaker=Someone Else",),
        "meeting_url": ("meeting_url=not a url",),
    }
    for field, assignments in bad.items():
        group.run("sessions", "set", "talk", *assignments, code=2)
        lines = group.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{field}: "), (field, lines)
    # Several at once, with a good change among them: one line per bad field, nothing written.
    every = [a for pair in bad.values() for a in pair]
    group.run("sessions", "set", "talk", "title=A new title", *every, code=2)
    lines = group.err.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == sorted(bad), lines
    assert group.run("sessions", "show", "talk") == before


# ---------------------------------------------------------------- ics


@sqlite_only
def test_ics_feed_matches_the_email_attachments(
    group: Group, smtp_server: SmtpStandIn, tmp_path: Path
) -> None:
    next_one = on_the_minute(real_now() + 5 * D)
    group.import_(
        a_session("next", next_one),
        a_session("dropped", next_one + D),
        a_session("later", next_one + 20 * D),
        a_session("recent", on_the_minute(real_now() - 2 * D)),
    )
    sent = group.send(soon())
    group.run("sessions", "cancel", "dropped")
    sent += group.send(soon())
    feed = tmp_path / "feed.ics"
    assert "4 sessions" in group.run("ics", "-o", str(feed))

    events = {str(e["UID"]): e for e in Calendar.from_ical(feed.read_bytes()).walk("VEVENT")}
    assert len(events) == 4
    statuses = {
        str(e["SUMMARY"]).split("(")[-1].rstrip(")"): str(e["STATUS"]) for e in events.values()
    }
    assert statuses == {
        "next": "CONFIRMED",
        "dropped": "CANCELLED",
        "later": "CONFIRMED",
        "recent": "CONFIRMED",
    }
    mailed: dict[str, set[str]] = {}
    for record in sent:
        if record["channel"] == "email" and record["status"] == "sent":
            event = calendar_event(mail_for(smtp_server, record))
            mailed.setdefault(record["session"], set()).add(str(event["UID"]))
    assert set(mailed) == {"next", "dropped"}
    for sid, uids in mailed.items():
        [uid] = uids  # the announce and the cancel notice carry the same UID
        assert uid in events
        assert sid in str(events[uid]["SUMMARY"])
