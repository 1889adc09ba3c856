"""The `bluesky` channel against a loopback PDS stand-in (tests/support/blueskyapi.py), reached
over real HTTP: login kept in the channel's state, facets, link card, limits, the error mapping
and self-settling by record key."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from bot.errors import ConfigError, MaybeSentError, PermanentError, TransientError
from bot.notifiers.base import Card, DeliveryKey, Message
from bot.notifiers.bluesky import (
    TID_ALPHABET,
    BlueskyConfig,
    BlueskyNotifier,
    compose,
    short_link,
    tid,
    tid_parts,
    web_url,
)
from bot.store.channel_state import MemoryState
from tests.support import blueskyapi
from tests.support.blueskyapi import (
    APP_PASSWORD,
    CREATE_RECORD,
    CREATE_SESSION,
    DID,
    GET_RECORD,
    GET_SESSION,
    HANDLE,
    PUT_RECORD,
    REFRESH_SESSION,
    RESOLVE_HANDLE,
    BlueskyStandIn,
)

NOW = datetime(2025, 12, 8, 15, 0, tzinfo=UTC)
KEY = DeliveryKey("diffucoder", "announce", "bluesky", datetime(2025, 12, 15, 15, 0, tzinfo=UTC))
TIMEOUT_RULE = "must be a number of seconds above 0, at most 600"
SPEAKER_DID = "did:plc:shansangong2345abcdefghij"
CARD = Card(
    url="https://dllm.example.org/sessions/diffucoder/",
    title="DiffuCoder: Masked Diffusion Models for Code Generation",
    description="Shansan Gong. Diffusion language models generate text by denoising.",
)
bluesky_server = blueskyapi.bluesky_server  # the fixture, shared with the CLI tests


def message(text: str = "DiffuCoder, Monday 10 AM EST / 4 PM CET", **more: object) -> Message:
    return Message(key=KEY, text=text, **more)  # type: ignore[arg-type]


def notifier_for(server: BlueskyStandIn | str, **extra: str) -> BlueskyNotifier:
    base = server if isinstance(server, str) else server.base_url
    env = {
        "BLUESKY_HANDLE": HANDLE,
        "BLUESKY_APP_PASSWORD": APP_PASSWORD,
        "BLUESKY_SERVICE_URL": base,
        "BLUESKY_TIMEOUT": "5",
        **extra,
    }
    return BlueskyNotifier(BlueskyNotifier.parse_config(env))


@pytest.fixture
def bsky(bluesky_server: BlueskyStandIn) -> Iterator[BlueskyNotifier]:
    notifier = notifier_for(bluesky_server)
    yield notifier
    notifier.close()


def send(notifier: BlueskyNotifier, text: str = "hello, readers", **more: object) -> str:
    """Send with a fresh record key (as the dispatcher does); the receipt's external id."""
    reference = notifier.new_reference(KEY, NOW)
    receipt = notifier.send(message(text, reference=reference, **more), NOW)
    assert receipt.external_id is not None
    return receipt.external_id


def port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------- posting


def test_a_post_is_a_record_under_the_chosen_key(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    reference = bsky.new_reference(KEY, NOW)
    assert reference is not None
    receipt = bsky.send(message("hello, readers", reference=reference, card=CARD), NOW)

    [post] = bluesky_server.posts
    assert post.rkey == reference and post.repo == DID
    assert receipt.external_id == post.uri == f"at://{DID}/app.bsky.feed.post/{reference}"
    assert post.value["$type"] == "app.bsky.feed.post"
    assert post.value["text"] == "hello, readers"
    assert post.value["createdAt"] == "2025-12-08T15:00:00.000Z"  # from `now`
    assert post.value["langs"] == ["en"]
    assert post.value["embed"] == {
        "$type": "app.bsky.embed.external",
        "external": {"uri": CARD.url, "title": CARD.title, "description": CARD.description},
    }
    [create] = bluesky_server.calls(CREATE_RECORD)
    assert create.token == "access"
    assert create.headers["Connection"] == "close"  # no stale pooled connection, days later
    assert create.body["collection"] == "app.bsky.feed.post"
    assert web_url(post.uri, HANDLE) == f"https://bsky.app/profile/{HANDLE}/post/{reference}"


def test_without_a_card_there_is_no_embed(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    send(bsky)
    assert "embed" not in bluesky_server.posts[0].value


def test_links_are_shown_short_and_point_to_the_full_url(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    page = "https://dllm.example.org/sessions/diffucoder-2025-12-22/"
    send(bsky, f"Details: {page} or arxiv.org/abs/2506.20639.")
    [post] = bluesky_server.posts
    assert post.text == "Details: dllm.example.org/sessions/dif… or arxiv.org/abs/2506.20639."
    assert post.facets == [
        ("link", page, "dllm.example.org/sessions/dif…"),
        ("link", "https://arxiv.org/abs/2506.20639", "arxiv.org/abs/2506.20639"),
    ]


@pytest.mark.parametrize(
    "before",
    ["", "🎉 ", "👨‍👩‍👧‍👦 family ", "拡散モデル：", "Ünïcödé e\u0301 ", "🎉👨‍👩‍👧拡散 #一 "],
)
def test_facet_byte_ranges_cover_exactly_their_text(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn, before: str
) -> None:
    bluesky_server.add_handle("shansan.bsky.social", SPEAKER_DID)
    text = (
        f"{before}Next: 拡散 🎉 with @shansan.bsky.social 👨‍👩‍👧 #DiffusionLLM, "
        "join https://example.zoom.us/j/123 (拡散)"
    )
    send(bsky, text)
    [post] = bluesky_server.posts
    assert post.text == text.replace("https://example.zoom.us", "example.zoom.us")
    found = [f for f in post.facets if f[2] != "#一"]
    assert found == [
        ("mention", SPEAKER_DID, "@shansan.bsky.social"),
        ("tag", "DiffusionLLM", "#DiffusionLLM"),
        ("link", "https://example.zoom.us/j/123", "example.zoom.us/j/123"),
    ]


def test_a_handle_that_does_not_resolve_stays_plain_text(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    send(bsky, "with @nobody.bsky.social and @ghost.example")
    [post] = bluesky_server.posts
    assert post.text == "with @nobody.bsky.social and @ghost.example"
    assert "facets" not in post.value
    assert len(bluesky_server.calls(RESOLVE_HANDLE)) == 2


def test_resolved_handles_are_kept_in_the_channel_state(bluesky_server: BlueskyStandIn) -> None:
    bluesky_server.add_handle("shansan.bsky.social", SPEAKER_DID)
    state = MemoryState()
    first = notifier_for(bluesky_server)
    first.bind_state(state)
    send(first, "one with @Shansan.bsky.social")
    send(first, "two with @shansan.bsky.social")
    later = notifier_for(bluesky_server)  # another process, the same database
    later.bind_state(state)
    send(later, "three with @shansan.bsky.social")
    assert len(bluesky_server.calls(RESOLVE_HANDLE)) == 1
    assert json.loads(state.values["did:shansan.bsky.social"])["did"] == SPEAKER_DID
    assert [p.facets[0][1] for p in bluesky_server.posts] == [SPEAKER_DID] * 3
    # A week on, the handle is looked up again (handles can change hands).
    later.send(message("four @shansan.bsky.social", reference="3kzzzzzzzzzz2"), NOW + timedelta(8))
    assert len(bluesky_server.calls(RESOLVE_HANDLE)) == 2


def test_resolving_a_handle_that_fails_is_not_taken_and_posts_nothing(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    bluesky_server.set_fault("status_503", method=RESOLVE_HANDLE, times=1)
    with pytest.raises(TransientError, match=r"could not resolve @shansan\.bsky\.social"):
        send(bsky, "with @shansan.bsky.social")
    assert bluesky_server.calls(CREATE_RECORD) == []


def test_hashtags_and_mentions_follow_the_bluesky_app_rules() -> None:
    post = compose(
        "#tag. #1 #️⃣ #a1! x#no (@in.parens.org) mail@example.org @bad @trail.example. "
        "https://e.org/#frag"
    )
    assert [(s.kind, s.value, post.text[s.start : s.end]) for s in post.spans] == [
        ("tag", "tag", "#tag"),
        ("tag", "a1", "#a1"),
        ("mention", "in.parens.org", "@in.parens.org"),
        ("mention", "trail.example", "@trail.example"),
        ("link", "https://e.org/#frag", "e.org/#frag"),
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://arxiv.org/abs/2506.20639", "arxiv.org/abs/2506.20639"),  # 15: kept
        ("https://arxiv.org/abs/2506.206391", "arxiv.org/abs/2506.206…"),  # 16: cut
        ("https://www.youtube.com/watch?v=abcdefghijk", "www.youtube.com/watch?v=abcd…"),
        ("https://zoom.us/", "zoom.us"),
        ("http://example.org:8080/a", "example.org:8080/a"),
    ],
)
def test_short_links(url: str, shown: str) -> None:
    assert short_link(url) == shown


# ---------------------------------------------------------------- limits


def test_length_is_counted_in_graphemes_as_posted() -> None:
    assert BlueskyNotifier.measure("👨‍👩‍👧‍👦🎉拡散") == 4
    long_url = "https://dllm.example.org/sessions/" + "x" * 400
    shown = "dllm.example.org/sessions/xxx…"  # 30 graphemes, whatever the URL's length
    assert BlueskyNotifier.measure(f"see {long_url}") == len("see ") + len(shown)
    assert BlueskyNotifier.over_limit(f"{'a' * 269} {long_url}") is None  # 269 + 1 + 30
    assert BlueskyNotifier.over_limit(f"{'a' * 270} {long_url}") == (
        "message is 301 graphemes, over the bluesky limit of 300"
    )
    assert BlueskyNotifier.over_limit("拡" * 300) is None  # 900 bytes


def test_over_300_graphemes_is_refused_with_the_measured_length() -> None:
    assert BlueskyNotifier.over_limit("拡" * 301) == (
        "message is 301 graphemes, over the bluesky limit of 300"
    )


def test_over_3000_bytes_is_refused_even_under_300_graphemes() -> None:
    family = "👨‍👩‍👧‍👦"  # one grapheme, 25 bytes
    assert BlueskyNotifier.measure(family * 120) == 120
    assert BlueskyNotifier.over_limit(family * 120) is None  # 3,000 bytes exactly
    assert BlueskyNotifier.over_limit(family * 120 + "e\u0301") == (
        "message is 3003 UTF-8 bytes, over the bluesky limit of 3000 bytes"
    )


def test_over_limit_post_is_refused_before_any_request(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    with pytest.raises(PermanentError, match="message is 301 graphemes"):
        send(bsky, "拡" * 301)
    assert bluesky_server.requests == []  # not even a login


# ---------------------------------------------------------------- record keys


def test_record_keys_are_tids_from_now() -> None:
    assert tid(1724171495793000, 512) == "3l25zusnsfck2"  # @atcute/tid's example
    assert tid_parts("3l25zusnsfck2") == (1724171495793000, 512)
    assert tid(0, 0) == "2222222222222"  # the spec: integer zero
    notifier = notifier_for("https://bsky.invalid")
    keys = {notifier.new_reference(KEY, NOW) for _ in range(2000)}
    assert len(keys) == 2000  # one frozen clock, never the same key
    for key in keys:
        assert key is not None and len(key) == 13 and set(key) <= set(TID_ALPHABET)
        micros, clock_id = tid_parts(key)
        assert micros // 1_000_000 == int(NOW.timestamp()) and 0 <= clock_id < 1024
    earlier = notifier.new_reference(KEY, NOW - timedelta(seconds=1))
    assert earlier is not None and earlier < min(k for k in keys if k)  # sortable by time


def test_nothing_due_never_logs_in(bluesky_server: BlueskyStandIn) -> None:
    notifier = notifier_for(bluesky_server)
    assert notifier.can_settle()
    notifier.new_reference(KEY, NOW)
    notifier.limit_problem("hello")
    notifier.close()
    assert bluesky_server.requests == []


# ---------------------------------------------------------------- the session


def test_the_session_is_kept_so_a_second_pass_does_not_log_in(
    bluesky_server: BlueskyStandIn,
) -> None:
    state = MemoryState()
    for text in ("one", "two", "three"):
        notifier = notifier_for(bluesky_server)  # a new process each time, one database
        notifier.bind_state(state)
        send(notifier, text)
        notifier.close()
    assert len(bluesky_server.calls(CREATE_SESSION)) == 1
    assert [p.text for p in bluesky_server.posts] == ["one", "two", "three"]
    kept = json.loads(state.values["session"])
    assert (kept["did"], kept["handle"], kept["identifier"]) == (DID, HANDLE, HANDLE)


def test_a_session_for_another_account_is_not_used(bluesky_server: BlueskyStandIn) -> None:
    state = MemoryState()
    notifier = notifier_for(bluesky_server)
    notifier.bind_state(state)
    send(notifier)
    other = BlueskyStandIn(handle=HANDLE).start()  # another PDS: the kept session is not its
    try:
        moved = notifier_for(other)
        moved.bind_state(state)
        send(moved)
        assert len(other.calls(CREATE_SESSION)) == 1 and len(other.posts) == 1
    finally:
        other.stop()


def test_a_session_made_with_another_app_password_is_not_used(
    bluesky_server: BlueskyStandIn,
) -> None:
    state = MemoryState()
    notifier = notifier_for(bluesky_server)
    notifier.bind_state(state)
    send(notifier)
    assert APP_PASSWORD not in state.values["session"]  # only a one-way mark of it
    changed = notifier_for(bluesky_server, BLUESKY_APP_PASSWORD="wxyz-wxyz-wxyz-wxyz")
    changed.bind_state(state)
    with pytest.raises(PermanentError, match="401"):  # the new password is tried, not hidden
        changed.check_online()
    assert [r.nsid for r in bluesky_server.requests] == [
        CREATE_SESSION,
        CREATE_RECORD,
        CREATE_SESSION,
    ]


def test_an_expired_access_token_is_refreshed_not_a_failure(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    send(bsky, "one")
    bluesky_server.expire_access_tokens()
    send(bsky, "two")
    creates = bluesky_server.calls(CREATE_RECORD)
    assert [(c.token, c.status) for c in creates] == [
        ("access", 200),
        ("expired", 400),
        ("access", 200),
    ]
    assert len(bluesky_server.calls(REFRESH_SESSION)) == 1
    assert len(bluesky_server.calls(CREATE_SESSION)) == 1
    assert [p.text for p in bluesky_server.posts] == ["one", "two"]
    kept = json.loads(bsky.state.get("session") or "{}")
    assert kept["accessJwt"] == bluesky_server.tokens[-2]  # the refreshed pair is stored


def test_a_token_past_its_exp_is_refreshed_before_use(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    send(bsky, "one")
    bsky.wall_clock = lambda: time.time() + 2 * 3600  # two hours on: the kept token's exp
    send(bsky, "two")
    assert [c.token for c in bluesky_server.calls(CREATE_RECORD)] == ["access", "access"]
    assert len(bluesky_server.calls(REFRESH_SESSION)) == 1
    assert len(bluesky_server.calls(CREATE_SESSION)) == 1


def test_a_refused_refresh_logs_in_again(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    send(bsky, "one")
    bluesky_server.expire_access_tokens()
    bluesky_server.expire_refresh_tokens()
    send(bsky, "two")
    assert [c.status for c in bluesky_server.calls(REFRESH_SESSION)] == [400]
    assert len(bluesky_server.calls(CREATE_SESSION)) == 2
    assert len(bluesky_server.posts) == 2


def test_a_wrong_app_password_fails_at_once(bluesky_server: BlueskyStandIn) -> None:
    notifier = notifier_for(bluesky_server, BLUESKY_APP_PASSWORD="wxyz-wxyz-wxyz-wxyz")
    with pytest.raises(PermanentError) as caught:
        send(notifier)
    reason = str(caught.value)
    assert "401" in reason and "Invalid identifier or password" in reason
    assert "BLUESKY_APP_PASSWORD" in reason and "wxyz-wxyz" not in reason
    assert bluesky_server.calls(CREATE_RECORD) == []


def test_a_rate_limited_login_waits_for_its_reset(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    reset = NOW + timedelta(minutes=4)
    bluesky_server.set_fault(
        "status_429", method=CREATE_SESSION, times=1, reset_epoch=int(reset.timestamp())
    )
    with pytest.raises(TransientError, match="429") as caught:
        send(bsky)
    assert caught.value.retry_at == reset
    assert bluesky_server.calls(CREATE_RECORD) == []


def test_a_lost_login_answer_is_not_taken(bluesky_server: BlueskyStandIn) -> None:
    bluesky_server.set_fault("hang", method=CREATE_SESSION, times=1)
    notifier = notifier_for(bluesky_server, BLUESKY_TIMEOUT="0.5")
    with pytest.raises(TransientError, match="nothing was posted"):
        send(notifier)
    assert bluesky_server.posts == []


# ---------------------------------------------------------------- errors


def test_429_waits_for_the_ratelimit_reset(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    reset = NOW + timedelta(minutes=15)
    bluesky_server.set_fault("status_429", times=1, reset_epoch=int(reset.timestamp()))
    with pytest.raises(TransientError, match=r"429 to the post \(RateLimitExceeded") as caught:
        send(bsky)
    assert caught.value.retry_at == reset
    assert bluesky_server.posts == []


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("status_503", TransientError),
        ("status_500", MaybeSentError),
        ("status_502", MaybeSentError),
        ("status_504", MaybeSentError),
        ("status_400", PermanentError),
        ("status_401", PermanentError),
        ("status_403", PermanentError),
        ("status_413", PermanentError),
    ],
)
def test_answers_map_to_the_three_kinds_of_failure(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn, fault: str, expected: type[Exception]
) -> None:
    bluesky_server.set_fault(fault, times=1)
    with pytest.raises(expected, match=fault[-3:]) as caught:
        send(bsky)
    assert type(caught.value) is expected
    assert bluesky_server.posts == []


def test_a_401_drops_the_kept_session(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    send(bsky)
    bluesky_server.set_fault("status_401", times=1)
    with pytest.raises(PermanentError, match="AuthenticationRequired"):
        send(bsky)
    assert bsky.state.get("session") is None
    send(bsky)  # an operator's retry logs in anew
    assert len(bluesky_server.calls(CREATE_SESSION)) == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, {"error": "Conflict", "message": "conflict"}),
        (400, {"error": "InvalidRequest", "message": "Record already exists"}),
        (400, {"error": "RecordAlreadyExists", "message": "x"}),
    ],
)
def test_a_taken_record_key_said_plainly_is_maybe_sent(status: int, body: dict[str, str]) -> None:
    """How other PDS implementations may refuse a second create at a key (bsky's answers 500):
    the key may be taken by this post's earlier attempt, so getRecord must decide."""
    from bot.notifiers.http import Answer

    notifier = notifier_for("https://pds.example")
    error = notifier._post_error(Answer(status, {}, body, json.dumps(body)), NOW)
    assert isinstance(error, MaybeSentError) and "record key is taken" in str(error)


def test_a_record_the_server_refuses_is_permanent(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    with pytest.raises(PermanentError, match=r"400 to the post \(InvalidRequest: Invalid TID"):
        bsky.send(message(reference="not-a-tid"), NOW)


def test_refused_connection_is_transient() -> None:
    notifier = notifier_for(f"http://127.0.0.1:{port_nobody_listens_on()}")
    with pytest.raises(TransientError, match="could not connect to Bluesky"):
        send(notifier)


def test_no_answer_after_the_post_is_maybe_sent_and_settles_as_posted(
    bluesky_server: BlueskyStandIn,
) -> None:
    notifier = notifier_for(bluesky_server, BLUESKY_TIMEOUT="1")
    send(notifier, "warm up")  # logged in: only the post meets the fault
    bluesky_server.set_fault("hang", times=1)
    reference = notifier.new_reference(KEY, NOW)
    assert reference is not None
    with pytest.raises(MaybeSentError, match="did not answer within 1s"):
        notifier.send(message("hanging", reference=reference), NOW)
    post = next(p for p in bluesky_server.posts if p.rkey == reference)  # created all the same
    answer = notifier.settle(reference, "hanging", NOW, NOW)
    assert (answer.status, answer.external_id) == ("exists", post.uri)
    # Sent again under the same key anyway: the PDS refuses it (500), no second post.
    with pytest.raises(MaybeSentError, match="500"):
        notifier.send(message("hanging", reference=reference), NOW)
    assert [p.text for p in bluesky_server.posts] == ["warm up", "hanging"]


def test_a_body_that_never_arrives_is_maybe_sent_and_settles(
    bluesky_server: BlueskyStandIn,
) -> None:
    notifier = notifier_for(bluesky_server, BLUESKY_TIMEOUT="1")
    bluesky_server.set_fault("no_body", times=1)
    reference = notifier.new_reference(KEY, NOW)
    assert reference is not None
    with pytest.raises(MaybeSentError, match="lost after the request was sent"):
        notifier.send(message("no body", reference=reference), NOW)
    assert notifier.settle(reference, "no body", NOW, NOW).status == "exists"


def test_a_dropped_connection_is_maybe_sent(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    bluesky_server.set_fault("drop", times=1)
    with pytest.raises(MaybeSentError, match="lost"):
        send(bsky, "dropped")
    assert [p.text for p in bluesky_server.posts] == ["dropped"]


# ---------------------------------------------------------------- settling


def test_settle_says_absent_when_no_record_has_the_key(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    bluesky_server.set_fault("hang", times=1, process=False)  # lost before the PDS did anything
    reference = bsky.new_reference(KEY, NOW)
    assert reference is not None
    notifier = notifier_for(bluesky_server, BLUESKY_TIMEOUT="1")
    notifier.bind_state(bsky.state)
    with pytest.raises(MaybeSentError):
        notifier.send(message("lost", reference=reference), NOW)
    answer = bsky.settle(reference, "lost", NOW, NOW)
    assert answer.status == "absent" and reference in answer.reason
    [ask] = bluesky_server.calls(GET_RECORD)
    assert ask.query == {"repo": DID, "collection": "app.bsky.feed.post", "rkey": reference}
    bsky.send(message("lost", reference=reference), NOW)  # safe: the key is free
    assert [p.rkey for p in bluesky_server.posts] == [reference]


def test_settle_compares_the_text_as_posted(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    text = "Join https://example.zoom.us/j/81234567890123456"
    reference = bsky.new_reference(KEY, NOW)
    assert reference is not None
    bsky.send(message(text, reference=reference), NOW)
    assert bsky.settle(reference, text, NOW, NOW).status == "exists"
    other = bsky.settle(reference, "another delivery's text", NOW, NOW)
    assert (other.status, other.final) == ("unknown", True)
    assert "different post" in other.reason


def test_settle_without_an_answer_is_unknown(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    send(bsky)
    bluesky_server.set_fault("status_503", method=GET_RECORD, times=1)
    answer = bsky.settle("3kzzzzzzzzzz2", "x", NOW, NOW)
    assert (answer.status, answer.final) == ("unknown", False)
    assert "503" in answer.reason
    down = notifier_for(f"http://127.0.0.1:{port_nobody_listens_on()}")
    down.bind_state(bsky.state)
    with pytest.raises(TransientError):  # the dispatcher makes it "unknown", asked later
        down.settle("3kzzzzzzzzzz2", "x", NOW, NOW)


# ---------------------------------------------------------------- check --online


def test_check_online_logs_in_without_posting(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn
) -> None:
    bsky.check_online()
    assert [r.nsid for r in bluesky_server.requests] == [CREATE_SESSION]
    bsky.check_online()  # with the kept session: getSession, no second login
    assert [r.nsid for r in bluesky_server.requests] == [CREATE_SESSION, GET_SESSION]
    assert bluesky_server.posts == []


def test_check_online_fails_with_a_wrong_password(bluesky_server: BlueskyStandIn) -> None:
    notifier = notifier_for(bluesky_server, BLUESKY_APP_PASSWORD="wxyz-wxyz-wxyz-wxyz")
    with pytest.raises(PermanentError, match="401"):
        notifier.check_online()


# ---------------------------------------------------------------- secrets


def test_secrets_stay_out_of_debug_logs_and_errors(
    bsky: BlueskyNotifier, bluesky_server: BlueskyStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    send(bsky, "one")
    bluesky_server.expire_access_tokens()
    send(bsky, "two")
    bluesky_server.set_fault("status_401", times=1)
    with pytest.raises(PermanentError) as caught:
        send(bsky, "three")
    assert "/xrpc/com.atproto.repo.createRecord" in caplog.text  # urllib3 logged the calls
    secrets = [APP_PASSWORD, *bluesky_server.tokens]
    assert len(secrets) == 5
    for secret in secrets:
        assert secret not in caplog.text and secret not in str(caught.value)
    for request in bluesky_server.requests:
        assert all(s not in request.path for s in secrets)  # never in a URL


def test_secrets_never_show_in_the_config() -> None:
    config = BlueskyNotifier.parse_config(
        {"BLUESKY_HANDLE": "@ReadingGroup.bsky.social", "BLUESKY_APP_PASSWORD": APP_PASSWORD}
    )
    assert isinstance(config, BlueskyConfig)
    assert (config.handle, config.service_url, config.timeout) == (
        "readinggroup.bsky.social",
        "https://bsky.social",
        30.0,
    )
    assert APP_PASSWORD not in repr(config) and APP_PASSWORD not in repr(
        vars(BlueskyNotifier(config))
    )


# ---------------------------------------------------------------- configuration


def test_config_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        BlueskyNotifier.parse_config({})
    assert caught.value.problems == [
        "BLUESKY_HANDLE: required by the bluesky channel (missing)",
        "BLUESKY_APP_PASSWORD: required by the bluesky channel (missing)",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("BLUESKY_HANDLE", "reading group", "BLUESKY_HANDLE: must be a handle like"),
        ("BLUESKY_HANDLE", "readinggroup", "BLUESKY_HANDLE: must be a handle like"),
        ("BLUESKY_SERVICE_URL", "ftp://pds.example", "BLUESKY_SERVICE_URL: must be an http"),
        ("BLUESKY_SERVICE_URL", "https://pds.example/?a=1", "BLUESKY_SERVICE_URL: must not"),
        ("BLUESKY_TIMEOUT", "soon", f"BLUESKY_TIMEOUT: {TIMEOUT_RULE} (soon)"),
        ("BLUESKY_TIMEOUT", "0", f"BLUESKY_TIMEOUT: {TIMEOUT_RULE} (0)"),
        ("BLUESKY_APP_PASSWORD", "two words", "BLUESKY_APP_PASSWORD: must not contain spaces"),
    ],
)
def test_config_rejects_malformed_values(variable: str, value: str, problem: str) -> None:
    env = {"BLUESKY_HANDLE": HANDLE, "BLUESKY_APP_PASSWORD": APP_PASSWORD, variable: value}
    with pytest.raises(ConfigError) as caught:
        BlueskyNotifier.parse_config(env)
    [line] = caught.value.problems
    assert line.startswith(problem)
    assert "two words" not in line


def test_a_did_is_a_handle_too() -> None:
    config = BlueskyNotifier.parse_config({"BLUESKY_HANDLE": DID, "BLUESKY_APP_PASSWORD": "x"})
    assert config.handle == DID


def test_importing_the_channel_does_not_import_requests() -> None:
    code = "import sys, bot.notifiers.bluesky; print('requests' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False"]


# ---------------------------------------------------------------- the stand-in itself


def test_the_stand_in_answers_as_the_pds_does(bluesky_server: BlueskyStandIn) -> None:
    """What the channel's mapping relies on: the PDS's answers, reproduced."""
    xrpc = f"{bluesky_server.base_url}/xrpc"
    wrong = requests.post(
        f"{xrpc}/{CREATE_SESSION}", json={"identifier": HANDLE, "password": "x"}, timeout=5
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "AuthenticationRequired")
    login = requests.post(
        f"{xrpc}/{CREATE_SESSION}", json={"identifier": HANDLE, "password": APP_PASSWORD}, timeout=5
    )
    auth = {"Authorization": f"Bearer {login.json()['accessJwt']}"}
    record = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2025-12-08T15:00:00Z"}
    body = {
        "repo": DID,
        "collection": "app.bsky.feed.post",
        "rkey": "3l25zusnsfck2",
        "record": record,
    }
    assert requests.post(f"{xrpc}/{CREATE_RECORD}", json=body, headers=auth, timeout=5).ok
    again = requests.post(f"{xrpc}/{CREATE_RECORD}", json=body, headers=auth, timeout=5)
    assert (again.status_code, again.json()["error"]) == (500, "InternalServerError")
    swap = requests.post(
        f"{xrpc}/{PUT_RECORD}", json={**body, "swapRecord": None}, headers=auth, timeout=5
    )
    assert (swap.status_code, swap.json()["error"]) == (400, "InvalidSwap")
    params = {"repo": DID, "collection": "app.bsky.feed.post", "rkey": "3l25zusnsfck3"}
    absent = requests.get(f"{xrpc}/{GET_RECORD}", params=params, timeout=5)
    assert (absent.status_code, absent.json()["error"]) == (400, "RecordNotFound")
    unknown = requests.get(f"{xrpc}/{RESOLVE_HANDLE}", params={"handle": "no.example"}, timeout=5)
    assert unknown.json() == {"error": "InvalidRequest", "message": "Unable to resolve handle"}
    bluesky_server.set_fault("status_429", method="*", times=1, reset_epoch=1_900_000_000)
    limited = requests.post(f"{xrpc}/{CREATE_RECORD}", json=body, headers=auth, timeout=5)
    assert limited.status_code == 429
    assert limited.headers["ratelimit-reset"] == "1900000000"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["ratelimit-policy"] == "5000;w=3600"
    # Another process reads what it holds through its base URL.
    state = requests.get(f"{bluesky_server.base_url}/_standin/state", timeout=5).json()
    assert [r["rkey"] for r in state["records"]] == ["3l25zusnsfck2"]
    assert state["calls"][CREATE_SESSION] == 2


def test_a_database_that_cannot_keep_the_session_does_not_stop_the_post(
    bluesky_server: BlueskyStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import create_engine

    from bot.store.channel_state import ChannelState
    from bot.store.db import ensure_schema, make_engine

    path = tmp_path / "bot.db"
    writable = make_engine(f"sqlite:///{path}")
    ensure_schema(writable)
    writable.dispose()
    read_only = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    notifier = notifier_for(bluesky_server)
    notifier.bind_state(ChannelState(read_only, "bluesky", lambda: NOW))
    send(notifier, "one")
    send(notifier, "two")  # the session is used from memory
    assert [p.text for p in bluesky_server.posts] == ["one", "two"]
    assert len(bluesky_server.calls(CREATE_SESSION)) == 1
    assert "could not keep session in the database (OperationalError)" in caplog.text
    read_only.dispose()
