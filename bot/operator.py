"""What an operator does: retry or resolve a delivery, and check the whole set-up."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from bot.config import Settings
from bot.domain import LedgerRow
from bot.errors import NotifierError, PermanentError, TemplateProblem, UsageError
from bot.store.db import write_transaction
from bot.store.ledger import COLUMNS, TABLE, row_to_ledger

CHECK_HORIZON = timedelta(days=30)


def _get_row(engine: Engine, delivery_id: int) -> LedgerRow:
    with engine.connect() as conn:
        row = conn.execute(select(TABLE).where(COLUMNS.id == delivery_id)).first()
    if row is None:
        raise UsageError(f"no delivery with id {delivery_id}")
    return row_to_ledger(row)


def _describe(row: LedgerRow) -> str:
    return f"delivery {row.id} ({row.key.session_id} {row.key.notice} {row.key.channel})"


def retry(engine: Engine, delivery_id: int, now: datetime) -> str:
    """Put an uncertain, failed or missed delivery back in line; the next pass sends it."""
    row = _get_row(engine, delivery_id)
    if row.status not in ("uncertain", "failed", "missed"):
        raise UsageError(f"{_describe(row)} is {row.status}; only uncertain, failed or missed")
    if now >= row.deadline:
        raise UsageError(f"{_describe(row)}: its deadline has passed; it can no longer go out")
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(TABLE)
            .where(COLUMNS.id == delivery_id, COLUMNS.status == row.status)
            .values(
                status="pending",
                token=None,
                next_attempt_at=None,
                lease_expires_at=None,
                settle_after=None,  # the reference stays: a re-send reuses it (rule 5a)
                reason=f"retry requested by an operator (was {row.status})",
                updated_at=now,
            )
        )
    if result.rowcount != 1:
        raise UsageError(f"{_describe(row)} changed meanwhile; look again")
    return f"{_describe(row)}: will be sent by the next pass"


def resolve(engine: Engine, delivery_id: int, outcome: str, now: datetime) -> str:
    """Settle an uncertain delivery as `sent` or `failed` after checking the channel by hand."""
    row = _get_row(engine, delivery_id)
    if row.status != "uncertain":
        raise UsageError(f"{_describe(row)} is {row.status}; only uncertain ones are resolved")
    with write_transaction(engine) as conn:
        conn.execute(
            update(TABLE)
            .where(COLUMNS.id == delivery_id, COLUMNS.status == "uncertain")
            .values(
                status=outcome,
                token=None,
                settle_after=None,
                reason=f"resolved as {outcome} by an operator",
                sent_at=now if outcome == "sent" else None,
                updated_at=now,
            )
        )
    return f"{_describe(row)}: {outcome}"


def syntax_problems(settings: Settings) -> list[str]:
    """Templates that do not compile: the worker refuses to start on them."""
    from bot.render.renderer import Renderer

    return [f"templates: {p}" for p in Renderer(settings).check_syntax()]


def message_problems(engine: Engine, settings: Settings, now: datetime) -> list[str]:
    """Upcoming messages that do not render or are over their channel's limit."""
    return _plan_problems(engine, settings, now, include_plan=False, syntax=False)


def _plan_problems(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    include_plan: bool,
    syntax: bool = True,
) -> list[str]:
    from bot.dispatch import Dispatcher
    from bot.rules.planner import plan, recordings_since
    from bot.store.reads import load_window

    dispatcher = Dispatcher(engine, settings, lambda: now)
    problems = [f"templates: {p}" for p in dispatcher.renderer.check_syntax()] if syntax else []
    if syntax and settings.site_dir is not None:  # the website is rebuilt: its templates too
        from bot.site.build import site_template_problems

        problems += [f"templates: {p}" for p in site_template_problems(settings)]
    sessions, rows = load_window(
        engine,
        now - timedelta(days=1),
        now + CHECK_HORIZON,
        announced_after=now,
        recordings_from=recordings_since(settings, now),
        recording_channels=len(settings.recording_channels),
    )
    by_id = {s.id: s for s in sessions}
    for notice in plan(sessions, rows, settings, now):
        key = notice.key
        where = f"session {key.session_id}: {key.notice} on {key.channel}"
        if include_plan and notice.action in ("skip", "miss"):
            verb = "will be skipped" if notice.action == "skip" else "will be missed"
            problems.append(f"{where} {verb} ({notice.reason})")
        if notice.action not in ("send", "wait"):
            continue
        try:
            dispatcher.render(notice, by_id[key.session_id], max(now, notice.due_at))
        except (TemplateProblem, PermanentError) as exc:
            problems.append(f"{where}: {exc}")
    return problems


def check(engine: Engine, settings: Settings, now: datetime, online: bool) -> list[str]:
    """Every problem an operator should see, one line each; empty when all is well."""
    from bot.dispatch import Dispatcher

    login: list[str] = []
    if online:  # first: a channel may learn its own limit here (a Mastodon instance's)
        dispatcher = Dispatcher(engine, settings, lambda: now)
        for channel in settings.channels:
            try:
                dispatcher.notifier(channel).check_online()
            except NotifierError as exc:
                login.append(f"channel {channel}: cannot log in ({exc})")
        dispatcher.close()
        if settings.youtube_feed_url:
            from bot.recordings.feed import FeedError, read

            try:
                read(settings.youtube_feed_url)
            except FeedError as exc:
                login.append(f"recordings: the YouTube feed cannot be read ({exc})")
    problems = _plan_problems(engine, settings, now, include_plan=True)
    with engine.connect() as conn:
        # Failed ones only while a retry can still help; uncertain ones until someone settles them.
        waiting = conn.execute(
            select(TABLE)
            .where(
                (COLUMNS.status == "uncertain")
                | (COLUMNS.status.in_(("failed", "retrying")) & (COLUMNS.deadline > now))
            )
            .order_by(COLUMNS.id)
        ).all()
    for raw in waiting:
        row = row_to_ledger(raw)
        if row.status == "retrying":  # seen before its deadline, not only once it is missed
            next_at = (
                f", next at {row.next_attempt_at:%Y-%m-%dT%H:%MZ}" if row.next_attempt_at else ""
            )
            problems.append(
                f"{_describe(row)}: retrying ({row.reason}); attempt {row.attempts}{next_at}, "
                f"deadline {row.deadline:%Y-%m-%dT%H:%MZ}"
            )
            continue
        if row.status == "uncertain" and row.settle_after is not None:  # rule 5a: in hand
            problems.append(
                f"{_describe(row)}: uncertain ({row.reason}); the channel is asked again at "
                f"{row.settle_after:%Y-%m-%dT%H:%MZ} (or `bot deliveries resolve {row.id}`)"
            )
            continue
        action = "resolve or retry" if row.status == "uncertain" else "retry"
        problems.append(
            f"{_describe(row)}: {row.status} ({row.reason}); `bot deliveries {action} {row.id}`"
        )
    return problems + _waiting_recordings(engine) + login


def _waiting_recordings(engine: Engine) -> list[str]:
    """Recording matches that wait for the operator's word."""
    from bot.store.recordings import load_matches

    with engine.connect() as conn:
        waiting = [m for m in load_matches(conn) if m.status == "waiting"]
    return [
        f"recordings: session {m.session_id} may be video {m.video_id} ({m.kind}, {m.why}); "
        f"`bot recordings accept {m.session_id} {m.video_id}` or `reject`"
        for m in sorted(waiting, key=lambda m: (m.session_id, m.video_id))
    ]
