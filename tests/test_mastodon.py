"""The `mastodon` channel over raw HTTP, against a loopback Mastodon stand-in (a real server)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from bot.config import Reminder, Settings
from bot.dispatch import Dispatcher
from bot.errors import ConfigError, MaybeSentError, PermanentError, TransientError
from bot.notifiers.base import DeliveryKey, Message
from bot.notifiers.mastodon import (
    KEY_TRUSTED,
    STATE_LIMIT,
    MastodonConfig,
    MastodonNotifier,
    status_length,
)
from bot.store.channel_state import MemoryState
from bot.testing import FrozenClock
from tests.support import mastodonapi
from tests.support.data import add_session, deliveries
from tests.support.mastodonapi import TOKEN, MastodonStandIn
from tests.support.smtp import free_port

NOW = datetime(2025, 12, 8, 15, 0, tzinfo=UTC)
KEY = DeliveryKey("diffucoder", "announce", "mastodon", datetime(2025, 12, 15, 15, 0, tzinfo=UTC))
TIMEOUT_RULE = "must be a number of seconds above 0, at most 600"
mastodon_server = mastodonapi.mastodon_server  # the fixture, shared with other test modules


def notifier_for(server: MastodonStandIn | str, **extra: str) -> MastodonNotifier:
    base = server if isinstance(server, str) else server.base_url
    env = {"MASTODON_BASE_URL": base, "MASTODON_ACCESS_TOKEN": TOKEN, **extra}
    return MastodonNotifier(MastodonNotifier.parse_config(env))


@pytest.fixture
def mastodon(mastodon_server: MastodonStandIn) -> Iterator[MastodonNotifier]:
    notifier = notifier_for(mastodon_server, MASTODON_TIMEOUT="1")
    yield notifier
    notifier.close()


def message(
    notifier: MastodonNotifier, text: str = "DiffuCoder, Monday 10 AM EST / 4 PM CET"
) -> Message:
    return Message(key=KEY, text=text, reference=notifier.new_reference(KEY, NOW))


# ---------------------------------------------------------------- posting


def test_a_status_goes_out_with_its_key_visibility_and_language(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    sent = message(mastodon, "hello, readers")
    receipt = mastodon.send(sent, NOW)

    [status] = mastodon_server.statuses
    assert (status.text, status.visibility, status.language) == ("hello, readers", "public", "en")
    assert status.idempotency_key == sent.reference
    assert receipt.external_id == status.id
    [request] = mastodon_server.posts
    assert request.authorized  # Bearer MASTODON_ACCESS_TOKEN
    assert request.headers["Idempotency-Key"] == sent.reference
    assert request.headers["Connection"] == "close"
    assert "Authorization" not in request.headers  # the stand-in never keeps it


def test_unlisted_visibility_is_sent(mastodon_server: MastodonStandIn) -> None:
    notifier = notifier_for(mastodon_server, MASTODON_VISIBILITY="Unlisted")
    notifier.send(message(notifier), NOW)
    assert [s.visibility for s in mastodon_server.statuses] == ["unlisted"]


def test_the_same_key_twice_makes_one_status(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    sent = message(mastodon)
    first = mastodon.send(sent, NOW)
    again = mastodon.send(sent, NOW)
    assert first == again
    assert len(mastodon_server.statuses) == 1
    assert [r.replayed for r in mastodon_server.posts] == [None, first.external_id]


def test_references_name_the_delivery_and_are_never_reused(mastodon: MastodonNotifier) -> None:
    one, two = mastodon.new_reference(KEY, NOW), mastodon.new_reference(KEY, NOW)
    other = mastodon.new_reference(DeliveryKey("other", "announce", "mastodon", NOW), NOW)
    assert one != two  # a nonce: a rebuilt database never shares a key with the old one
    assert one.rsplit("-", 1)[0] == two.rsplit("-", 1)[0]  # ... but the delivery's digest is
    assert one.rsplit("-", 1)[0] != other.rsplit("-", 1)[0]
    assert one.startswith("rgb-") and len(one) == len("rgb-") + 24 + 1 + 16


def test_requests_go_to_the_base_url_path() -> None:
    # A path prefix (a proxy) is kept, a trailing slash dropped.
    config = MastodonNotifier.parse_config(
        {"MASTODON_BASE_URL": "https://social.example/m/", "MASTODON_ACCESS_TOKEN": TOKEN}
    )
    assert config.base_url == "https://social.example/m"


# ---------------------------------------------------------------- failures (SPEC §6 rule 5)


def test_429_is_not_taken_until_the_iso_8601_reset(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    reset = datetime(2025, 12, 8, 15, 20, 0, 250000, tzinfo=UTC)
    mastodon_server.set_fault("status_429", reset=reset, times=1)
    with pytest.raises(TransientError, match="429") as caught:
        mastodon.send(message(mastodon), NOW)
    assert caught.value.retry_at == reset
    assert mastodon_server.statuses == []
    [request] = mastodon_server.posts
    assert request.status == 429


def test_503_is_not_taken(mastodon: MastodonNotifier, mastodon_server: MastodonStandIn) -> None:
    mastodon_server.set_fault("status_503", times=1)
    sent = message(mastodon)
    with pytest.raises(TransientError, match="503: There was a temporary problem"):
        mastodon.send(sent, NOW)
    assert mastodon_server.statuses == []
    mastodon.send(sent, NOW)  # the retry, with the same key
    assert len(mastodon_server.statuses) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_500_502_504_may_have_created_the_status(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn, status: int
) -> None:
    mastodon_server.set_fault(f"status_{status}", create=True, times=1)
    with pytest.raises(MaybeSentError, match=f"{status}.*may have been created"):
        mastodon.send(message(mastodon), NOW)
    assert len(mastodon_server.statuses) == 1  # it was: only the answer was an error


@pytest.mark.parametrize(
    ("scopes", "token", "expected"),
    [
        (("write:statuses",), "wrong-token", "401: The access token is invalid"),
        (("read",), TOKEN, "403: This action is outside the authorized scopes"),
    ],
)
def test_401_and_403_are_refused_for_good(
    mastodon_server: MastodonStandIn, scopes: tuple[str, ...], token: str, expected: str
) -> None:
    mastodon_server.scopes = set(scopes)
    notifier = notifier_for(mastodon_server, MASTODON_ACCESS_TOKEN=token)
    with pytest.raises(PermanentError, match=expected) as caught:
        notifier.send(message(notifier), NOW)
    assert not isinstance(caught.value, TransientError)
    assert token not in str(caught.value)
    assert mastodon_server.statuses == []


def test_422_from_the_server_is_refused_for_good_with_its_words(
    mastodon_server: MastodonStandIn,
) -> None:
    # The instance counts more strictly than the channel was told (a stale limit, say).
    mastodon_server.max_characters = 10
    notifier = notifier_for(mastodon_server)
    with pytest.raises(PermanentError) as caught:
        notifier.send(message(notifier, "eleven char"), NOW)
    assert str(caught.value) == (
        "Mastodon answered 422: Validation failed: Text character limit of 10 exceeded"
    )


def test_404_is_refused_for_good(mastodon_server: MastodonStandIn) -> None:
    notifier = notifier_for(mastodon_server.base_url + "/not-mastodon")
    with pytest.raises(PermanentError, match="404: Record not found"):
        notifier.send(message(notifier), NOW)


def test_a_refused_connection_is_not_taken() -> None:
    notifier = notifier_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError, match="could not connect to Mastodon"):
        notifier.send(message(notifier), NOW)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("hang", "did not answer within 1s"),  # the answer comes, too late
        ("no_body", "lost after the request was sent"),  # headers, then nothing
        ("drop", "lost after the request was sent"),
    ],
)
def test_no_answer_after_the_request_may_have_created_it(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn, fault: str, words: str
) -> None:
    mastodon_server.set_fault(fault, times=1, seconds=3)
    with pytest.raises(MaybeSentError, match=words):
        mastodon.send(message(mastodon, "hanging"), NOW)
    assert [s.text for s in mastodon_server.statuses] == ["hanging"]


def test_redirects_are_not_followed(mastodon_server: MastodonStandIn) -> None:
    class Redirect(threading.Thread):
        def __init__(self) -> None:
            super().__init__(daemon=True)
            self.listener = socket.create_server(("127.0.0.1", 0))

        def run(self) -> None:
            conn, _ = self.listener.accept()
            with conn:
                conn.recv(65536)
                location = f"{mastodon_server.base_url}/api/v1/statuses"
                conn.sendall(
                    b"HTTP/1.1 301 Moved Permanently\r\nLocation: "
                    + location.encode()
                    + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )

    redirect = Redirect()
    redirect.start()
    port = redirect.listener.getsockname()[1]
    notifier = notifier_for(f"http://127.0.0.1:{port}")
    with pytest.raises(PermanentError, match="301, a redirect"):
        notifier.send(message(notifier), NOW)
    redirect.join(timeout=5)
    redirect.listener.close()
    assert mastodon_server.requests == []  # a redirected POST would have become a GET


# ---------------------------------------------------------------- settling (SPEC §6 rule 5a)


def test_a_lost_answer_settles_by_resending_with_the_same_key(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    mastodon_server.set_fault("hang", times=1)
    sent = message(mastodon, "late answer")
    with pytest.raises(MaybeSentError):
        mastodon.send(sent, NOW)
    assert sent.reference is not None
    answer = mastodon.settle(sent.reference, sent.text, NOW, NOW + timedelta(minutes=1))
    [status] = mastodon_server.statuses
    assert (answer.status, answer.external_id) == ("exists", status.id)
    assert [r.replayed for r in mastodon_server.posts] == [None, status.id]


def test_a_request_that_never_arrived_is_created_once_by_the_resend(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    mastodon_server.set_fault("status_502", times=1)  # a gateway: the app never saw it
    sent = message(mastodon, "never arrived")
    with pytest.raises(MaybeSentError):
        mastodon.send(sent, NOW)
    assert mastodon_server.statuses == [] and sent.reference is not None
    answer = mastodon.settle(sent.reference, sent.text, NOW, NOW)
    [status] = mastodon_server.statuses
    assert (answer.status, answer.external_id, status.text) == ("exists", status.id, sent.text)
    assert mastodon.settle(sent.reference, sent.text, NOW, NOW).external_id == status.id
    assert len(mastodon_server.statuses) == 1


def test_past_the_keys_lifetime_it_is_not_resent(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    late = NOW + KEY_TRUSTED
    answer = mastodon.settle("rgb-x-y", "text", NOW, late)
    assert (answer.status, answer.final) == ("unknown", True)
    assert "50m ago" in answer.reason and "could post twice" in answer.reason
    assert mastodon_server.requests == []
    soon = mastodon.settle("rgb-x-y", "text", NOW, late - timedelta(seconds=1))
    assert soon.status == "exists"


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("status_429", "429"),
        ("status_503", "503"),
        ("status_500", "500"),
        ("hang", "did not answer"),
    ],
)
def test_a_failed_resend_is_asked_again_later(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn, fault: str, words: str
) -> None:
    mastodon_server.set_fault(fault, times=1)
    answer = mastodon.settle("rgb-key", "text", NOW, NOW)
    assert (answer.status, answer.final) == ("unknown", False)
    assert words in answer.reason
    made = len(mastodon_server.statuses)
    assert made == (1 if fault == "hang" else 0)  # a late answer: made, only unanswered
    assert mastodon.settle("rgb-key", "text", NOW, NOW).status == "exists"
    assert len(mastodon_server.statuses) == 1  # made once, whichever request made it


def test_a_resend_while_the_first_request_holds_the_key_is_asked_again_later(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    """Mastodon's redis lock: a second request with the key, meanwhile, gets 503."""
    mastodon_server.set_fault("slow", seconds=2, times=1)
    sent = message(mastodon, "slow database")
    assert sent.reference is not None
    patient = notifier_for(mastodon_server, MASTODON_TIMEOUT="10")
    receipts = []
    first = threading.Thread(target=lambda: receipts.append(patient.send(sent, NOW)))
    first.start()
    other = notifier_for(mastodon_server)
    for _ in range(500):  # until the first request is in, holding the key's lock
        if sent.reference in mastodon_server.busy_keys:
            break
        threading.Event().wait(0.01)
    answer = other.settle(sent.reference, sent.text, NOW, NOW)
    first.join(timeout=10)
    assert (answer.status, answer.final) == ("unknown", False) and "503" in answer.reason
    [status] = mastodon_server.statuses
    assert [r.external_id for r in receipts] == [status.id]
    later = other.settle(sent.reference, sent.text, NOW, NOW + timedelta(minutes=1))
    assert (later.status, later.external_id) == ("exists", mastodon_server.statuses[0].id)


def test_a_resend_refused_as_invalid_means_nothing_was_created(
    mastodon_server: MastodonStandIn,
) -> None:
    mastodon_server.max_characters = 5
    answer = notifier_for(mastodon_server).settle("rgb-key", "too long", NOW, NOW)
    assert answer.status == "absent" and "422" in answer.reason


def test_a_key_whose_status_was_deleted_is_left_to_an_operator(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    sent = message(mastodon)
    receipt = mastodon.send(sent, NOW)
    assert receipt.external_id is not None and sent.reference is not None
    mastodon_server.delete(receipt.external_id)
    answer = mastodon.settle(sent.reference, sent.text, NOW, NOW)
    assert (answer.status, answer.final) == ("unknown", True) and "404" in answer.reason
    assert mastodon_server.statuses == []


def test_why_keys_are_trusted_for_50_minutes_only(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    """Once the server has let a key go, the same key makes a second status."""
    sent = message(mastodon)
    mastodon.send(sent, NOW)
    mastodon_server.forget_keys()  # an hour later, on the server
    mastodon.send(sent, NOW)
    assert len(mastodon_server.statuses) == 2


def test_another_process_can_steer_the_stand_in(mastodon_server: MastodonStandIn) -> None:
    import requests

    base = mastodon_server.base_url
    asked = {"mode": "status_503", "times": 1}
    assert requests.post(f"{base}/_standin/fault", json=asked, timeout=5).json() == {"ok": True}
    notifier = notifier_for(mastodon_server)
    with pytest.raises(TransientError):
        notifier.send(message(notifier, "steered"), NOW)
    notifier.send(message(notifier, "steered"), NOW)
    listed = requests.get(f"{base}/_standin/statuses", timeout=5).json()
    assert [s["text"] for s in listed] == ["steered"]


def test_the_dispatcher_settles_a_lost_answer_in_the_same_pass(
    engine: Engine, mastodon_server: MastodonStandIn
) -> None:
    start = datetime(2026, 12, 14, 15, 0, tzinfo=UTC)
    settings = Settings(
        channels=("mastodon",), reminders=(Reminder("announce", timedelta(days=7), ("mastodon",)),)
    )
    add_session(engine, "s1", start)
    notifier = notifier_for(mastodon_server, MASTODON_TIMEOUT="1")
    dispatcher = Dispatcher(
        engine, settings, FrozenClock(start - timedelta(days=7)), {"mastodon": notifier}
    )
    mastodon_server.set_fault("hang", times=1)
    result = dispatcher.run_pass()
    assert [o.status for o in result.outcomes] == ["uncertain", "sent"]
    assert result.exit_code == 0
    [status] = mastodon_server.statuses
    [row] = deliveries(engine)
    assert (row.status, row.external_id) == ("sent", status.id)
    assert "settled by the channel" in (row.reason or "")
    assert row.reference == status.idempotency_key
    assert [r.idempotency_key for r in mastodon_server.posts] == [row.reference] * 2


# ---------------------------------------------------------------- length


def test_length_counts_urls_23_remote_mentions_by_user_name_and_graphemes() -> None:
    assert status_length("see https://arxiv.org/abs/2506.20639 " + "a" * 100) == 4 + 23 + 101
    assert status_length("arxiv.org/abs/2506.20639") == 24  # no scheme: text, as Mastodon has it
    assert status_length("thanks @gong@sigmoid.social!") == len("thanks @gong!")
    assert status_length("@gong") == 5
    assert status_length("👨‍👩‍👧 café") == 1 + 1 + 4  # a family emoji, é decomposed: graphemes
    assert status_length("https://example.com/x", url_length=30) == 30


def test_over_the_default_limit_is_refused_before_any_request_with_the_length(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    text = "a" * 480 + " https://example.com/" + "p" * 200  # 481 + 23 = 504
    with pytest.raises(PermanentError) as caught:
        mastodon.send(message(mastodon, text), NOW)
    assert str(caught.value).startswith(
        "message is 504 characters, over the mastodon limit of 500 (Mastodon's default"
    )
    assert mastodon_server.requests == []
    assert mastodon.limit_problem("a" * 476 + " https://example.com/" + "p" * 200) is None


def test_check_online_reads_the_instance_limit_and_later_passes_use_it(
    mastodon_server: MastodonStandIn,
) -> None:
    mastodon_server.max_characters, mastodon_server.url_length = 5000, 30
    state = MemoryState()
    checker = notifier_for(mastodon_server)
    checker.bind_state(state)
    long = "a" * 4969 + " https://example.com/x"  # 4970 + 30 = 5000
    assert checker.limit_problem(long) is not None  # not read yet: Mastodon's 500
    checker.check_online()
    stored = json.loads(state.get(STATE_LIMIT) or "{}")
    assert (stored["max_characters"], stored["characters_reserved_per_url"]) == (5000, 30)

    sender = notifier_for(mastodon_server)  # a later pass, with the same state
    sender.bind_state(state)
    assert sender.limit_problem(long) is None
    assert sender.limit_problem(long + "!") == (
        "message is 5001 characters, over the mastodon limit of 5000 "
        "(the instance's own limit, read by `bot check --online`)"
    )
    sender.send(message(sender, long), NOW)
    assert [len(s.text) for s in mastodon_server.statuses] == [len(long)]

    elsewhere = notifier_for(mastodon_server.base_url + "/other")  # MASTODON_BASE_URL changed
    elsewhere.bind_state(state)
    assert elsewhere.limit_problem(long) is not None


def test_check_online_falls_back_to_the_v1_instance_api() -> None:
    with MastodonStandIn(instance_api="v1", max_characters=1000) as server:
        notifier = notifier_for(server)
        notifier.check_online()
        assert notifier.instance_limit() is not None
        assert [r.path for r in server.requests][:2] == ["/api/v2/instance", "/api/v1/instance"]
        assert notifier.limit_problem("a" * 1000) is None


# ---------------------------------------------------------------- check --online


def test_check_online_tries_the_token_and_posts_nothing(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    mastodon.check_online()
    assert [(r.method, r.path, r.status) for r in mastodon_server.requests] == [
        ("GET", "/api/v2/instance", 200),
        ("GET", "/api/v1/accounts/verify_credentials", 200),
        ("POST", "/api/v1/statuses", 422),  # no text: the scope is checked, nothing is made
    ]
    assert mastodon_server.statuses == []
    assert all(r.authorized for r in mastodon_server.requests)


def test_check_online_accepts_a_token_made_for_write_statuses_only(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    mastodon_server.scopes = {"write:statuses"}  # verify_credentials answers 403
    mastodon.check_online()
    assert [r.status for r in mastodon_server.requests] == [200, 403, 422]


def test_check_online_fails_for_a_token_that_may_not_post(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    mastodon_server.scopes = {"read"}
    with pytest.raises(PermanentError, match="needs the write:statuses scope"):
        mastodon.check_online()
    assert mastodon_server.statuses == []


def test_check_online_fails_with_401(
    mastodon: MastodonNotifier, mastodon_server: MastodonStandIn
) -> None:
    mastodon_server.token = "revoked"
    with pytest.raises(PermanentError, match="401: The access token is invalid") as caught:
        mastodon.check_online()
    assert TOKEN not in str(caught.value)


def test_secrets_stay_out_of_debug_logs(
    mastodon: MastodonNotifier,
    mastodon_server: MastodonStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    mastodon.send(message(mastodon), NOW)
    mastodon.check_online()
    mastodon_server.token = "revoked"
    with pytest.raises(PermanentError):
        mastodon.send(message(mastodon, "again"), NOW)
    assert "/api/v1/statuses" in caplog.text  # urllib3 did log the requests
    assert TOKEN not in caplog.text


# ---------------------------------------------------------------- configuration


def test_config_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        MastodonNotifier.parse_config({})
    assert caught.value.problems == [
        "MASTODON_BASE_URL: required by the mastodon channel (missing)",
        "MASTODON_ACCESS_TOKEN: required by the mastodon channel (missing)",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("MASTODON_BASE_URL", "ftp://social.example", "must be an http:// or https://"),
        ("MASTODON_BASE_URL", "http://social.example", "must be the instance's https:// URL"),
        ("MASTODON_BASE_URL", "https://social.example/?a=1", "must not have a query"),
        ("MASTODON_VISIBILITY", "private", "must be one of public, unlisted (private)"),
        ("MASTODON_TIMEOUT", "soon", f"{TIMEOUT_RULE} (soon)"),
        ("MASTODON_TIMEOUT", "0", f"{TIMEOUT_RULE} (0)"),
    ],
)
def test_config_rejects_malformed_values(variable: str, value: str, problem: str) -> None:
    env = {"MASTODON_BASE_URL": "https://social.example", "MASTODON_ACCESS_TOKEN": TOKEN}
    with pytest.raises(ConfigError) as caught:
        MastodonNotifier.parse_config({**env, variable: value})
    [line] = caught.value.problems
    assert line.startswith(f"{variable}: {problem}"), line


def test_config_allows_http_only_on_loopback() -> None:
    for base in ("http://127.0.0.1:8080", "http://localhost:3000", "https://social.example"):
        config = MastodonNotifier.parse_config(
            {"MASTODON_BASE_URL": base, "MASTODON_ACCESS_TOKEN": TOKEN}
        )
        assert config.base_url == base


def test_config_problems_and_repr_never_show_the_token() -> None:
    with pytest.raises(ConfigError) as caught:
        MastodonNotifier.parse_config(
            {"MASTODON_BASE_URL": "https://social.example", "MASTODON_ACCESS_TOKEN": "two words"}
        )
    assert caught.value.problems == [
        "MASTODON_ACCESS_TOKEN: must not contain spaces (value hidden)"
    ]
    config = MastodonNotifier.parse_config(
        {"MASTODON_BASE_URL": "https://social.example", "MASTODON_ACCESS_TOKEN": TOKEN}
    )
    assert isinstance(config, MastodonConfig)
    assert (config.visibility, config.timeout) == ("public", 30.0)
    assert TOKEN not in repr(config) and TOKEN not in repr(MastodonNotifier(config).__dict__)
    assert MastodonNotifier.secret_variables == ("MASTODON_ACCESS_TOKEN",)


def test_importing_the_channel_does_not_import_requests() -> None:
    code = "import sys, bot.notifiers.mastodon; print('requests' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False"]
