"""Real-time targets: real `bot` processes and the wall clock (lateness, idle_worker, throughput).

These hold absolute figures to absolute limits (a lateness in seconds, a resident size in MB, a CPU
share), each next to a baseline from the same run where the issue asks for one:

- lateness: one `bot run` worker posting to a loopback X API (tests/support/xapi.py) at random due
  times, against `bot send` started by a cron-style loop at every whole minute, concurrently;
- idle_worker: resident memory and CPU share of a `bot run` worker with nothing due;
- throughput: 2,000 due deliveries through a no-op plugin channel by 4 `bot send` processes started
  together, against one process doing the same 2,000.
"""

from __future__ import annotations

import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlalchemy import Engine, func, select

from benchmarks import dataset
from benchmarks.harness import Case, Figure, Skipped
from benchmarks.targets import SEND_NOW, Options, _backends, _database
from bot.store.db import make_engine
from bot.store.tables import deliveries

if TYPE_CHECKING:
    from tests.support.xapi import XStandIn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/support/xapi.py is imported from the repository
    sys.path.insert(0, str(ROOT))

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
X_CREDENTIALS = {
    "X_API_KEY": "bench-api-key",
    "X_API_KEY_SECRET": "bench-api-key-secret",
    "X_ACCESS_TOKEN": "bench-access-token",
    "X_ACCESS_TOKEN_SECRET": "bench-access-token-secret",
}
STOP_TIMEOUT = 30.0  # the worker finishes a send in flight within 20 s of SIGTERM


# ---------------------------------------------------------------- processes


def _env(opts: Options, database_url: str, **extra: str) -> dict[str, str]:
    """A minimal environment for a `bot` child: no developer variables, no `.env` file."""
    return {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "HOME": str(_folder(opts, "home")),
        "LANG": "C.UTF-8",
        "DATABASE_URL": database_url,
        **extra,
    }


def _folder(opts: Options, name: str) -> Path:
    path = opts.workdir / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class _WorkerLog:
    """Reads a worker's JSON log lines in a thread; notes when it reported ready."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.ready_at = 0.0  # time.monotonic()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            if '"worker_ready"' in line and not self.ready.is_set():
                self.ready_at = time.monotonic()
                self.ready.set()

    def tail(self, count: int = 12) -> str:
        """The last log lines, for an error message."""
        return "\n".join(self.lines[-count:])

    def join(self) -> None:
        """Wait for the stream to close (the process has exited)."""
        self._thread.join(timeout=5)


@dataclass
class _Worker:
    """A `bot run` process and its log."""

    proc: subprocess.Popen[str]
    log: _WorkerLog
    started_at: float  # time.monotonic()

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def wait_ready(self, timeout: float) -> float:
        """Seconds from start until its catch-up pass was done and it said what it knows."""
        if not self.log.ready.wait(timeout):
            alive = "running" if self.proc.poll() is None else f"exit {self.proc.returncode}"
            raise RuntimeError(f"bot run not ready in {timeout:.0f} s ({alive})\n{self.log.tail()}")
        return self.log.ready_at - self.started_at

    def stop(self) -> int:
        """SIGTERM, then wait for the clean exit (SIGKILL after STOP_TIMEOUT)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.join()
        return self.proc.returncode


def _start_worker(env: dict[str, str], cwd: Path) -> _Worker:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env={**env, "LOG_FORMAT": "json"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    return _Worker(proc, _WorkerLog(proc.stderr), time.monotonic())


@contextmanager
def _workers(starts: Sequence[Callable[[], _Worker]]) -> Iterator[list[_Worker]]:
    """Start workers; whatever happens, stop every one of them (and only them) afterwards."""
    running: list[_Worker] = []
    try:
        for start in starts:
            running.append(start())
        yield running
    finally:
        for worker in running:
            worker.stop()


# ---------------------------------------------------------------- /proc


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_mb(pid: int, key: str) -> float:
    """A `kB` line of /proc/PID/status (VmRSS, VmHWM), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def load_text() -> str:
    """The load averages now: other work on these 2 CPUs shows in every real-time figure."""
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def percentile(values: Sequence[float], p: int) -> float:
    """The p-th percentile (inclusive method, linear interpolation)."""
    if any(math.isinf(v) for v in values):
        ordered = sorted(values)
        rank = (len(ordered) - 1) * p / 100
        return ordered[math.ceil(rank)]
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# ---------------------------------------------------------------- 4. lateness


LATENESS_SEED = 20251
LATENESS_LEAD = 8.0  # seconds from the start to the first possible due time: the worker starts
STARTING = ("starting", HOUR)  # the one reminder: due an hour before each session


@dataclass
class _CronLoop:
    """`python -m bot send` at every whole minute of the real clock, as `* * * * *` cron does."""

    env: dict[str, str]
    cwd: Path
    log_path: Path
    stop: threading.Event = field(default_factory=threading.Event)
    runs: list[tuple[float, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        return thread

    def _loop(self) -> None:
        with open(self.log_path, "ab") as log:
            while not self.stop.is_set():
                boundary = (math.floor(time.time() / 60) + 1) * 60
                if self.stop.wait(max(boundary - time.time(), 0)):
                    break
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bot", "send"],
                    env=self.env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
                self.runs.append((time.time(), proc))

    def finish(self) -> list[int]:
        """Stop launching; wait for the passes still running; their exit codes."""
        self.stop.set()
        codes = []
        for _, proc in self.runs:
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


@dataclass(frozen=True)
class _Lateness:
    """Per delivery: seconds from the due time to the stand-in receiving the post (inf: never)."""

    late: list[float]
    due_to_claim: list[float]  # due time → the pass claimed it (the pass's clock)
    claim_to_post: list[float]  # claimed → the stand-in received the post
    posts: int  # published by the stand-in
    attempts: int  # every POST /2/tweets it received, published or refused


def _measure_lateness(engine: Engine, x: XStandIn, count: int) -> _Lateness:
    received = {p.post_id: p.received_at for p in x.posts}
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                deliveries.c.status,
                deliveries.c.due_at,
                deliveries.c.created_at,
                deliveries.c.external_id,
            )
        ).all()
    late, to_claim, to_post = [], [], []
    for row in rows:
        at = received.get(row.external_id) if row.status == "sent" else None
        if at is None:
            late.append(math.inf)
            continue
        late.append((at - row.due_at).total_seconds())
        to_claim.append((row.created_at - row.due_at).total_seconds())
        to_post.append((at - row.created_at).total_seconds())
    late += [math.inf] * (count - len(rows))  # never even claimed
    return _Lateness(late, to_claim, to_post, len(x.posts), len(x.received))


def _lateness_line(label: str, result: _Lateness) -> str:
    sent = sum(not math.isinf(v) for v in result.late)
    finite = [v for v in result.late if not math.isinf(v)] or [math.nan]
    parts = [
        f"{label}: {sent}/{len(result.late)} sent, {result.posts} posts received; lateness "
        f"p50 {percentile(result.late, 50):.3f} s, p99 {percentile(result.late, 99):.3f} s, "
        f"min {min(finite):.3f} s, max {max(finite):.3f} s"
    ]
    if result.due_to_claim:
        parts.append(
            f"due→claim median {statistics.median(result.due_to_claim):.3f} s "
            f"(max {max(result.due_to_claim):.3f}), claim→post median "
            f"{statistics.median(result.claim_to_post):.3f} s "
            f"(max {max(result.claim_to_post):.3f})"
        )
    return "; ".join(parts)


def lateness(opts: Options) -> list[Case]:
    """p50/p99 of (post received − due) for a `bot run` worker vs `bot send` from minute cron."""
    try:
        from tests.support.xapi import XStandIn
    except ImportError as exc:  # the stand-in lives with the tests (and imports pytest)
        reason = f"tests/support/xapi.py cannot be imported ({exc})"
        return [Skipped("lateness", "sqlite", reason)]
    count, window = (10, 20.0) if opts.quick else (50, 120.0)
    rng = random.Random(LATENESS_SEED)
    offsets = sorted(round(rng.uniform(0, window), 3) for _ in range(count))
    begin = datetime.now(UTC) + timedelta(seconds=LATENESS_LEAD)
    dues = [begin + timedelta(seconds=o) for o in offsets]
    starts = [due + STARTING[1] for due in dues]
    engines = {
        case: make_engine(_sqlite_url(opts.workdir / f"late-{case}.db")) for case in ("run", "cron")
    }
    for engine in engines.values():
        dataset.upcoming(engine, starts, reminders=(STARTING,), channel="x")
    common = {"CHANNELS": "x", "REMINDERS": "starting=1h", **X_CREDENTIALS}
    with XStandIn() as x_run, XStandIn() as x_cron:
        run_env = _env(
            opts,
            engines["run"].url.render_as_string(False),
            X_API_BASE_URL=x_run.base_url,
            **common,
        )
        cron_env = _env(
            opts,
            engines["cron"].url.render_as_string(False),
            X_API_BASE_URL=x_cron.base_url,
            **common,
        )
        cron = _CronLoop(cron_env, _folder(opts, "late-cron"), opts.workdir / "late-cron.log")
        cron.start()
        try:
            with _workers([lambda: _start_worker(run_env, _folder(opts, "late-run"))]) as (worker,):
                ready = worker.wait_ready(timeout=60)
                slack = (begin - datetime.now(UTC)).total_seconds()
                opts.report(
                    f"lateness: {count} deliveries due over {window:.0f} s from "
                    f"{begin:%H:%M:%S}Z; bot run ready after {ready:.1f} s "
                    f"({slack:+.1f} s before the first possible due time); cron passes at "
                    f"every whole minute on a second database and stand-in; {load_text()}"
                )
                # The last cron pass runs at the first whole minute after the last due time.
                give_up = time.monotonic() + (dues[-1] - datetime.now(UTC)).total_seconds() + 90
                while time.monotonic() < give_up:
                    if len(x_run.posts) >= count and len(x_cron.posts) >= count:
                        break
                    if worker.proc.poll() is not None:
                        raise RuntimeError(
                            f"bot run exited ({worker.proc.returncode})\n{worker.log.tail()}"
                        )
                    time.sleep(0.2)
                code = worker.stop()
                if code != 0:
                    raise RuntimeError(f"bot run exit {code} on SIGTERM\n{worker.log.tail()}")
        finally:
            codes = cron.finish()
        run = _measure_lateness(engines["run"], x_run, count)
        by_cron = _measure_lateness(engines["cron"], x_cron, count)
    for engine in engines.values():
        engine.dispose()
    opts.report("  " + _lateness_line("bot run (worker)", run))
    opts.report(
        "  " + _lateness_line(f"bot send from cron ({len(codes)} passes, exits {codes})", by_cron)
    )
    for label, result in (("bot run", run), ("cron", by_cron)):
        if result.attempts > count:  # the stand-in refuses a repeated text: count every attempt
            raise RuntimeError(f"{label}: {result.attempts} posts for {count} deliveries")
    label = "cron each minute"
    run50, run99 = percentile(run.late, 50), percentile(run.late, 99)
    cron50, cron99 = percentile(by_cron.late, 50), percentile(by_cron.late, 99)
    return [
        Figure("lateness", "sqlite bot run p50", run50, "s", None, count, cron50, label),
        Figure("lateness", "sqlite bot run p99", run99, "s", 1.0, count, cron99, label),
        Figure("lateness", "sqlite cron send p50", cron50, "s", None, count),
        Figure("lateness", "sqlite cron send p99", cron99, "s", None, count),
    ]


# ---------------------------------------------------------------- 5. idle worker


IDLE_SETTLE = 5.0
IDLE_RSS_LIMIT_MB = 80.0
IDLE_CPU_LIMIT_PERCENT = 1.0
IDLE_SESSIONS = 1_000


def _idle_cases(now: datetime, quiet: timedelta) -> dict[str, list[datetime]]:
    """1,000 upcoming sessions, none with a reminder due before `now + quiet`, two ways.

    `in window`: all of them start within the 8 days a pass reads (the longest offset, 7d, plus a
    day), so every poll loads, plans and arms all of them (the heavy case). `1 a day`: one a day,
    so a pass reads about eight of them and the rest only sit in the database.
    """
    first = now + HOUR + quiet
    last = now + 8 * DAY - HOUR
    step = (last - first) / (IDLE_SESSIONS - 1)
    return {
        "in window": [(first + step * i).replace(microsecond=0) for i in range(IDLE_SESSIONS)],
        "1 a day": [(first + DAY * i).replace(microsecond=0) for i in range(IDLE_SESSIONS)],
    }


def idle_worker(opts: Options) -> list[Case]:
    """VmRSS (max of 1 s samples) and CPU share of `bot run` with 1,000 sessions, nothing due."""
    observe = 15.0 if opts.quick else 60.0
    now = datetime.now(UTC)
    quiet = timedelta(minutes=15)  # no reminder falls due before this: not at start-up, not later
    cases = _idle_cases(now, quiet)
    engines: dict[str, Engine] = {}
    for index, (label, starts) in enumerate(cases.items()):
        engine = make_engine(_sqlite_url(opts.workdir / f"idle-{index}.db"))
        dataset.upcoming(engine, starts, sent_before=now + quiet)
        engines[label] = engine
    envs = {
        label: _env(
            opts, engine.url.render_as_string(False), CHANNELS="console"
        )  # default REMINDERS and POLL_INTERVAL
        for label, engine in engines.items()
    }

    def starter(label: str, index: int) -> Callable[[], _Worker]:
        return lambda: _start_worker(envs[label], _folder(opts, f"idle-{index}"))

    results: list[Case] = []
    # The two workers run side by side: both are idle, and /proc counts each one's own CPU time.
    with _workers([starter(label, i) for i, label in enumerate(cases)]) as workers:
        ready = [w.wait_ready(timeout=120) for w in workers]
        time.sleep(IDLE_SETTLE)
        rss: list[list[float]] = [[] for _ in workers]
        cpu_at: list[list[float]] = [[] for _ in workers]  # utime + stime at each sample
        cpu0 = [cpu_seconds(w.pid) for w in workers]
        wall0 = time.monotonic()
        next_sample = wall0
        while True:
            for index, worker in enumerate(workers):
                rss[index].append(status_mb(worker.pid, "VmRSS"))
                cpu_at[index].append(cpu_seconds(worker.pid))
            next_sample += 1.0
            if next_sample > wall0 + observe + 1e-6:
                break
            time.sleep(max(next_sample - time.monotonic(), 0))
        wall = time.monotonic() - wall0
        cpu = [cpu_seconds(w.pid) - c for w, c in zip(workers, cpu0, strict=True)]
        peaks = [status_mb(w.pid, "VmHWM") for w in workers]
        for worker in workers:
            if worker.proc.poll() is not None:
                raise RuntimeError(f"bot run exited early\n{worker.log.tail()}")
        codes = [w.stop() for w in workers]
    for engine in engines.values():
        engine.dispose()
    if any(codes):
        raise RuntimeError(f"bot run exit codes on SIGTERM: {codes}")
    for index, label in enumerate(cases):
        share = cpu[index] / wall * 100
        case = f"sqlite 1k {label}"
        steps = [b - a for a, b in zip(cpu_at[index], cpu_at[index][1:], strict=False)]
        busy = sorted((s for s in steps if s > 0), reverse=True)
        opts.report(
            f"idle_worker {case}: ready after {ready[index]:.1f} s; over {wall:.0f} s after a "
            f"{IDLE_SETTLE:.0f} s settle: VmRSS {min(rss[index]):.1f}–{max(rss[index]):.1f} MB "
            f"({len(rss[index])} samples), peak since start (VmHWM) {peaks[index]:.1f} MB; "
            f"CPU {cpu[index]:.2f} s = {share:.2f} %, in {len(busy)} of {len(steps)} seconds "
            f"(largest {', '.join(f'{s:.2f}' for s in busy[:3]) or '-'} s); {load_text()}"
        )
        results.append(
            Figure(
                "idle_worker",
                f"{case} rss",
                max(rss[index]),
                "MB",
                IDLE_RSS_LIMIT_MB,
                len(rss[index]),
            )
        )
        results.append(
            Figure("idle_worker", f"{case} cpu", share, "%", IDLE_CPU_LIMIT_PERCENT, len(steps))
        )
    return results


# ---------------------------------------------------------------- 6. throughput


NOOP_PLUGIN = '''"""A channel that does nothing (benchmarks/live.py) but note what it was given.

The keys it took are written once, when the pass closes its notifiers, to
NOOP_CHANNEL_DIR/PID.keys, so the benchmark can check that each delivery reached it exactly once.
"""

import os

from bot.notifiers.base import Notifier, Receipt


class NoopNotifier(Notifier):
    name = "noop"

    def __init__(self, config):
        super().__init__(config)
        self.keys = []

    @classmethod
    def parse_config(cls, env):
        return env.get("NOOP_CHANNEL_DIR") or None

    def send(self, message, now):
        key = message.key
        self.keys.append(f"{key.session_id}|{key.notice}|{key.channel}|{key.occurrence}")
        return Receipt(external_id=None)

    def close(self):
        if self.config and self.keys:
            path = os.path.join(self.config, f"{os.getpid()}.keys")
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("\\n".join(self.keys) + "\\n")
        self.keys = []
'''
THROUGHPUT_PROCESSES = 4


def install_noop_plugin(root: Path) -> Path:
    """A real installed distribution for PYTHONPATH: the module plus a dist-info entry point."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench_noop_channel.py").write_text(NOOP_PLUGIN, encoding="utf-8")
    info = root / "bench_noop_channel-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bench-noop-channel\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[bot.notifiers]\nnoop = bench_noop_channel:NoopNotifier\n", encoding="utf-8"
    )
    return root


def _due_starts(count: int) -> list[datetime]:
    """One session a second from SEND_NOW + 1 s: each one's `starting` is due by SEND_NOW."""
    if count >= 3600:
        raise ValueError("at most 3,599 sessions start within the hour")
    return [dataset.NOW + timedelta(seconds=1 + i) for i in range(count)]


@dataclass(frozen=True)
class _Run:
    seconds: float
    cpu: float  # user + system seconds of all the processes together
    per_process: list[int]  # deliveries each process handed to the channel


def _wait_with_usage(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Reap a child with wait4: its exit code and its own user + system CPU seconds."""
    limit = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > limit:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"bot send still running after {timeout:.0f} s")
        time.sleep(0.005)


def _send_all(opts: Options, engine: Engine, count: int, processes: int, plugin: Path) -> _Run:
    """Start `processes` `bot send --now` at once on a database with `count` due; check the end."""
    keys_dir = opts.workdir / f"keys-{time.monotonic_ns()}"
    keys_dir.mkdir()
    env = _env(
        opts,
        engine.url.render_as_string(False),
        CHANNELS="noop",
        REMINDERS="starting=1h",
        PYTHONPATH=str(plugin),
        NOOP_CHANNEL_DIR=str(keys_dir),
    )
    cwd = _folder(opts, "throughput")
    logs = [open(keys_dir / f"stderr-{i}.log", "wb") for i in range(processes)]  # noqa: SIM115
    try:
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bot", "send", "--now", SEND_NOW],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            for log in logs
        ]
        codes, cpu = [], 0.0
        for proc in procs:
            code, used = _wait_with_usage(proc, timeout=300)
            codes.append(code)
            cpu += used
        seconds = time.perf_counter() - started
    finally:
        for log in logs:
            log.close()
    if any(codes):
        detail = (keys_dir / f"stderr-{codes.index(next(c for c in codes if c))}.log").read_text()
        raise RuntimeError(f"bot send exit codes {codes}\n{detail[-2000:]}")
    keys: list[str] = []
    per_process = []
    for path in sorted(keys_dir.glob("*.keys")):
        taken = path.read_text(encoding="utf-8").splitlines()
        per_process.append(len(taken))
        keys += taken
    with engine.connect() as conn:
        states: dict[str, int] = dict(
            conn.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            ).all()
        )
    if states != {"sent": count} or len(keys) != count or len(set(keys)) != count:
        raise RuntimeError(
            f"expected {count} deliveries sent exactly once: ledger {states}, channel got "
            f"{len(keys)} ({len(set(keys))} distinct)"
        )
    return _Run(seconds, cpu, per_process)


def _runs_text(runs: Sequence[_Run]) -> str:
    return ", ".join(f"{r.seconds:.2f} s (CPU {r.cpu:.2f} s)" for r in runs)


def throughput(opts: Options) -> list[Case]:
    """Deliveries/s of 4 `bot send` processes together vs 1, on SQLite and PostgreSQL (INFO)."""
    count = 500 if opts.quick else 2_000
    # Rounds (1 process, then 4; then 4, then 1; …) while they fit in each backend's share of the
    # time: the target stays under a minute on a busy machine and gets a median where it can.
    max_rounds, budget = (1, 0.0) if opts.quick else (3, 25.0)
    plugin = install_noop_plugin(opts.workdir / "noop-plugin")
    starts = _due_starts(count)
    results: list[Case] = []
    for backend, skipped in _backends(opts, "throughput"):
        if skipped is not None:
            opts.report(f"throughput {backend}: skipped ({skipped.reason})")
            results.append(skipped)
            continue
        single: list[_Run] = []
        multi: list[_Run] = []
        began = time.monotonic()
        for index in range(max_rounds):
            spent = time.monotonic() - began
            if index and spent + spent / index > budget:
                break
            order = [1, THROUGHPUT_PROCESSES] if index % 2 == 0 else [THROUGHPUT_PROCESSES, 1]
            for processes in order:
                with _database(opts, backend, f"tput{processes}") as engine:
                    dataset.upcoming(engine, starts, reminders=(STARTING,), channel="noop")
                    run = _send_all(opts, engine, count, processes, plugin)
                (single if processes == 1 else multi).append(run)
        runs = len(single)
        one = count / statistics.median(r.seconds for r in single)
        four = count / statistics.median(r.seconds for r in multi)
        opts.report(
            f"throughput {backend}: {count:,} due deliveries, no-op plugin channel, every one "
            f"sent exactly once; 1 process {_runs_text(single)}; {THROUGHPUT_PROCESSES} started "
            f"together {_runs_text(multi)}, split "
            f"{'/'.join(str(n) for n in multi[-1].per_process)}; {load_text()}"
        )
        results.append(
            Figure(
                "throughput",
                f"{backend} {count / 1000:g}k {THROUGHPUT_PROCESSES} processes",
                four,
                "/s",
                None,
                runs,
                one,
                "1 process",
            )
        )
    return results
