"""The `telegram` channel against a loopback Bot API stand-in (tests/support/telegramapi.py)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import responses

from bot.errors import ConfigError, MaybeSentError, NotifierError, PermanentError, TransientError
from bot.notifiers import registry
from bot.notifiers.base import Card, DeliveryKey, Message
from bot.notifiers.telegram import TelegramConfig, TelegramNotifier, html_text
from tests.support import telegramapi
from tests.support.telegramapi import (
    CHANNEL,
    CHANNEL_ID,
    OLD_GROUP_ID,
    SUPERGROUP_ID,
    TOKEN,
    TelegramStandIn,
    parse_html,
)

NOW = datetime(2025, 12, 8, 15, 0, tzinfo=UTC)
PAGE = "https://group.example/sessions/diffucoder/"
TIMEOUT_RULE = "must be a number of seconds above 0, at most 600"
telegram_server = telegramapi.telegram_server  # the fixture, shared with the CLI tests


def message(text: str = "DiffuCoder, Monday 10 AM EST / 4 PM CET", card: bool = True) -> Message:
    key = DeliveryKey(
        "diffucoder", "announce", "telegram", datetime(2025, 12, 15, 15, 0, tzinfo=UTC)
    )
    shown = Card(url=PAGE, title="DiffuCoder") if card else None
    return Message(key=key, text=text, card=shown)


def notifier_for(base_url: str, **extra: str) -> TelegramNotifier:
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": CHANNEL,
        "TELEGRAM_API_BASE_URL": base_url,
        **extra,
    }
    return TelegramNotifier(TelegramNotifier.parse_config(env))


@pytest.fixture
def tg(telegram_server: TelegramStandIn) -> Iterator[TelegramNotifier]:
    notifier = notifier_for(telegram_server.base_url, TELEGRAM_TIMEOUT="5")
    yield notifier
    notifier.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def everything_said(exc: BaseException) -> str:
    """The error's text and its whole traceback, chained exceptions included."""
    return str(exc) + "".join(traceback.format_exception(exc))


# ---------------------------------------------------------------- posting


def test_a_message_arrives_as_written_with_a_link_preview_of_the_card(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    receipt = tg.send(message("Next session: DiffuCoder"), NOW)

    [posted] = telegram_server.messages
    assert posted.text == "Next session: DiffuCoder"
    assert (posted.chat_id, posted.parse_mode, posted.entities) == (CHANNEL_ID, "HTML", ())
    assert posted.link_preview_options == {"is_disabled": False, "url": PAGE}
    assert receipt.external_id == str(posted.message_id)
    [request] = telegram_server.requests
    assert (request.http_method, request.method) == ("POST", "sendmessage")
    assert request.path == f"/bot{TOKEN}/sendMessage"
    assert request.params["chat_id"] == CHANNEL
    assert request.headers["Connection"] == "close"
    assert request.headers["Content-Type"] == "application/json"


def test_markup_in_the_text_is_shown_as_text_not_parsed(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    text = 'Title <b>&</b> &amp; "quotes" <a href="x">link</a> 1 < 2 > 0 <unknown'
    tg.send(message(text), NOW)
    [posted] = telegram_server.messages
    assert posted.text == text  # what the chat shows is exactly what was rendered
    assert posted.entities == ()  # no bold, no link: nothing was taken for a tag
    assert posted.raw_text.startswith("Title &lt;b&gt;&amp;&lt;/b&gt; &amp;amp; ")


def test_html_text_escapes_ampersand_and_angle_brackets_only() -> None:
    assert html_text("a & b <b> \"c\" 'd'") == "a &amp; b &lt;b&gt; \"c\" 'd'"
    plain, entities = parse_html(html_text("<b>&</b>"))
    assert (plain, entities) == ("<b>&</b>", [])


def test_the_stand_in_parses_markup_as_telegram_does() -> None:
    """So the escaping tests above could fail: unescaped, <b> would become a bold entity."""
    plain, entities = parse_html('<b>A &amp; B</b> <a href="https://e.x/?a=1&amp;b=2">go</a> 😀')
    assert plain == "A & B go 😀"
    assert [(e.type, e.offset, e.length, e.url) for e in entities] == [
        ("bold", 0, 5, None),
        ("text_link", 6, 2, "https://e.x/?a=1&b=2"),
    ]
    with pytest.raises(ValueError, match='Unsupported start tag "unknown" at byte offset 0'):
        parse_html("<unknown>")


def test_without_a_card_telegram_previews_the_first_link(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    tg.send(message("see https://arxiv.org/abs/2506.20639", card=False), NOW)
    [posted] = telegram_server.messages
    assert posted.link_preview_options == {"is_disabled": False}


def test_a_numeric_chat_id_is_sent_as_a_number(telegram_server: TelegramStandIn) -> None:
    notifier = notifier_for(telegram_server.base_url, TELEGRAM_CHAT_ID=str(SUPERGROUP_ID))
    notifier.send(message(), NOW)
    [request] = telegram_server.requests
    assert request.params["chat_id"] == SUPERGROUP_ID
    assert [m.chat_id for m in telegram_server.messages] == [SUPERGROUP_ID]


def test_each_message_gets_its_own_id(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    first = tg.send(message("one"), NOW)
    second = tg.send(message("two"), NOW)
    assert first.external_id != second.external_id
    assert [m.text for m in telegram_server.messages] == ["one", "two"]


def test_the_channel_is_registered_and_cannot_settle() -> None:
    assert registry.get("telegram") is TelegramNotifier
    notifier = notifier_for("https://api.telegram.org")
    assert TelegramNotifier.settles is False and notifier.can_settle() is False
    assert notifier.new_reference(message().key, NOW) is None
    assert notifier.settle("ref", "text", NOW, NOW).final is True


# ---------------------------------------------------------------- the Bot API's refusals


def test_429_waits_for_retry_after(tg: TelegramNotifier, telegram_server: TelegramStandIn) -> None:
    telegram_server.set_fault("status_429", retry_after=600, times=1)
    with pytest.raises(TransientError, match="429: Too Many Requests: retry after 600") as caught:
        tg.send(message(), NOW)
    assert caught.value.retry_at == NOW + timedelta(minutes=10)
    assert telegram_server.messages == []
    tg.send(message(), NOW)  # one request only
    assert len(telegram_server.messages) == 1


@responses.activate
def test_429_retry_after_in_the_body_alone_is_honoured() -> None:
    responses.add(
        responses.POST,
        f"https://api.telegram.org/bot{TOKEN}/sendMessage",
        status=429,
        json={
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 35",
            "parameters": {"retry_after": 35},
        },
    )
    with pytest.raises(TransientError) as caught:
        notifier_for("https://api.telegram.org").send(message(), NOW)
    assert caught.value.retry_at == NOW + timedelta(seconds=35)


def test_a_migrated_group_names_the_variable_and_the_new_id(
    telegram_server: TelegramStandIn,
) -> None:
    notifier = notifier_for(telegram_server.base_url, TELEGRAM_CHAT_ID=str(OLD_GROUP_ID))
    with pytest.raises(PermanentError) as caught:
        notifier.send(message(), NOW)
    assert str(caught.value).startswith(
        "TELEGRAM_CHAT_ID: the group became a supergroup; "
        f"set TELEGRAM_CHAT_ID={SUPERGROUP_ID} (Telegram answered 400: Bad Request: group chat"
    )
    assert not isinstance(caught.value, TransientError | MaybeSentError)
    assert telegram_server.messages == []


def test_an_unknown_chat_is_refused_for_good(telegram_server: TelegramStandIn) -> None:
    notifier = notifier_for(telegram_server.base_url, TELEGRAM_CHAT_ID="@nosuchchannel")
    with pytest.raises(PermanentError, match=r"400: Bad Request: chat not found.*TELEGRAM_CHAT_ID"):
        notifier.send(message(), NOW)


def test_a_wrong_token_is_401_and_shows_no_token(telegram_server: TelegramStandIn) -> None:
    other = "987654321:AAFakeFakeFakeFakeFakeFakeFakeFake12"
    notifier = notifier_for(telegram_server.base_url, TELEGRAM_BOT_TOKEN=other)
    with pytest.raises(PermanentError, match=r"401: Unauthorized.*TELEGRAM_BOT_TOKEN") as caught:
        notifier.send(message(), NOW)
    assert not isinstance(caught.value, TransientError | MaybeSentError)
    assert other not in everything_said(caught.value)
    assert telegram_server.messages == [] and not telegram_server.requests[0].token_ok


def test_401_fault_is_permanent(tg: TelegramNotifier, telegram_server: TelegramStandIn) -> None:
    telegram_server.set_fault("status_401")
    with pytest.raises(PermanentError, match="401"):
        tg.send(message(), NOW)
    assert telegram_server.messages == []


def test_a_base_url_that_is_not_the_bot_api_is_404(telegram_server: TelegramStandIn) -> None:
    notifier = notifier_for(telegram_server.base_url + "/proxy")
    with pytest.raises(PermanentError, match=r"404: Not Found.*TELEGRAM_API_BASE_URL"):
        notifier.send(message(), NOW)
    assert telegram_server.requests[0].path.startswith("/proxy/bot")


@responses.activate
@pytest.mark.parametrize(
    ("status", "description"),
    [
        (403, "Forbidden: bot was kicked from the channel chat"),
        (403, "Forbidden: bot is not a member of the channel chat"),
        (400, "Bad Request: message is too long"),
        (400, "Bad Request: can't parse entities: Unsupported start tag"),
        (400, "Bad Request: not enough rights to send text messages to the chat"),
        (404, "Not Found"),
    ],
)
def test_other_refusals_are_permanent_with_telegrams_description(
    status: int, description: str
) -> None:
    responses.add(
        responses.POST,
        f"https://api.telegram.org/bot{TOKEN}/sendMessage",
        status=status,
        json={"ok": False, "error_code": status, "description": description},
    )
    with pytest.raises(PermanentError) as caught:
        notifier_for("https://api.telegram.org").send(message(), NOW)
    assert str(caught.value).startswith(f"Telegram answered {status}: {description}")
    assert not isinstance(caught.value, TransientError | MaybeSentError)
    assert len(responses.calls) == 1


@pytest.mark.parametrize("fault", ["status_500", "status_502"])
def test_5xx_is_maybe_sent_for_the_bot_api_cannot_say(
    tg: TelegramNotifier, telegram_server: TelegramStandIn, fault: str
) -> None:
    telegram_server.set_fault(fault, publish=True, times=1)
    with pytest.raises(MaybeSentError, match=f"Telegram answered {fault[-3:]}"):
        tg.send(message("posted, then the front end failed"), NOW)
    assert [m.text for m in telegram_server.messages] == ["posted, then the front end failed"]


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, '{"ok": true, "result": {}}', MaybeSentError),  # taken, but no id to show for it
        (200, '{"ok": true, "result": {"message_id": true}}', MaybeSentError),
        (200, "<html>", MaybeSentError),
        (302, "", PermanentError),  # a redirected POST would become a GET
    ],
)
def test_odd_answers(status: int, body: str, expected: type[Exception]) -> None:
    responses.add(
        responses.POST,
        f"https://api.telegram.org/bot{TOKEN}/sendMessage",
        status=status,
        body=body,
        headers={"Location": "https://api.telegram.org/elsewhere"},
    )
    with pytest.raises(expected) as caught:
        notifier_for("https://api.telegram.org").send(message(), NOW)
    assert TOKEN not in everything_said(caught.value)
    assert len(responses.calls) == 1


# ---------------------------------------------------------------- the network


def test_an_answer_late_past_the_timeout_is_maybe_sent_and_was_posted(
    telegram_server: TelegramStandIn,
) -> None:
    telegram_server.set_fault("hang", late=3)
    notifier = notifier_for(telegram_server.base_url, TELEGRAM_TIMEOUT="1")
    with pytest.raises(MaybeSentError, match="did not answer within 1s") as caught:
        notifier.send(message("late"), NOW)
    assert [m.text for m in telegram_server.messages] == ["late"]
    assert TOKEN not in everything_said(caught.value)


def test_a_body_that_never_arrives_is_maybe_sent(telegram_server: TelegramStandIn) -> None:
    telegram_server.set_fault("no_body")
    notifier = notifier_for(telegram_server.base_url, TELEGRAM_TIMEOUT="1")
    with pytest.raises(MaybeSentError) as caught:
        notifier.send(message("headers only"), NOW)
    assert [m.text for m in telegram_server.messages] == ["headers only"]
    assert TOKEN not in everything_said(caught.value)


def test_a_dropped_connection_is_maybe_sent(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    telegram_server.set_fault("drop", times=1)
    with pytest.raises(MaybeSentError, match="lost"):
        tg.send(message("dropped"), NOW)
    assert [m.text for m in telegram_server.messages] == ["dropped"]


def test_a_refused_connection_is_transient_and_names_no_token() -> None:
    with pytest.raises(TransientError, match="could not connect to Telegram") as caught:
        notifier_for(f"http://127.0.0.1:{free_port()}").send(message(), NOW)
    said = everything_said(caught.value)
    assert TOKEN not in said and "Max retries" not in said  # the requests error is not chained


def test_a_connect_timeout_is_transient() -> None:
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
            with pytest.raises(TransientError) as caught:
                notifier_for(f"http://127.0.0.1:{port}", TELEGRAM_TIMEOUT="0.5").send(
                    message(), NOW
                )
        finally:
            for filler in fillers:
                filler.close()
    assert TOKEN not in everything_said(caught.value)


def test_the_token_stays_out_of_debug_logs_on_success_and_failure(
    telegram_server: TelegramStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    notifier = notifier_for(telegram_server.base_url, TELEGRAM_TIMEOUT="1")
    notifier.send(message("fine"), NOW)
    telegram_server.set_fault("hang")
    with pytest.raises(MaybeSentError):
        notifier.send(message("late"), NOW)
    with pytest.raises(TransientError):
        notifier_for(f"http://127.0.0.1:{free_port()}").send(message(), NOW)
    assert "/sendMessage" in caplog.text  # urllib3's request line was captured ...
    assert TOKEN not in caplog.text  # ... without the token
    assert TOKEN.split(":")[1] not in caplog.text


# ---------------------------------------------------------------- the limit


def test_the_limit_is_4096_code_points_of_the_plain_text() -> None:
    assert TelegramNotifier.measure("😀" * 10) == 10  # tdlib counts code points
    assert TelegramNotifier.measure("&<>" * 10) == 30  # escaping adds nothing to the count
    assert TelegramNotifier.over_limit("a" * 4096) is None
    assert TelegramNotifier.over_limit("a" * 4097) == (
        "message is 4097 characters, over the telegram limit of 4096"
    )


def test_a_message_at_the_limit_is_taken_even_when_escaping_lengthens_it(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    text = "&" * 2048 + "😀" * 2048
    tg.send(message(text), NOW)
    [posted] = telegram_server.messages
    assert posted.text == text and len(posted.raw_text) > 4096


def test_over_the_limit_is_refused_before_any_request(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    with pytest.raises(PermanentError, match="message is 4097 characters, over the telegram"):
        tg.send(message("é" * 4097), NOW)
    with pytest.raises(PermanentError, match="empty"):
        tg.send(message(" \n "), NOW)
    assert telegram_server.requests == []


# ---------------------------------------------------------------- check --online


def test_check_online_asks_getme_and_getchat_and_posts_nothing(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    tg.check_online()
    assert [r.method for r in telegram_server.requests] == ["getme", "getchat"]
    assert telegram_server.requests[1].params["chat_id"] == CHANNEL
    assert telegram_server.messages == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TELEGRAM_BOT_TOKEN": "987654321:AAFakeFakeFakeFakeFakeFakeFakeFake12"}, "401"),
        ({"TELEGRAM_CHAT_ID": "@nosuchchannel"}, "chat not found"),
        ({"TELEGRAM_CHAT_ID": str(OLD_GROUP_ID)}, f"set TELEGRAM_CHAT_ID={SUPERGROUP_ID}"),
    ],
)
def test_check_online_fails_on_a_bad_token_or_chat(
    telegram_server: TelegramStandIn, env: dict[str, str], expected: str
) -> None:
    notifier = notifier_for(telegram_server.base_url, **env)
    with pytest.raises(PermanentError, match=expected):
        notifier.check_online()
    assert telegram_server.messages == []


def test_check_online_on_a_5xx_is_transient_not_maybe_sent(
    tg: TelegramNotifier, telegram_server: TelegramStandIn
) -> None:
    telegram_server.set_fault("status_500", method="getMe")
    with pytest.raises(NotifierError) as caught:
        tg.check_online()
    assert type(caught.value) is TransientError


# ---------------------------------------------------------------- configuration


def test_config_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        TelegramNotifier.parse_config({})
    assert caught.value.problems == [
        "TELEGRAM_BOT_TOKEN: required by the telegram channel (missing)",
        "TELEGRAM_CHAT_ID: required by the telegram channel (missing)",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("TELEGRAM_BOT_TOKEN", "4242424", "TELEGRAM_BOT_TOKEN: must look like 123456789:AAE…"),
        ("TELEGRAM_BOT_TOKEN", f"bot{TOKEN}", "without the leading 'bot'"),
        ("TELEGRAM_BOT_TOKEN", f"https://api.telegram.org/bot{TOKEN}/", "the token alone"),
        ("TELEGRAM_BOT_TOKEN", f"{TOKEN} x", "TELEGRAM_BOT_TOKEN: must not contain spaces"),
        ("TELEGRAM_CHAT_ID", "readinggroup", "@channelname or a numeric chat id"),
        ("TELEGRAM_CHAT_ID", "https://t.me/readinggroup", "write @readinggroup"),
        ("TELEGRAM_CHAT_ID", "-100 123", "TELEGRAM_CHAT_ID: must be @channelname"),
        ("TELEGRAM_API_BASE_URL", "ftp://e.com", "TELEGRAM_API_BASE_URL: must be an http://"),
        ("TELEGRAM_TIMEOUT", "soon", f"TELEGRAM_TIMEOUT: {TIMEOUT_RULE} (soon)"),
        ("TELEGRAM_TIMEOUT", "0", f"TELEGRAM_TIMEOUT: {TIMEOUT_RULE} (0)"),
    ],
)
def test_config_rejects_malformed_values(variable: str, value: str, problem: str) -> None:
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHANNEL, variable: value}
    with pytest.raises(ConfigError) as caught:
        TelegramNotifier.parse_config(env)
    [line] = caught.value.problems
    assert problem in line
    if variable == "TELEGRAM_BOT_TOKEN":
        assert line.endswith("(value hidden)") and value not in line and TOKEN not in line


def test_config_keeps_the_token_out_of_repr() -> None:
    config = TelegramNotifier.parse_config(
        {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "-1001234567890", "TELEGRAM_TIMEOUT": "7"}
    )
    assert isinstance(config, TelegramConfig)
    assert (config.base_url, config.timeout, config.chat) == (
        "https://api.telegram.org",
        7.0,
        -1001234567890,
    )
    assert TOKEN not in repr(config)
    assert TOKEN not in repr(TelegramNotifier(config).__dict__)
    assert TelegramNotifier.parse_config({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHANNEL})


def test_importing_the_channel_does_not_import_requests() -> None:
    code = "import sys, bot.notifiers.telegram; print('requests' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False"]
