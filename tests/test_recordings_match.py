"""The matcher (bot.recordings.match): which video is which session's recording, as a pure
function of videos, sessions and `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

from bot.domain import SessionData, Speaker, Video
from bot.recordings.match import PROBABLE_SCORE, match, named_sessions

H = timedelta(hours=1)
D = timedelta(days=1)
START = datetime(2026, 11, 17, 16, 0, tzinfo=UTC)
NOW = START + 5 * D
SITE = "https://dlm-reading.example.org/group"
WINDOW = 14 * D


def session(
    sid: str, title: str, start: datetime = START, speaker: str = "Shansan Gong", **kw: object
) -> SessionData:
    return SessionData(
        id=sid,
        title=title,
        starts_at=start,
        speakers=(Speaker(speaker),),
        **kw,  # type: ignore[arg-type]
    )


def video(
    vid: str, title: str, published: datetime = START + 3 * H, description: str = ""
) -> Video:
    return Video(vid, title, f"https://www.youtube.com/watch?v={vid}", published, None, description)


DIFFUCODER = session(
    "diffucoder",
    "DiffuCoder: Understanding and Improving Masked Diffusion Models for Code Generation",
)


def run(videos: list[Video], sessions: list[SessionData], **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"site_url": SITE, "window": WINDOW} | kw
    return match(videos, sessions, NOW, **args)  # type: ignore[arg-type]


def pairs(found) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return [(p.session_id, p.video_id, p.kind) for p in found.proposals]


# ---------------------------------------------------------------- certain


def test_the_session_tag_in_the_description_is_certain() -> None:
    v = video("v1aaaaaaaaa", "Reading group #12", description="Slides below.\nsession:diffucoder\n")
    found = run([v], [DIFFUCODER])
    assert pairs(found) == [("diffucoder", "v1aaaaaaaaa", "certain")]
    assert found.proposals[0].score == 100
    assert "session:" in found.proposals[0].why


def test_the_session_page_url_in_the_description_is_certain() -> None:
    v = video("v2aaaaaaaaa", "Talk", description=f"Details: {SITE}/sessions/diffucoder/ (slides)")
    assert pairs(run([v], [DIFFUCODER])) == [("diffucoder", "v2aaaaaaaaa", "certain")]
    # The page URL counts only on SITE_URL: another site's /sessions/ID/ is not ours.
    other = video("v3aaaaaaaaa", "Talk", description="https://else.example/sessions/diffucoder/")
    assert pairs(run([other], [DIFFUCODER])) == []


def test_an_id_is_matched_whole_never_as_a_prefix() -> None:
    s1 = session("week-1", "Alpha", speaker="Ann Lee")
    s10 = session("week-10", "Beta", speaker="Bo Chan")
    v = video("v4aaaaaaaaa", "Beta", description="session:week-10")
    assert named_sessions(v, ["week-1", "week-10"], SITE) == ["week-10"]
    assert pairs(run([v], [s1, s10])) == [("week-10", "v4aaaaaaaaa", "certain")]
    tail = video("v5aaaaaaaaa", "x", description="see session:week-1-extra and session:week-1.")
    assert named_sessions(tail, ["week-1", "week-1-extra"], SITE) == ["week-1-extra", "week-1"]


def test_a_description_naming_two_sessions_is_certain_of_neither() -> None:
    a = session("part-1", "Alpha", speaker="Ann Lee")
    b = session("part-2", "Beta", speaker="Bo Chan")
    v = video("v6aaaaaaaaa", "Both parts", description="session:part-1 and session:part-2")
    found = run([v], [a, b])
    assert pairs(found) == []
    assert any("names 2 sessions" in n for n in found.notes)


def test_two_videos_naming_one_session_apply_neither() -> None:
    a = video("v7aaaaaaaaa", "Upload", description="session:diffucoder")
    b = video("v8aaaaaaaaa", "Re-upload", description="session:diffucoder")
    found = run([a, b], [DIFFUCODER])
    assert pairs(found) == []
    assert any("named by 2 videos" in n for n in found.notes)


def test_a_video_naming_a_session_is_never_guessed_for_another() -> None:
    # Titles alike and the speaker named, but its description names a session not ended yet.
    later = session("diffucoder-2", "DiffuCoder follow-up", start=NOW + D)
    v = video("v9aaaaaaaaa", DIFFUCODER.title + " Gong", description="session:diffucoder-2")
    assert pairs(run([v], [DIFFUCODER, later])) == []


# ---------------------------------------------------------------- probable


def test_a_similar_title_with_the_speakers_name_is_probable() -> None:
    v = video("vaaaaaaaaaa", f"{DIFFUCODER.title} | Shansan Gong")
    found = run([v], [DIFFUCODER])
    assert pairs(found) == [("diffucoder", "vaaaaaaaaaa", "probable")]
    assert found.proposals[0].score >= PROBABLE_SCORE
    assert "gong named" in found.proposals[0].why


def test_the_speakers_name_may_be_in_the_description() -> None:
    v = video("vbaaaaaaaaa", DIFFUCODER.title, description="Speaker: Shansan Gong (HKU)")
    assert pairs(run([v], [DIFFUCODER])) == [("diffucoder", "vbaaaaaaaaa", "probable")]


def test_without_the_speakers_name_a_similar_title_is_not_enough() -> None:
    v = video("vcaaaaaaaaa", DIFFUCODER.title, description="Our reading group session")
    assert pairs(run([v], [DIFFUCODER])) == []


def test_token_set_ratio_keeps_the_wrong_paper_apart_where_wratio_does_not() -> None:
    # The research note's case: WRatio scores another masked-diffusion paper as high as the
    # right upload; token_set_ratio keeps it well under the bar.
    wrong = "Simple and Effective Masked Diffusion Language Models"
    right = "DiffuCoder: Masked Diffusion Models for Code Generation | Shansan Gong"
    session_title = default_process(DIFFUCODER.title)
    assert fuzz.WRatio(default_process(wrong), session_title) >= 85
    assert fuzz.token_set_ratio(default_process(wrong), session_title) < 70
    assert fuzz.token_set_ratio(default_process(right), session_title) >= 85
    found = run(
        [video("vdaaaaaaaaa", wrong), video("veaaaaaaaaa", right, START + 4 * H)], [DIFFUCODER]
    )
    assert pairs(found) == [("diffucoder", "veaaaaaaaaa", "probable")]


def test_a_generic_title_whose_words_are_a_subset_is_not_alike() -> None:
    # token_set_ratio gives 100 to any subset: two of ten words are not the same talk.
    assert fuzz.token_set_ratio("diffusion models", default_process(DIFFUCODER.title)) == 100
    v = video("vuaaaaaaaaa", "Diffusion Models", description="Shansan Gong on the basics")
    assert pairs(run([v], [DIFFUCODER])) == []


def test_the_papers_name_before_the_colon_counts_as_alike() -> None:
    # "Group: Name (Speaker)" uploads share few words with the full title (token_set_ratio 58).
    v = video("vraaaaaaaaa", "Diffusion LM Reading Group: DiffuCoder (Shansan Gong)")
    found = run([v], [DIFFUCODER])
    assert pairs(found) == [("diffucoder", "vraaaaaaaaa", "probable")]
    assert "the paper's name 'DiffuCoder' in its title" in found.proposals[0].why
    # A name of generic words is not a name.
    generic = session("s3", "Session 3: Masked Diffusion Models for Code Generation")
    assert pairs(run([video("vsaaaaaaaaa", "Session 3 - Gong")], [generic])) == []


@pytest.mark.parametrize(
    ("published", "matched"),
    [
        (START - 2 * H, False),  # a teaser, before the session
        (START - H, True),  # a live stream may start an hour early
        (START + WINDOW, True),
        (START + WINDOW + H, False),  # beyond RECORDING_WINDOW
    ],
)
def test_only_videos_published_in_the_window_are_probable(
    published: datetime, matched: bool
) -> None:
    v = video("vfaaaaaaaaa", f"{DIFFUCODER.title} with Shansan Gong", published)
    now = max(NOW, published + H)
    found = match([v], [DIFFUCODER], now, site_url=SITE, window=WINDOW)
    assert bool(found.proposals) is matched


def test_a_certain_video_published_before_the_session_is_not_matched_but_noted() -> None:
    v = video("vgaaaaaaaaa", "Coming up next week!", START - 3 * D, "session:diffucoder")
    found = run([v], [DIFFUCODER])
    assert pairs(found) == []
    assert any("3d before the start: not matched" in n for n in found.notes)


def test_two_similar_sessions_and_one_video_are_not_guessed() -> None:
    part1 = session("dlm-1", "Diffusion Language Models, part 1", start=START, speaker="Ann Lee")
    part2 = session("dlm-2", "Diffusion Language Models, part 2", START + 2 * H, "Ann Lee")
    v = video("vhaaaaaaaaa", "Diffusion Language Models with Ann Lee", START + 4 * H)
    found = run([v], [part1, part2])
    assert pairs(found) == []
    assert found.notes == ("video vhaaaaaaaaa alike to sessions dlm-1, dlm-2: not guessed",)


def test_two_similar_videos_for_one_session_are_not_guessed() -> None:
    a = video("viaaaaaaaaa", f"{DIFFUCODER.title} (Gong)")
    b = video("vjaaaaaaaaa", f"{DIFFUCODER.title} (Gong) [re-upload]")
    found = run([a, b], [DIFFUCODER])
    assert pairs(found) == []
    assert found.notes == (
        "videos viaaaaaaaaa, vjaaaaaaaaa alike to session diffucoder: not guessed",
    )


def test_a_clearly_better_rival_does_not_block_the_best_pair() -> None:
    a = session("alpha", "Masked diffusion for code generation", speaker="Ann Lee")
    b = session("beta", "Masked diffusion for protein design", speaker="Ann Lee")
    v1 = video("vkaaaaaaaaa", "Masked diffusion for code generation - Ann Lee")
    v2 = video("vlaaaaaaaaa", "Masked diffusion for protein design - Ann Lee")
    assert sorted(pairs(run([v1, v2], [a, b]))) == [
        ("alpha", "vkaaaaaaaaa", "probable"),
        ("beta", "vlaaaaaaaaa", "probable"),
    ]


# ---------------------------------------------------------------- who wants a recording


@pytest.mark.parametrize(
    "changes",
    [
        {"starts_at": NOW - 30 * timedelta(minutes=1)},  # still running (60 minutes)
        {"status": "cancelled"},
        {"recording_url": "https://vimeo.com/1"},  # an organiser's own: never overridden
    ],
)
def test_only_ended_held_sessions_without_a_recording_get_one(changes: dict[str, object]) -> None:
    from dataclasses import replace

    s = replace(DIFFUCODER, **changes)  # type: ignore[arg-type]
    v = video("vmaaaaaaaaa", "Talk", NOW - 10 * timedelta(minutes=1), "session:diffucoder")
    assert pairs(run([v], [s])) == []


def test_rejected_pairs_and_taken_videos_are_never_proposed() -> None:
    v = video("vnaaaaaaaaa", "x", description="session:diffucoder")
    assert pairs(run([v], [DIFFUCODER], excluded=frozenset({("diffucoder", "vnaaaaaaaaa")}))) == []
    assert pairs(run([v], [DIFFUCODER], taken=frozenset({"vnaaaaaaaaa"}))) == []
    p = video("voaaaaaaaaa", f"{DIFFUCODER.title} - Gong")
    assert pairs(run([p], [DIFFUCODER], excluded=frozenset({("diffucoder", "voaaaaaaaaa")}))) == []


def test_a_video_a_session_links_by_hand_is_nobody_elses() -> None:
    v = video("vtaaaaaaaaa", f"{DIFFUCODER.title} - Gong")
    other = session("other", DIFFUCODER.title + " (repeat)", recording_url=v.url)
    assert pairs(run([v], [DIFFUCODER, other])) == []


def test_a_rejected_rival_leaves_the_other_video_unique() -> None:
    a = video("vpaaaaaaaaa", f"{DIFFUCODER.title} (Gong)")
    b = video("vqaaaaaaaaa", f"{DIFFUCODER.title} (Gong) [re-upload]")
    found = run([a, b], [DIFFUCODER], excluded=frozenset({("diffucoder", "vqaaaaaaaaa")}))
    assert pairs(found) == [("diffucoder", "vpaaaaaaaaa", "probable")]


# ---------------------------------------------------------------- properties

WORDS = ["diffusion", "language", "models", "masked", "code", "reasoning", "llada", "gong", "lee"]
titles = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Video], list[SessionData]]:
    n = draw(st.integers(1, 5))
    sessions = [
        session(
            f"s{i}",
            draw(titles),
            START + draw(st.integers(-10, 3)) * D,
            speaker=draw(st.sampled_from(["Shansan Gong", "Ann Lee"])),
            status=draw(st.sampled_from(["scheduled", "scheduled", "cancelled"])),
        )
        for i in range(n)
    ]
    videos = []
    for j in range(draw(st.integers(0, 6))):
        tags = draw(st.lists(st.sampled_from([f"session:s{i}" for i in range(n)]), max_size=2))
        videos.append(
            video(
                f"v{j:010d}",
                draw(titles),
                START + draw(st.integers(-12, 20)) * D + draw(st.integers(0, 23)) * H,
                " ".join(tags),
            )
        )
    return videos, sessions


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_proposals_are_one_to_one_and_only_for_sessions_that_want_one(
    world: tuple[list[Video], list[SessionData]],
) -> None:
    videos, sessions = world
    found = run(videos, sessions)
    by_id = {s.id: s for s in sessions}
    seen_sessions = [p.session_id for p in found.proposals]
    seen_videos = [p.video_id for p in found.proposals]
    assert len(set(seen_sessions)) == len(seen_sessions)
    assert len(set(seen_videos)) == len(seen_videos)
    published = {v.video_id: v.published_at for v in videos}
    for p in found.proposals:
        s = by_id[p.session_id]
        assert s.ends_at <= NOW and not s.cancelled and not s.recording_url
        assert published[p.video_id] >= s.starts_at - H
    # The feed's order does not matter: the same videos give the same answer.
    again = run(list(reversed(videos)), sessions)
    assert again.proposals == found.proposals
    assert set(again.notes) == set(found.notes)
