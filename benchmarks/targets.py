"""The performance targets, each measured against a baseline of the same run."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import Engine, text

from benchmarks import dataset, profiling
from benchmarks.harness import Result, Skipped, fresh_pg_database, interleaved, median, spread
from bot.config import Settings, load_settings
from bot.dispatch import Dispatcher
from bot.rules.planner import session_window
from bot.sources.sessions_file import parse_sessions
from bot.store.db import make_engine
from bot.store.imports import import_sessions
from bot.store.reads import load_window
from bot.testing import FrozenClock

Report = Callable[[str], None]
SEND_NOW = dataset.NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Options:
    """What this run measures, and how hard."""

    quick: bool
    postgres_problem: str | None  # None: PostgreSQL cases run
    profile: bool
    workdir: Path
    report: Report

    def runs(self, full: int, quick: int) -> int:
        """Repetitions for the current mode."""
        return quick if self.quick else full


@contextlib.contextmanager
def _database(opts: Options, backend: str, label: str) -> Iterator[Engine]:
    """An engine on a new, empty database: a SQLite file in the work folder, or a fresh PG one."""
    if backend == "sqlite":
        path = opts.workdir / f"{label}.db"
        engine = make_engine(f"sqlite:///{path}")
        try:
            yield engine
        finally:
            engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    with fresh_pg_database(label) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _backends(opts: Options, name: str) -> Iterator[tuple[str, Skipped | None]]:
    yield "sqlite", None
    if opts.postgres_problem is None:
        yield "postgres", None
    else:
        yield "postgres", Skipped(name, "postgres", opts.postgres_problem)


# ---------------------------------------------------------------- 1. cold start


# Every built-in channel configured (nothing is contacted: nothing is due). The addresses are
# loopback ports nobody listens on; the secrets are shaped like real ones.
ALL_CHANNELS = {
    "CHANNELS": "console,email,x,bluesky,mastodon,slack,discord,telegram",
    "SMTP_HOST": "127.0.0.1",
    "EMAIL_FROM": "bot@example.org",
    "EMAIL_TO": "list@example.org",
    "X_API_KEY": "k",
    "X_API_KEY_SECRET": "ks",
    "X_ACCESS_TOKEN": "t",
    "X_ACCESS_TOKEN_SECRET": "ts",
    "X_API_BASE_URL": "http://127.0.0.1:9",
    "BLUESKY_HANDLE": "group.example.org",
    "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
    "BLUESKY_SERVICE_URL": "http://127.0.0.1:9",
    "MASTODON_BASE_URL": "http://127.0.0.1:9",
    "MASTODON_ACCESS_TOKEN": "token",
    "SLACK_BOT_TOKEN": "xoxb-1-2-abc",
    "SLACK_CHANNEL": "C0123456789",
    "SLACK_API_BASE_URL": "http://127.0.0.1:9/api",
    "DISCORD_WEBHOOK_URL": "http://127.0.0.1:9/api/webhooks/123456789012345678/abcDEF-token_123",
    "TELEGRAM_BOT_TOKEN": "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
    "TELEGRAM_CHAT_ID": "@group",
    "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9",
    # The dataset's ledger is the console's: the notices stay on it, so the pass is as idle
    # as the console-only one while every channel is parsed, registered and asked to settle.
    "REMINDERS": "announce=7d@console,reminder=1d@console,starting=1h@console",
    "RECORDING_CHANNELS": "console",
    "CHANGE_NOTICES": "off",
}


def cold_start(opts: Options) -> list[Result | Skipped]:
    """`python -m bot send` (nothing due, 1,000 sessions) vs `python -c "import sqlalchemy"`,
    with the console channel and with all eight built-in channels configured (issue 9: the
    channels' modules stay lazy)."""
    runs = opts.runs(15, 5)
    db = opts.workdir / "cold.db"
    engine = make_engine(f"sqlite:///{db}")
    dataset.fill(engine, 1_000)
    engine.dispose()
    cwd = opts.workdir / "cron"  # no .env here
    cwd.mkdir(exist_ok=True)
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "CHANNELS": "console",
        "DATABASE_URL": f"sqlite:///{db}",
    }
    every = {**env, **ALL_CHANNELS}
    send = ["-m", "bot", "send", "--now", SEND_NOW]
    baseline = ["-c", "import sqlalchemy"]

    def run(args: list[str], variables: dict[str, str] = env) -> None:
        done = subprocess.run([sys.executable, *args], env=variables, cwd=cwd, capture_output=True)
        if done.returncode != 0 or done.stdout.strip():
            raise RuntimeError(
                f"{' '.join(args)}: exit {done.returncode}, expected a silent pass\n"
                f"{done.stdout.decode()}{done.stderr.decode()}"
            )

    # The three commands in one loop, the order rotating each round, so both ratios share one
    # baseline and the machine's drift hits all three alike.
    commands: list[tuple[Callable[[], None], list[float]]] = [
        (lambda: run(send), []),
        (lambda: run(send, every), []),
        (lambda: run(baseline), []),
    ]
    for fn, _ in commands:  # warm-up
        fn()
    for i in range(runs):
        for fn, times in commands[i % 3 :] + commands[: i % 3]:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    sub, wide, base = (times for _, times in commands)
    base_wide = base
    opts.report(
        f"cold_start: bot send {spread(sub)}, with 8 channels {spread(wide)}, "
        f"import sqlalchemy {spread(base)} (min–max of {runs}, interleaved)"
    )
    if opts.profile:
        opts.report(profiling.import_times(send, env, cwd))
        opts.report(profiling.import_times(send, every, cwd))
        opts.report(profiling.import_times(baseline, env, cwd))
        opts.report(profiling.cprofile_command(send, env, cwd))
    target = 1.5
    return [
        Result(
            "cold_start", "sqlite 1k", median(sub), median(base), "import sqlalchemy", target, runs
        ),
        Result(
            "cold_start",
            "sqlite 1k, 8 channels",
            median(wide),
            median(base_wide),
            "import sqlalchemy",
            target,
            runs,
        ),
    ]


# ---------------------------------------------------------------- 2. idle pass


def _pass_settings(engine: Engine) -> Settings:
    url = engine.url.render_as_string(hide_password=False)
    return load_settings({"CHANNELS": "console", "DATABASE_URL": url})


def _idle_pass(engine: Engine, settings: Settings) -> Callable[[], None]:
    clock = FrozenClock(dataset.NOW)

    def run() -> None:
        result = Dispatcher(engine, settings, clock).run_pass()
        if result.outcomes:
            raise RuntimeError(f"the pass was not idle: {result.outcomes[0]}")

    return run


def _check_window(engine: Engine, settings: Settings) -> None:
    """The pass must really read the same handful of sessions in the big and the small database."""
    start_from, start_to = session_window(settings, dataset.NOW)
    found, _rows = load_window(engine, start_from, start_to)
    if sorted(s.id for s in found) != sorted(w.id for w in dataset.WINDOW):
        raise RuntimeError(f"unexpected sessions in the pass window: {[s.id for s in found]}")


def idle_pass(opts: Options) -> list[Result | Skipped]:
    """A pass with nothing due on 100,000 sessions / 500,000 ledger rows vs on 100 sessions."""
    big = 10_000 if opts.quick else 100_000
    runs = opts.runs(40, 10)
    results: list[Result | Skipped] = []
    for backend, skipped in _backends(opts, "idle_pass"):
        if skipped is not None:
            opts.report(f"idle_pass {backend}: skipped ({skipped.reason})")
            results.append(skipped)
            continue
        with (
            _database(opts, backend, "idle_big") as big_db,
            _database(opts, backend, "idle_small") as small_db,
        ):
            started = time.perf_counter()
            rows = dataset.fill(big_db, big)
            dataset.fill(small_db, 100)
            built = time.perf_counter() - started
            settings = _pass_settings(big_db)
            for engine in (big_db, small_db):
                _check_window(engine, settings)
            subject, baseline = _idle_pass(big_db, settings), _idle_pass(small_db, settings)
            sub, base = interleaved(subject, baseline, runs)
            opts.report(
                f"idle_pass {backend}: {big:,} sessions / {rows:,} ledger rows built in "
                f"{built:.0f} s; pass {spread(sub)} vs 100 sessions {spread(base)}"
            )
            if opts.profile:
                opts.report(profiling.cprofile_call(subject))
        results.append(
            Result(
                "idle_pass",
                f"{backend} {big // 1000}k",
                median(sub),
                median(base),
                "100 sessions",
                2.0,
                runs,
            )
        )
    return results


# ---------------------------------------------------------------- 3. import


def import_10k(opts: Options) -> list[Result | Skipped]:
    """parse_sessions + import_sessions of a 10,000-session file vs a bare CSafeLoader parse."""
    count = 2_000 if opts.quick else 10_000
    source = dataset.session_file(count)
    # The target is SQLite with the collector on, as users run it. The others are informational:
    # PostgreSQL, and SQLite with the cyclic GC paused, because the GC passes over the growing
    # document take most of both timings at this size, which hides how the two really compare.
    cases: list[tuple[str, bool, float | None]] = [
        ("sqlite", False, 3.0),
        ("postgres", False, None),
        ("sqlite", True, None),
    ]
    results: list[Result | Skipped] = []
    for backend, gc_off, target in cases:
        if backend == "postgres" and opts.postgres_problem is not None:
            opts.report(f"import_10k {backend}: skipped ({opts.postgres_problem})")
            results.append(Skipped("import_10k", backend, opts.postgres_problem))
            continue
        # Seconds per run, far from its limit: a few runs do.
        runs = opts.runs(4, 2) if target is not None else opts.runs(3, 1)
        sub, base, parts = _measure_import(opts, backend, source, count, runs, gc_off=gc_off)
        case = f"{backend} {count // 1000}k" + (" gc off" if gc_off else "")
        opts.report(
            f"import_10k {case}: {len(source) / 1e6:.1f} MB; parse_sessions "
            f"{median(parts['parse']):.2f} s + import_sessions {median(parts['import']):.2f} s; "
            f"bare CSafeLoader {median(base):.2f} s (medians of {runs})"
        )
        results.append(
            Result("import_10k", case, median(sub), median(base), "CSafeLoader", target, runs)
        )
    return results


@contextlib.contextmanager
def _empty_databases(opts: Options, backend: str) -> Iterator[Callable[[], Engine]]:
    """A function giving a new, empty, migrated database on each call (PostgreSQL: truncated)."""
    if backend != "sqlite":
        with _database(opts, backend, "import") as engine:
            dataset.migrate(engine)

            def truncated() -> Engine:
                with engine.begin() as conn:
                    conn.execute(text("TRUNCATE sessions, speakers, papers, deliveries CASCADE"))
                return engine

            yield truncated
        return
    with contextlib.ExitStack() as stack:
        count = 0

        def new_file() -> Engine:
            nonlocal count
            stack.close()
            count += 1
            engine = stack.enter_context(_database(opts, backend, f"import-{count}"))
            dataset.migrate(engine)
            return engine

        yield new_file


def _measure_import(
    opts: Options, backend: str, source: str, count: int, runs: int, *, gc_off: bool
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    parts: dict[str, list[float]] = {"parse": [], "import": []}
    with _empty_databases(opts, backend) as empty:
        target: list[Engine] = []

        def prepare() -> None:
            target[:] = [empty()]

        def subject() -> None:
            with _gc_paused(gc_off):
                started = time.perf_counter()
                sessions = parse_sessions(source, "bench.yaml")
                parsed = time.perf_counter()
                report = import_sessions(target[0], sessions, now=dataset.NOW)
                parts["parse"].append(parsed - started)
                parts["import"].append(time.perf_counter() - parsed)
            if len(report.added) != count:
                raise RuntimeError(f"imported {len(report.added)} sessions, expected {count}")

        def baseline() -> None:
            with _gc_paused(gc_off):
                yaml.load(source, Loader=yaml.CSafeLoader)

        # No warm-up: one run takes seconds, and a cold first import is what users get.
        sub, base = interleaved(subject, baseline, runs, warmup=0, prepare=prepare)
        if opts.profile and not gc_off:
            prepare()
            opts.report(profiling.cprofile_call(subject))
    return sub, base, {name: times[:runs] for name, times in parts.items()}


@contextlib.contextmanager
def _gc_paused(paused: bool) -> Iterator[None]:
    """Pause the cyclic garbage collector (reference counting still frees everything here)."""
    if not paused:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# ---------------------------------------------------------------- 4. site build


def site_build(opts: Options) -> list[Result | Skipped]:
    """`bot site build` of 1,000 sessions vs the cold start of `bot send` on the same database,
    and of 10,000 sessions vs 1,000 (issue 10: linear, no quadratic link checks)."""
    small, big = (1_000, 3_000) if opts.quick else (1_000, 10_000)
    runs = opts.runs(5, 2)
    databases = {}
    for count in (small, big):
        path = opts.workdir / f"site-{count}.db"
        engine = make_engine(f"sqlite:///{path}")
        dataset.fill(engine, count)
        engine.dispose()
        databases[count] = path
    cwd = opts.workdir / "site-cwd"  # no .env here
    cwd.mkdir(exist_ok=True)
    base = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "CHANNELS": "console",
        "SITE_URL": "https://example.org/reading-group",
    }

    def run(args: list[str], count: int) -> None:
        env = {**base, "DATABASE_URL": f"sqlite:///{databases[count]}"}
        done = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {done.returncode}\n{done.stderr.decode()}")

    def build_args(count: int) -> list[str]:
        out = opts.workdir / f"site-{count}"
        return ["-m", "bot", "site", "build", "-o", str(out), "--now", SEND_NOW]

    def build(count: int) -> Callable[[], None]:
        return lambda: run(build_args(count), count)

    send = ["-m", "bot", "send", "--now", SEND_NOW]
    # The first build into an empty folder creates every file; later ones (what the worker and
    # every change do) write only what differs into the folder the last swap put aside.
    first = {}
    for count in (small, big):
        started = time.perf_counter()
        build(count)()
        first[count] = time.perf_counter() - started
    # Two warm-up builds each: after them, the folder put aside is there to be reused.
    sub, base_times = interleaved(build(small), lambda: run(send, small), runs, warmup=2)
    files = sum(1 for p in (opts.workdir / f"site-{small}").rglob("*") if p.is_file())
    opts.report(
        f"site_build {small:,} sessions ({files:,} files): first build {first[small]:.2f} s, "
        f"rebuilds {spread(sub)}; bot send {spread(base_times)} (min–max of {runs}, interleaved)"
    )
    large, again = interleaved(build(big), build(small), runs, warmup=1)
    opts.report(
        f"site_build {big:,} sessions: first build {first[big]:.2f} s, rebuilds {spread(large)}; "
        f"{small:,} sessions {spread(again)} (min–max of {runs}, interleaved)"
    )
    if opts.profile:
        env = {**base, "DATABASE_URL": f"sqlite:///{databases[small]}"}
        opts.report(profiling.cprofile_command(build_args(small), env, cwd))
    return [
        Result(
            "site_build",
            f"sqlite {small // 1000}k",
            median(sub),
            median(base_times),
            "bot send cold start",
            4.0,
            runs,
        ),
        Result(
            "site_build",
            f"sqlite {big // 1000}k",
            median(large),
            median(again),
            f"site build {small // 1000}k",
            12.0 if big == 10_000 else None,
            runs,
        ),
    ]
