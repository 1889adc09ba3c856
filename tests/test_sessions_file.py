"""Session files: validation with exact error lines, all-or-nothing upsert, prune, export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession

from bot.domain import Paper, SessionData, Speaker
from bot.errors import DataError
from bot.sources.sessions_file import export_sessions, parse_sessions
from bot.store.imports import import_sessions, load_all_sessions
from bot.store.models import Delivery
from bot.store.models import Session as SessionRow

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sessions.yaml"
VALID = {"id": "s1", "title": "A talk", "starts_at": "2026-12-14 10:00", "timezone": "UTC"}


def file_of(*sessions: dict[str, object]) -> str:
    """A session file holding these sessions, written the way a person would."""
    return yaml.safe_dump({"sessions": list(sessions)}, sort_keys=False, allow_unicode=True)


def problems(text: str) -> list[str]:
    """The error lines parse_sessions gives for this text (it must reject it)."""
    with pytest.raises(DataError) as caught:
        parse_sessions(text, "f.yaml")
    return caught.value.problems


def session(**changes: object) -> dict[str, object]:
    """A valid session mapping with some fields replaced (None removes a field)."""
    merged = VALID | changes
    return {key: value for key, value in merged.items() if value is not None}


ID_RULE = "must match [a-z0-9][a-z0-9-]{0,79}"
URL_RULE = "must be an http(s) URL with a host and no spaces"
TIME_RULE = "like 2025-12-15 10:00 or 2025-12-15T15:00:00Z"
NEW_YORK = {"timezone": "America/New_York"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"id": None}, "id: missing"),
        ({"id": "Diffu_Coder"}, f"id: {ID_RULE} (Diffu_Coder)"),
        ({"id": "-leading-dash"}, f"id: {ID_RULE} (-leading-dash)"),
        ({"id": "a" * 81}, f"id: {ID_RULE} ({'a' * 79}…)"),
        ({"title": None}, "title: missing"),
        ({"title": "  "}, "title: must not be empty ('  ')"),
        ({"title": 2001}, "title: must be text (put it in quotes) (2001)"),
        (
            {"starts_at": "2026-03-08 02:30", **NEW_YORK},
            "starts_at: does not exist in America/New_York: skipped by a clock change "
            "(2026-03-08 02:30)",
        ),
        (
            {"starts_at": "2026-11-01 01:30", **NEW_YORK},
            "starts_at: is ambiguous in America/New_York: it happens twice when clocks go back; "
            "give an offset (2026-11-01 01:30)",
        ),
        (
            {"timezone": "America/New_Yrok"},
            "timezone: unknown time zone, expected an IANA name like America/New_York "
            "(America/New_Yrok)",
        ),
        (
            {"timezone": "localtime"},
            "timezone: unknown time zone, expected an IANA name like America/New_York (localtime)",
        ),
        (
            {"timezone": None},
            "starts_at: a local time needs `timezone`, or give an offset or Z (2026-12-14 10:00)",
        ),
        (
            {"starts_at": "2026-12-14T15:00:00Z", "timezone": "Europe/Paris"},
            "timezone: must be left out when starts_at has an offset or Z (Europe/Paris)",
        ),
        ({"starts_at": None}, "starts_at: missing"),
        ({"starts_at": "next monday"}, f"starts_at: must be a time {TIME_RULE} (next monday)"),
        ({"meeting_url": "example.zoom.us/j/1"}, f"meeting_url: {URL_RULE} (example.zoom.us/j/1)"),
        (
            {"recording_url": "https://you tube.com/x"},
            f"recording_url: {URL_RULE} (https://you tube.com/x)",
        ),
        ({"meeting_url": "https://[::1/x"}, f"meeting_url: {URL_RULE} (https://[::1/x)"),
        (
            {"papers": [{"title": "P", "url": "ftp://arxiv.org/abs/1"}]},
            f"papers[0].url: {URL_RULE} (ftp://arxiv.org/abs/1)",
        ),
        ({"papers": [{"url": "https://arxiv.org/abs/1"}]}, "papers[0].title: missing"),
        ({"speakers": [{"affiliation": "HKU"}]}, "speakers[0].name: missing"),
        (
            {"speakers": [{"name": "A", "url": "mailto:a@b.c"}]},
            f"speakers[0].url: {URL_RULE} (mailto:a@b.c)",
        ),
        (
            {"speakers": ["Shansan Gong"]},
            "speakers[0]: must be a mapping with `name` (Shansan Gong)",
        ),
        ({"speakers": "Shansan Gong"}, "speakers: must be a list (Shansan Gong)"),
        ({"duration": "-30m"}, "duration: must be positive (-30m)"),
        ({"duration": "0m"}, "duration: must be positive (0m)"),
        ({"duration": "90s"}, "duration: must be whole minutes (90s)"),
        ({"duration": 60}, "duration: must be a duration like 60m or 1h30m (60)"),
        ({"duration": "an hour"}, "duration: must be a duration like 60m or 1h30m (an hour)"),
        ({"status": "postponed"}, "status: must be scheduled or cancelled (postponed)"),
        ({"venue": "Room 1"}, "venue: unknown field (Room 1)"),
        ({"speakers": [{"name": "A", "twitter": "@a"}]}, "speakers[0].twitter: unknown field (@a)"),
        (
            {"papers": [{"title": "P", "pdf": "https://x.org/p.pdf"}]},
            "papers[0].pdf: unknown field (https://x.org/p.pdf)",
        ),
    ],
)
def test_each_error_kind_has_its_exact_line(changes: dict[str, object], expected: str) -> None:
    assert problems(file_of(session(**changes))) == [f"f.yaml: sessions[0].{expected}"]


def test_duplicate_id_names_the_earlier_index() -> None:
    text = file_of(session(id="a"), session(id="b"), session(id="a"))
    assert problems(text) == ["f.yaml: sessions[2].id: duplicate of sessions[0] (a)"]


def test_yaml_syntax_error_is_one_line_with_its_line_number() -> None:
    text = "sessions:\n  - id: a\n    title: [unclosed\n    starts_at: x: y\n"
    [line] = problems(text)
    assert line.startswith("f.yaml: line ")
    assert "\n" not in line


def test_duplicate_yaml_key_is_reported_with_its_line() -> None:
    text = "sessions:\n  - id: a\n    title: One\n    title: Two\n"
    assert "f.yaml: line 4: duplicate key (title)" in problems(text)


TOP_RULE = "the file must be a mapping with a `sessions` list"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- id: a\n", f"f.yaml: sessions: {TOP_RULE} (a list)"),
        ("", f"f.yaml: sessions: {TOP_RULE} (null)"),
        ("sessions: []\nsessions: []\n", "f.yaml: line 2: duplicate key (sessions)"),
        ("talks: []\n", "f.yaml: talks: unknown field (a list)"),
        ("sessions: 3\n", "f.yaml: sessions: must be a list (write [] for none) (3)"),
    ],
)
def test_top_level_must_be_a_mapping_with_a_sessions_list(text: str, expected: str) -> None:
    assert expected in problems(text)


def test_every_error_of_a_file_is_reported_together() -> None:
    text = file_of(
        session(id="ok"),
        session(id=None, title=None),
        session(id="gap", starts_at="2026-03-08 02:30", timezone="America/New_York"),
        session(id="ok", duration="-1h", speakers=[{"name": "A", "handle": "@a"}]),
    ) + "organizers: []\n"  # fmt: skip
    assert problems(text) == [
        "f.yaml: organizers: unknown field (a list)",
        "f.yaml: sessions[1].id: missing",
        "f.yaml: sessions[1].title: missing",
        "f.yaml: sessions[2].starts_at: does not exist in America/New_York: "
        "skipped by a clock change (2026-03-08 02:30)",
        "f.yaml: sessions[3].duration: must be positive (-1h)",
        "f.yaml: sessions[3].speakers[0].handle: unknown field (@a)",
        "f.yaml: sessions[3].id: duplicate of sessions[0] (ok)",
    ]


def test_times_are_stored_in_utc_and_keep_their_form() -> None:
    text = file_of(
        session(id="local", starts_at="2027-03-15 10:00", timezone="America/New_York"),
        session(id="offset", starts_at="2027-03-15T15:00:00+01:00", timezone=None),
        session(id="seconds", starts_at="2027-03-15 10:00:30", timezone="Europe/Paris"),
    )
    local, offset, seconds = parse_sessions(text, "f.yaml")
    assert local.starts_at == datetime(2027, 3, 15, 14, 0, tzinfo=UTC)
    assert local.starts_at.utcoffset() == timedelta(0)
    assert local.timezone == "America/New_York"
    assert offset.starts_at == datetime(2027, 3, 15, 14, 0, tzinfo=UTC)
    assert offset.timezone is None
    assert seconds.starts_at == datetime(2027, 3, 15, 9, 0, 30, tzinfo=UTC)


def test_yaml_timestamps_are_accepted_as_well_as_strings() -> None:
    text = "sessions:\n  - {id: a, title: T, starts_at: 2026-12-14 10:00:00, timezone: UTC}\n"
    text += "  - {id: b, title: T, starts_at: 2026-12-14T10:00:00Z}\n"
    text += "  - {id: c, title: T, starts_at: 2026-12-14}\n"
    text += "  - {id: d, title: T, starts_at: 2026-02-30 10:00:00, timezone: UTC}\n"
    assert problems(text) == [
        "f.yaml: sessions[2].starts_at: needs a time of day like 2025-12-15 10:00 "
        "or 2025-12-15T15:00:00Z (2026-12-14)",
        "f.yaml: sessions[3].starts_at: must be a time like 2025-12-15 10:00 "
        "or 2025-12-15T15:00:00Z (2026-02-30 10:00:00)",
    ]
    a, b = parse_sessions(text.rsplit("  - {id: c", 1)[0], "f.yaml")
    assert a.starts_at == b.starts_at == datetime(2026, 12, 14, 10, 0, tzinfo=UTC)


def test_defaults_apply_to_optional_fields() -> None:
    [s] = parse_sessions(file_of(session()), "f.yaml")
    assert (s.duration, s.status, s.speakers, s.papers, s.abstract) == (
        timedelta(minutes=60),
        "scheduled",
        (),
        (),
        "",
    )
    assert (s.meeting_url, s.recording_url) == (None, None)


def test_example_file_parses_and_lies_in_the_future() -> None:
    sessions = parse_sessions(EXAMPLE.read_text(), str(EXAMPLE))
    assert len(sessions) >= 3
    assert all(s.starts_at > NOW for s in sessions)
    assert any(s.timezone is None for s in sessions)
    diffucoder = next(s for s in sessions if s.id == "diffucoder")
    assert diffucoder.speakers[0] == Speaker("Shansan Gong", "The University of Hong Kong")
    assert [p.url for p in diffucoder.papers] == [
        "https://arxiv.org/abs/2506.20639",
        "https://arxiv.org/abs/2410.17891",
    ]
    assert diffucoder.abstract.startswith("Diffusion language models (DLMs) generate text by")
    assert diffucoder.abstract.endswith("and reduces reliance on AR-biased decoding.")
    assert "\n" not in diffucoder.abstract  # one paragraph, so posts are not hard-wrapped
    # One session falls in the weeks when New York has changed clocks and Paris has not.
    gaps = {
        s.starts_at.astimezone(ZoneInfo("Europe/Paris")).hour
        - s.starts_at.astimezone(ZoneInfo("America/New_York")).hour
        for s in sessions
    }
    assert gaps == {5, 6}


# --- import -------------------------------------------------------------------------------


def stored(engine: Engine) -> list[SessionData]:
    return load_all_sessions(engine)


def test_import_adds_updates_and_leaves_unchanged(engine: Engine) -> None:
    first = parse_sessions(file_of(session(id="a"), session(id="b")), "f.yaml")
    report = import_sessions(engine, first, now=NOW)
    assert (report.added, report.updated, report.unchanged) == (["a", "b"], [], [])
    later = NOW + timedelta(hours=1)
    second = parse_sessions(
        file_of(session(id="a", title="New title"), session(id="b"), session(id="c")), "f.yaml"
    )
    report = import_sessions(engine, second, now=later)
    assert (report.added, report.updated, report.unchanged) == (["c"], ["a"], ["b"])
    assert report.changes == {"a": ["title"]}
    a, _, c = stored(engine)
    assert a.title == "New title"
    assert (a.sequence, a.occurrence_since) == (1, NOW)  # a change, but the time did not move
    assert (c.sequence, c.occurrence_since) == (0, later)
    with OrmSession(engine) as orm:
        rows = {r.id: r for r in orm.scalars(select(SessionRow))}
    assert rows["a"].updated_at == later
    assert rows["b"].updated_at == NOW  # unchanged: not written at all
    assert rows["c"].created_at == rows["c"].updated_at == later


def test_changed_start_bumps_sequence_and_occurrence_since(engine: Engine) -> None:
    import_sessions(engine, parse_sessions(file_of(session()), "f.yaml"), now=NOW)
    moved = parse_sessions(file_of(session(starts_at="2026-12-15 10:00")), "f.yaml")
    later = NOW + timedelta(days=1)
    report = import_sessions(engine, moved, now=later)
    assert report.changes == {"s1": ["starts_at"]}
    [s] = stored(engine)
    assert s.starts_at == datetime(2026, 12, 15, 10, 0, tzinfo=UTC)
    assert (s.sequence, s.occurrence_since) == (1, later)


def test_speakers_and_papers_are_replaced_in_order(engine: Engine) -> None:
    people = [{"name": "Ann", "x": "@ann"}, {"name": "Bob", "affiliation": "EPFL"}]
    papers = [{"title": "P1", "url": "https://arxiv.org/abs/1"}, {"title": "P2"}]
    first = session(speakers=people, papers=papers)
    import_sessions(engine, parse_sessions(file_of(first), "f.yaml"), now=NOW)
    swapped = session(speakers=people[::-1], papers=papers[1:])
    report = import_sessions(engine, parse_sessions(file_of(swapped), "f.yaml"), now=NOW)
    assert report.changes == {"s1": ["speakers", "papers"]}
    [s] = stored(engine)
    assert s.speakers == (Speaker("Bob", affiliation="EPFL"), Speaker("Ann", x="@ann"))
    assert s.papers == (Paper("P2"),)
    assert s.sequence == 1  # every change raises the calendar SEQUENCE


def test_a_failing_import_changes_nothing(engine: Engine) -> None:
    import_sessions(engine, parse_sessions(file_of(session(id="a")), "f.yaml"), now=NOW)
    before = stored(engine)
    [changed] = parse_sessions(file_of(session(id="a", title="Changed")), "f.yaml")
    broken = SessionData(id="b", title=None, starts_at=NOW)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        import_sessions(engine, [changed, broken], now=NOW)
    assert stored(engine) == before


def test_a_file_with_any_error_is_rejected_before_the_database(engine: Engine) -> None:
    import_sessions(engine, parse_sessions(file_of(session(id="a")), "f.yaml"), now=NOW)
    before = stored(engine)
    text = file_of(session(id="a", title="Changed"), session(id="b", timezone="Nowhere/City"))
    with pytest.raises(DataError):
        import_sessions(engine, parse_sessions(text, "f.yaml"), now=NOW, prune=True)
    assert stored(engine) == before


def add_delivery(engine: Engine, session_id: str, status: str) -> None:
    with OrmSession(engine) as orm, orm.begin():
        occurrence = datetime(2026, 12, 14, 10, 0, tzinfo=UTC)
        orm.add(
            Delivery(
                session_id=session_id,
                notice="announce",
                channel="console",
                occurrence=occurrence,
                due_at=occurrence - timedelta(days=7),
                deadline=occurrence,
                status=status,
                attempts=1,
                first=True,
                created_at=NOW,
                updated_at=NOW,
            )
        )


def test_prune_deletes_unsent_and_cancels_announced_sessions(engine: Engine) -> None:
    everything = [
        session(id="kept-in-file"),
        session(id="never-sent"),
        session(id="announced", speakers=[{"name": "Ann"}]),
        session(id="held", starts_at="2026-11-20 10:00"),
    ]
    import_sessions(engine, parse_sessions(file_of(*everything), "f.yaml"), now=NOW)
    add_delivery(engine, "never-sent", "failed")
    add_delivery(engine, "announced", "sent")
    add_delivery(engine, "held", "sent")
    only_first = parse_sessions(file_of(everything[0]), "f.yaml")

    kept_without_prune = import_sessions(engine, only_first, now=NOW)
    assert kept_without_prune.pruned == [] and len(stored(engine)) == 4

    report = import_sessions(engine, only_first, now=NOW, prune=True)
    assert report.pruned == ["never-sent"]
    assert report.cancelled_by_prune == ["announced"]
    assert report.kept == ["held"]  # already took place: history, not cancelled
    statuses = {s.id: s.status for s in stored(engine)}
    assert statuses == {"held": "scheduled", "kept-in-file": "scheduled", "announced": "cancelled"}
    with OrmSession(engine) as orm:
        ledger = set(orm.scalars(select(Delivery.session_id)))
    assert ledger == {"announced", "held"}


def test_dry_run_reports_the_same_and_writes_nothing(engine: Engine) -> None:
    two = parse_sessions(file_of(session(id="a"), session(id="b")), "f.yaml")
    import_sessions(engine, two, now=NOW)
    before = stored(engine)
    text = file_of(session(id="a", starts_at="2026-12-20 09:00"), session(id="c"))
    wanted = parse_sessions(text, "f.yaml")
    dry = import_sessions(engine, wanted, now=NOW, prune=True, dry_run=True)
    assert stored(engine) == before
    real = import_sessions(engine, wanted, now=NOW, prune=True)
    assert (dry.added, dry.updated, dry.pruned) == (["c"], ["a"], ["b"])
    assert dry.changes == {"a": ["starts_at"]}
    assert (dry.added, dry.updated, dry.pruned, dry.changes) == (
        real.added,
        real.updated,
        real.pruned,
        real.changes,
    )
    assert dry.dry_run and not real.dry_run


def test_load_leaves_out_past_sessions_when_asked(engine: Engine) -> None:
    text = file_of(
        session(id="later", starts_at="2027-01-05 10:00"),
        session(id="ended", starts_at="2026-11-20 10:00"),
        session(id="sooner", starts_at="2026-12-01 10:00"),
        session(id="running", starts_at="2026-11-27 11:30"),
    )
    import_sessions(engine, parse_sessions(text, "f.yaml"), now=NOW)
    assert [s.id for s in load_all_sessions(engine)] == ["ended", "running", "sooner", "later"]
    upcoming = load_all_sessions(engine, include_past=False, now=NOW)
    assert [s.id for s in upcoming] == ["running", "sooner", "later"]


# --- export -------------------------------------------------------------------------------


def test_export_round_trips_through_the_database(engine: Engine) -> None:
    everything = session(
        id="everything",
        title="Quotes: 'single' and \"double\" # not a comment",
        starts_at="2027-03-20 10:00:30",
        timezone="Europe/Paris",
        duration="1d2h5m",
        speakers=[
            {
                "name": "Zoë Ünal",
                "affiliation": "ETH Zürich",
                "x": "@zoe",
                "bluesky": "zoe.bsky.social",
                "mastodon": "@zoe@sigmoid.social",
                "url": "https://zoe.example.org",
            }
        ],
        abstract="Line one.\n\n  Indented line: with colon.\n",
        papers=[{"title": "yes"}, {"title": "2025-12-15 10:00"}],
        recording_url="https://youtube.com/watch?v=abc",
        status="cancelled",
    )
    parsed = parse_sessions(EXAMPLE.read_text(), "example.yaml")
    parsed += parse_sessions(file_of(everything), "f.yaml")
    import_sessions(engine, parsed, now=NOW)
    exported = export_sessions(stored(engine))
    again = parse_sessions(exported, "export.yaml")
    assert sorted(again, key=lambda s: s.id) == sorted(parsed, key=lambda s: s.id)


def test_export_writes_local_time_in_its_zone_and_utc_with_z() -> None:
    text = file_of(
        session(id="a", starts_at="2027-03-15 10:00", timezone="America/New_York"),
        session(id="b", starts_at="2027-03-15T10:00:00-04:00", timezone=None),
    )
    exported = export_sessions(parse_sessions(text, "f.yaml"))
    assert "  starts_at: 2027-03-15 10:00\n  timezone: America/New_York\n" in exported
    assert "  starts_at: '2027-03-15T14:00:00Z'\n" in exported


# --- properties ---------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(
    ["id", "title", "starts_at", "timezone", "duration", "speakers", "papers", "name", "url",
     "status", "abstract", "meeting_url", "sessions", "x"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        ["2026-03-08 02:30", "2026-12-14T15:00:00Z", "America/New_York", "60m", "-5m", "0m",
         "https://[::1", "http://x:99999", "diffucoder", "cancelled", "2026-02-30 10:00"]
    ),
    st.datetimes(),
    st.dates(),
)  # fmt: skip
KEYS = FIELD_NAMES | st.text(max_size=5)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, as_sessions=st.booleans())
def test_any_document_gives_sessions_or_data_error(doc: object, as_sessions: bool) -> None:
    shaped = {"sessions": doc if isinstance(doc, list) else [doc]} if as_sessions else doc
    try:
        text = yaml.safe_dump(shaped, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        parse_sessions(text, "f.yaml")
    except DataError as exc:
        assert exc.problems and all(
            line.startswith("f.yaml: ") and "\n" not in line for line in exc.problems
        )


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_gives_sessions_or_data_error(text: str) -> None:
    try:
        parse_sessions(text, "f.yaml")
    except DataError as exc:
        assert all("\n" not in line for line in exc.problems)


TEXT = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30).filter(
    lambda s: s.strip() == s and s
)


@settings(max_examples=200, deadline=None)
@given(
    title=TEXT,
    # Line breaks of every kind YAML knows, but no other control character (those are refused).
    abstract=st.text(
        st.characters(exclude_categories=["Cs", "Cc"], include_characters="\n\u2028"),
        max_size=60,
    ),
    minutes=st.integers(1, 3000),
    zone=st.sampled_from([None, "America/New_York", "Europe/Paris", "Asia/Kolkata", "UTC"]),
    when=st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)),
    speakers=st.lists(st.builds(Speaker, TEXT, st.none() | TEXT), max_size=3),
)
def test_export_then_parse_gives_back_the_same_sessions(
    title: str,
    abstract: str,
    minutes: int,
    zone: str | None,
    when: datetime,
    speakers: list[Speaker],
) -> None:
    starts_at = when.replace(tzinfo=UTC)
    original = SessionData(
        id="s",
        title=title,
        starts_at=starts_at,
        duration=timedelta(minutes=minutes),
        timezone=zone,
        speakers=tuple(speakers),
        abstract=abstract.strip(),
    )
    again = parse_sessions(export_sessions([original]), "export.yaml")
    if zone is not None and again[0].timezone is None:  # a folded local time is written with offset
        original = SessionData(**{**vars(original), "timezone": None})
    assert again == [original]


@pytest.mark.parametrize(
    ("field", "value", "where", "found"),
    [
        ("title", "DiffuCoder\x00", "title", "U+0000"),
        ("title", "\x1b[31mDiffuCoder\x1b[0m", "title", "U+001B"),
        ("title", "DiffuCoder\tpart 2", "title", "U+0009"),
        ("title", "DiffuCoder\npart 2", "title", "U+000A"),
        ("abstract", "Line one.\x07\nLine two.", "abstract", "U+0007"),
        ("speakers", [{"name": "Shansan\x00Gong"}], "speakers[0].name", "U+0000"),
        ("speakers", [{"name": "S", "affiliation": "HK\x9b"}], "speakers[0].affiliation", "U+009B"),
        ("papers", [{"title": "Diffu\x7fCoder"}], "papers[0].title", "U+007F"),
    ],
)
def test_control_characters_are_refused_naming_the_field(
    field: str, value: object, where: str, found: str
) -> None:
    lines = problems(file_of(session(**{field: value})))
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"f.yaml: sessions[0].{where}: must not hold control characters ({found} found) ("
    )
    assert "\x00" not in lines[0] and "\x1b" not in lines[0]  # shown escaped


def test_an_abstract_keeps_its_line_breaks() -> None:
    (parsed,) = parse_sessions(file_of(session(abstract="Line one.\n\nLine two.\n")), "f.yaml")
    assert parsed.abstract == "Line one.\n\nLine two."
