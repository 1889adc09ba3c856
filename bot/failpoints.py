"""Failpoints for crash tests: `BOT_FAILPOINT=NAME[:N]` SIGKILLs the process at a protocol point.

Names: `after_claim`, `after_sending_mark`, `after_provider_accepted`, `after_outcome_commit`.
With `:N` the process dies the N-th time it reaches that point (default: the first). Unset, a hit
is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_claim", "after_sending_mark", "after_provider_accepted", "after_outcome_commit")
_counts: dict[str, int] = {}


def hit(name: str) -> None:
    """Die here with SIGKILL when BOT_FAILPOINT names this point (and its count is reached)."""
    wanted = os.environ.get("BOT_FAILPOINT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or "1"):
        os.kill(os.getpid(), signal.SIGKILL)
