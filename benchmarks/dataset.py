"""Realistic data, built fast: Core bulk inserts into the tables, and a generated session file."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, text

from bot.store.db import ensure_schema, is_sqlite, upgrade
from bot.store.tables import deliveries, papers, sessions, speakers

# A Monday morning. With the default REMINDERS (7d, 1d, 1h) nothing is due at this moment in the
# databases built here: every past reminder has a final ledger row, every future one waits.
NOW = datetime(2025, 6, 2, 9, 17, tzinfo=UTC)
HISTORY_YEARS = 15
CHUNK = 10_000
REMINDERS = (
    ("announce", timedelta(days=7)),
    ("reminder", timedelta(days=1)),
    ("starting", timedelta(hours=1)),
)  # the default REMINDERS, on the console channel
ZONES = ("America/New_York", "Europe/Paris", "Europe/London", "Asia/Tokyo", "America/Los_Angeles")
_VOCABULARY = (
    "diffusion language models denoise whole sequences enabling global planning and iterative "
    "refinement beyond autoregressive decoding we study sampler choices training objectives "
    "masked absorbing state variance reduction reinforcement learning code generation scaling "
    "laws evaluation benchmarks tokenizer effects retrieval augmented inference efficiency"
)
WORDS = _VOCABULARY.split()


@dataclass(frozen=True)
class WindowSession:
    """A session inside the window a pass reads, and the reminders already sent for it."""

    id: str
    starts_in: timedelta
    sent: tuple[str, ...]


# The same handful in every database, so a big and a small database differ only in history:
# one session three days ago (all sent) and four upcoming ones (announcement sent, rest waiting).
WINDOW = (
    WindowSession("recent-past", -timedelta(days=3), ("announce", "reminder", "starting")),
    WindowSession("upcoming-1", timedelta(days=1, hours=12), ("announce",)),
    WindowSession("upcoming-2", timedelta(days=2, hours=6), ("announce",)),
    WindowSession("upcoming-3", timedelta(days=4), ("announce",)),
    WindowSession("upcoming-4", timedelta(days=6, hours=1), ("announce",)),
)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


class _Texts:
    """A pool of titles and abstracts: drawing words for 100,000 rows would dominate the build."""

    def __init__(self, rng: random.Random, size: int = 256) -> None:
        self.rng = rng
        self.titles = [_words(rng, 8).capitalize() for _ in range(size)]
        self.abstracts = [_words(rng, 80) for _ in range(size)]

    def title(self) -> str:
        return self.rng.choice(self.titles)

    def abstract(self) -> str:
        return self.rng.choice(self.abstracts)


def _session_row(sid: str, start: datetime, texts: _Texts) -> dict[str, Any]:
    since = start - timedelta(days=30)
    rng = texts.rng
    return {
        "id": sid,
        "title": texts.title(),
        "starts_at": start,
        "timezone": rng.choice(ZONES),
        "duration_minutes": 60,
        "abstract": texts.abstract(),
        "meeting_url": f"https://example.zoom.us/j/{rng.randrange(10**10, 10**11)}",
        "recording_url": None,
        "status": "scheduled",
        "sequence": 0,
        "occurrence_since": since,
        "created_at": since,
        "updated_at": since,
    }


def _ledger_row(
    sid: str, start: datetime, notice: str, channel: str, offset: timedelta, status: str
) -> dict[str, Any]:
    due = start - offset
    sent = status == "sent"
    return {
        "session_id": sid,
        "notice": notice,
        "channel": channel,
        "occurrence": start,
        "due_at": due,
        "deadline": start,
        "status": status,
        "attempts": 1 if sent else 0,
        "next_attempt_at": None,
        "token": None,
        "lease_expires_at": None,
        "first": notice == "announce",
        "was_uncertain": False,
        "external_id": f"{sid}-{notice}-{channel}" if sent else None,
        "reason": None if sent else "superseded by starting",
        "text": f"{notice}: {sid} starts {start:%Y-%m-%d %H:%M} UTC" if sent else None,
        "created_at": due,
        "updated_at": due,
        "sent_at": due if sent else None,
    }


def _past_ledger(sid: str, start: datetime, index: int) -> list[dict[str, Any]]:
    """Five final rows, as years of passes leave them: the three reminders, X, the recording."""
    reminder_status = "skipped" if index % 7 == 0 else "sent"
    statuses = {"announce": "sent", "reminder": reminder_status, "starting": "sent"}
    rows = [
        _ledger_row(sid, start, name, "console", offset, statuses[name])
        for name, offset in REMINDERS
    ]
    rows.append(_ledger_row(sid, start, "announce", "x", REMINDERS[0][1], "sent"))
    rows.append(_ledger_row(sid, start, "recording", "console", -timedelta(days=2), "sent"))
    return rows


def _children(sid: str, texts: _Texts) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = texts.rng
    speaker = {
        "session_id": sid,
        "position": 0,
        "name": f"Speaker {rng.randrange(10_000)}",
        "affiliation": "University of Somewhere",
        "x": None,
        "bluesky": None,
        "mastodon": None,
        "url": None,
    }
    paper = {
        "session_id": sid,
        "position": 0,
        "title": texts.title(),
        "url": f"https://arxiv.org/abs/2{rng.randrange(1000, 9999)}.{rng.randrange(10000, 99999)}",
    }
    return speaker, paper


def _history(count: int) -> Iterator[tuple[str, datetime]]:
    """`count` past sessions spread evenly over 15 years, all ending before the pass's window."""
    first = NOW - timedelta(days=365 * HISTORY_YEARS)
    span = (NOW - timedelta(days=8)) - first
    for i in range(count):
        start = first + span * i / max(count, 1)
        yield f"hist-{i:06d}", start.replace(second=0, microsecond=0)


def _bulk(conn: Connection, table: Table, rows: list[dict[str, Any]], force: bool = False) -> None:
    if rows and (force or len(rows) >= CHUNK):
        conn.execute(insert(table), rows)
        rows.clear()


def migrate(engine: Engine) -> None:
    """Bring an empty database to the current schema, the way the program does."""
    if is_sqlite(engine):
        ensure_schema(engine)
    else:
        upgrade(engine)


def fill(engine: Engine, total_sessions: int, ledger_per_session: int = 5, seed: int = 7) -> int:
    """Migrate, then insert `total_sessions` (history plus WINDOW); returns the ledger row count."""
    migrate(engine)
    texts = _Texts(random.Random(seed))
    buffers: dict[Table, list[dict[str, Any]]] = {
        sessions: [],
        speakers: [],
        papers: [],
        deliveries: [],
    }
    ledger_count = 0
    with engine.begin() as conn:
        history = _history(total_sessions - len(WINDOW))
        for index, (sid, start) in enumerate(history):
            buffers[sessions].append(_session_row(sid, start, texts))
            speaker, paper = _children(sid, texts)
            buffers[speakers].append(speaker)
            buffers[papers].append(paper)
            ledger = _past_ledger(sid, start, index)[:ledger_per_session]
            buffers[deliveries].extend(ledger)
            ledger_count += len(ledger)
            for table, rows in buffers.items():
                _bulk(conn, table, rows)
        for window in WINDOW:
            start = (NOW + window.starts_in).replace(minute=0)
            buffers[sessions].append(_session_row(window.id, start, texts))
            speaker, paper = _children(window.id, texts)
            buffers[speakers].append(speaker)
            buffers[papers].append(paper)
            for name, offset in REMINDERS:
                if name in window.sent:
                    buffers[deliveries].append(
                        _ledger_row(window.id, start, name, "console", offset, "sent")
                    )
                    ledger_count += 1
        for table in (sessions, speakers, papers, deliveries):  # parents before children
            _bulk(conn, table, buffers[table], force=True)
    if not is_sqlite(engine):  # what autovacuum would soon do after a bulk load
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return ledger_count


def upcoming(
    engine: Engine,
    starts: list[datetime],
    *,
    reminders: tuple[tuple[str, timedelta], ...] = REMINDERS,
    channel: str = "console",
    sent_before: datetime | None = None,
    seed: int = 13,
) -> None:
    """Migrate, then insert one session per start (`up-00000`, …), each with a unique title.

    Every reminder due before `sent_before` gets a `sent` ledger row, as a worker that has been
    running would have left it; the others have no row yet and wait for their due time.
    """
    migrate(engine)
    texts = _Texts(random.Random(seed))
    session_rows, speaker_rows, paper_rows, ledger = [], [], [], []
    for index, start in enumerate(starts):
        sid = f"up-{index:05d}"
        row = _session_row(sid, start, texts)
        row["title"] = f"{row['title']} ({sid})"  # X refuses a post identical to an earlier one
        session_rows.append(row)
        speaker, paper = _children(sid, texts)
        speaker_rows.append(speaker)
        paper_rows.append(paper)
        for name, offset in reminders:
            if sent_before is not None and start - offset < sent_before:
                ledger.append(_ledger_row(sid, start, name, channel, offset, "sent"))
    with engine.begin() as conn:
        for table, rows in (
            (sessions, session_rows),
            (speakers, speaker_rows),
            (papers, paper_rows),
            (deliveries, ledger),
        ):
            for chunk in range(0, len(rows), CHUNK):
                conn.execute(insert(table), rows[chunk : chunk + CHUNK])


# ---------------------------------------------------------------- session file


def session_file(count: int, seed: int = 11) -> str:
    """A session file of `count` realistic sessions in the documented import format."""
    rng = random.Random(seed)
    out = ["# generated by benchmarks/dataset.py", "sessions:"]
    first = datetime(2026, 1, 5, 10, 0)
    for i in range(count):
        local = first + timedelta(days=i // 3, hours=2 * (i % 3))
        sid = f"s{i:05d}-{rng.choice(WORDS)}-{rng.choice(WORDS)}"
        out.append(f"  - id: {sid}")
        out.append(f'    title: "{_words(rng, 9).capitalize()}: a reading"')
        out.append(f"    starts_at: {local:%Y-%m-%d %H:%M}")
        out.append(f"    timezone: {rng.choice(ZONES)}")
        out.append(f"    duration: {rng.choice(('60m', '75m', '90m', '1h30m'))}")
        out.append("    speakers:")
        for n in range(rng.randint(1, 2)):
            out.append(f"      - name: Speaker {i}-{n}")
            out.append("        affiliation: University of Somewhere")
            if n == 0:
                out.append(f'        x: "@speaker{i}"')
        out.append("    abstract: >")
        abstract = _words(rng, 200)[:600]
        out.extend(f"      {line}" for line in textwrap.wrap(abstract, 92))
        out.append("    papers:")
        for _ in range(2):
            number = f"2{rng.randrange(1000, 9999)}.{rng.randrange(10000, 99999)}"
            out.append(f"      - title: {_words(rng, 6).capitalize()}")
            out.append(f'        url: "https://arxiv.org/abs/{number}"')
        out.append(f"    meeting_url: https://example.zoom.us/j/{rng.randrange(10**10, 10**11)}")
        out.append("")
    return "\n".join(out)
