"""Recordings from the YouTube feed against real databases (SQLite and PostgreSQL) and a real
feed server on 127.0.0.1: a certain match applied and announced once on every recording channel,
a probable one held until accepted, a rejected one never again, a feed that cannot be read
changing nothing, the same feed read twice changing nothing, an organiser's URL never replaced."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select

from bot.config import Settings
from bot.dispatch import Dispatcher
from bot.errors import UsageError
from bot.recordings import feed as feed_module
from bot.recordings.feed import FeedError
from bot.recordings.match import Proposal
from bot.recordings.sync import Refused, accept, apply, reject, sync
from bot.sources.sessions_file import parse_session_file
from bot.store import tables
from bot.store.edits import edit_session
from bot.store.imports import import_sessions
from bot.store.reads import get_session
from bot.store.recordings import load_matches
from bot.testing import FrozenClock, RecordingNotifier
from tests.support.cli import session_yaml
from tests.support.youtubefeed import FeedStandIn, FeedVideo, youtube_feed

__all__ = ["youtube_feed"]

H = timedelta(hours=1)
D = timedelta(days=1)
START = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
NOW = START + 2 * D
SITE = "https://dlm.example.org"
TITLE = "DiffuCoder: Understanding and Improving Masked Diffusion Models for Code Generation"
SESSIONS = [
    {"id": "diffucoder", "title": TITLE, "starts_at": START,
     "speakers": [{"name": "Shansan Gong"}]},
    {"id": "llada", "title": "Large Language Diffusion Models", "starts_at": START - 7 * D,
     "speakers": [{"name": "Shen Nie"}]},
    {"id": "next", "title": "Dream 7B", "starts_at": NOW + 5 * D,
     "speakers": [{"name": "Jiacheng Ye"}]},
]  # fmt: skip
CERTAIN = FeedVideo(
    "Xq3kL9vB2mA", "Diffusion LM Reading Group #7", START + 3 * H,
    f"Recording of {SITE}/sessions/diffucoder/\nSlides: https://example.org/slides.pdf",
)  # fmt: skip
PROBABLE = FeedVideo(
    "Lm4nP0qR7sT", "Large Language Diffusion Models - Shen Nie", START - 7 * D + 2 * H
)
OTHER = FeedVideo("Zz9yX8wV7uT", "Channel trailer", START - 60 * D)


def settings_for(feed: FeedStandIn, **kw: Any) -> Settings:
    base = Settings(
        channels=("a", "b"),
        recording_channels=("a", "b"),
        reminders=(),
        site_url=SITE,
        youtube_channel_id=feed.channel_id,
        youtube_feed_url=feed.url,
    )
    return replace(base, **kw)


def fill(engine: Engine, sessions: list[dict[str, Any]] = SESSIONS) -> None:
    found = parse_session_file(session_yaml(sessions), "sessions.yaml")
    import_sessions(engine, found.sessions, now=START - 30 * D)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: what "nothing changed" compares."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {
            name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
            for name, table in meta.tables.items()
        }


def a_pass(engine: Engine, settings: Settings, now: datetime) -> dict[str, RecordingNotifier]:
    notifiers = {"a": RecordingNotifier(), "b": RecordingNotifier()}
    Dispatcher(engine, settings, FrozenClock(now), notifiers).run_pass()  # type: ignore[arg-type]
    return notifiers


def recording_texts(notifiers: dict[str, RecordingNotifier]) -> dict[str, list[str]]:
    return {
        name: [m.text for m in n.sent if m.key.notice == "recording"]
        for name, n in notifiers.items()
    }


# ---------------------------------------------------------------- certain and probable


def test_a_certain_match_is_applied_and_announced_once_on_every_recording_channel(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(CERTAIN, OTHER)
    settings = settings_for(youtube_feed)
    report = sync(engine, settings, NOW)
    assert [(p.session_id, p.video_id, p.kind) for p in report.applied] == [
        ("diffucoder", CERTAIN.video_id, "certain")
    ]
    session = get_session(engine, "diffucoder")
    assert session is not None and session.recording_url == CERTAIN.url
    with engine.connect() as conn:
        c = tables.session_changes.c
        history = conn.execute(
            select(c.field, c.new_value, c.source).where(c.session_id == "diffucoder")
        ).all()
    assert ("recording_url", CERTAIN.url, "youtube") in [tuple(r) for r in history]
    sent = recording_texts(a_pass(engine, settings, NOW + 1 * timedelta(minutes=1)))
    assert {k: len(v) for k, v in sent.items()} == {"a": 1, "b": 1}
    assert all(CERTAIN.url in text for texts in sent.values() for text in texts)
    # Read again: nothing changes, nothing more goes out.
    before = snapshot(engine)
    again = sync(engine, settings, NOW + H)
    assert not again.changed and again.applied == [] and again.proposed == []
    assert snapshot(engine) == before
    assert recording_texts(a_pass(engine, settings, NOW + 2 * H)) == {"a": [], "b": []}


def test_a_probable_match_waits_until_accepted(engine: Engine, youtube_feed: FeedStandIn) -> None:
    fill(engine)
    youtube_feed.add(PROBABLE)
    settings = settings_for(youtube_feed)
    report = sync(engine, settings, NOW)
    assert report.applied == []
    assert [(p.session_id, p.video_id, p.kind) for p in report.proposed] == [
        ("llada", PROBABLE.video_id, "probable")
    ]
    assert "shen nie" not in report.proposed[0].why and "nie named" in report.proposed[0].why
    assert get_session(engine, "llada").recording_url is None  # type: ignore[union-attr]
    assert recording_texts(a_pass(engine, settings, NOW)) == {"a": [], "b": []}
    # A second sync lists it again, as waiting, and changes nothing.
    before = snapshot(engine)
    again = sync(engine, settings, NOW + H)
    assert again.proposed == [] and [m.video_id for m in again.waiting] == [PROBABLE.video_id]
    assert snapshot(engine) == before
    accept(engine, "llada", PROBABLE.video_id, NOW + H)
    assert get_session(engine, "llada").recording_url == PROBABLE.url  # type: ignore[union-attr]
    [m] = load_matches_of(engine, "llada")
    assert (m.status, m.decided_by) == ("applied", "operator")
    sent = recording_texts(a_pass(engine, settings, NOW + 2 * H))
    assert {k: len(v) for k, v in sent.items()} == {"a": 1, "b": 1}


def load_matches_of(engine: Engine, session_id: str) -> list[Any]:
    with engine.connect() as conn:
        return load_matches(conn, session_id)


def test_a_rejected_match_is_never_proposed_again(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(PROBABLE)
    settings = settings_for(youtube_feed)
    sync(engine, settings, NOW)
    assert "rejected" in reject(engine, "llada", PROBABLE.video_id, NOW)
    for hours in (1, 2, 30):
        report = sync(engine, settings, NOW + hours * H)
        assert report.proposed == [] and report.waiting == []
    [m] = load_matches_of(engine, "llada")
    assert m.status == "rejected"
    # The operator's later word wins: accepting it after all applies it.
    accept(engine, "llada", PROBABLE.video_id, NOW + 31 * H)
    assert get_session(engine, "llada").recording_url == PROBABLE.url  # type: ignore[union-attr]


def test_rejecting_an_applied_match_takes_its_url_back(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(CERTAIN)
    settings = settings_for(youtube_feed)
    sync(engine, settings, NOW)
    assert "cleared" in reject(engine, "diffucoder", CERTAIN.video_id, NOW + H)
    assert get_session(engine, "diffucoder").recording_url is None  # type: ignore[union-attr]
    report = sync(engine, settings, NOW + 2 * H)
    assert report.applied == [] and report.proposed == []


def test_with_recordings_auto_off_a_certain_match_waits(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(CERTAIN)
    off = settings_for(youtube_feed, recordings_auto=False)
    report = sync(engine, off, NOW)
    assert report.applied == [] and [p.kind for p in report.proposed] == ["certain"]
    assert get_session(engine, "diffucoder").recording_url is None  # type: ignore[union-attr]
    # Turned on, the waiting certain match is applied by the next sync.
    report = sync(engine, settings_for(youtube_feed), NOW + H)
    assert [p.video_id for p in report.applied] == [CERTAIN.video_id]


def test_two_similar_sessions_and_one_video_are_not_guessed(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    twins = [
        {"id": "dlm-1", "title": "Diffusion Language Models, part 1", "starts_at": START,
         "speakers": [{"name": "Ann Lee"}]},
        {"id": "dlm-2", "title": "Diffusion Language Models, part 2", "starts_at": START + 3 * H,
         "speakers": [{"name": "Ann Lee"}]},
    ]  # fmt: skip
    fill(engine, twins)
    youtube_feed.add(FeedVideo("Tw1nsVide0s", "Diffusion Language Models - Ann Lee", START + 5 * H))
    report = sync(engine, settings_for(youtube_feed), NOW)
    assert report.applied == [] and report.proposed == []
    assert report.notes == ["video Tw1nsVide0s alike to sessions dlm-1, dlm-2: not guessed"]
    assert load_matches_of(engine, "dlm-1") == load_matches_of(engine, "dlm-2") == []


def test_a_video_published_before_the_session_is_not_matched(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    teaser = FeedVideo("T3aserVid00", f"{TITLE} - Shansan Gong", START - 4 * D, "Join us!")
    youtube_feed.add(teaser)
    report = sync(engine, settings_for(youtube_feed), NOW)
    assert report.applied == [] and report.proposed == []
    assert load_matches_of(engine, "diffucoder") == []


# ---------------------------------------------------------------- the organiser's word


def test_an_organisers_recording_url_is_never_replaced(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    edit_session(engine, "diffucoder", ["recording_url=https://vimeo.com/123"], NOW - H)
    youtube_feed.add(CERTAIN)
    report = sync(engine, settings_for(youtube_feed), NOW)
    assert report.applied == [] and report.proposed == []
    assert get_session(engine, "diffucoder").recording_url == "https://vimeo.com/123"  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="already has recording_url"):
        accept(engine, "diffucoder", CERTAIN.video_id, NOW)


def test_a_url_set_between_matching_and_applying_wins(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    """The check is made again inside the write that applies: an organiser's edit made while the
    sync was matching is kept."""
    fill(engine)
    youtube_feed.add(CERTAIN)
    settings = settings_for(youtube_feed, recordings_auto=False)
    sync(engine, settings, NOW)  # the certain match, waiting
    edit_session(engine, "diffucoder", ["recording_url=https://vimeo.com/9"], NOW + H)
    video = feed_module.parse(youtube_feed_body(youtube_feed))[0]
    proposal = Proposal("diffucoder", CERTAIN.video_id, "certain", 100, "test")
    with pytest.raises(Refused):
        apply(engine, proposal, video, NOW + H, by="auto")
    assert get_session(engine, "diffucoder").recording_url == "https://vimeo.com/9"  # type: ignore[union-attr]
    report = sync(engine, settings_for(youtube_feed), NOW + 2 * H)
    assert report.applied == [] and [c[:2] for c in report.closed] == [
        ("diffucoder", CERTAIN.video_id)
    ]


def youtube_feed_body(feed: FeedStandIn) -> bytes:
    return feed_module.fetch(feed.url)


def test_an_import_that_says_nothing_of_the_recording_keeps_the_feeds(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(CERTAIN)
    sync(engine, settings_for(youtube_feed), NOW)
    fill(engine)  # the organiser's file, written before the upload
    assert get_session(engine, "diffucoder").recording_url == CERTAIN.url  # type: ignore[union-attr]
    mine = [dict(SESSIONS[0], recording_url="https://vimeo.com/77"), *SESSIONS[1:]]
    fill(engine, mine)  # a file that names one wins
    assert get_session(engine, "diffucoder").recording_url == "https://vimeo.com/77"  # type: ignore[union-attr]
    fill(engine)  # and the feed's is not brought back
    assert get_session(engine, "diffucoder").recording_url is None  # type: ignore[union-attr]


# ---------------------------------------------------------------- a feed that cannot be read


@pytest.mark.parametrize(
    ("fault", "options", "reason"),
    [
        ("status", {"status": 404}, "answered 404 Not Found"),
        ("status", {"status": 500}, "answered 500 Internal Server Error"),
        ("truncated", {}, "not well-formed XML"),
        ("html", {}, "not well-formed XML"),
        ("hang", {}, "did not answer within 0.5s"),
    ],
)
def test_a_feed_that_cannot_be_read_changes_nothing(
    engine: Engine,
    youtube_feed: FeedStandIn,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    options: dict[str, Any],
    reason: str,
) -> None:
    if fault == "hang":  # the real 10 s is waited for once, through the CLI (test_cli_recordings)
        monkeypatch.setattr(feed_module, "READ_TIMEOUT", 0.5)
    fill(engine)
    youtube_feed.add(CERTAIN, PROBABLE)
    before = snapshot(engine)
    youtube_feed.set_fault(fault, **options)
    with pytest.raises(FeedError, match=reason):
        sync(engine, settings_for(youtube_feed), NOW)
    assert snapshot(engine) == before
    youtube_feed.set_fault("ok")
    assert [p.video_id for p in sync(engine, settings_for(youtube_feed), NOW).applied] == [
        CERTAIN.video_id
    ]


def test_a_body_that_trickles_in_is_cut_at_the_deadline(youtube_feed: FeedStandIn) -> None:
    """One byte every 0.2 s: no read ever times out, the whole feed would take minutes."""
    import time

    youtube_feed.add(CERTAIN)
    youtube_feed.set_fault("trickle")
    started = time.monotonic()
    with pytest.raises(FeedError, match="did not finish answering within 1s"):
        feed_module.fetch(youtube_feed.url, deadline=1.0)
    assert time.monotonic() - started < 10  # the body alone would take over 5 minutes


def test_a_link_a_session_could_not_hold_becomes_the_watch_page() -> None:
    from tests.support.youtubefeed import feed_xml

    body = feed_xml([CERTAIN]).replace(CERTAIN.url.encode(), b"http://[bad")
    [video] = feed_module.parse(body)
    assert video.url == f"https://www.youtube.com/watch?v={CERTAIN.video_id}"


def test_an_automatic_apply_never_overrules_an_operators_reject(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(CERTAIN)
    sync(engine, settings_for(youtube_feed, recordings_auto=False), NOW)  # waiting
    reject(engine, "diffucoder", CERTAIN.video_id, NOW)
    video = feed_module.read(youtube_feed.url)[0]
    proposal = Proposal("diffucoder", CERTAIN.video_id, "certain", 100, "queued before")
    with pytest.raises(Refused, match="rejected meanwhile"):
        apply(engine, proposal, video, NOW + H, by="auto")
    assert get_session(engine, "diffucoder").recording_url is None  # type: ignore[union-attr]
    [m] = load_matches_of(engine, "diffucoder")
    assert m.status == "rejected"


def test_a_video_linked_by_hand_cannot_be_accepted_for_another_session(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(PROBABLE)
    sync(engine, settings_for(youtube_feed), NOW)
    edit_session(engine, "diffucoder", [f"recording_url={PROBABLE.url}"], NOW)
    with pytest.raises(UsageError, match="already the recording of session diffucoder"):
        accept(engine, "llada", PROBABLE.video_id, NOW + H)


def test_a_changed_link_in_the_feed_is_not_taken_for_an_edit_by_hand(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(CERTAIN)
    settings = settings_for(youtube_feed)
    sync(engine, settings, NOW)
    moved = [
        replace(v, url=v.url.replace("www.youtube.com", "youtube.com"))
        for v in feed_module.read(youtube_feed.url)
    ]
    report = sync(engine, settings, NOW + H, read=lambda _url: moved)
    assert report.closed == [] and report.video_changes == [f"updated {CERTAIN.video_id}"]
    [m] = load_matches_of(engine, "diffucoder")
    assert m.status == "applied"
    assert get_session(engine, "diffucoder").recording_url == CERTAIN.url  # type: ignore[union-attr]


def test_a_waiting_match_that_stops_holding_is_closed(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(PROBABLE)
    settings = settings_for(youtube_feed)
    assert [p.video_id for p in sync(engine, settings, NOW).proposed] == [PROBABLE.video_id]
    rival = replace(PROBABLE, video_id="R1valUpl0ad", title=PROBABLE.title + " [re-upload]")
    youtube_feed.add(rival)
    report = sync(engine, settings, NOW + H)
    assert report.waiting == [] and [c[:2] for c in report.closed] == [("llada", PROBABLE.video_id)]
    assert "no longer a match" in report.closed[0][2]
    assert not sync(engine, settings, NOW + 2 * H).changed


def test_videos_that_left_the_feed_are_still_matched(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    """The feed holds the newest 15: a recording pushed out of it before its session's sync (the
    session ended late, or the feed was down) is matched from what was stored."""
    fill(engine, [dict(SESSIONS[0], starts_at=NOW + D)])
    youtube_feed.add(replace(CERTAIN, published=NOW + D + 10 * timedelta(minutes=1)))  # live
    settings = settings_for(youtube_feed)
    assert sync(engine, settings, NOW + D + 30 * timedelta(minutes=1)).applied == []  # not ended
    newer = [FeedVideo(f"Newer{i:06d}", f"Other {i}", NOW + 2 * D + i * H) for i in range(15)]
    youtube_feed.add(*newer)
    report = sync(engine, settings, NOW + 3 * D)
    assert [p.video_id for p in report.applied] == [CERTAIN.video_id]
    assert report.feed_videos == 15


def test_a_dry_run_reads_the_feed_and_writes_nothing(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(CERTAIN, PROBABLE)
    before = snapshot(engine)
    report = sync(engine, settings_for(youtube_feed), NOW, dry_run=True)
    assert [p.video_id for p in report.applied] == [CERTAIN.video_id]
    assert [p.video_id for p in report.proposed] == [PROBABLE.video_id]
    assert [m.video_id for m in report.waiting] == [PROBABLE.video_id]
    assert snapshot(engine) == before


def test_the_feed_fields_are_read_as_youtube_writes_them(youtube_feed: FeedStandIn) -> None:
    video = FeedVideo("AbC-12_xYz9", "Q&A <live> – “DiffuCoder”", START, "a & b < c\nsession:x")
    youtube_feed.add(video)
    [got] = feed_module.read(youtube_feed.url)
    assert got.video_id == "AbC-12_xYz9"
    assert got.title == "Q&A <live> – “DiffuCoder”"
    assert got.description == "a & b < c\nsession:x"
    assert got.url == "https://www.youtube.com/watch?v=AbC-12_xYz9"
    assert got.published_at == START


# ---------------------------------------------------------------- the worker


def test_the_worker_warns_on_a_feed_outage_and_applies_at_the_next_poll(
    engine: Engine, youtube_feed: FeedStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.worker import Worker

    fill(engine)
    youtube_feed.add(CERTAIN)
    worker = Worker(engine, settings_for(youtube_feed), FrozenClock(NOW))
    youtube_feed.set_fault("status", status=500)
    before = snapshot(engine)
    with caplog.at_level(logging.WARNING, logger="bot.worker"):
        worker.sync_recordings()  # never raises
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "answered 500" in warning.getMessage() and "next try in 15m" in warning.getMessage()
    assert snapshot(engine) == before
    youtube_feed.set_fault("ok")
    worker.stop()  # a stop came while the feed was being read: nothing is written after it
    worker.sync_recordings()
    assert snapshot(engine) == before
    worker.stopping.clear()
    worker.sync_recordings()
    assert get_session(engine, "diffucoder").recording_url == CERTAIN.url  # type: ignore[union-attr]
    worker.dispatcher.close()


def test_a_recording_cleared_or_changed_by_hand_is_never_applied_again(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    fill(engine)
    youtube_feed.add(CERTAIN)
    settings = settings_for(youtube_feed)
    sync(engine, settings, NOW)
    edit_session(engine, "diffucoder", ["recording_url="], NOW + H)  # the organiser: not that one
    report = sync(engine, settings, NOW + 2 * H)
    assert report.applied == [] and report.closed == [
        ("diffucoder", CERTAIN.video_id, "recording_url changed by hand")
    ]
    [m] = load_matches_of(engine, "diffucoder")
    assert m.status == "replaced"
    assert sync(engine, settings, NOW + 3 * H).applied == []
    assert get_session(engine, "diffucoder").recording_url is None  # type: ignore[union-attr]
    # The video is nobody's recording now: an operator may give it to another session.
    accept(engine, "llada", CERTAIN.video_id, NOW + 4 * H)
    assert get_session(engine, "llada").recording_url == CERTAIN.url  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="already the recording of session llada"):
        accept(engine, "next", CERTAIN.video_id, NOW + 5 * H)


def test_a_new_upload_after_a_recording_was_cleared_by_hand_is_applied_at_once(
    engine: Engine, youtube_feed: FeedStandIn
) -> None:
    """Found by the model: the match whose URL the organiser cleared is no rival of the re-upload
    in the very sync that marks it `replaced` (else a second sync would apply what the first did
    not)."""
    fill(engine)
    youtube_feed.add(CERTAIN)
    settings = settings_for(youtube_feed)
    sync(engine, settings, NOW)
    edit_session(engine, "diffucoder", ["recording_url="], NOW + H)
    again = replace(CERTAIN, video_id="Re7uPl0adXx", published=NOW + H)
    youtube_feed.add(again)
    report = sync(engine, settings, NOW + 2 * H)
    assert [p.video_id for p in report.applied] == [again.video_id]
    before = snapshot(engine)
    assert not sync(engine, settings, NOW + 3 * H).changed
    assert snapshot(engine) == before
