"""Properties of session files (hypothesis): local times in every zone, and fuzzed files.

1. For any IANA zone the bot accepts and any local date and time: when the local time exists
   and is unambiguous, a session file with it parses, imports, and its reminders fall due at
   start − offset exactly (in UTC), each before its deadline, larger offsets earlier; when it
   does not exist (a gap) or happens twice (a fold), the file is rejected with one `starts_at`
   line saying which. The test knows which by counting the UTC instants that show that wall time
   in the zone (zoneinfo's `fold` round trip), not by the bot's own check. Local times are mostly
   drawn near one of the zone's real clock changes, so gaps and folds come up often.
2. Fuzzed files (valid sessions, then random mutations: dropped, duplicated and unknown fields,
   wrong types, random strings, duplicated, dropped or garbled lines) never make
   `parse_sessions` raise anything but DataError.
3. Through `import_sessions` against a SQLite file, an import is all or nothing: after a failed
   parse nothing changed; a failure inside the write (a trigger refuses the very last insert)
   leaves nothing behind; after a successful import exactly the parsed sessions are there, next
   to the untouched others.

Session files accept starts between the years 1970 and 2200 and durations up to 7 days, far from
datetime's limits; the tests at the end of this file pin down that the edges are data errors.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, text

from bot.config import Reminder, Settings
from bot.domain import SessionData
from bot.errors import DataError
from bot.rules.planner import ZERO_OFFSET_GRACE, plan
from bot.sources.sessions_file import _NOT_ZONES, parse_sessions
from bot.store import tables
from bot.store.db import ensure_schema, make_engine
from bot.store.imports import COMPARED, import_sessions, load_all_sessions
from bot.store.reads import get_session
from tests.support.cli import BotCli

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ZONES = sorted(z for z in available_timezones() if z not in _NOT_ZONES)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated SQLite file for the whole module (hypothesis runs many examples on it)."""
    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('properties')}/bot.db")
    ensure_schema(eng)
    yield eng
    eng.dispose()


# ---------------------------------------------------------------- 1. local times in every zone


@functools.cache
def clock_changes(name: str, year: int) -> tuple[datetime, ...]:
    """The UTC instants in `year` at which the zone's UTC offset changes (to the second)."""
    zone = ZoneInfo(name)
    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    offset = day.astimezone(zone).utcoffset()
    for _ in range(366):
        nxt = day + timedelta(days=1)
        new = nxt.astimezone(zone).utcoffset()
        if new != offset:
            lo, hi = day, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if mid.astimezone(zone).utcoffset() == offset else (lo, mid)
            change = hi.replace(microsecond=0)  # offsets change on whole seconds
            if change.astimezone(zone).utcoffset() == offset:
                change += timedelta(seconds=1)
            found.append(change)
        day, offset = nxt, new
    return tuple(found)


@st.composite
def local_times(draw: st.DrawFn) -> tuple[str, datetime]:
    """(zone name, naive wall time): mostly near one of the zone's real clock changes."""
    name = draw(st.sampled_from(ZONES))
    year = draw(st.integers(1970, 2040) | st.integers(1970, 2200))
    changes = clock_changes(name, year)
    if changes and draw(st.integers(0, 3)):
        change = draw(st.sampled_from(changes))
        zone = ZoneInfo(name)
        wall_before = (change - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
        wall = wall_before + timedelta(minutes=draw(st.integers(-90, 90)))
        if draw(st.booleans()):
            wall = wall.replace(second=0)
        return name, wall
    wall = draw(st.datetimes(datetime(year, 1, 1), datetime(year, 12, 31, 23, 59, 59)))
    return name, wall.replace(microsecond=0, second=wall.second if draw(st.booleans()) else 0)


def instants_showing(name: str, wall: datetime) -> set[datetime]:
    """Every UTC instant whose local time in the zone is exactly `wall` (0, 1 or 2 of them)."""
    zone = ZoneInfo(name)
    found = set()
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            found.add(instant)
    return found


def file_with(session_id: str, name: str, wall: datetime, quoted: bool) -> str:
    shown = f"{wall:%Y-%m-%d %H:%M:%S}" if wall.second else f"{wall:%Y-%m-%d %H:%M}"
    # Unquoted with seconds, YAML itself reads a timestamp; otherwise the bot reads the text.
    value = f"'{shown}'" if quoted else shown
    return (
        "sessions:\n"
        f"  - id: {session_id}\n"
        "    title: Property check\n"
        f"    starts_at: {value}\n"
        f"    timezone: {json.dumps(name)}\n"
    )


_ids = iter(range(10**9))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=local_times(),
    quoted=st.booleans(),
    offsets=st.lists(st.integers(0, 30 * 24 * 60), min_size=1, max_size=4, unique=True),
)
def test_a_local_time_imports_at_its_one_instant_or_is_rejected_saying_why(
    engine: Engine, where: tuple[str, datetime], quoted: bool, offsets: list[int]
) -> None:
    name, wall = where
    session_id = f"prop-{next(_ids)}"
    source = file_with(session_id, name, wall, quoted)
    instants = instants_showing(name, wall)
    event(("nonexistent", "exists once", "ambiguous")[len(instants)])
    if len(instants) != 1:
        with pytest.raises(DataError) as caught:
            parse_sessions(source, "p.yaml")
        [line] = caught.value.problems
        assert line.startswith("p.yaml: sessions[0].starts_at: "), line
        if not instants:
            assert f"does not exist in {name}" in line, line
        else:
            assert f"is ambiguous in {name}" in line, line
        return

    [start] = instants
    [parsed] = parse_sessions(source, "p.yaml")
    assert (parsed.starts_at, parsed.starts_at.utcoffset(), parsed.timezone) == (
        start,
        timedelta(0),
        name,
    )
    import_sessions(engine, [parsed], now=NOW)
    stored = get_session(engine, session_id)
    assert stored is not None and stored.starts_at == start

    reminders = tuple(
        Reminder(f"n{m}", timedelta(minutes=m), ("console",)) for m in sorted(offsets)
    )
    config = Settings(channels=("console",), reminders=reminders)
    earliest = start - reminders[-1].offset
    notices = {n.key.notice: n for n in plan([stored], [], config, earliest - timedelta(days=1))}
    assert set(notices) == {r.name for r in reminders}
    dues = []
    for reminder in reminders:
        notice = notices[reminder.name]
        assert notice.due_at == start - reminder.offset  # exact: offsets are real durations
        assert notice.due_at.utcoffset() == timedelta(0)
        grace = ZERO_OFFSET_GRACE if not reminder.offset else timedelta(0)
        assert notice.deadline == start + grace
        assert notice.due_at <= notice.deadline
        assert notice.action == "wait"
        dues.append(notice.due_at)
    assert dues == sorted(dues, reverse=True) and len(set(dues)) == len(dues)  # larger: earlier
    # At the earliest due time, exactly the largest offset goes out.
    at_due = [n for n in plan([stored], [], config, earliest) if n.action == "send"]
    assert [n.key.notice for n in at_due] == [reminders[-1].name]


def test_the_zones_the_bot_rejects_are_rejected() -> None:
    for name in sorted(_NOT_ZONES):
        with pytest.raises(DataError) as caught:
            parse_sessions(file_with("z", name, datetime(2026, 1, 5, 10, 0), True), "p.yaml")
        assert caught.value.problems == [
            f"p.yaml: sessions[0].timezone: unknown time zone, expected an IANA name like "
            f"America/New_York ({name})"
        ]


# ---------------------------------------------------------------- 2. fuzzed files

WORDS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=24)
IDS = st.from_regex(r"[a-z0-9][a-z0-9-]{0,12}", fullmatch=True)
URLS = st.builds(
    lambda host, path: f"https://{host}.org/{path}",
    st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    st.text("abc019/-_?=", max_size=10),
)
INSTANTS = st.datetimes(datetime(1970, 1, 2), datetime(2199, 12, 30))
STARTS = st.one_of(
    INSTANTS.map(lambda d: {"starts_at": d.strftime("%Y-%m-%dT%H:%M:%SZ")}),
    st.tuples(
        INSTANTS, st.sampled_from(["America/New_York", "Europe/Paris", "Australia/Lord_Howe"])
    ).map(lambda t: {"starts_at": t[0].strftime("%Y-%m-%d %H:%M"), "timezone": t[1]}),
    INSTANTS.map(lambda d: {"starts_at": d.replace(tzinfo=UTC)}),
)
SPEAKER = st.fixed_dictionaries(
    {"name": WORDS},
    optional={"affiliation": WORDS, "x": WORDS, "bluesky": WORDS, "mastodon": WORDS, "url": URLS},
)
PAPER = st.fixed_dictionaries({"title": WORDS}, optional={"url": URLS})
SESSION = st.builds(
    lambda fields, start: fields | start,
    st.fixed_dictionaries(
        {"id": IDS, "title": WORDS},
        optional={
            "duration": st.sampled_from(["60m", "90m", "1h30m", "2h", "1d", "45m"]),
            "speakers": st.lists(SPEAKER, max_size=3),
            "abstract": st.text(max_size=80),
            "papers": st.lists(PAPER, max_size=3),
            "meeting_url": URLS,
            "recording_url": URLS,
            "status": st.sampled_from(["scheduled", "cancelled"]),
        },
    ),
    STARTS,
)
VALID = st.lists(SESSION, min_size=1, max_size=4, unique_by=lambda s: s["id"])
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    INSTANTS,
    st.dates(date(1900, 1, 1), date(2300, 1, 1)),
    st.sampled_from(["", " ", "2026-03-08 02:30", "0m", "-5m", "https://[::1", "Mars/Olympus"]),
)
FIELDS = [*COMPARED, "id", "timezone", "name", "url", "title"]


def _pick_mapping(draw: st.DrawFn, doc: list[Any]) -> dict[Any, Any] | None:
    """A session, or one of its speakers or papers, to mutate."""
    mappings = [s for s in doc if isinstance(s, dict)]
    for s in list(mappings):
        for key in ("speakers", "papers"):
            if isinstance(s.get(key), list):
                mappings += [item for item in s[key] if isinstance(item, dict)]
    return draw(st.sampled_from(mappings)) if mappings else None


def mutate(draw: st.DrawFn, doc: list[Any]) -> None:
    """One random change to the document, in place."""
    kind = draw(
        st.sampled_from(["drop", "duplicate", "wrong", "string", "unknown", "rename", "item"])
    )
    if kind == "duplicate" and doc:
        doc.append(json.loads(json.dumps(draw(st.sampled_from(doc)), default=str)))
        return
    if kind == "item":
        doc.insert(draw(st.integers(0, len(doc))), draw(WRONG))
        return
    target = _pick_mapping(draw, doc)
    if target is None:
        return
    if kind == "unknown":
        target[draw(st.sampled_from(FIELDS) | st.text(max_size=8))] = draw(WRONG)
        return
    if not target:
        return
    key = draw(st.sampled_from(sorted(target, key=str)))
    if kind == "drop":
        del target[key]
    elif kind == "wrong":
        target[key] = draw(WRONG)
    elif kind == "string":
        target[key] = draw(st.text(max_size=30))
    else:
        target[draw(st.sampled_from(FIELDS))] = target.pop(key)


def garble(draw: st.DrawFn, source: str) -> str:
    """One random change to the file's text."""
    lines = source.splitlines(keepends=True)
    kind = draw(st.sampled_from(["dup_line", "drop_line", "insert", "truncate"]))
    if kind in ("dup_line", "drop_line") and lines:
        i = draw(st.integers(0, len(lines) - 1))
        lines[i : i + 1] = [lines[i]] * (2 if kind == "dup_line" else 0)
        return "".join(lines)
    at = draw(st.integers(0, len(source)))
    if kind == "truncate":
        return source[:at]
    return source[:at] + draw(st.text(max_size=6)) + source[at:]


@st.composite
def fuzzed_docs(
    draw: st.DrawFn, base: list[dict[str, Any]] | None = None, mutations: tuple[int, ...] = (0, 1)
) -> Any:
    """A document built from valid sessions (some updating `base` ones), then mutated (the
    number of mutations drawn from `mutations`)."""
    doc: list[Any] = draw(VALID)
    if base is not None and draw(st.booleans()):
        for stored in draw(st.lists(st.sampled_from(base), max_size=3, unique_by=id)):
            changed = copy.deepcopy(stored)
            if draw(st.booleans()):
                changed["title"] = draw(WORDS)
            if draw(st.booleans()):
                changed = {k: v for k, v in changed.items() if k != "timezone"} | draw(STARTS)
            doc = [d for d in doc if d["id"] != changed["id"]] + [changed]
    for _ in range(draw(st.sampled_from(mutations))):
        mutate(draw, doc)
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from([doc, {"session": doc}, {"sessions": {"a": 1}}, "sessions"]))
    return {"sessions": doc}


def dumped(draw: st.DrawFn, root: Any, garbles: tuple[int, ...] = (0, 1)) -> str:
    """The document as YAML, its text then garbled (as many times as drawn from `garbles`)."""
    source = yaml.safe_dump(root, allow_unicode=draw(st.booleans()), sort_keys=False)
    for _ in range(draw(st.sampled_from(garbles))):
        source = garble(draw, source)
    return source


@st.composite
def fuzzed_files(draw: st.DrawFn) -> str:
    root = draw(fuzzed_docs(mutations=(0, 0, 1, 2, 3)))
    return dumped(draw, root, garbles=(0, 0, 0, 1, 2))


def parse_or_data_error(source: str) -> list[SessionData] | None:
    """The parsed sessions, or None after a DataError whose lines are well formed."""
    try:
        return parse_sessions(source, "f.yaml")
    except DataError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith("f.yaml: ") and "\n" not in line, line
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=fuzzed_files())
def test_a_fuzzed_file_gives_sessions_or_a_data_error(source: str) -> None:
    sessions = parse_or_data_error(source)
    event("parsed" if sessions is not None else "DataError")
    if sessions is not None:
        assert len({s.id for s in sessions}) == len(sessions)
        for s in sessions:
            assert s.starts_at.utcoffset() == timedelta(0)
            assert s.duration > timedelta(0)


# ---------------------------------------------------------------- 3. all or nothing

BOOM = "BOOM: this paper makes the database refuse the insert"
BASE = [
    {"id": "base-a", "title": "Base A", "starts_at": "2026-12-14 10:00", "timezone": "UTC"},
    {
        "id": "base-b",
        "title": "Base B",
        "starts_at": "2027-01-11T15:00:00Z",
        "speakers": [{"name": "Shansan Gong", "affiliation": "HKU"}],
        "papers": [{"title": "DiffuCoder", "url": "https://arxiv.org/abs/2506.20639"}],
    },
    {"id": "base-c", "title": "Base C", "starts_at": "2027-02-08 09:30", "timezone": "Asia/Tokyo"},
]


@pytest.fixture(scope="module")
def trapped(engine: Engine) -> Engine:
    """The module's database, with a trigger that fails the insert of a paper titled BOOM.

    Papers are the last thing an import writes, so a failure there comes after every other
    write of the same import: anything not rolled back would show.
    """
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER IF NOT EXISTS boom BEFORE INSERT ON papers "
                f"WHEN NEW.title = '{BOOM}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        )
    return engine


def reset(engine: Engine) -> None:
    """Back to the BASE sessions only."""
    with engine.begin() as conn:
        for table in (tables.deliveries, tables.papers, tables.speakers, tables.sessions):
            conn.execute(delete(table))
    import_sessions(engine, parse_sessions(yaml.safe_dump({"sessions": BASE}), "b.yaml"), now=NOW)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the session tables, sorted."""
    with engine.connect() as conn:
        return {
            table.name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
            for table in (tables.sessions, tables.speakers, tables.papers)
        }


@st.composite
def import_files(draw: st.DrawFn) -> tuple[str, bool]:
    """A fuzzed file that may update BASE sessions, and whether a BOOM paper was put in it."""
    root = draw(fuzzed_docs(base=BASE, mutations=(0, 0, 0, 1, 2)))
    sessions = root.get("sessions") if isinstance(root, dict) else None
    targets = [s for s in sessions if isinstance(s, dict)] if isinstance(sessions, list) else []
    boom = bool(targets) and draw(st.integers(0, 3)) == 0
    if boom:
        target = draw(st.sampled_from(targets))
        papers = target.get("papers")
        target["papers"] = [*(papers[:2] if isinstance(papers, list) else []), {"title": BOOM}]
    return dumped(draw, root, garbles=(0, 0, 0, 0, 1)), boom


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=import_files())
def test_an_import_is_all_or_nothing(trapped: Engine, case: tuple[str, bool]) -> None:
    source, boom = case
    reset(trapped)
    before = snapshot(trapped)
    old = {s.id: s for s in load_all_sessions(trapped)}
    sessions = parse_or_data_error(source)
    if sessions is None:
        event("the parse failed")
        assert snapshot(trapped) == before  # a failed parse changes nothing
        return
    refused = boom and any(p.title == BOOM for s in sessions for p in s.papers)
    try:
        import_sessions(trapped, sessions, now=NOW)
    except Exception:
        assert snapshot(trapped) == before, "a failed import left a half-written state"
        if not refused:
            raise
        event("the database refused the last insert")
        return
    assert not refused, "the database refused a paper, yet the import says it succeeded"

    stored = {s.id: s for s in load_all_sessions(trapped)}
    parsed = {s.id: s for s in sessions}
    event("imported, updating a BASE session" if set(parsed) & set(old) else "imported")
    assert set(stored) == set(old) | set(parsed)
    for session_id, now_there in stored.items():
        want = parsed.get(session_id, old.get(session_id))
        assert want is not None
        for name in COMPARED:
            assert getattr(now_there, name) == getattr(want, name), (session_id, name)
        was = old.get(session_id)
        if session_id not in parsed:
            assert now_there == was  # untouched
        elif was is not None:
            changed = any(getattr(was, name) != getattr(now_there, name) for name in COMPARED)
            assert now_there.sequence == was.sequence + changed


# ---------------------------------------------------------------- edges the fuzzing found

OVERFLOW_FILES = {
    "local-time-near-max": "starts_at: '9999-12-31 23:30'\n    timezone: America/New_York",
    "local-time-near-min": "starts_at: '0001-01-01 00:30'\n    timezone: Asia/Tokyo",
    "offset-time-near-max": "starts_at: '9999-12-31T23:30:00-05:00'",
    "yaml-timestamp-near-max": "starts_at: 9999-12-31 23:30:00-05:00",
    "huge-duration": "starts_at: '2030-01-01T10:00:00Z'\n    duration: 99999999999999d",
}


@pytest.mark.parametrize("fields", OVERFLOW_FILES.values(), ids=OVERFLOW_FILES.keys())
def test_out_of_range_times_and_durations_are_data_errors(fields: str) -> None:
    source = f"sessions:\n  - id: edge\n    title: Edge\n    {fields}\n"
    with pytest.raises(DataError) as caught:
        parse_sessions(source, "f.yaml")
    assert all(line.startswith("f.yaml: sessions[0].") for line in caught.value.problems)


@pytest.mark.parametrize(
    "fields",
    [
        "starts_at: '2030-01-01T10:00:00Z'\n    duration: 99999999999m",
        "starts_at: '9999-12-31T23:30:00Z'",
    ],
    ids=["huge-duration", "ends-after-year-9999"],
)
def test_a_session_that_ends_after_year_9999_is_rejected_or_listed(
    tmp_path: Path, fields: str
) -> None:
    bot = BotCli(tmp_path / "cwd", {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"})
    source = tmp_path / "s.yaml"
    source.write_text(f"sessions:\n  - id: edge\n    title: Edge\n    {fields}\n")
    code, _, err = bot("sessions", "import", str(source))
    if code == 2:  # rejected as bad data: fine
        assert "Traceback" not in err and "sessions[0]" in err
        return
    assert code == 0, err
    for command in (("sessions", "list"), ("sessions", "show", "edge")):
        code, _, err = bot(*command)
        assert "Traceback" not in err, (command, err)
        assert code == 0, (command, err)
