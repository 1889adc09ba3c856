"""The `slack` channel in both modes, against the loopback Slack (tests/support/slackapi.py)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import responses

from bot.errors import ConfigError, MaybeSentError, PermanentError, TransientError
from bot.notifiers.base import Card, DeliveryKey, Message, Settlement
from bot.notifiers.slack import (
    CLOCK_SKEW,
    EVENT_TYPE,
    SECTION_LIMIT,
    SlackConfig,
    SlackNotifier,
    blocks,
    mrkdwn,
    sections,
)
from bot.store.channel_state import MemoryState
from tests.support.slackapi import SlackStandIn, started

NOW = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
START = datetime(2026, 12, 15, 15, 0, tzinfo=UTC)
TIMEOUT_RULE = "must be a number of seconds above 0, at most 600"
TEXT = "Next session: DiffuCoder\n\nMon Dec 15 · 10 AM EST / 4 PM CET"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    yield from started()


def message(
    text: str = TEXT,
    reference: str | None = "ref-0001",
    notice: str = "announce",
    card: Card | None = None,
) -> Message:
    key = DeliveryKey("diffucoder", notice, "slack", START)
    return Message(key=key, text=text, reference=reference, card=card)


def bot_notifier(slack: SlackStandIn, **extra: str) -> SlackNotifier:
    env = slack.bot_env(**{"SLACK_TIMEOUT": "2", **extra})
    return SlackNotifier(SlackNotifier.parse_config(env))


def hook_notifier(slack: SlackStandIn, **extra: str) -> SlackNotifier:
    env = slack.webhook_env(**{"SLACK_TIMEOUT": "2", **extra})
    return SlackNotifier(SlackNotifier.parse_config(env))


@pytest.fixture
def bot(slack: SlackStandIn) -> Iterator[SlackNotifier]:
    notifier = bot_notifier(slack)
    yield notifier
    notifier.close()


@pytest.fixture
def hook(slack: SlackStandIn) -> Iterator[SlackNotifier]:
    notifier = hook_notifier(slack)
    yield notifier
    notifier.close()


def secrets_of(slack: SlackStandIn) -> list[str]:
    return [slack.token, slack.webhook_url, slack.webhook_path, slack.webhook_key]


def assert_no_secret(slack: SlackStandIn, text: str) -> None:
    for secret in secrets_of(slack):
        assert secret not in text


# ---------------------------------------------------------------- configuration


def test_bot_token_mode_reads_its_variables() -> None:
    config = SlackNotifier.parse_config(
        {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_CHANNEL": "#reading-group"}
    )
    assert isinstance(config, SlackConfig)
    assert (config.channel, config.base_url, config.timeout) == (
        "reading-group",
        "https://slack.com/api",
        30.0,
    )
    assert not config.webhook and SlackNotifier(config).can_settle()
    assert "xoxb-1-2-abc" not in repr(config)


def test_webhook_mode_hides_the_url_and_its_path() -> None:
    url = "https://hooks.slack.com/services/T0AAA/B0BBB/SecretKey123"
    config = SlackNotifier.parse_config({"SLACK_WEBHOOK_URL": url, "SLACK_TIMEOUT": "7.5"})
    assert config.webhook and config.timeout == 7.5
    notifier = SlackNotifier(config)
    assert not notifier.can_settle()
    assert notifier.new_reference(message().key, NOW) is None
    assert notifier.redactor.scrub(f'"POST {urlsplit_path(url)} HTTP/1.1" 200') == (
        '"POST *** HTTP/1.1" 200'
    )
    assert "SecretKey123" not in repr(config) + repr(notifier.__dict__)


def urlsplit_path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_exactly_one_mode_must_be_configured() -> None:
    with pytest.raises(ConfigError) as neither:
        SlackNotifier.parse_config({})
    assert neither.value.problems == [
        "SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL: required by the slack channel (missing)"
    ]
    both = {
        "SLACK_BOT_TOKEN": "xoxb-1-2-abc",
        "SLACK_CHANNEL": "C0READING1",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/secret-part",
    }
    with pytest.raises(ConfigError) as caught:
        SlackNotifier.parse_config(both)
    [line] = caught.value.problems
    assert line.startswith("SLACK_BOT_TOKEN, SLACK_WEBHOOK_URL: set only one of them")
    assert "secret-part" not in line and "xoxb-1-2-abc" not in line


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_CHANNEL: required by the slack channel (missing)"),
        (
            {"SLACK_BOT_TOKEN": "xoxp-user-token", "SLACK_CHANNEL": "C0READING1"},
            "SLACK_BOT_TOKEN: must be a bot token, xoxb-… (value hidden)",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-two words", "SLACK_CHANNEL": "C0READING1"},
            "SLACK_BOT_TOKEN: must not contain spaces (value hidden)",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "#two words"},
            "SLACK_CHANNEL: must be a channel ID (C0123ABCD) or #name (#two words)",
        ),
        (
            {"SLACK_WEBHOOK_URL": "ftp://hooks/secret-part"},
            "SLACK_WEBHOOK_URL: not a valid http(s) URL (value hidden)",
        ),
        (
            {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/s/secret-part", "SLACK_CHANNEL": "#x"},
            "SLACK_CHANNEL: not used with SLACK_WEBHOOK_URL",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "C1", "SLACK_API_BASE_URL": "ftp://x"},
            "SLACK_API_BASE_URL: must be an http:// or https:// URL",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "C1", "SLACK_TIMEOUT": "0"},
            f"SLACK_TIMEOUT: {TIMEOUT_RULE} (0)",
        ),
    ],
)
def test_config_problems_name_the_variable_and_hide_secrets(
    env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        SlackNotifier.parse_config(env)
    [line] = caught.value.problems
    assert line.startswith(problem)
    assert "secret-part" not in line and "two words" not in line.replace("#two words", "")


# ---------------------------------------------------------------- formatting


def test_mrkdwn_escapes_control_characters_and_links_urls() -> None:
    text = "Q&A <live> at https://example.zoom.us/j/1?pwd=a&b=c. See (https://e.org/a_(b))!"
    assert mrkdwn(text) == (
        "Q&amp;A &lt;live&gt; at <https://example.zoom.us/j/1?pwd=a&amp;b=c>. "
        "See (<https://e.org/a_(b)>)!"
    )
    assert mrkdwn("<!channel> <@U0ADMIN>") == "&lt;!channel&gt; &lt;@U0ADMIN&gt;"  # no mention


def test_a_long_text_is_split_into_sections_without_losing_a_character() -> None:
    paragraph = " ".join(["diffusion"] * 400)  # 3,999 characters: over one section
    text = f"Title & more\n\n{paragraph}\n\n" + "&" * 700
    parts = sections(text)
    assert len(parts) >= 3
    assert all(len(p) <= SECTION_LIMIT for p in parts)
    words = "".join(parts).replace("&amp;", "&").replace("\n", " ").split()
    assert "".join(words) == "".join(text.split())  # every word and character is kept, in order


def test_blocks_bold_the_first_line_and_add_a_context_line() -> None:
    card = Card(url="https://rg.example.org/", title="DiffuCoder")
    layout = blocks(message("Next session: A & B\n\nMore", card=card))
    assert layout[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Next session: A &amp; B*\n\nMore"},
    }
    [when, link] = layout[-1]["elements"]
    epoch = int(START.timestamp())
    assert when["text"] == (
        f"In your time zone: <!date^{epoch}^{{date_long_pretty}} at {{time}}|2026-12-15 15:00 UTC>"
    )
    assert link["text"] == "<https://rg.example.org/|Group website>"


def test_context_line_skips_what_the_text_already_says() -> None:
    page = "https://rg.example.org/sessions/diffucoder/"
    card = Card(url=page, title="DiffuCoder")
    assert blocks(message("Cancelled: it", notice="cancelled", card=card))[-1]["elements"] == [
        {"type": "mrkdwn", "text": f"<{page}|Session page>"}
    ]
    layout = blocks(message(f"Cancelled: it\n\nDetails: {page}", notice="cancelled", card=card))
    assert [b["type"] for b in layout] == ["section"]  # no time for a cancellation, page in text


def test_length_is_counted_in_characters_up_to_4000() -> None:
    assert SlackNotifier.over_limit("é" * 4000) is None
    assert SlackNotifier.over_limit("a" * 4001) == (
        "message is 4001 characters, over the slack limit of 4000"
    )


# ---------------------------------------------------------------- bot token: posting


def test_post_carries_text_blocks_and_the_reference_in_its_metadata(
    bot: SlackNotifier, slack: SlackStandIn
) -> None:
    receipt = bot.send(message("Next session: A & B", reference="abc123"), NOW)
    [request] = slack.posts
    assert request.bearer == slack.token and "Authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["Connection"] == "close"
    sent = json.loads(request.body)
    assert sent["channel"] == slack.channel_id and sent["unfurl_links"] is False
    assert sent["text"] == "Next session: A &amp; B"
    assert sent["blocks"][0]["text"]["text"] == "*Next session: A &amp; B*"
    assert sent["metadata"] == {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "reference": "abc123",
            "session": "diffucoder",
            "notice": "announce",
            "occurrence": "2026-12-15T15:00:00Z",
        },
    }
    [posted] = slack.messages
    assert posted.reference == "abc123"
    ts = posted.ts.replace(".", "")
    assert receipt.external_id == f"https://reading-group.slack.com/archives/C0READING1/p{ts}"
    assert [r.route for r in slack.requests] == ["chat.postMessage", "chat.getPermalink"]


def test_without_a_permalink_the_receipt_is_channel_slash_ts(
    bot: SlackNotifier, slack: SlackStandIn
) -> None:
    slack.set_fault("status_500", route="chat.getPermalink")
    receipt = bot.send(message(), NOW)
    [posted] = slack.messages
    assert receipt.external_id == f"C0READING1/{posted.ts}"


def test_a_channel_name_is_posted_to_and_its_id_remembered(slack: SlackStandIn) -> None:
    notifier = bot_notifier(slack, SLACK_CHANNEL="#reading-group")
    notifier.bind_state(state := MemoryState())
    notifier.send(message(), NOW)
    assert json.loads(slack.posts[0].body)["channel"] == "reading-group"
    assert state.values["channel-id:reading-group"] == "C0READING1"


def test_the_stamps_ts_follow_the_stand_in_clock(bot: SlackNotifier, slack: SlackStandIn) -> None:
    slack.now = NOW
    bot.send(message("one"), NOW)
    bot.send(message("two"), NOW)
    first, second = slack.messages
    assert float(first.ts) == NOW.timestamp() and float(second.ts) > float(first.ts)


def test_http_429_waits_for_retry_after(bot: SlackNotifier, slack: SlackStandIn) -> None:
    slack.set_fault("status_429", retry_after=90, times=1)
    with pytest.raises(TransientError, match="429") as caught:
        bot.send(message(), NOW)
    assert caught.value.retry_at == NOW + timedelta(seconds=90)
    assert slack.messages == []
    bot.send(message(), NOW)
    assert len(slack.messages) == 1


def test_ok_false_ratelimited_is_not_taken(bot: SlackNotifier, slack: SlackStandIn) -> None:
    slack.set_fault("ratelimited", times=1)
    with pytest.raises(TransientError, match="ratelimited") as caught:
        bot.send(message(), NOW)
    assert caught.value.retry_at is None and slack.messages == []


def test_invalid_auth_is_permanent_and_shows_no_token(
    bot: SlackNotifier, slack: SlackStandIn
) -> None:
    slack.set_fault("invalid_auth")
    with pytest.raises(PermanentError, match="invalid_auth") as caught:
        bot.send(message(), NOW)
    assert "check SLACK_BOT_TOKEN" in str(caught.value)
    assert_no_secret(slack, str(caught.value))


def test_a_wrong_token_is_refused_by_slack(slack: SlackStandIn) -> None:
    notifier = bot_notifier(slack, SLACK_BOT_TOKEN="xoxb-wrong-token")
    with pytest.raises(PermanentError, match="invalid_auth"):
        notifier.send(message(), NOW)
    assert slack.messages == []


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        ("not_in_channel", "/invite"),
        ("channel_not_found", "check SLACK_CHANNEL"),
        ("is_archived", "archived"),
        ("msg_too_long", ""),
        ("invalid_blocks", ""),
        ("account_inactive", "SLACK_BOT_TOKEN"),
        ("token_revoked", "revoked"),
        ("not_authed", "SLACK_BOT_TOKEN"),
        ("missing_scope", "needs chat:write"),
        ("restricted_action", ""),
    ],
)
def test_refusals_fail_for_good_with_a_hint(
    bot: SlackNotifier, slack: SlackStandIn, error: str, hint: str
) -> None:
    slack.set_fault("refuse", error=error)
    with pytest.raises(PermanentError) as caught:
        bot.send(message(), NOW)
    assert not isinstance(caught.value, TransientError | MaybeSentError)
    assert f"Slack refused chat.postMessage: {error}" in str(caught.value)
    assert hint in str(caught.value)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("internal_error", None),
        ("refuse", "fatal_error"),
        ("refuse", "service_unavailable"),
        ("status_500", None),
    ],
)
def test_server_errors_may_have_posted(
    bot: SlackNotifier, slack: SlackStandIn, fault: str, error: str | None
) -> None:
    slack.set_fault(fault, error=error, store=True)
    with pytest.raises(MaybeSentError, match="may have posted"):
        bot.send(message(), NOW)
    assert len(slack.messages) == 1  # it did post: settle() will find it


@pytest.mark.parametrize("fault", ["hang", "no_body", "drop"])
def test_no_answer_after_the_request_is_maybe_sent(slack: SlackStandIn, fault: str) -> None:
    notifier = bot_notifier(slack, SLACK_TIMEOUT="1")
    slack.set_fault(fault, times=1)
    with pytest.raises(MaybeSentError):
        notifier.send(message(), NOW)
    assert len(slack.messages) == 1


def test_refused_connection_is_not_taken() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1-2-abc",
        "SLACK_CHANNEL": "C0READING1",
        "SLACK_API_BASE_URL": f"http://127.0.0.1:{port}/api",
    }
    with pytest.raises(TransientError, match="could not connect to Slack"):
        SlackNotifier(SlackNotifier.parse_config(env)).send(message(), NOW)


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, "<html>gateway</html>", MaybeSentError),  # taken, maybe: nothing readable came back
        (200, '{"ok": true, "channel": "C0READING1"}', MaybeSentError),  # ok, but no ts
        (302, "", PermanentError),  # a redirected POST would become a GET
        (404, "<html>not here</html>", PermanentError),
        (503, "", MaybeSentError),
    ],
)
def test_odd_web_api_answers(status: int, body: str, expected: type[Exception]) -> None:
    url = "https://slack.example/api/chat.postMessage"
    responses.add(responses.POST, url, status=status, body=body, headers={"Location": url})
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1-2-abc",
        "SLACK_CHANNEL": "C0READING1",
        "SLACK_API_BASE_URL": "https://slack.example/api/",
    }
    with pytest.raises(expected):
        SlackNotifier(SlackNotifier.parse_config(env)).send(message(), NOW)
    assert [c.request.url for c in responses.calls] == [url]


@responses.activate
def test_a_webhook_answering_200_without_ok_may_have_posted() -> None:
    url = "https://hooks.slack.example/services/T/B/key-secret"
    responses.add(responses.POST, url, status=200, body="<html>captive portal</html>")
    notifier = SlackNotifier(SlackNotifier.parse_config({"SLACK_WEBHOOK_URL": url}))
    with pytest.raises(MaybeSentError) as caught:
        notifier.send(message(), NOW)
    assert "key-secret" not in str(caught.value)


def test_over_the_limit_or_empty_is_refused_before_any_request(
    bot: SlackNotifier, hook: SlackNotifier, slack: SlackStandIn
) -> None:
    for notifier in (bot, hook):
        with pytest.raises(PermanentError, match="message is 4001 characters"):
            notifier.send(message("x" * 4001), NOW)
        with pytest.raises(PermanentError, match="empty"):
            notifier.send(message("  "), NOW)
    assert slack.requests == []
    bot.send(message("x" * 4000), NOW)  # exactly the limit goes out, in two sections (not bold:
    # the asterisks would not fit the first)
    assert [len(b["text"]["text"]) for b in json.loads(slack.posts[0].body)["blocks"][:2]] == [
        3000,
        1000,
    ]


# ---------------------------------------------------------------- bot token: settling


def hang_then_settle_at(
    bot: SlackNotifier, slack: SlackStandIn, *, store: bool, later: timedelta
) -> tuple[str, Settlement]:
    slack.now = NOW
    slack.set_fault("hang", times=1, store=store)
    reference = bot.new_reference(message().key, NOW)
    assert reference is not None and len(reference) == 32
    with pytest.raises(MaybeSentError):
        bot.send(message(reference=reference), NOW)
    return reference, bot.settle(reference, TEXT, NOW, NOW + later)


def test_a_post_whose_answer_was_lost_is_found_by_its_metadata(slack: SlackStandIn) -> None:
    bot = bot_notifier(slack, SLACK_TIMEOUT="1")
    slack.post("an earlier message by someone")
    reference, settlement = hang_then_settle_at(bot, slack, store=True, later=timedelta(0))
    [_, ours] = slack.messages
    assert ours.reference == reference
    assert settlement == Settlement(
        "exists",
        f"https://reading-group.slack.com/archives/C0READING1/p{ours.ts.replace('.', '')}",
        f"found in the channel at ts {ours.ts}",
    )
    history = [r for r in slack.requests if r.route == "conversations.history"]
    [asked] = history
    assert asked.method == "GET" and asked.bearer == slack.token
    assert asked.params["include_all_metadata"] == "true"
    assert asked.params["oldest"] == f"{(NOW - CLOCK_SKEW).timestamp():.6f}"


def test_a_lost_post_is_absent_only_after_the_settle_delay(slack: SlackStandIn) -> None:
    bot = bot_notifier(slack, SLACK_TIMEOUT="1")
    reference, early = hang_then_settle_at(bot, slack, store=False, later=timedelta(minutes=1))
    assert (early.status, early.final) == ("unknown", False)
    late = bot.settle(reference, TEXT, NOW, NOW + bot.settle_delay)
    assert late.status == "absent"
    assert slack.messages == []


def test_the_settle_delay_counts_from_the_last_attempt(slack: SlackStandIn) -> None:
    bot = bot_notifier(slack, SLACK_TIMEOUT="1")
    reference, _ = hang_then_settle_at(bot, slack, store=False, later=timedelta(minutes=3))
    again = NOW + timedelta(minutes=10)  # sent again after "absent", same reference, lost again
    slack.set_fault("hang", times=1, store=False)
    with pytest.raises(MaybeSentError):
        bot.send(message(reference=reference), again)
    assert bot.settle(reference, TEXT, NOW, again + timedelta(seconds=30)).status == "unknown"
    assert bot.settle(reference, TEXT, NOW, again + bot.settle_delay).status == "absent"


def test_sending_again_after_a_lost_answer_finds_the_earlier_post(slack: SlackStandIn) -> None:
    """An operator's `deliveries retry` of an uncertain delivery: the post is not made twice."""
    bot = bot_notifier(slack, SLACK_TIMEOUT="1")
    slack.now = NOW
    slack.set_fault("hang", times=1)
    with pytest.raises(MaybeSentError):
        bot.send(message(reference="again"), NOW)
    receipt = bot.send(message(reference="again"), NOW + timedelta(minutes=30))
    [posted] = slack.messages
    assert receipt.external_id == (
        f"https://reading-group.slack.com/archives/C0READING1/p{posted.ts.replace('.', '')}"
    )
    assert [r.route for r in slack.posts] == ["chat.postMessage"]


def test_sending_again_posts_when_the_earlier_attempt_is_not_there(slack: SlackStandIn) -> None:
    bot = bot_notifier(slack, SLACK_TIMEOUT="1")
    slack.now = NOW
    slack.set_fault("hang", times=1, store=False)
    with pytest.raises(MaybeSentError):
        bot.send(message(reference="again"), NOW)
    bot.send(message(reference="again"), NOW + timedelta(minutes=30))
    assert [r.route for r in slack.requests][-3:] == [
        "conversations.history",  # looked first
        "chat.postMessage",
        "chat.getPermalink",
    ]
    assert len(slack.messages) == 1


def test_a_retry_after_a_refusal_does_not_look_first(
    bot: SlackNotifier, slack: SlackStandIn
) -> None:
    slack.set_fault("status_429", times=1)
    with pytest.raises(TransientError):
        bot.send(message(reference="again"), NOW)
    bot.send(message(reference="again"), NOW + timedelta(minutes=1))
    assert "conversations.history" not in [r.route for r in slack.requests]


def test_settling_pages_through_a_busy_channel(bot: SlackNotifier, slack: SlackStandIn) -> None:
    slack.now = NOW
    bot.send(message(reference="needle"), NOW)
    for index in range(450):  # newer messages: ours is on the third page
        slack.post(f"chatter {index}", metadata={"event_type": "other", "event_payload": {}})
    settlement = bot.settle("needle", TEXT, NOW, NOW + timedelta(minutes=5))
    assert settlement.status == "exists"
    cursors = [r.params.get("cursor") for r in slack.requests if r.route == "conversations.history"]
    assert len(cursors) == 3 and cursors[0] is None and all(cursors[1:])


def test_the_stand_in_hides_metadata_unless_asked(slack: SlackStandIn) -> None:
    import requests

    slack.post("hello", metadata={"event_type": EVENT_TYPE, "event_payload": {"reference": "r"}})
    auth = {"Authorization": f"Bearer {slack.token}"}
    url = f"{slack.base_url}/conversations.history"
    plain = requests.get(url, params={"channel": slack.channel_id}, headers=auth, timeout=5)
    asked = requests.get(
        url,
        params={"channel": slack.channel_id, "include_all_metadata": "true"},
        headers=auth,
        timeout=5,
    )
    assert "metadata" not in plain.json()["messages"][0]
    assert asked.json()["messages"][0]["metadata"]["event_payload"] == {"reference": "r"}


def test_without_the_history_scope_settling_is_left_to_an_operator() -> None:
    with SlackStandIn(scopes=frozenset({"chat:write"})) as slack:
        bot = bot_notifier(slack)
        settlement = bot.settle("ref", TEXT, NOW, NOW + timedelta(minutes=5))
    assert (settlement.status, settlement.final) == ("unknown", True)
    assert "channels:history" in settlement.reason and "groups:history" in settlement.reason


@pytest.mark.parametrize(
    ("fault", "final"),
    [("status_500", False), ("status_429", False), ("ratelimited", False), ("invalid_auth", True)],
)
def test_history_errors_leave_it_unknown(
    bot: SlackNotifier, slack: SlackStandIn, fault: str, final: bool
) -> None:
    slack.set_fault(fault, route="conversations.history")
    settlement = bot.settle("ref", TEXT, NOW, NOW + timedelta(minutes=5))
    assert (settlement.status, settlement.final) == ("unknown", final)
    assert settlement.reason


def test_a_channel_name_is_looked_up_to_read_its_history(slack: SlackStandIn) -> None:
    bot = bot_notifier(slack, SLACK_CHANNEL="reading-group")
    bot.bind_state(state := MemoryState())
    assert bot.settle("ref", TEXT, NOW, NOW + timedelta(minutes=5)).status == "absent"
    assert state.values["channel-id:reading-group"] == "C0READING1"
    assert [r.route for r in slack.requests] == ["conversations.list", "conversations.history"]
    bot.settle("ref", TEXT, NOW, NOW + timedelta(minutes=5))
    assert [r.route for r in slack.requests].count("conversations.list") == 1  # remembered


def test_a_channel_name_without_channels_read_asks_for_the_id() -> None:
    with SlackStandIn(scopes=frozenset({"chat:write", "channels:history"})) as slack:
        bot = bot_notifier(slack, SLACK_CHANNEL="#reading-group")
        settlement = bot.settle("ref", TEXT, NOW, NOW + timedelta(minutes=5))
    assert (settlement.status, settlement.final) == ("unknown", True)
    assert "set SLACK_CHANNEL to the channel ID" in settlement.reason


def test_a_webhook_cannot_settle(hook: SlackNotifier) -> None:
    settlement = hook.settle("ref", TEXT, NOW, NOW + timedelta(minutes=5))
    assert (settlement.status, settlement.final) == ("unknown", True)


# ---------------------------------------------------------------- check --online


def test_check_online_logs_in_and_reads_the_channel_without_posting(
    bot: SlackNotifier, slack: SlackStandIn
) -> None:
    bot.check_online()
    assert [(r.route, r.bearer) for r in slack.requests] == [
        ("auth.test", slack.token),
        ("conversations.history", slack.token),
    ]
    assert slack.messages == [] and slack.posts == []


def test_check_online_fails_on_a_bad_token_or_channel(slack: SlackStandIn) -> None:
    with pytest.raises(PermanentError, match="invalid_auth"):
        bot_notifier(slack, SLACK_BOT_TOKEN="xoxb-wrong").check_online()
    with pytest.raises(PermanentError, match="channel_not_found"):
        bot_notifier(slack, SLACK_CHANNEL="C0NOWHERE1").check_online()


def test_check_online_warns_when_posts_could_not_be_settled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with SlackStandIn(scopes=frozenset({"chat:write"})) as slack:
        bot_notifier(slack).check_online()  # posting works: no failure
    assert "cannot be settled" in caplog.text and "channels:history" in caplog.text


def test_check_online_with_a_channel_name_needs_no_channels_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with SlackStandIn(scopes=frozenset({"chat:write", "channels:history"})) as slack:
        bot_notifier(slack, SLACK_CHANNEL="#reading-group").check_online()  # it can post
    assert "set SLACK_CHANNEL to the channel ID" in caplog.text


def test_check_online_fails_on_a_channel_name_nobody_has(slack: SlackStandIn) -> None:
    with pytest.raises(PermanentError, match="no channel named #elsewhere"):
        bot_notifier(slack, SLACK_CHANNEL="#elsewhere").check_online()


def test_check_online_of_a_webhook_posts_nothing_and_says_so(
    hook: SlackNotifier, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    hook.check_online()
    assert slack.requests == []
    assert "cannot be checked without posting" in caplog.text


# ---------------------------------------------------------------- webhook


def test_webhook_post_carries_text_and_blocks_and_no_id(
    hook: SlackNotifier, slack: SlackStandIn
) -> None:
    receipt = hook.send(message("Next session: A & B"), NOW)
    assert receipt.external_id is None
    [request] = slack.posts
    assert request.route == "webhook" and request.bearer is None
    sent = json.loads(request.body)
    assert set(sent) == {"text", "blocks", "unfurl_links"}
    assert sent["text"] == "Next session: A &amp; B"
    [posted] = slack.messages
    assert posted.via == "webhook" and posted.metadata is None


@pytest.mark.parametrize(
    ("error", "status", "hint"),
    [
        ("invalid_payload", 400, "could not read"),
        ("action_prohibited", 403, "not allowed"),
        ("channel_not_found", 404, "no longer exists"),
        ("channel_is_archived", 410, "archived"),
    ],
)
def test_webhook_refusals_fail_for_good_without_the_url(
    hook: SlackNotifier, slack: SlackStandIn, error: str, status: int, hint: str
) -> None:
    slack.set_fault("refuse", error=error)
    with pytest.raises(PermanentError) as caught:
        hook.send(message(), NOW)
    assert not isinstance(caught.value, TransientError | MaybeSentError)
    assert f"HTTP {status} {error}" in str(caught.value) and hint in str(caught.value)
    assert_no_secret(slack, str(caught.value))


def test_webhook_429_waits_for_retry_after(hook: SlackNotifier, slack: SlackStandIn) -> None:
    slack.set_fault("status_429", retry_after=45, times=1)
    with pytest.raises(TransientError, match="429") as caught:
        hook.send(message(), NOW)
    assert caught.value.retry_at == NOW + timedelta(seconds=45)
    assert slack.messages == []


@pytest.mark.parametrize("fault", ["status_500", "hang"])
def test_webhook_500_or_timeout_may_have_posted(slack: SlackStandIn, fault: str) -> None:
    notifier = hook_notifier(slack, SLACK_TIMEOUT="1")
    slack.set_fault(fault, times=1)
    with pytest.raises(MaybeSentError) as caught:
        notifier.send(message(), NOW)
    assert_no_secret(slack, str(caught.value))


def test_a_wrong_webhook_key_is_refused(slack: SlackStandIn) -> None:
    notifier = SlackNotifier(
        SlackNotifier.parse_config({"SLACK_WEBHOOK_URL": f"{slack.origin}/services/T/B/wrong"})
    )
    with pytest.raises(PermanentError, match="404 no_service"):
        notifier.send(message(), NOW)


# ---------------------------------------------------------------- secrets and imports


def test_secrets_stay_out_of_debug_logs(
    bot: SlackNotifier,
    hook: SlackNotifier,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for notifier in (bot, hook):
        notifier.send(message(), NOW)
        slack.set_fault("status_500", times=1)
        with pytest.raises(MaybeSentError):
            notifier.send(message("again"), NOW)
    assert '"POST /api/chat.postMessage HTTP/1.1" 200' in caplog.text  # urllib3 did log
    assert '"POST *** HTTP/1.1" 200' in caplog.text  # the webhook's path, hidden
    assert_no_secret(slack, caplog.text)


def test_importing_the_channel_does_not_import_requests() -> None:
    code = "import sys, bot.notifiers.slack; print('requests' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False"]
