"""One pass: plan → render → claim → send → record. `send` and the worker both call run_pass()."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot import failpoints
from bot.config import Settings
from bot.domain import DeliveryKey, GroupInfo, Notice, SessionData
from bot.errors import (
    DuplicateContentError,
    MaybeSentError,
    NotifierError,
    PermanentError,
    TemplateProblem,
    TransientError,
)
from bot.notifiers import registry
from bot.notifiers.base import Message, Notifier, Settlement
from bot.rules.planner import plan, recordings_since, session_window, wake_times
from bot.store import ledger
from bot.store.reads import load_window

if TYPE_CHECKING:
    from bot.render.renderer import Renderer

log = logging.getLogger("bot.dispatch")
Clock = Callable[[], datetime]
PROBLEM_STATES = frozenset({"failed", "missed", "uncertain"})
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(minutes=30)
# A pass whose sessions changed under it (a `sending` mark refused) plans again, at most this often.
MAX_ROUNDS = 3
# Self-settling (rule 5a): an uncertain delivery the channel cannot answer for is asked again
# after half its age (at least 1m, at most 30m), until a day after its deadline.
SETTLE_HORIZON = timedelta(days=1)
SETTLED = "settled by the channel"


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after `attempts` failed tries: 1m, 2m, 4m … at most 30m."""
    delay: timedelta = FIRST_RETRY * 2 ** max(attempts - 1, 0)
    return min(delay, MAX_RETRY)


@dataclass(frozen=True)
class Outcome:
    """What a pass did (or, in a dry run, would do) with one delivery."""

    key: DeliveryKey
    due_at: datetime
    status: str
    reason: str | None = None
    external_id: str | None = None
    text: str | None = None
    message: Message | None = None

    def as_json(self) -> dict[str, Any]:
        """The `send --json` record (SPEC §5)."""
        return {
            "session": self.key.session_id,
            "notice": self.key.notice,
            "channel": self.key.channel,
            "occurrence": iso(self.key.occurrence),
            "due_at": iso(self.due_at),
            "status": self.status,
            "external_id": self.external_id,
            "reason": self.reason,
            "text": self.text,
        }


@dataclass
class PassResult:
    """Everything one pass handled, and when the next thing may fall due."""

    outcomes: list[Outcome] = field(default_factory=list)
    wake_times: list[datetime] = field(default_factory=list)  # future due and retry times
    replan: bool = False  # a session changed while its notice was about to go out

    @property
    def wake_at(self) -> datetime | None:
        """The next moment something may fall due."""
        return self.wake_times[0] if self.wake_times else None

    @property
    def exit_code(self) -> int:
        """1 when a delivery ended this pass failed, missed or uncertain; else 0 (an uncertain
        delivery the channel settled in the same pass counts by how it settled)."""
        last = {o.key: o.status for o in self.outcomes}
        return 1 if any(status in PROBLEM_STATES for status in last.values()) else 0


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Dispatcher:
    """Runs passes against one database with one set of notifiers."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        notifiers: Mapping[str, Notifier] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self._notifiers: dict[str, Notifier] = dict(notifiers or {})
        self._renderer: Renderer | None = None
        self.should_stop: Callable[[], bool] = lambda: False  # the worker's SIGTERM
        # Raises when the database is not the one this process started on (a replaced file).
        self.guard: Callable[[], None] = lambda: None
        self._held: list[ledger.Claim] = []  # claims of the batch being sent, not yet settled
        self._in_flight: ledger.Claim | None = None  # marked `sending`, the channel not done
        self._state_lock = threading.Lock()
        self._changed = False  # this pass gave a notice back because its session changed
        self._group_read = False  # the renderer knows the stored group block's name this pass

    @property
    def renderer(self) -> Renderer:
        """The Jinja2 renderer, built on first use (cron passes with nothing due never pay)."""
        if self._renderer is None:
            from bot.render.renderer import Renderer

            self._renderer = Renderer(self.settings)
        return self._renderer

    def _stored_group(self) -> GroupInfo | None:
        """The session file's `group:` block (its name and YouTube link stand in for GROUP_NAME
        and GROUP_YOUTUBE_URL when those are not set), read once per pass that renders."""
        if self.settings.group_name and self.settings.group_youtube_url:
            return None
        from bot.store.site import stored_group

        try:
            return stored_group(self.engine)
        except SQLAlchemyError:
            return None

    def notifier(self, channel: str) -> Notifier:
        """The notifier instance for `channel`, built once."""
        if channel not in self._notifiers:
            from bot.store.channel_state import ChannelState

            cls = registry.get(channel)
            notifier = cls(self.settings.channel_configs.get(channel))
            notifier.bind_state(ChannelState(self.engine, channel, self.clock))
            self._notifiers[channel] = notifier
        return self._notifiers[channel]

    def _settling_channels(self) -> list[str]:
        """The configured channels that can settle an uncertain delivery themselves (only
        those whose class may settle are built: a pass never builds the others for this)."""
        found = []
        for channel in self.settings.channels:
            if channel in self._notifiers:  # built already, or given to the dispatcher
                may = self._notifiers[channel].settles
            else:
                try:
                    may = registry.get(channel).settles
                except KeyError:
                    continue
            if may and self.notifier(channel).can_settle():
                found.append(channel)
        return found

    def close(self) -> None:
        """Close every notifier's connections."""
        for notifier in self._notifiers.values():
            notifier.close()

    def run_pass(
        self,
        *,
        dry_run: bool = False,
        channels: Sequence[str] | None = None,
        session_id: str | None = None,
    ) -> PassResult:
        """Send everything due now (or, with dry_run, say what would go out and touch nothing).

        When a session changes while its notice is about to go out, the notice is given back
        and the pass plans again with what the database holds now.
        """
        result = PassResult()
        self._group_read = False  # the group block is read again, when a pass renders
        for _ in range(MAX_ROUNDS):
            step = self._one_pass(dry_run=dry_run, channels=channels, session_id=session_id)
            result.outcomes.extend(step.outcomes)
            result.wake_times = step.wake_times
            if not step.replan or self.should_stop():
                break
        return result

    def _one_pass(
        self, *, dry_run: bool, channels: Sequence[str] | None, session_id: str | None
    ) -> PassResult:
        self.guard()
        now = self.clock()
        result = PassResult()
        settling = [] if dry_run else self._settling_channels()
        if not dry_run:
            for row in ledger.sweep(self.engine, now):
                outcome = Outcome(row.key, row.due_at, "uncertain", row.reason, text=row.text)
                self._log(outcome)
                result.outcomes.append(outcome)
            if settling:
                result.outcomes.extend(self.settle_uncertain(settling, now))
                now = self.clock()
        start_from, start_to = session_window(self.settings, now)
        sessions, rows = load_window(
            self.engine,
            start_from,
            start_to,
            session_id=session_id,
            announced_after=now,
            recordings_from=recordings_since(self.settings, now),
            recording_channels=len(self.settings.recording_channels),
        )
        notices = plan(sessions, rows, self.settings, now, channels=channels)
        result.wake_times = wake_times(notices, now)
        log.debug(
            "pass at %s: %d sessions in window, %d notices, %d due",
            iso(now),
            len(sessions),
            len(notices),
            sum(n.action == "send" for n in notices),
            extra={"event": "pass_planned", "dry_run": dry_run},
        )
        decided = [n for n in notices if n.action in ("skip", "miss")]
        if not dry_run:
            decided = ledger.settle(self.engine, decided, now)
        for notice in decided:
            status = "skipped" if notice.action == "skip" else "missed"
            outcome = Outcome(notice.key, notice.due_at, status, notice.reason)
            self._log(outcome)
            result.outcomes.append(outcome)
        by_id = {s.id: s for s in sessions}
        due = [n for n in notices if n.action == "send"]
        if dry_run:
            result.outcomes.extend(self._dry_run(due, by_id, now))
            return result
        batches = [due[i : i + ledger.CLAIM_BATCH] for i in range(0, len(due), ledger.CLAIM_BATCH)]
        # Concurrent passes start at different batches instead of all fighting for the first.
        turn = random.randrange(len(batches)) if batches else 0
        for batch in batches[turn:] + batches[:turn]:
            if self.should_stop():
                break
            self.guard()
            result.outcomes.extend(self._send_batch(batch, by_id))
        if any(o.status == "uncertain" and o.key.channel in settling for o in result.outcomes):
            settled = self.settle_uncertain(settling, self.clock())
            result.outcomes.extend(settled)
            if any(o.status == "retrying" for o in settled):  # provably not posted: send again
                self._changed = True
        result.replan, self._changed = self._changed, False
        return result

    def settle_uncertain(self, channels: Sequence[str], now: datetime) -> list[Outcome]:
        """Ask self-settling channels about their uncertain deliveries whose time has come
        (rule 5a): posted → `sent`; provably not → back in line; no answer → asked later."""
        outcomes: list[Outcome] = []
        for held, row in ledger.take_unsettled(self.engine, channels, now, self.settings.lease):
            if self.should_stop():
                ledger.record(self.engine, held, "uncertain", now, settle_after=now)
                continue
            outcome = self._settle_one(held, row, now)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _settle_one(self, held: ledger.Claim, row: Any, now: datetime) -> Outcome | None:
        key = held.key
        notifier = self.notifier(key.channel)
        referenced_at = row.referenced_at or row.due_at
        try:
            answer = notifier.settle(row.reference, row.text or "", referenced_at, now)
        except NotifierError as exc:
            answer = Settlement("unknown", reason=str(exc))
        except Exception as exc:  # a bug in a plugin's settle(): keep it uncertain, say why
            log.exception("settle crashed", extra=_extra(key, "settle_crashed"))
            answer = Settlement("unknown", reason=f"settle error: {type(exc).__name__}")
        now = self.clock()
        if answer.status == "exists":
            why = f"{SETTLED}: the post exists" + (f" ({answer.reason})" if answer.reason else "")
            return self._finish(
                held, "sent", now, external_id=answer.external_id, reason=why, text=row.text
            )
        if answer.status == "absent":
            why = f"{SETTLED}: not posted" + (f" ({answer.reason})" if answer.reason else "")
            if now >= held.notice.deadline:
                return self._finish(held, "missed", now, reason=f"{why}; the deadline has passed")
            # The first re-send goes at once; later ones back off like any failure, so a
            # service that loses every request (maybe sent, provably absent) is not hammered.
            again = now if held.attempts <= 1 else now + retry_delay(held.attempts - 1)
            return self._finish(
                held,
                "retrying",
                now,
                reason=f"{why}; sending again",
                next_attempt_at=again,
                settle_after=None,
            )
        detail = answer.reason or "no answer"
        if answer.final or now >= held.notice.deadline + SETTLE_HORIZON:
            reason = f"{row.reason}; cannot be settled by the channel ({detail})"
            return self._finish(held, "uncertain", now, reason=reason, settle_after=None)
        age = now - referenced_at
        wait = min(max(age / 2, FIRST_RETRY), MAX_RETRY)
        ledger.record(self.engine, held, "uncertain", now, settle_after=now + wait)
        log.warning(
            "uncertain %s/%s on %s not settled yet (%s); asking again in %ds",
            key.session_id,
            key.notice,
            key.channel,
            detail,
            int(wait.total_seconds()),
            extra=_extra(key, "settle_deferred"),
        )
        return None

    def render(self, notice: Notice, session: SessionData, now: datetime) -> Message:
        """Render one notice; raise TemplateProblem, or PermanentError when over the limit."""
        channel = notice.key.channel
        # The instance knows its own limit (an instance's, read online); a channel whose
        # variables are wrong has none, and its class's limit is checked (`check`, `plan`).
        built = channel in self._notifiers or channel in self.settings.channel_configs
        notifier: Notifier | None = self.notifier(channel) if built else None
        try:  # the channel's parts as its class declares them (a test fake may stand in)
            cls: type[Notifier] = registry.get(channel)
        except KeyError:
            if notifier is None:
                raise
            cls = type(notifier)
        previous = None
        if notice.previous is not None:
            previous = replace(session, starts_at=notice.previous)
        if not self._group_read:
            self._group_read = True
            self.renderer.group = self._stored_group()
        message = self.renderer.render(
            key=notice.key,
            session=session,
            notice=notice.key.notice,
            offset=notice.offset,
            first=notice.first,
            now=now,
            parts=cls.parts,
            previous=previous,
            number=notice.number,
        )
        if notice.thread:
            message = replace(message, replies_to=notice.thread)
        if notifier is not None:
            problem = notifier.limit_problem(message.text)
        else:
            problem = cls.over_limit(message.text)
        if problem is not None:
            raise PermanentError(problem)
        return message

    def _dry_run(
        self, due: Sequence[Notice], by_id: Mapping[str, SessionData], now: datetime
    ) -> list[Outcome]:
        outcomes = []
        for notice in due:
            try:
                message = self.render(notice, by_id[notice.key.session_id], now)
            except (TemplateProblem, PermanentError) as exc:
                outcomes.append(Outcome(notice.key, notice.due_at, "failed", str(exc)))
                continue
            outcomes.append(
                Outcome(
                    notice.key, notice.due_at, "would_send", text=message.summary, message=message
                )
            )
        return outcomes

    def _send_batch(
        self, batch: Sequence[Notice], by_id: Mapping[str, SessionData]
    ) -> list[Outcome]:
        """Claim and send one batch."""
        claims = ledger.claim(self.engine, batch, self.clock(), self.settings.lease)
        if claims:
            failpoints.hit("after_claim")
        outcomes = []
        with self._state_lock:
            self._held = list(claims)
        try:
            for index, held in enumerate(claims):
                if self.should_stop():
                    ledger.release(self.engine, claims[index:], self.clock())
                    break
                outcome = self._deliver(held, by_id[held.key.session_id])
                if outcome is not None:
                    outcomes.append(outcome)
                with self._state_lock:
                    self._held = claims[index + 1 :]
        finally:
            with self._state_lock:
                self._held = []
        return outcomes

    def _deliver(self, held: ledger.Claim, session: SessionData) -> Outcome | None:
        """Send one claimed delivery; None when it was given back or taken by another process."""
        notice = held.notice
        now = self.clock()
        if now >= notice.deadline:  # the pass took long: never send a stale reminder
            return self._finish(held, "missed", now, reason="deadline passed before sending")
        try:
            message = self.render(notice, session, now)
        except (TemplateProblem, PermanentError) as exc:
            return self._finish(held, "failed", now, reason=str(exc))
        reference = held.reference
        notifier = self.notifier(notice.key.channel)
        if reference is None and notifier.can_settle():
            reference = notifier.new_reference(notice.key, now)
        with self._state_lock:
            mark = ledger.mark_sending(
                self.engine,
                held,
                now,
                self.settings.lease,
                message.summary,
                version=session.sequence,
                reference=reference,
            )
            if mark == "sending":
                if reference is not None:
                    held = replace(
                        held, reference=reference, referenced_at=held.referenced_at or now
                    )
                    message = replace(message, reference=reference)
                self._in_flight = held
        if mark == "changed":  # the session (or what the channel was told) changed meanwhile
            ledger.release(self.engine, [held], self.clock())
            self._changed = True
            log.info(
                "session changed before sending: planning again",
                extra=_extra(notice.key, "delivery_replanned"),
            )
            return None
        if mark == "lost":  # another process owns it now: its outcome is not ours to report
            log.warning("claim lost before sending", extra=_extra(notice.key, "claim_lost"))
            return None
        failpoints.hit("after_sending_mark")
        try:
            return self._call_channel(held, message)
        finally:
            with self._state_lock:
                self._in_flight = None

    def abandon(self, reason: str) -> None:
        """Settle what a stuck pass holds, from another thread: the send in flight becomes
        `uncertain` (a late answer may still record it as sent), unsent claims are given back."""
        with self._state_lock:
            in_flight, held = self._in_flight, list(self._held)
            now = self.clock()
            if in_flight is not None:
                self._finish(in_flight, "uncertain", now, reason=reason)
            ledger.release(self.engine, [c for c in held if c is not in_flight], now)

    def _call_channel(self, held: ledger.Claim, message: Message) -> Outcome:
        notice, text = held.notice, message.summary
        try:
            receipt = self.notifier(notice.key.channel).send(message, self.clock())
        except TransientError as exc:
            return self._retry_or_miss(held, exc, text)
        except DuplicateContentError as exc:
            if held.was_uncertain:  # the earlier, uncertain attempt did go out
                reason = "duplicate content: the earlier attempt was posted"
                return self._finish(held, "sent", self.clock(), reason=reason, text=text)
            return self._finish(held, "failed", self.clock(), reason=str(exc), text=text)
        except PermanentError as exc:
            return self._finish(held, "failed", self.clock(), reason=str(exc), text=text)
        except MaybeSentError as exc:
            return self._finish(held, "uncertain", self.clock(), reason=str(exc), text=text)
        except Exception as exc:  # a bug after the network call may have sent it: do not resend
            log.exception("notifier crashed", extra=_extra(notice.key, "notifier_crashed"))
            reason = f"notifier error: {type(exc).__name__}"
            return self._finish(held, "uncertain", self.clock(), reason=reason, text=text)
        failpoints.hit("after_provider_accepted")
        outcome = self._finish(
            held,
            "sent",
            self.clock(),
            external_id=receipt.external_id,
            text=text,
            reason=notice.reason,  # why it exists (a change notice), never an earlier error
        )
        failpoints.hit("after_outcome_commit")
        return outcome

    def _retry_or_miss(self, held: ledger.Claim, exc: TransientError, text: str) -> Outcome:
        now = self.clock()
        retry_at = now + retry_delay(held.attempts + 1)
        if exc.retry_at is not None and exc.retry_at > retry_at:
            retry_at = exc.retry_at
        reason = str(exc)
        if retry_at >= held.notice.deadline:
            reason = f"{reason}; no retry possible before the deadline"
            return self._finish(held, "missed", now, reason=reason, text=text)
        return self._finish(
            held, "retrying", now, reason=reason, text=text, next_attempt_at=retry_at
        )

    def _finish(self, held: ledger.Claim, status: str, now: datetime, **values: Any) -> Outcome:
        notice = held.notice
        if status == "uncertain" and held.reference is not None and "settle_after" not in values:
            notifier = self.notifier(notice.key.channel)
            if notifier.can_settle():  # ask the channel, once an "absent" answer can be trusted
                since = held.referenced_at or now
                values["settle_after"] = max(now, since + notifier.settle_delay)
        if not ledger.record(self.engine, held, status, now, **values):
            log.warning(
                "outcome not recorded: the claim was settled elsewhere",
                extra=_extra(notice.key, "record_lost"),
            )
        outcome = Outcome(
            notice.key,
            notice.due_at,
            status,
            values.get("reason"),
            values.get("external_id"),
            values.get("text"),
        )
        self._log(outcome)
        return outcome

    def _log(self, outcome: Outcome) -> None:
        level = logging.ERROR if outcome.status in PROBLEM_STATES else logging.INFO
        extra = _extra(outcome.key, f"delivery_{outcome.status}")
        extra["reason"] = outcome.reason
        extra["external_id"] = outcome.external_id
        log.log(
            level,
            "%s %s/%s on %s%s",
            outcome.status,
            outcome.key.session_id,
            outcome.key.notice,
            outcome.key.channel,
            f": {outcome.reason}" if outcome.reason else "",
            extra=extra,
        )


def _extra(key: DeliveryKey, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "session": key.session_id,
        "notice": key.notice,
        "channel": key.channel,
        "occurrence": iso(key.occurrence),
    }
