"""A model-based test of recordings (hypothesis stateful): random sequences of uploads, syncs,
operator accepts and rejects, an organiser setting or clearing `recording_url` by hand, and
re-imports of the session file, against a real SQLite database and the real matcher.

After every step: the feed never replaced an organiser's URL; every `recording_url` is the
organiser's, or a video applied to that session; no video is two sessions' recording; a rejected
pair is never proposed again (until an operator accepts it); a second sync changes nothing.
The feed is handed to `sync` in memory here: reading it over HTTP is tested in test_recordings.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from bot.config import Settings
from bot.domain import Video
from bot.errors import UsageError
from bot.recordings.sync import accept, reject, sync
from bot.sources.sessions_file import parse_session_file
from bot.store import tables
from bot.store.db import ensure_schema, make_engine
from bot.store.edits import edit_session
from bot.store.imports import import_sessions
from bot.store.reads import load_sessions
from bot.store.recordings import load_matches
from tests.support.cli import session_yaml

H = timedelta(hours=1)
START = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
SESSIONS = [
    {"id": f"s{i}", "title": title, "starts_at": START + i * 48 * H,
     "speakers": [{"name": speaker}]}
    for i, (title, speaker) in enumerate([
        ("DiffuCoder: Masked Diffusion Models for Code Generation", "Shansan Gong"),
        ("Large Language Diffusion Models", "Shen Nie"),
        ("Diffusion Language Models, part 2", "Shen Nie"),
    ])
]  # fmt: skip
SETTINGS = Settings(
    channels=("console",),
    recording_channels=("console",),
    reminders=(),
    site_url="https://dlm.example.org",
    youtube_channel_id="UCq0VwLs1gJ8kE2vYpTn4RbA",
    youtube_feed_url="http://127.0.0.1:9/feed",
)
EXAMPLES = int(os.environ.get("BOT_MODEL_EXAMPLES", "30"))
_TEMPLATE: list[str] = []  # a migrated database file, copied for each run (migrating takes ~1 s)


def _fresh_database(folder: str) -> str:
    if not _TEMPLATE:
        keep = tempfile.mkdtemp(prefix="bot-model-")
        engine = make_engine(f"sqlite:///{keep}/template.db")
        ensure_schema(engine)
        engine.dispose()
        _TEMPLATE.append(f"{keep}/template.db")
    shutil.copyfile(_TEMPLATE[0], f"{folder}/bot.db")
    return f"sqlite:///{folder}/bot.db"


class Recordings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.engine = make_engine(_fresh_database(self.folder.name))
        self.now = START + 8 * 24 * H
        self.hand: dict[str, str | None] = {}  # session -> the organiser's last word
        self.import_file()
        self.feed: list[Video] = []
        self.seen: list[Video] = []  # what a sync has read: the videos an operator can name
        self.rejected: set[tuple[str, str]] = set()

    def teardown(self) -> None:
        self.engine.dispose()
        self.folder.cleanup()

    def read(self, _url: str) -> list[Video]:
        shown = sorted(self.feed, key=lambda v: v.published_at, reverse=True)[:15]
        self.seen.extend(v for v in shown if v not in self.seen)
        return shown

    def urls(self) -> dict[str, str | None]:
        with self.engine.connect() as conn:
            return {s.id: s.recording_url for s in load_sessions(conn)}

    def matches(self) -> list:  # type: ignore[type-arg]
        with self.engine.connect() as conn:
            return load_matches(conn)

    @rule()
    def import_file(self) -> None:
        found = parse_session_file(session_yaml(SESSIONS), "sessions.yaml")
        import_sessions(self.engine, found.sessions, now=self.now)
        # The file names no recording: it clears the organiser's (it is their word too) and
        # keeps the feed's.
        self.hand = dict.fromkeys(getattr(self, "hand", {}))

    @rule(
        session=st.integers(0, 2),
        how=st.sampled_from(["tag", "page", "title", "other"]),
        hours=st.integers(-30, 60),
    )
    def upload(self, session: int, how: str, hours: int) -> None:
        s = SESSIONS[session]
        n = len(self.feed)
        vid = f"v{n:010d}"
        title, description = f"Upload {n}", ""
        if how == "tag":
            description = f"session:{s['id']}"
        elif how == "page":
            description = f"{SETTINGS.site_url}/sessions/{s['id']}/"
        elif how == "title":
            title = f"{s['title']} ({s['speakers'][0]['name']})"
        published = s["starts_at"] + hours * H
        url = f"https://www.youtube.com/watch?v={vid}"
        self.feed.append(Video(vid, title, url, published, None, description))
        self.now = max(self.now, published + H)

    @rule()
    def sync_twice(self) -> None:
        sync(self.engine, SETTINGS, self.now, read=self.read)
        before = self.snapshot()
        again = sync(self.engine, SETTINGS, self.now, read=self.read)
        assert not again.changed
        assert self.snapshot() == before

    @precondition(lambda self: bool(self.seen))
    @rule(session=st.integers(0, 2), data=st.data())
    def operator_accepts(self, session: int, data: st.DataObject) -> None:
        sid = SESSIONS[session]["id"]
        video = data.draw(st.sampled_from(self.seen))
        try:
            accept(self.engine, sid, video.video_id, self.now)
        except UsageError:
            # Refused only when the session has a recording, or the video is another's.
            others = {u for k, u in self.urls().items() if k != sid}
            assert self.urls()[sid] is not None or video.url in others
            return
        self.rejected.discard((sid, video.video_id))
        assert self.urls()[sid] == video.url

    @precondition(lambda self: bool(self.seen))
    @rule(session=st.integers(0, 2), data=st.data())
    def operator_rejects(self, session: int, data: st.DataObject) -> None:
        sid = SESSIONS[session]["id"]
        video = data.draw(st.sampled_from(self.seen))
        reject(self.engine, sid, video.video_id, self.now)
        self.rejected.add((sid, video.video_id))
        assert self.urls()[sid] != video.url

    @rule(session=st.integers(0, 2), clear=st.booleans())
    def organiser_edits(self, session: int, clear: bool) -> None:
        sid = SESSIONS[session]["id"]
        url = None if clear else f"https://vimeo.com/{sid}-{len(self.feed)}"
        edit_session(self.engine, sid, [f"recording_url={url or ''}"], self.now)
        self.hand[sid] = url

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        with self.engine.connect() as conn:
            return {
                table.name: sorted(map(tuple, conn.execute(select(table))), key=repr)
                for table in tables.metadata.sorted_tables
            }

    @invariant()
    def every_url_is_the_organisers_or_an_applied_video(self) -> None:
        applied = {(m.session_id, m.video_id) for m in self.matches() if m.status == "applied"}
        video_urls = {v.url: v.video_id for v in self.feed}
        for sid, url in self.urls().items():
            if url is None:
                continue
            if url in video_urls:
                assert (sid, video_urls[url]) in applied
            else:
                assert url == self.hand.get(sid)

    @invariant()
    def the_feed_never_replaced_an_organisers_url(self) -> None:
        urls = self.urls()
        for sid, url in self.hand.items():
            if url is not None:
                assert urls[sid] == url

    @invariant()
    def no_video_is_two_sessions_recording(self) -> None:
        urls = [u for u in self.urls().values() if u and "youtube.com" in u]
        assert len(urls) == len(set(urls))

    @invariant()
    def a_rejected_pair_is_never_proposed_again(self) -> None:
        for m in self.matches():
            if (m.session_id, m.video_id) in self.rejected:
                assert m.status == "rejected"


Recordings.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=25, deadline=None
)
test_recordings_model = Recordings.TestCase
