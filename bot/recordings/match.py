"""Which video is which session's recording: a pure function of videos, sessions and `now`.

Two kinds of match (SPEC §10), for sessions that have ended, are not cancelled and have no
`recording_url`, and for videos published from an hour before the session's start:

- *certain*: the video's description names the session, by `session:ID` or by its page URL on
  SITE_URL, and names no other session;
- *probable*: rapidfuzz's `token_set_ratio` of the two titles is at least PROBABLE_SCORE, a
  speaker's surname appears in the video's title or description, the video came out within
  RECORDING_WINDOW of the start, and no other video or session is as alike.

`WRatio` is not used: it scores a title sharing a few words with the wrong paper as high as the
right one, where `token_set_ratio` keeps them apart. Whatever is not unique is not guessed: it
becomes a note for the operator, who can still `recordings accept` any pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from bot.domain import SessionData, Video

PROBABLE_SCORE = 85
MIN_SHARED = 0.5  # of the session title's words, in the video's title
# Words that do not name a paper: "Session 3: …" has no name before its colon.
GENERIC = frozenset(
    {
        "session", "sessions", "talk", "lecture", "seminar", "meeting", "reading", "group",
        "paper", "papers", "week", "part", "episode", "keynote", "tutorial", "workshop",
        "guest", "special", "invited",
    }
)  # fmt: skip
EARLY = timedelta(hours=1)  # a video may come out this long before the start (a live stream)
_TAG = re.compile(r"(?<![A-Za-z0-9_-])session:([a-z0-9][a-z0-9-]{0,79})(?![a-z0-9-])", re.I)


@dataclass(frozen=True)
class Proposal:
    """A video proposed as a session's recording."""

    session_id: str
    video_id: str
    kind: str  # certain | probable
    score: int
    why: str


@dataclass(frozen=True)
class Matching:
    """What one look at the videos found: proposals, and notes on what was not guessed."""

    proposals: tuple[Proposal, ...]
    notes: tuple[str, ...]


def wants_recording(session: SessionData, now: datetime) -> bool:
    """True for a session a video may be matched to: ended, held, no recording_url yet."""
    return session.ends_at <= now and not session.cancelled and not session.recording_url


def _page_pattern(site_url: str) -> re.Pattern[str] | None:
    parts = urlsplit(site_url) if site_url else None
    if parts is None or not parts.hostname:
        return None
    base = re.escape(f"{parts.netloc}{parts.path.rstrip('/')}")
    return re.compile(rf"https?://{base}/sessions/([a-z0-9][a-z0-9-]{{0,79}})(?![a-z0-9-])", re.I)


def named_sessions(video: Video, known: Iterable[str], site_url: str) -> list[str]:
    """The sessions the video's description names (by `session:ID` or page URL), in order."""
    known_ids = set(known)
    found = [m.group(1).lower() for m in _TAG.finditer(video.description)]
    page = _page_pattern(site_url)
    if page is not None:
        found += [m.group(1).lower() for m in page.finditer(video.description)]
    return [sid for sid in dict.fromkeys(found) if sid in known_ids]


def _words(text: str) -> set[str]:
    from rapidfuzz.utils import default_process

    return set(default_process(text).split())


def _surnames(session: SessionData) -> list[str]:
    from rapidfuzz.utils import default_process

    names = (default_process(s.name).split() for s in session.speakers)
    return [parts[-1] for parts in names if parts]


def likeness(video_title: str, session_title: str) -> tuple[int, str]:
    """How alike the titles are, and what was alike: the whole title, or its name (the part
    before a colon, "DiffuCoder" of "DiffuCoder: Understanding …", as uploads are often titled
    "Group: DiffuCoder (Speaker)")."""
    from rapidfuzz import fuzz
    from rapidfuzz.utils import default_process

    session_words = default_process(session_title).split()
    whole = round(fuzz.token_set_ratio(video_title, " ".join(session_words)))
    # token_set_ratio is 100 for any subset: "Diffusion Models" against a ten-word title. At
    # least half the session title's words must be in the video's title as well.
    shared = len(set(session_words) & set(video_title.split())) / max(1, len(set(session_words)))
    if shared < MIN_SHARED:
        whole = min(whole, round(100 * shared))
    name, colon, _ = session_title.partition(":")
    short = default_process(name)
    distinct = any(len(w) >= 5 and w not in GENERIC and not w.isdigit() for w in short.split())
    if colon and distinct and len(short.split()) <= 4 and f" {short} " in f" {video_title} ":
        return 100, f"the paper's name {name.strip()!r} in its title"
    return whole, f"titles alike (token_set_ratio {whole})"


def _ago(delta: timedelta) -> str:
    minutes = int(abs(delta).total_seconds() // 60)
    text = f"{minutes // 1440}d" if minutes >= 1440 else f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{text} {'after' if delta >= timedelta(0) else 'before'} the start"


def match(
    videos: Sequence[Video],
    sessions: Sequence[SessionData],
    now: datetime,
    *,
    site_url: str,
    window: timedelta,
    excluded: frozenset[tuple[str, str]] = frozenset(),
    taken: frozenset[str] = frozenset(),
) -> Matching:
    """Proposals for the sessions that want a recording, best first within each kind.

    `excluded` holds (session, video) pairs never to propose again (rejected); `taken` holds
    videos already some session's recording.
    """
    from rapidfuzz.utils import default_process

    by_id = {s.id: s for s in sessions}
    wanting = [s for s in sessions if wants_recording(s, now)]
    # A video some session already links (set by hand, too) is nobody else's recording.
    linked = {s.recording_url for s in sessions if s.recording_url}
    taken = taken | {v.video_id for v in videos if v.url in linked}
    notes: list[str] = []
    proposals: list[Proposal] = []
    claimed: dict[str, list[Video]] = {}  # session -> videos whose description names only it
    spoken_for: set[str] = set()  # videos that name a session: never guessed for another
    for video in videos:
        if video.video_id in taken:
            continue
        named = named_sessions(video, by_id, site_url)
        if len(named) == 1:
            spoken_for.add(video.video_id)
            session = by_id[named[0]]
            if not wants_recording(session, now) or (session.id, video.video_id) in excluded:
                continue
            if video.published_at < session.starts_at - EARLY:
                notes.append(
                    f"video {video.video_id} names session {session.id} but came out "
                    f"{_ago(video.published_at - session.starts_at)}: not matched "
                    f"(if it is the recording: `bot recordings accept {session.id} "
                    f"{video.video_id}`)"
                )
                continue
            claimed.setdefault(session.id, []).append(video)
        elif len(named) > 1:
            notes.append(
                f"video {video.video_id} names {len(named)} sessions ({', '.join(named)}): "
                "not certain of any"
            )
    for session_id, found in sorted(claimed.items()):
        if len(found) > 1:
            ids = ", ".join(sorted(v.video_id for v in found))
            notes.append(
                f"session {session_id} is named by {len(found)} videos ({ids}): not applied; "
                f"`bot recordings accept {session_id} VIDEO_ID` the right one"
            )
            continue
        video = found[0]
        how = "session:" if _TAG.search(video.description) else "the session's page URL"
        proposals.append(
            Proposal(session_id, video.video_id, "certain", 100, f"its description holds {how}")
        )
    certain_sessions = set(claimed)
    # Probable: every alike pair first, then only the ones alike beyond any rival.
    alike: list[tuple[SessionData, Video, int, str]] = []
    for video in videos:
        if video.video_id in taken or video.video_id in spoken_for:
            continue
        words = _words(f"{video.title} {video.description}")
        title = default_process(video.title)
        for session in wanting:
            if session.id in certain_sessions or (session.id, video.video_id) in excluded:
                continue
            since = video.published_at - session.starts_at
            if not -EARLY <= since <= window:
                continue
            surname = next((n for n in _surnames(session) if n in words), None)
            if surname is None:
                continue
            score, alike_to = likeness(title, session.title)
            if score < PROBABLE_SCORE:
                continue
            why = f"{alike_to}, {surname} named, out {_ago(since)}"
            alike.append((session, video, score, why))
    unguessed: dict[str, set[str]] = {}  # video -> sessions it is alike to, without a winner
    for session, video, score, why in alike:
        if any(
            (s.id == session.id) != (v.video_id == video.video_id) and sc >= score
            for s, v, sc, _ in alike
        ):
            unguessed.setdefault(video.video_id, set()).add(session.id)
        else:
            proposals.append(Proposal(session.id, video.video_id, "probable", score, why))
    groups: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for video_id, session_ids in unguessed.items():
        rivals = {v.video_id for s, v, _, _ in alike if s.id in session_ids} | {video_id}
        groups.add((tuple(sorted(rivals)), tuple(sorted(session_ids))))
    for video_ids, alike_ids in sorted(groups):
        v_label = "video" if len(video_ids) == 1 else "videos"
        s_label = "session" if len(alike_ids) == 1 else "sessions"
        notes.append(
            f"{v_label} {', '.join(video_ids)} alike to {s_label} {', '.join(alike_ids)}: "
            "not guessed"
        )
    proposals.sort(key=lambda p: (p.kind != "certain", -p.score, p.session_id, p.video_id))
    return Matching(tuple(proposals), tuple(dict.fromkeys(notes)))
