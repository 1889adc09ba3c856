"""`make bench`: measure the performance targets, each against a baseline taken in the same run.

The timing targets are ratios (these machines are noisy, absolute times mean little): the median
of N runs of the thing measured, over the median of N interleaved runs of its baseline. The
real-time targets (benchmarks/live.py: lateness, idle_worker, throughput) run real `bot`
processes against the wall clock and hold absolute figures to absolute limits, each shown next to
its baseline from the same run where there is one.

    .venv/bin/python benchmarks/run.py [--quick] [--only NAME] [--no-postgres] [--strict]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `bot` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Case, Figure, Result, Skipped, postgres_problem, table
from benchmarks.live import idle_worker, lateness, throughput
from benchmarks.targets import Options, cold_start, idle_pass, import_10k, site_build

TARGETS: dict[str, Callable[[Options], Sequence[Case]]] = {
    "cold_start": cold_start,
    "idle_pass": idle_pass,
    "import_10k": import_10k,
    "site_build": site_build,
    "lateness": lateness,
    "idle_worker": idle_worker,
    "throughput": throughput,
}


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller data (smoke)")
    parser.add_argument(
        "--only", choices=sorted(TARGETS), action="append", help="only this target (repeatable)"
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL cases")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--profile", action="store_true", help="also show where the time goes")
    return parser.parse_args(argv)


def _facts(pg_problem: str | None) -> list[str]:
    import sqlalchemy
    import yaml

    from bot.store.db import SCHEMA_HEAD

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines = [
        f"python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
        + (f", load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else ""),
        f"SQLAlchemy {sqlalchemy.__version__}, PyYAML {yaml.__version__} "
        f"(libyaml {'yes' if yaml.__with_libyaml__ else 'NO'}), schema {SCHEMA_HEAD}",
    ]
    if pg_problem is None:
        lines.append(f"PostgreSQL: {_pg_version()}")
    else:
        lines.append(f"PostgreSQL: skipped ({pg_problem})")
    return lines


def _pg_version() -> str:
    from sqlalchemy import create_engine, text

    from benchmarks.harness import PG_ADMIN_URL

    engine = create_engine(PG_ADMIN_URL)
    with engine.connect() as conn:
        version = str(conn.execute(text("SHOW server_version")).scalar())
    engine.dispose()
    return f"{version} at {engine.url.render_as_string(hide_password=True)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen targets, print a table; the exit status is 1 only for --strict failures."""
    args = _arguments(argv)
    started = time.perf_counter()
    if args.no_postgres:
        pg_problem: str | None = "--no-postgres"
    else:
        pg_problem = postgres_problem()
    for line in _facts(pg_problem):
        print(line)
    print(f"mode: {'quick (smoke run: smaller data, fewer runs)' if args.quick else 'full'}")
    print(flush=True)
    results: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="bot-bench-") as workdir:
        opts = Options(
            quick=args.quick,
            postgres_problem=pg_problem,
            profile=args.profile,
            workdir=Path(workdir),
            report=lambda line: print(line, flush=True),
        )
        for name in args.only or list(TARGETS):
            target_started = time.perf_counter()
            try:
                results.extend(TARGETS[name](opts))
            except Exception as exc:  # one broken target must not hide the others' figures
                traceback.print_exc()
                results.append(Skipped(name, "-", f"{name}: {type(exc).__name__}: {exc}", True))
            opts.report(f"({name}: {time.perf_counter() - target_started:.0f} s)")
    print()
    print(table(results))
    for r in dict.fromkeys((r.error, r.reason) for r in results if isinstance(r, Skipped)):
        print(f"{'ERROR' if r[0] else 'SKIP'}: {r[1].splitlines()[0]}")
    failed = [
        r
        for r in results
        if (isinstance(r, Result | Figure) and r.verdict == "FAIL")
        or (isinstance(r, Skipped) and r.error)
    ]
    summary = f"{len(failed)} of {len(results)} cases FAIL or broke"
    print(f"\n{summary}; {time.perf_counter() - started:.0f} s in all")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
