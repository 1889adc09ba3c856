"""Keeping SITE_DIR current: after every change to the sessions and after worker passes.

A failed rebuild leaves the previous site in place and is logged at ERROR; the command or the
pass that asked for it carries on (a website that lags is better than an announcement that
does not go out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from bot.config import Settings

log = logging.getLogger("bot.site")
RETRY_AFTER = timedelta(minutes=10)  # a failed rebuild in the worker is tried again after this


@dataclass(frozen=True)
class Built:
    """What one build wrote, and until when it stays right (None: until the data changes)."""

    target: Path
    files: int
    sessions: int
    next_change: datetime | None


def build_into(engine: Engine, settings: Settings, now: datetime, target: Path) -> Built:
    """Read the database, build the website as of `now`, and swap it in as `target`."""
    from bot.site.build import CALENDAR_HISTORY, build_site
    from bot.site.views import next_change
    from bot.site.write import write_site
    from bot.store.site import load_site

    data = load_site(engine)
    files = build_site(data, settings, now)
    write_site(files, target)
    return Built(target, len(files), len(data.sessions), next_change(data, now, CALENDAR_HISTORY))


def rebuild_site(engine: Engine, settings: Settings, now: datetime, why: str) -> Built | None:
    """Rebuild SITE_DIR when it is set; None when it is not set or the build failed (logged)."""
    if settings.site_dir is None:
        return None
    try:
        built = build_into(engine, settings, now, settings.site_dir)
    except Exception as exc:  # whatever went wrong, the previous site stays and the caller goes on
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error(
            "site not rebuilt after %s, the previous one stays in %s: %s",
            why,
            settings.site_dir,
            reason,
            extra={"event": "site_failed"},
        )
        return None
    log.info(
        "site rebuilt after %s: %s (%d sessions, %d files)",
        why,
        built.target,
        built.sessions,
        built.files,
        extra={"event": "site_built"},
    )
    return built


class SiteKeeper:
    """The worker's rebuilds: after a pass that handled a delivery, when the data changed (here
    or on another host), and when time alone changes the site (a session starts or ends)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._seen: tuple[object, ...] | None = None
        self._valid_until: datetime | None = None

    def after_pass(self, handled: bool, now: datetime) -> Built | None:
        """Rebuild when something changed since the last build; never raises."""
        if self.settings.site_dir is None:
            return None
        from bot.store.site import site_fingerprint

        try:
            seen = site_fingerprint(self.engine)
        except Exception as exc:
            log.error("site: cannot read the database: %s", exc, extra={"event": "site_failed"})
            return None
        stale = self._valid_until is not None and now >= self._valid_until
        if self._seen is not None and seen == self._seen and not handled and not stale:
            return None
        built = rebuild_site(self.engine, self.settings, now, "a worker pass")
        self._seen = seen
        self._valid_until = now + RETRY_AFTER if built is None else built.next_change
        return built
