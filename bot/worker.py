"""The long-lived worker: APScheduler 3 decides *when* to run a pass; dispatch decides what."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Settings, format_duration
from bot.dispatch import Dispatcher, PassResult
from bot.errors import DatabaseGoneError
from bot.site.rebuild import SiteKeeper
from bot.store.db import file_guard, is_sqlite, write_transaction
from bot.store.tables import heartbeats as Heartbeat

log = logging.getLogger("bot.worker")
# SPEC §7: after SIGTERM, SIGINT or SIGHUP the worker exits within 20 s whatever a channel does.
# A send in flight may finish by itself for STOP_GRACE_SECONDS; then it is recorded `uncertain`
# and unsent claims are given back; at STOP_DEADLINE_SECONDS the process exits in any case.
STOP_GRACE_SECONDS = 15.0
STOP_DEADLINE_SECONDS = 19.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
MISFIRE_GRACE_SECONDS = 300
EXIT_BAD_CONFIG = 2
ANNOUNCE_HORIZON = timedelta(days=30)
MAX_DUE_JOBS = 500  # beyond that, later polls add the rest


def real_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def latest_heartbeat(engine: Engine) -> datetime | None:
    """The newest heartbeat of any worker."""
    with engine.connect() as conn:
        value = conn.execute(select(func.max(Heartbeat.c.beat_at))).scalar()
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Worker:
    """Runs a catch-up pass, then a pass at every due time and every POLL_INTERVAL."""

    def __init__(
        self, engine: Engine, settings: Settings, clock: Callable[[], datetime] = real_clock
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.dispatcher = Dispatcher(engine, settings, clock)
        self.stopping = threading.Event()
        self.dispatcher.should_stop = self.stopping.is_set
        self.site = SiteKeeper(engine, settings)  # rebuilds SITE_DIR after passes, when set
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{clock():%Y%m%dT%H%M%S}"
        self.started_at = clock()
        self._pass_lock = threading.Lock()
        self._scheduler: Any = None
        self._announced = False
        self._signalled_at: float | None = None  # time.monotonic() of the stop signal
        self.exit_code = 0

    # -------------------------------------------------------------- lifecycle

    def run(self) -> int:
        """Run until SIGTERM, SIGINT or SIGHUP: 0 on a clean stop; 2 when a template does not
        compile or the SQLite file was deleted or replaced. Upcoming messages that do not render
        or fit are logged at ERROR and fail at their due time."""
        from bot.operator import message_problems, syntax_problems

        problems = syntax_problems(self.settings)
        if problems:
            for line in problems:
                log.error("cannot start: %s", line, extra={"event": "worker_refused"})
            return EXIT_BAD_CONFIG
        # A message that does not render or fit fails at its own due time; the rest goes out.
        for line in message_problems(self.engine, self.settings, self.clock()):
            log.error("%s (it will fail when due)", line, extra={"event": "message_problem"})
        # The file the database is in now; a pass refuses to run once it was deleted or replaced.
        self.dispatcher.guard = file_guard(self.settings.database_url)
        self._scheduler = self.make_scheduler()
        self._install_signals()
        log.info(
            "worker %s started: channels %s, reminders %s",
            self.worker_id,
            ",".join(self.settings.channels),
            ",".join(f"{r.name}={format_duration(r.offset)}" for r in self.settings.reminders),
            extra={"event": "worker_started"},
        )
        self._scheduler.start()
        if self.settings.youtube_feed_url:  # SPEC §10: the feed, every RECORDINGS_POLL
            threading.Thread(target=self._recordings_loop, name="recordings", daemon=True).start()
        self._scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.settings.poll_interval.total_seconds(),
            id="poll",
            next_run_time=datetime.now(UTC),  # the catch-up pass, at once
        )
        self.stopping.wait()
        return self._shutdown()

    @staticmethod
    def make_scheduler() -> Any:
        """A background scheduler whose jobs never overlap: one thread, coalesced, one instance."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        return BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            },
        )

    def _install_signals(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self.stopping.is_set() and self._signalled_at is not None:
                log.warning("second signal: exiting at once", extra={"event": "worker_killed"})
                os._exit(130)
            log.info(
                "signal %s: finishing sends in flight", signum, extra={"event": "worker_stopping"}
            )
            self.stop()

        for signum in STOP_SIGNALS:
            signal.signal(signum, on_signal)

    def stop(self) -> None:
        """Begin a clean stop (what the signals do)."""
        if self._signalled_at is None:
            self._signalled_at = time.monotonic()
        self.stopping.set()

    def _shutdown(self) -> int:
        started = self._signalled_at if self._signalled_at is not None else time.monotonic()
        # Whatever happens below (a database that does not answer, say), the process ends in time.
        watchdog = threading.Timer(
            max(0.0, started + STOP_DEADLINE_SECONDS - time.monotonic()), self._exit_now
        )
        watchdog.daemon = True
        watchdog.start()
        self._scheduler.shutdown(wait=False)
        grace = max(0.0, started + STOP_GRACE_SECONDS - time.monotonic())
        finished = self._pass_lock.acquire(timeout=grace)
        if not finished:
            log.error(
                "a send did not finish within %gs of the stop: recorded as uncertain",
                STOP_GRACE_SECONDS,
                extra={"event": "worker_abandoned_send"},
            )
            self._settle_abandoned()
        else:
            self.dispatcher.close()
        if self.exit_code != EXIT_BAD_CONFIG:  # never write to a replaced database file
            self._forget_heartbeat()
        log.info("worker stopped", extra={"event": "worker_stopped"})
        if not finished:  # the pass thread is stuck in a channel: it must not keep us alive
            self._exit_now()
        watchdog.cancel()
        return self.exit_code

    def _settle_abandoned(self) -> None:
        try:
            self.dispatcher.abandon("the worker stopped before the channel answered")
        except SQLAlchemyError as exc:
            log.error(
                "could not record the abandoned send (the lease sweep will): %s",
                str(exc).splitlines()[0],
                extra={"event": "database_error"},
            )

    def _forget_heartbeat(self) -> None:
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(delete(Heartbeat).where(Heartbeat.c.worker_id == self.worker_id))
        except SQLAlchemyError:
            pass

    def _exit_now(self) -> None:
        """End the process at once, with the exit code so far (logs flushed first)."""
        logging.shutdown()
        os._exit(self.exit_code)

    # -------------------------------------------------------------- passes

    def tick(self) -> None:
        """One pass, then re-arm the wake-up for the next due time. Never raises."""
        if self.stopping.is_set():
            return
        with self._pass_lock:
            try:
                result = self.dispatcher.run_pass()
            except DatabaseGoneError as exc:
                self._database_gone(exc)
                return
            except SQLAlchemyError as exc:
                log.error(
                    "database unavailable, will retry: %s",
                    str(exc).splitlines()[0],
                    extra={"event": "database_error"},
                )
                return
            except Exception:
                log.exception("pass failed", extra={"event": "pass_failed"})
                return
            if not self._announced:
                self._announce()
            self._beat(result)
            self._arm(result)
            # After the pass and its wake-ups: the website lags a pass rather than a notice.
            self.site.after_pass(bool(result.outcomes), self.clock())

    def _database_gone(self, exc: DatabaseGoneError) -> None:
        """The SQLite file was deleted or replaced: stop, exit 2, write nothing more."""
        log.error("%s; stopping", exc, extra={"event": "database_gone"})
        self.exit_code = EXIT_BAD_CONFIG
        self.stop()

    # -------------------------------------------------------------- recordings

    def _recordings_loop(self) -> None:
        """Read the feed now and every RECORDINGS_POLL, in a thread of its own: a slow feed never
        delays a due send, and a stop never waits for it (nothing is written mid-request)."""
        while not self.stopping.is_set():
            self.sync_recordings()
            self.stopping.wait(self.settings.recordings_poll.total_seconds())

    def sync_recordings(self) -> None:
        """One recordings sync. A feed that cannot be read is a warning and a retry at the next
        poll, never a change; an applied match makes the `recording` notice due, so a pass runs
        at once. Never raises.

        The feed is read without any lock (a slow feed delays nothing); what the sync writes is
        written under the pass lock, so a stop waits for it and nothing is written after one.
        """
        from bot.recordings.feed import FeedError, read
        from bot.recordings.sync import sync

        poll = format_duration(self.settings.recordings_poll)
        try:
            seen = read(self.settings.youtube_feed_url)
            with self._pass_lock:
                if self.stopping.is_set():
                    return
                self.dispatcher.guard()  # the same database file the worker started on
                report = sync(self.engine, self.settings, self.clock(), read=lambda _url: seen)
        except FeedError as exc:
            log.warning(
                "recordings: the feed could not be read (%s); nothing changed, next try in %s",
                exc,
                poll,
                extra={"event": "feed_unavailable"},
            )
            return
        except DatabaseGoneError as exc:
            self._database_gone(exc)
            return
        except SQLAlchemyError as exc:
            log.error(
                "recordings: database unavailable, next try in %s: %s",
                poll,
                str(exc).splitlines()[0],
                extra={"event": "database_error"},
            )
            return
        except Exception:
            log.exception("recordings sync failed", extra={"event": "recordings_failed"})
            return
        for p in report.applied:
            log.info(
                "recordings: %s <- %s applied (%s)",
                p.session_id,
                p.video_id,
                p.why,
                extra={"event": "recording_applied"},
            )
        for p in report.proposed:
            log.info(
                "recordings: %s may be %s (%s); `bot recordings accept %s %s`",
                p.session_id,
                p.video_id,
                p.why,
                p.session_id,
                p.video_id,
                extra={"event": "recording_proposed"},
            )
        for note in report.notes if report.changed else ():
            log.info("recordings: %s", note, extra={"event": "recording_note"})
        if report.changed and self._scheduler is not None and not self.stopping.is_set():
            # A pass at once: it sends the recording notice of an applied match, then rebuilds
            # the website (its fingerprint counts the videos), in the scheduler's thread.
            self._scheduler.add_job(
                self.tick,
                "date",
                run_date=datetime.now(UTC),
                id="recordings",
                replace_existing=True,
            )

    def _announce(self) -> None:
        """After the catch-up pass, say what the worker knows and what it will send next."""
        from bot.rules.planner import plan
        from bot.store.reads import load_window

        self._announced = True
        now = self.clock()
        sessions, rows = load_window(self.engine, now, now + ANNOUNCE_HORIZON)
        upcoming = sorted(
            (n for n in plan(sessions, rows, self.settings, now) if n.action == "wait"),
            key=lambda n: (n.due_at, n.key.session_id, n.key.channel),
        )
        log.info(
            "knows %d upcoming sessions in the next %d days; %d notices planned",
            len(sessions),
            ANNOUNCE_HORIZON.days,
            len(upcoming),
            extra={"event": "worker_ready"},
        )
        for notice in upcoming[:5]:
            log.info(
                "next: %s %s on %s at %s",
                notice.key.session_id,
                notice.key.notice,
                notice.key.channel,
                notice.due_at.isoformat(),
                extra={"event": "worker_next"},
            )

    def _arm(self, result: PassResult) -> None:
        """Keep exactly one date job per upcoming due time, rebuilt from this pass's plan."""
        if self.stopping.is_set() or self._scheduler is None:
            return
        wanted = {f"due-{t:%Y%m%dT%H%M%S.%f}": t for t in result.wake_times[:MAX_DUE_JOBS]}
        for job in self._scheduler.get_jobs():
            if job.id.startswith("due-") and job.id not in wanted:
                job.remove()
        for job_id, when in wanted.items():
            if self._scheduler.get_job(job_id) is None:
                self._scheduler.add_job(self.tick, "date", run_date=when, id=job_id)
        if result.wake_at is not None:
            log.debug(
                "%d due-time jobs; next at %s",
                len(wanted),
                result.wake_at.isoformat(),
                extra={"event": "wake_armed"},
            )

    def _beat(self, result: PassResult) -> None:
        now = self.clock()
        values = {
            "worker_id": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "beat_at": now,
            "next_due_at": result.wake_at,
            "stopping": self.stopping.is_set(),
        }
        try:
            with write_transaction(self.engine) as conn:
                if is_sqlite(conn):
                    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                    stmt: Any = sqlite_insert(Heartbeat).values(values)
                else:
                    from sqlalchemy.dialects.postgresql import insert as pg_insert

                    stmt = pg_insert(Heartbeat).values(values)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["worker_id"],
                    set_={"beat_at": now, "next_due_at": result.wake_at},
                )
                conn.execute(stmt)
                conn.execute(delete(Heartbeat).where(Heartbeat.c.beat_at < now - timedelta(days=1)))
        except SQLAlchemyError as exc:
            log.error("heartbeat not written: %s", exc, extra={"event": "heartbeat_failed"})
