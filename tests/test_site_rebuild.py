"""Writing the website (a new folder swapped in at once, the previous one kept on any failure),
`bot site build` through the real command line, and the rebuilds after every change: `sessions
import`, `set`, `cancel`, a `send` pass that sent something, and the worker's passes."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.config import Reminder, Settings
from bot.errors import UsageError
from bot.site.build import build_site
from bot.site.rebuild import SiteKeeper, build_into, rebuild_site
from bot.site.write import MARKER, rename_swap, write_site
from bot.sources.sessions_file import parse_session_file
from bot.store.db import ensure_schema, make_engine
from bot.store.edits import edit_session
from bot.store.imports import import_sessions
from bot.store.site import load_site
from bot.testing import FrozenClock, RecordingNotifier
from bot.worker import Worker
from tests.support.cli import BotCli, iso, session_yaml
from tests.support.site import NOW, D, H, M, one, parse, sample_data, text

START = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)
SESSIONS = [
    {"id": "alpha", "title": "Alpha talk", "starts_at": START, "meeting_url": "https://z.example/j/1"},
    {"id": "beta", "title": "Beta talk", "starts_at": START + 7 * D},
]  # fmt: skip


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def siblings(folder: Path) -> list[str]:
    """What sits next to `folder`, but its spare and lock (left-overs of a build show here)."""
    kept = (f".{folder.name}.spare", f".{folder.name}.lock")
    return sorted(p.name for p in folder.parent.iterdir() if p.name not in kept)


def fill(engine: Engine, now: datetime = NOW) -> None:
    found = parse_session_file(session_yaml(SESSIONS), "f.yaml")
    import_sessions(engine, found.sessions, now=now)


# ---------------------------------------------------------------- writing


def test_the_site_is_written_whole_and_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "site"
    first = build_site(sample_data(), Settings(), NOW)
    write_site(first, target)
    assert tree(target) == first | {MARKER: (target / MARKER).read_bytes()}
    (target / "stray.html").write_text("left from before", encoding="utf-8")
    second = {"index.html": b"<p>new</p>", "sessions/index.html": b"<p>all</p>"}
    write_site(second, target)
    assert set(tree(target)) == {"index.html", "sessions/index.html", MARKER}
    assert siblings(target) == ["site"]  # no temporary folder left behind
    write_site(second, target)  # into the folder put aside, which held the stray file
    assert set(tree(target)) == {"index.html", "sessions/index.html", MARKER}
    write_site(first, target)
    assert tree(target) == first | {MARKER: (target / MARKER).read_bytes()}


def test_a_rebuild_writes_only_the_files_that_changed(tmp_path: Path) -> None:
    target = tmp_path / "site"
    files = build_site(sample_data(), Settings(), NOW)
    write_site(files, target)
    write_site(files, target)
    spare = tmp_path / ".site.spare"  # the first folder, put aside: the next build reuses it
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in spare.rglob("*") if p.is_file()}
    changed = files | {"index.html": files["index.html"] + b"<!-- changed -->\n"}
    write_site(changed, target)
    after = {
        target / p.relative_to(spare): stat for p, stat in before.items()
    }  # the same files, now served
    kept = [p for p, stat in after.items() if (p.stat().st_ino, p.stat().st_mtime_ns) == stat]
    assert sorted(p.name for p in set(after) - set(kept)) == ["index.html"]
    assert (target / "index.html").read_bytes().endswith(b"<!-- changed -->\n")


def test_writing_the_same_build_twice_gives_identical_files(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    settings = Settings(site_url="https://example.org/group")
    build_into(engine, settings, NOW, tmp_path / "a")
    build_into(engine, settings, NOW + 5 * M, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert load_site(engine).changed_at == {"alpha": NOW, "beta": NOW}


def test_a_failed_write_keeps_the_previous_site_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "site"
    write_site({"index.html": b"old"}, target)
    before = tree(target)
    with pytest.raises(OSError):  # a name longer than any file system takes
        write_site({"index.html": b"new", f"{'x' * 300}.html": b"too long"}, target)
    assert tree(target) == before
    assert siblings(target) == ["site"]
    with pytest.raises(ValueError, match="both a file and a folder"):
        write_site({"a": b"a file", "a/b.html": b"under a file"}, target)
    assert tree(target) == before


def test_a_folder_the_bot_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work", encoding="utf-8")
    with pytest.raises(UsageError, match=rf"home: not replaced: .*no {MARKER}"):
        write_site({"index.html": b"x"}, home)
    assert (home / "thesis.tex").read_text(encoding="utf-8") == "years of work"
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        write_site({"index.html": b"x"}, tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    write_site({"index.html": b"x"}, empty)  # an empty folder is fine
    assert (empty / "index.html").read_bytes() == b"x"


def test_a_symbolic_link_to_the_site_is_kept(tmp_path: Path) -> None:
    real = tmp_path / "releases" / "site"
    write_site({"index.html": b"one"}, real)
    link = tmp_path / "www"
    link.symlink_to(real, target_is_directory=True)
    write_site({"index.html": b"two"}, link)
    assert link.is_symlink() and (link / "index.html").read_bytes() == b"two"


def test_the_rename_swap_fallback_replaces_the_site_too(tmp_path: Path) -> None:
    target = tmp_path / "site"
    write_site({"index.html": b"old"}, target)
    new = tmp_path / ".site.new-test"
    new.mkdir()
    (new / "index.html").write_bytes(b"new")
    rename_swap(new, target, tmp_path / ".site.spare")
    assert tree(target) == {"index.html": b"new"}
    assert (tmp_path / ".site.spare" / "index.html").read_bytes() == b"old"
    assert siblings(target) == ["site"]


def test_readers_never_find_the_site_missing_during_swaps(tmp_path: Path) -> None:
    target = tmp_path / "site"
    write_site({"index.html": b"0"}, target)
    missing: list[int] = []
    done = threading.Event()

    def read() -> None:
        reads = 0
        while not done.is_set() or reads < 200:
            try:
                (target / "index.html").read_bytes()
            except FileNotFoundError:
                missing.append(reads)
            reads += 1

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(1, 60):
        write_site({"index.html": str(i).encode()}, target)
    done.set()
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert missing == []
    assert (target / "index.html").read_bytes() == b"59"


# ---------------------------------------------------------------- rebuilds


def test_a_failed_rebuild_keeps_the_previous_site_and_logs_an_error(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(engine)
    target = tmp_path / "site"
    assert rebuild_site(engine, Settings(site_dir=target), NOW, "a test") is not None
    before = tree(target)
    broken = tmp_path / "templates" / "site"
    broken.mkdir(parents=True)
    (broken / "session.html.j2").write_text("{% if %}", encoding="utf-8")
    settings = Settings(site_dir=target, templates_dir=tmp_path / "templates")
    with caplog.at_level(logging.INFO, logger="bot.site"):
        assert rebuild_site(engine, settings, NOW, "a test") is None
    assert tree(target) == before
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert getattr(record, "event", None) == "site_failed"
    assert "site/session.html.j2, line 1" in record.getMessage()
    assert "the previous one stays" in record.getMessage()


def test_the_worker_rebuilds_after_changes_and_when_a_session_ends(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine)
    target = tmp_path / "site"
    settings = Settings(
        channels=("x",), reminders=(Reminder("announce", 7 * D, ("x",)),), site_dir=target
    )
    clock = FrozenClock(START - 8 * D)
    worker = Worker(engine, settings, clock)
    x = RecordingNotifier()
    worker.dispatcher._notifiers["x"] = x
    swaps: list[int] = []

    def rebuilt() -> bool:
        """True when the folder was swapped since the last look (each build is a new folder)."""
        inode = target.stat().st_ino if target.exists() else 0
        swaps.append(inode)
        return len(swaps) < 2 or swaps[-1] != swaps[-2]

    worker.tick()  # the first pass builds the site
    assert rebuilt() and (target / "sessions" / "alpha" / "index.html").exists()
    worker.tick()  # nothing changed
    assert not rebuilt()

    edit_session(engine, "alpha", ["title=Alpha, retitled"], clock.now, "set")
    worker.tick()  # a change made by another process
    assert rebuilt()
    assert "Alpha, retitled" in text(parse((target / "index.html").read_bytes()).find(".//h3"))

    clock.set(START - 7 * D)
    worker.tick()  # the announcement went out
    assert [m.key.session_id for m in x.sent] == ["alpha"]
    assert rebuilt()
    worker.tick()
    assert not rebuilt()

    clock.set(START + 2 * H)  # alpha has ended: the front page must move on to beta
    worker.tick()
    assert rebuilt()
    front = parse((target / "index.html").read_bytes())
    assert one(front, "featured").get("data-session") == "beta"


def test_the_worker_tries_a_failed_build_again_later(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    keeper = SiteKeeper(engine, Settings(site_dir=tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    assert keeper.after_pass(False, NOW) is None
    assert keeper.after_pass(False, NOW + M) is None  # not every pass: it waits
    (tmp_path / "file").unlink()
    assert keeper.after_pass(False, NOW + 2 * M) is None
    assert keeper.after_pass(False, NOW + 11 * M) is not None
    assert (tmp_path / "file" / "index.html").exists()


# ---------------------------------------------------------------- the command line


@pytest.fixture
def bot(tmp_path: Path) -> BotCli:
    return BotCli(tmp_path / "cwd", {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"})


@pytest.mark.slow  # real `python -m bot` processes
def test_site_build_writes_the_site_and_the_same_data_gives_the_same_files(
    bot: BotCli, tmp_path: Path
) -> None:
    engine = make_engine(bot.env["DATABASE_URL"])
    ensure_schema(engine)
    fill(engine)
    engine.dispose()
    out_dir = tmp_path / "public"
    now = iso(START - D)
    code, out, err = bot("site", "build", "-o", str(out_dir), "--now", now)
    assert (code, err) == (0, "")
    assert out == f"{out_dir}: 2 sessions, 10 files\n"
    first = tree(out_dir)
    assert bot("site", "build", "-o", str(out_dir), "--now", now)[0] == 0
    assert tree(out_dir) == first
    assert "Alpha talk" in first["sessions/alpha/index.html"].decode()


@pytest.mark.slow  # real `python -m bot` processes
@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {}, "site build: give -o DIR, or set SITE_DIR"),
        (("--now", "tomorrow"), {"SITE_DIR": "out"}, "Invalid value for '--now'"),
        (("-o", "notes"), {}, "notes: not replaced: it holds files"),
    ],
)
def test_site_build_problems_are_one_line_and_exit_2(
    bot: BotCli, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    (bot.cwd / "notes").mkdir()
    (bot.cwd / "notes" / "todo.txt").write_text("x", encoding="utf-8")
    code, out, err = bot("site", "build", *args, env=env)
    assert code == 2, (out, err)
    assert len(err.splitlines()) == 1 and expected in err, err
    assert "Traceback" not in err


@pytest.mark.slow  # real `python -m bot` processes
def test_import_set_cancel_and_send_rebuild_site_dir(bot: BotCli, tmp_path: Path) -> None:
    site = tmp_path / "www" / "group"
    bot.env |= {"SITE_DIR": str(site), "CHANNELS": "console", "REMINDERS": "announce=7d"}
    future = datetime.now(UTC).replace(microsecond=0) + 3 * D
    sessions = [dict(s, starts_at=future + i * D) for i, s in enumerate(SESSIONS)]
    file = tmp_path / "sessions.yaml"
    file.write_text(session_yaml(sessions), encoding="utf-8")

    code, _, err = bot("sessions", "import", str(file))
    assert code == 0 and "site rebuilt after sessions import" in err, err
    assert (site / "sessions" / "beta" / "index.html").exists()

    assert bot("sessions", "set", "beta", "title=Beta, retitled")[0] == 0
    assert "Beta, retitled" in (site / "sessions" / "beta" / "index.html").read_text()

    assert bot("sessions", "cancel", "beta")[0] == 0
    page = parse((site / "sessions" / "beta" / "index.html").read_bytes())
    assert text(one(page, "badge")) == "Cancelled"

    (site / "index.html").unlink()
    code, out, err = bot("send", "--now", iso(datetime.now(UTC) + M))
    assert code == 0 and "alpha" in out, (out, err)
    assert (site / "index.html").exists(), err


@pytest.mark.slow  # real `python -m bot` processes
def test_a_failed_rebuild_does_not_fail_the_change(bot: BotCli, tmp_path: Path) -> None:
    site = tmp_path / "site"
    broken = tmp_path / "templates" / "site"
    broken.mkdir(parents=True)
    (broken / "index.html.j2").write_text("{{ no_such_thing }}", encoding="utf-8")
    bot.env |= {"SITE_DIR": str(site), "TEMPLATES_DIR": str(tmp_path / "templates")}
    file = tmp_path / "sessions.yaml"
    file.write_text(session_yaml(SESSIONS), encoding="utf-8")
    code, out, err = bot("sessions", "import", str(file))
    assert code == 0, err
    assert "2 added" in out
    assert "ERROR" in err and "site not rebuilt after sessions import" in err
    assert "site/index.html.j2, line 1: 'no_such_thing' is undefined" in err
    assert "Traceback" not in err
    assert not site.exists()
