"""Timing, results, the summary table and throw-away PostgreSQL databases."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get(
    "BOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Result:
    """One measured case: its median time, the baseline's median, and the allowed ratio."""

    name: str
    case: str
    measured: float  # seconds, median
    baseline: float  # seconds, median, measured in the same run
    baseline_label: str
    target: float | None  # the allowed measured / baseline ratio; None: informational
    runs: int

    @property
    def ratio(self) -> float:
        """measured / baseline."""
        return self.measured / self.baseline if self.baseline > 0 else float("inf")

    @property
    def verdict(self) -> str:
        """PASS, FAIL, or INFO for a case without a target."""
        if self.target is None:
            return "INFO"
        return "PASS" if self.ratio <= self.target else "FAIL"


@dataclass(frozen=True)
class Skipped:
    """A case that could not run here (or broke: `error`), and why."""

    name: str
    case: str
    reason: str
    error: bool = False


@dataclass(frozen=True)
class Figure:
    """One figure in its own unit, held to an absolute limit (or informational).

    For the targets that are not a ratio of two timings: a lateness in seconds, a resident size in
    MB, a CPU share in %, a rate in deliveries/s. A baseline of the same run, when there is one, is
    shown next to it with the ratio; the verdict looks only at `limit` (value ≤ limit passes).
    """

    name: str
    case: str
    value: float
    unit: str  # "s", "MB", "%" or "/s"
    limit: float | None  # the largest value that passes; None: informational
    runs: int  # how many samples the value summarises
    baseline: float | None = None
    baseline_label: str = ""

    @property
    def ratio(self) -> float | None:
        """value / baseline, when there is a baseline."""
        if self.baseline is None:
            return None
        return self.value / self.baseline if self.baseline > 0 else float("inf")

    @property
    def verdict(self) -> str:
        """PASS, FAIL, or INFO for a figure without a limit."""
        if self.limit is None:
            return "INFO"
        return "PASS" if self.value <= self.limit else "FAIL"


Case = Result | Figure | Skipped


def fmt_value(value: float, unit: str) -> str:
    """A figure with its unit."""
    if unit == "s":
        return fmt_seconds(value)
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:.1f} {unit}"


def fmt_ratio(ratio: float) -> str:
    """`1.23×`, or two significant digits for a small ratio (`0.00015×`)."""
    return f"{ratio:.2f}×" if ratio >= 0.1 or ratio == 0 else f"{ratio:.2g}×"


def interleaved(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    runs: int,
    *,
    warmup: int = 1,
    prepare: Callable[[], object] | None = None,
) -> tuple[list[float], list[float]]:
    """Time both callables `runs` times, alternating which goes first so drift hits both alike.

    `prepare`, when given, runs untimed before every call of `subject` (e.g. an empty database).
    """
    for _ in range(warmup):
        if prepare is not None:
            prepare()
        subject()
        baseline()
    subject_times: list[float] = []
    baseline_times: list[float] = []
    for i in range(runs):
        pair = [(subject, subject_times), (baseline, baseline_times)]
        for fn, times in pair if i % 2 == 0 else reversed(pair):
            if fn is subject and prepare is not None:
                prepare()
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return subject_times, baseline_times


def median(values: Sequence[float]) -> float:
    """The median of `values`."""
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """`min–max` in milliseconds, to show how noisy a median is."""
    return f"{min(values) * 1000:.1f}–{max(values) * 1000:.1f} ms"


def fmt_seconds(value: float) -> str:
    """A duration with a unit that keeps three significant-ish digits."""
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def table(results: Sequence[Case]) -> str:
    """The compact end-of-run table."""
    header = ("target", "case", "measured", "baseline", "ratio", "limit", "runs", "result")
    rows: list[tuple[str, ...]] = [header]
    for r in results:
        if isinstance(r, Skipped):
            verdict = "ERROR" if r.error else "SKIP"
            rows.append((r.name, r.case, "-", "-", "-", "-", "-", verdict))
            continue
        if isinstance(r, Figure):
            ratio = r.ratio
            rows.append(
                (
                    r.name,
                    r.case,
                    fmt_value(r.value, r.unit),
                    "-"
                    if r.baseline is None
                    else f"{fmt_value(r.baseline, r.unit)} ({r.baseline_label})",
                    "-" if ratio is None else fmt_ratio(ratio),
                    "-" if r.limit is None else f"≤{r.limit:g} {r.unit}".replace(" /s", "/s"),
                    str(r.runs),
                    r.verdict,
                )
            )
            continue
        limit = f"≤{r.target:g}×" if r.target is not None else "-"
        rows.append(
            (
                r.name,
                r.case,
                fmt_seconds(r.measured),
                f"{fmt_seconds(r.baseline)} ({r.baseline_label})",
                f"{r.ratio:.2f}×",
                limit,
                str(r.runs),
                r.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- PostgreSQL


def postgres_problem() -> str | None:
    """None when PostgreSQL answers at PG_ADMIN_URL, else a one-line reason."""
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(exc).__name__})"
    return None


@contextmanager
def fresh_pg_database(label: str) -> Iterator[str]:
    """Create an empty database, yield its URL, and drop it afterwards."""
    name = f"bot_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
