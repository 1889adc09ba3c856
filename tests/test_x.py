"""The `x` channel, through the real tweepy client, against a loopback X API stand-in."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import responses

from bot.errors import (
    ConfigError,
    DuplicateContentError,
    MaybeSentError,
    PermanentError,
    TransientError,
)
from bot.notifiers.base import DeliveryKey, Message
from bot.notifiers.x import XConfig, XNotifier
from tests.support import xapi
from tests.support.xapi import XStandIn

TIMEOUT_RULE = "must be a number of seconds above 0, at most 600"
NOW = datetime(2025, 12, 8, 15, 0, tzinfo=UTC)
x_server = xapi.x_server  # the fixture, shared with other test modules
CREDENTIALS = {
    "X_API_KEY": "ck-SECRET-1111",
    "X_API_KEY_SECRET": "cs-SECRET-2222",
    "X_ACCESS_TOKEN": "at-SECRET-3333",
    "X_ACCESS_TOKEN_SECRET": "as-SECRET-4444",
}


def message(text: str = "DiffuCoder, Monday 10:00 ET / 16:00 CET") -> Message:
    key = DeliveryKey("diffucoder", "announce", "x", datetime(2025, 12, 15, 15, 0, tzinfo=UTC))
    return Message(key=key, text=text)


def notifier_for(base_url: str, **extra: str) -> XNotifier:
    return XNotifier(XNotifier.parse_config({**CREDENTIALS, "X_API_BASE_URL": base_url, **extra}))


@pytest.fixture
def x(x_server: XStandIn) -> Iterator[XNotifier]:
    notifier = notifier_for(x_server.base_url, X_TIMEOUT="5")
    yield notifier
    notifier.close()


def assert_no_secret(text: str) -> None:
    for value in CREDENTIALS.values():
        assert value not in text


def test_post_arrives_with_its_text_and_an_oauth_header(
    x: XNotifier,
    x_server: XStandIn,
) -> None:
    receipt = x.send(message("hello, readers"), NOW)

    [post] = x_server.posts
    assert post.text == "hello, readers"
    assert post.auth_scheme == "OAuth"
    assert "Authorization" not in post.headers
    assert post.headers["Connection"] == "close"  # no stale pooled connection, days later
    assert receipt.external_id == post.post_id


def test_each_post_gets_its_own_id(x: XNotifier, x_server: XStandIn) -> None:
    first = x.send(message("one"), NOW)
    second = x.send(message("two"), NOW)
    assert first.external_id != second.external_id
    assert [p.text for p in x_server.posts] == ["one", "two"]


def test_requests_go_to_the_configured_base_url(x: XNotifier, x_server: XStandIn) -> None:
    x.send(message(), NOW)
    assert x_server.base_url.endswith(x_server.requests[0].headers["Host"])


@responses.activate
def test_base_url_path_prefix_is_kept_and_api_twitter_com_is_not_called() -> None:
    responses.add(
        responses.POST,
        "https://proxy.example/x/2/tweets",
        status=201,
        json={"data": {"id": "77", "text": "hi"}},
    )
    receipt = notifier_for("https://proxy.example/x/").send(message("hi"), NOW)
    assert receipt.external_id == "77"
    assert [c.request.url for c in responses.calls] == ["https://proxy.example/x/2/tweets"]


def test_503_is_transient(x: XNotifier, x_server: XStandIn) -> None:
    x_server.set_fault("status_503", times=1)
    with pytest.raises(TransientError, match="503") as caught:
        x.send(message(), NOW)
    assert caught.value.retry_at is None
    assert x_server.posts == []
    x.send(message(), NOW)  # the fault was for one request only
    assert len(x_server.posts) == 1


def test_503_with_retry_after_sets_retry_at(x: XNotifier, x_server: XStandIn) -> None:
    x_server.set_fault("status_503", retry_after=120)
    with pytest.raises(TransientError) as caught:
        x.send(message(), NOW)
    assert caught.value.retry_at == NOW + timedelta(seconds=120)


def test_429_is_transient_until_the_rate_limit_reset(
    x: XNotifier,
    x_server: XStandIn,
) -> None:
    reset = int((NOW + timedelta(minutes=15)).timestamp())
    x_server.set_fault("status_429", reset_epoch=reset)
    with pytest.raises(TransientError, match="429") as caught:
        x.send(message(), NOW)
    assert caught.value.retry_at == datetime(2025, 12, 8, 15, 15, tzinfo=UTC)


def test_401_is_permanent_and_shows_no_secret(x: XNotifier, x_server: XStandIn) -> None:
    x_server.set_fault("status_401")
    with pytest.raises(PermanentError, match="401") as caught:
        x.send(message(), NOW)
    assert not isinstance(caught.value, TransientError | DuplicateContentError)
    assert_no_secret(str(caught.value))


def test_duplicate_403_is_duplicate_content(x: XNotifier, x_server: XStandIn) -> None:
    x_server.set_fault("duplicate_403")
    with pytest.raises(DuplicateContentError) as caught:
        x.send(message(), NOW)
    assert isinstance(caught.value, PermanentError)
    assert str(caught.value) == "duplicate content"


def test_posting_the_same_text_twice_is_refused_as_duplicate(
    x: XNotifier,
    x_server: XStandIn,
) -> None:
    x.send(message("same"), NOW)
    with pytest.raises(DuplicateContentError):
        x.send(message("same"), NOW)
    assert len(x_server.posts) == 1


@responses.activate
def test_other_403_is_permanent_with_x_detail() -> None:
    detail = "You are not permitted to perform this action."
    responses.add(
        responses.POST,
        "https://api.twitter.com/2/tweets",
        status=403,
        json={"detail": detail, "type": "about:blank", "title": "Forbidden", "status": 403},
    )
    with pytest.raises(PermanentError, match="403 Forbidden: You are not permitted") as caught:
        notifier_for("https://api.twitter.com").send(message(), NOW)
    assert not isinstance(caught.value, DuplicateContentError)


def test_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError, match="could not connect"):
        notifier_for(f"http://127.0.0.1:{port}").send(message(), NOW)


def test_unknown_host_is_transient() -> None:
    with pytest.raises(TransientError):
        notifier_for("http://x-stand-in.invalid", X_TIMEOUT="3").send(message(), NOW)


def test_connect_timeout_is_transient() -> None:
    # A listener whose accept queue is full: the kernel drops the next SYN, so connect() waits.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            with pytest.raises(TransientError):
                notifier_for(f"http://127.0.0.1:{port}", X_TIMEOUT="0.5").send(message(), NOW)
        finally:
            for filler in fillers:
                filler.close()


def test_failed_tls_handshake_is_transient(x_server: XStandIn) -> None:
    # The stand-in speaks plain HTTP, so the TLS handshake fails before anything is sent.
    https_url = x_server.base_url.replace("http://", "https://")
    with pytest.raises(TransientError, match="TLS handshake"):
        notifier_for(https_url, X_TIMEOUT="3").send(message(), NOW)
    assert x_server.posts == []


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, "{}", MaybeSentError),  # taken, but no id to show for it
        (201, "<html>", MaybeSentError),
        (302, "", PermanentError),  # a redirected POST would become a GET
    ],
)
def test_odd_answers(status: int, body: str, expected: type[Exception]) -> None:
    moved = {"Location": "https://api.twitter.com/2/moved"}
    responses.add(
        responses.POST, "https://api.twitter.com/2/tweets", status=status, body=body, headers=moved
    )
    with pytest.raises(expected):
        notifier_for("https://api.twitter.com").send(message(), NOW)
    assert len(responses.calls) == 1


def test_no_answer_within_the_timeout_is_maybe_sent(x_server: XStandIn) -> None:
    x_server.set_fault("hang")
    notifier = notifier_for(x_server.base_url, X_TIMEOUT="1")
    with pytest.raises(MaybeSentError, match="1s"):
        notifier.send(message("hanging"), NOW)
    assert [p.text for p in x_server.posts] == ["hanging"]


def test_slow_answer_past_the_timeout_is_maybe_sent(x_server: XStandIn) -> None:
    x_server.delay_seconds = 2
    with pytest.raises(MaybeSentError):
        notifier_for(x_server.base_url, X_TIMEOUT="0.5").send(message(), NOW)


def test_dropped_connection_after_sending_is_maybe_sent(
    x: XNotifier,
    x_server: XStandIn,
) -> None:
    x_server.set_fault("drop", times=1)
    with pytest.raises(MaybeSentError, match="lost"):
        x.send(message("dropped"), NOW)
    # The post went out; trying again proves it, as X refuses the duplicate.
    with pytest.raises(DuplicateContentError):
        x.send(message("dropped"), NOW)
    assert [p.text for p in x_server.posts] == ["dropped"]


def test_check_online_logs_in_without_posting(x: XNotifier, x_server: XStandIn) -> None:
    x.check_online()
    [request] = x_server.requests
    assert (request.method, request.path, request.auth_scheme) == ("GET", "/2/users/me", "OAuth")
    assert x_server.posts == []


def test_check_online_fails_with_401(x: XNotifier, x_server: XStandIn) -> None:
    x_server.set_fault("status_401")
    with pytest.raises(PermanentError, match="401"):
        x.check_online()


def test_secrets_stay_out_of_debug_logs(
    x: XNotifier,
    x_server: XStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    x.send(message(), NOW)
    x_server.set_fault("status_401")
    with pytest.raises(PermanentError):
        x.send(message("again"), NOW)
    assert "POST" in caplog.text or "/2/tweets" in caplog.text
    assert_no_secret(caplog.text)


def test_length_is_the_weighted_count() -> None:
    pytest.importorskip("bot.render.textlimits")
    assert XNotifier.measure("see https://arxiv.org/abs/2506.20639 " + "a" * 100) == 4 + 23 + 101
    assert XNotifier.measure("拡散") == 4
    reason = XNotifier.over_limit("拡" * 141)
    assert reason == "message is 282 weighted characters, over the x limit of 280"
    assert XNotifier.over_limit("a" * 280) is None


def test_over_length_post_is_refused_before_any_request(
    x: XNotifier,
    x_server: XStandIn,
) -> None:
    pytest.importorskip("bot.render.textlimits")
    with pytest.raises(PermanentError, match="over the x limit"):
        x.send(message("拡" * 141), NOW)
    assert x_server.requests == []


def test_config_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        XNotifier.parse_config({})
    assert caught.value.problems == [
        "X_API_KEY: required by the x channel (missing)",
        "X_API_KEY_SECRET: required by the x channel (missing)",
        "X_ACCESS_TOKEN: required by the x channel (missing)",
        "X_ACCESS_TOKEN_SECRET: required by the x channel (missing)",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("X_API_BASE_URL", "ftp://example.com", "X_API_BASE_URL: must be an http:// or https://"),
        ("X_API_BASE_URL", "https://", "X_API_BASE_URL: must be an http:// or https://"),
        ("X_API_BASE_URL", "https://e.com/?a=1", "X_API_BASE_URL: must not have a query"),
        ("X_API_BASE_URL", "http://e.com:99999", "X_API_BASE_URL: not a valid URL"),
        ("X_TIMEOUT", "soon", f"X_TIMEOUT: {TIMEOUT_RULE} (soon)"),
        ("X_TIMEOUT", "0", f"X_TIMEOUT: {TIMEOUT_RULE} (0)"),
        ("X_TIMEOUT", "1e308", f"X_TIMEOUT: {TIMEOUT_RULE} (1e308)"),
    ],
)
def test_config_rejects_malformed_values(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        XNotifier.parse_config({**CREDENTIALS, variable: value})
    [line] = caught.value.problems
    assert line.startswith(problem)


def test_config_problems_never_show_a_secret() -> None:
    env = {**CREDENTIALS, "X_API_KEY_SECRET": "two words", "X_API_BASE_URL": "https://u:pw@e.com"}
    with pytest.raises(ConfigError) as caught:
        XNotifier.parse_config(env)
    assert caught.value.problems == [
        "X_API_KEY_SECRET: must not contain spaces (value hidden)",
        "X_API_BASE_URL: must not contain a user name or password (value hidden)",
    ]
    assert "two words" not in str(caught.value)
    assert "pw" not in str(caught.value)


def test_config_keeps_secrets_out_of_repr() -> None:
    config = XNotifier.parse_config({**CREDENTIALS, "X_TIMEOUT": "12.5"})
    assert isinstance(config, XConfig)
    assert (config.base_url, config.timeout) == ("https://api.twitter.com", 12.5)
    assert config.api_key.get() == CREDENTIALS["X_API_KEY"]
    assert_no_secret(repr(config))
    assert_no_secret(repr(XNotifier(config).__dict__))


def test_importing_the_channel_does_not_import_tweepy() -> None:
    code = "import sys, bot.notifiers.x; print('tweepy' in sys.modules, 'requests' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_a_post_holding_a_character_x_refuses_is_over_the_limit() -> None:
    assert XNotifier.over_limit("Masked diffusion \ufeffnow") == (
        "message holds U+FEFF, a character X refuses in a post"
    )
    assert XNotifier.over_limit("Masked diffusion, now") is None
