"""`--profile`: where the time goes (cProfile in-process, -X importtime for a subprocess)."""

from __future__ import annotations

import cProfile
import io
import pstats
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def cprofile_call(fn: Callable[[], object], limit: int = 18) -> str:
    """Run `fn` once under cProfile; the top functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    return _trim(out.getvalue())


def cprofile_command(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, limit: int = 25
) -> str:
    """Run `python -m cProfile -s tottime ARGS` once; the top of its report."""
    command = [sys.executable, "-m", "cProfile", "-s", "tottime", *args]
    done = subprocess.run(command, env=dict(env), cwd=cwd, capture_output=True, text=True)
    lines = done.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "function calls" in line), 0)
    return _trim("\n".join(lines[start : start + limit + 6]))


def import_times(args: Sequence[str], env: Mapping[str, str], cwd: Path, limit: int = 14) -> str:
    """Run `python -X importtime ARGS` once; import time summed by top-level package."""
    command = [sys.executable, "-X", "importtime", *args]
    done = subprocess.run(command, env=dict(env), cwd=cwd, capture_output=True, text=True)
    by_package: dict[str, int] = defaultdict(int)
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "self" in parts[0]:
            continue
        by_package[parts[2].strip().split(".")[0]] += int(parts[0])
    total = sum(by_package.values())
    ranked = sorted(by_package.items(), key=lambda item: -item[1])[:limit]
    lines = [f"imports: {total / 1000:.0f} ms in all (self time summed by top-level package)"]
    lines += [f"  {us / 1000:7.1f} ms  {name}" for name, us in ranked]
    return "\n".join(lines)


def _trim(report: str) -> str:
    return "\n".join(line.rstrip() for line in report.strip().splitlines() if line.strip())
