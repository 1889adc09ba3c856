"""The `discord` channel against a loopback stand-in for Discord's webhook API."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from bot.config import load_settings
from bot.domain import Paper, SessionData, Speaker
from bot.errors import ConfigError, MaybeSentError, PermanentError, TransientError
from bot.logs import secret_values
from bot.notifiers import registry
from bot.notifiers.base import Card, DeliveryKey, Message
from bot.notifiers.discord import (
    MAX_DESCRIPTION,
    MAX_EMBEDS_TOTAL,
    MAX_TITLE,
    DiscordConfig,
    DiscordNotifier,
    embed_for,
    embed_size,
)
from bot.render.renderer import Renderer
from tests.support import discordapi
from tests.support.discordapi import TOKEN, DiscordStandIn, pinged

NOW = datetime(2030, 3, 11, 14, 0, tzinfo=UTC)
START = datetime(2030, 3, 18, 14, 0, tzinfo=UTC)
TITLE = "DiffuCoder: Masked Diffusion Models for Code Generation"
REAL = "https://discord.com/api/webhooks/1300000000000000001/" + TOKEN
discord_server = discordapi.discord_server  # the fixture, shared with other test modules


def message(text: str = "Next session: DiffuCoder", card: Card | None = None) -> Message:
    key = DeliveryKey("diffucoder", "announce", "discord", START)
    return Message(key=key, text=text, card=card)


def a_card(**changes: Any) -> Card:
    values: dict[str, Any] = {
        "url": "https://example.org/dllm/sessions/diffucoder/",
        "title": TITLE,
        "description": "Shansan Gong. Diffusion language models denoise a whole sequence.",
        "starts_at": START,
    }
    return Card(**(values | changes))


def notifier_for(url: str, **extra: str) -> DiscordNotifier:
    env = {"DISCORD_WEBHOOK_URL": url, "DISCORD_TIMEOUT": "5", **extra}
    return DiscordNotifier(DiscordNotifier.parse_config(env))


@pytest.fixture
def discord(discord_server: DiscordStandIn) -> Iterator[DiscordNotifier]:
    notifier = notifier_for(discord_server.webhook_url)
    yield notifier
    notifier.close()


def assert_no_secret(text: str) -> None:
    assert TOKEN not in text
    assert TOKEN[:12] not in text and TOKEN[-12:] not in text  # nor a part of it


# ---------------------------------------------------------------- posting


def test_a_post_waits_for_the_message_and_its_id_is_the_receipt(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    receipt = discord.send(message("Next session: DiffuCoder", a_card()), NOW)

    [request] = discord_server.requests
    assert request.method == "POST" and request.query == {"wait": ["true"]}
    assert request.status == 200
    assert request.headers["Connection"] == "close"
    assert request.headers["User-Agent"].startswith("reading-group-bot/")
    [posted] = discord_server.messages
    assert posted.waited and receipt.external_id == posted.id
    assert posted.content == "Next session: DiffuCoder"
    assert posted.allowed_mentions == {"parse": []}
    assert posted.embeds == [
        {
            "title": TITLE,
            "url": "https://example.org/dllm/sessions/diffucoder/",
            "description": "Shansan Gong. Diffusion language models denoise a whole sequence.",
            "timestamp": "2030-03-18T14:00:00+00:00",
            "type": "rich",
        }
    ]


def test_each_message_gets_its_own_id(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    first = discord.send(message("one"), NOW)
    second = discord.send(message("two"), NOW)
    assert first.external_id != second.external_id
    assert [m.content for m in discord_server.messages] == ["one", "two"]


def test_without_a_card_there_is_no_embed(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    discord.send(message("no card"), NOW)
    [posted] = discord_server.messages
    assert posted.embeds == [] and posted.allowed_mentions == {"parse": []}


def test_everyone_and_here_in_a_title_ping_nobody(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    title = "Hands-on @everyone: masked diffusion @here"
    discord.send(message(f"Next session: {title}", a_card(title=title)), NOW)
    [posted] = discord_server.messages
    assert "@everyone" in posted.content  # shown as written: nothing escaped or changed
    assert posted.embeds[0]["title"] == title
    assert posted.allowed_mentions == {"parse": []}
    assert posted.pinged == ()
    # What the stand-in would have counted as a ping, had the field been different:
    assert pinged(posted.content, {"parse": ["everyone"]}) == ("@everyone", "@here")


def test_the_embed_title_is_cut_to_256_and_the_text_is_sent_whole(
    discord: DiscordNotifier, discord_server: DiscordStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.notifiers.discord")
    title = "Masked diffusion " + "拡散" * 200  # 417 characters
    text = f"Next session: {title}"
    receipt = discord.send(message(text, a_card(title=title)), NOW)

    [posted] = discord_server.messages
    assert receipt.external_id == posted.id
    assert posted.content == text  # the message is never cut
    embed_title = posted.embeds[0]["title"]
    assert len(embed_title) == MAX_TITLE and embed_title.endswith("…")
    assert title.startswith(embed_title[:-1])
    assert "embed title cut to 256 characters" in caplog.text


def test_embeds_stay_within_every_limit() -> None:
    embed = embed_for(a_card(title="t" * 300, description="d" * 5000))
    assert embed is not None
    assert len(embed["title"]) == MAX_TITLE and embed["title"].endswith("…")
    assert len(embed["description"]) == MAX_DESCRIPTION and embed["description"].endswith("…")
    assert embed_size(embed) <= MAX_EMBEDS_TOTAL
    assert embed_size({"title": "ab", "fields": [{"name": "c", "value": "de"}]}) == 5
    # Discord trims an embed's fields: surrounding blanks are not sent, a blank card is no embed.
    assert embed_for(a_card(title="  T  ", description=" ")) == {
        "title": "T",
        "url": "https://example.org/dllm/sessions/diffucoder/",
        "timestamp": "2030-03-18T14:00:00+00:00",
    }
    assert embed_for(a_card(title=" ", description="", url="")) is None
    assert embed_for(None) is None


def test_the_embed_timestamp_is_the_start_in_utc() -> None:
    paris = START.astimezone(ZoneInfo("Europe/Paris"))
    embed = embed_for(a_card(starts_at=paris))
    assert embed is not None and embed["timestamp"] == "2030-03-18T14:00:00+00:00"
    embed = embed_for(a_card(starts_at=None))
    assert embed is not None and "timestamp" not in embed


# ---------------------------------------------------------------- the limit


def test_length_is_counted_in_code_points_as_discord_counts() -> None:
    # Discord's API counts Python str length (discord/discord-api-docs#1315): an emoji outside
    # the BMP is 1, not the 2 UTF-16 units a browser would count.
    assert DiscordNotifier.measure("🙂") == 1
    assert DiscordNotifier.measure("拡散 e\u0301") == 5
    assert DiscordNotifier.over_limit("🙂" * 2000) is None
    assert DiscordNotifier.over_limit("🙂" * 2001) == (
        "message is 2001 characters, over the discord limit of 2000"
    )
    assert DiscordNotifier.over_limit(" \n ") == (
        "message is empty; Discord refuses an empty message"
    )


def test_2000_emoji_are_taken_by_the_stand_in(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    discord.send(message("🙂" * 2000), NOW)
    assert [len(m.content) for m in discord_server.messages] == [2000]


def test_over_limit_text_is_refused_before_any_request(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    with pytest.raises(PermanentError, match="2001 characters, over the discord limit of 2000"):
        discord.send(message("a" * 2001), NOW)
    assert discord_server.requests == []


def test_a_form_error_from_discord_is_refused_for_good_with_its_details(
    discord_server: DiscordStandIn,
) -> None:
    class Unchecked(DiscordNotifier):  # lets an over-long text reach the server
        @classmethod
        def over_limit(cls, text: str) -> str | None:
            return None

    notifier = Unchecked(
        DiscordNotifier.parse_config({"DISCORD_WEBHOOK_URL": discord_server.webhook_url})
    )
    with pytest.raises(PermanentError) as caught:
        notifier.send(message("a" * 2001), NOW)
    reason = str(caught.value)
    assert reason.startswith("Discord answered 400: Invalid Form Body (code 50035)")
    assert "content: Must be 2000 or fewer in length." in reason
    assert discord_server.messages == []


# ---------------------------------------------------------------- failures


def test_429_is_transient_until_the_latest_reset_signal(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    reset = NOW + timedelta(seconds=30)
    discord_server.set_fault("status_429", retry_after=64.57, reset_epoch=reset.timestamp())
    with pytest.raises(TransientError, match="429") as caught:
        discord.send(message(), NOW)
    assert "retry after 64.57s" in str(caught.value)
    # retry_after (64.57 s, rounded up) is later than X-RateLimit-Reset (30 s): it wins.
    assert caught.value.retry_at == NOW + timedelta(seconds=65)
    assert discord_server.messages == []


def test_429_waits_for_an_epoch_reset_later_than_retry_after(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    reset = NOW + timedelta(minutes=10, seconds=0.5)
    discord_server.set_fault(
        "status_429", retry_after=1.5, reset_epoch=reset.timestamp(), global_=True
    )
    with pytest.raises(TransientError, match=r"\(global\)") as caught:
        discord.send(message(), NOW)
    assert caught.value.retry_at == reset


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_may_have_posted_so_it_is_maybe_sent(
    discord: DiscordNotifier, discord_server: DiscordStandIn, status: int
) -> None:
    discord_server.set_fault("status_5xx", status=status, publish=True)
    with pytest.raises(MaybeSentError, match=f"Discord answered {status}") as caught:
        discord.send(message("after an outage"), NOW)
    assert "may have been posted" in str(caught.value)
    assert [m.content for m in discord_server.messages] == ["after an outage"]  # it was


def test_401_is_refused_for_good_and_shows_no_secret(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    discord_server.set_fault("status_401")
    with pytest.raises(
        PermanentError, match=r"401: Invalid Webhook Token \(code 50027\)"
    ) as caught:
        discord.send(message(), NOW)
    assert "invalid or was deleted" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_a_wrong_token_is_401_and_an_unknown_webhook_is_404(
    discord_server: DiscordStandIn,
) -> None:
    wrong = notifier_for(discord_server.url_for(token="Wr0ng-" + TOKEN[6:]))
    with pytest.raises(PermanentError, match="401: Invalid Webhook Token") as caught:
        wrong.send(message(), NOW)
    assert "Wr0ng" not in str(caught.value)
    deleted = notifier_for(discord_server.url_for(webhook_id="1399999999999999999"))
    with pytest.raises(PermanentError, match=r"404: Unknown Webhook \(code 10015\)") as caught:
        deleted.send(message(), NOW)
    assert "was deleted" in str(caught.value)
    assert_no_secret(str(caught.value))
    assert discord_server.messages == []


def test_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/webhooks/1300000000000000001/{TOKEN}"
    with pytest.raises(TransientError, match="could not connect to Discord") as caught:
        notifier_for(url).send(message(), NOW)
    assert_no_secret(str(caught.value))
    # requests itself puts the URL, token and all, into its exception: the reason does not.
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert TOKEN in str(caught.value.__cause__)


def test_no_answer_within_the_timeout_is_maybe_sent(discord_server: DiscordStandIn) -> None:
    discord_server.set_fault("hang")
    notifier = notifier_for(discord_server.webhook_url, DISCORD_TIMEOUT="1")
    with pytest.raises(MaybeSentError, match="did not answer within 1s") as caught:
        notifier.send(message("hanging"), NOW)
    assert_no_secret(str(caught.value))
    assert [m.content for m in discord_server.messages] == ["hanging"]  # it did go out


def test_an_answer_whose_body_never_comes_is_maybe_sent(discord_server: DiscordStandIn) -> None:
    discord_server.set_fault("no_body")
    notifier = notifier_for(discord_server.webhook_url, DISCORD_TIMEOUT="1")
    with pytest.raises(MaybeSentError) as caught:
        notifier.send(message("no body"), NOW)
    assert_no_secret(str(caught.value))
    [request] = discord_server.requests
    assert request.status == 200 and request.fault == "no_body"
    assert [m.content for m in discord_server.messages] == ["no body"]


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "expected", "words"),
    [
        (200, "{}", MaybeSentError, "no message id"),  # taken, but nothing to show for it
        (204, "", MaybeSentError, "no message id"),  # as if `wait` had been dropped
        (200, "<html>", MaybeSentError, "no message id"),
        (403, '{"message": "Missing Access", "code": 50001}', PermanentError, "Missing Access"),
        (413, '{"message": "Request entity too large", "code": 40005}', PermanentError, "40005"),
        (302, "", PermanentError, "redirect, not followed"),  # a redirected POST becomes a GET
        (502, "<html>Bad gateway</html>", MaybeSentError, "502"),
    ],
)
def test_odd_answers(status: int, body: str, expected: type[Exception], words: str) -> None:
    responses.add(
        responses.POST,
        REAL,
        status=status,
        body=body,
        headers={"Location": "https://discord.com/elsewhere"},
    )
    with pytest.raises(expected, match=words) as caught:
        notifier_for(REAL).send(message(), NOW)
    assert len(responses.calls) == 1
    assert responses.calls[0].request.url == REAL + "?wait=true"
    assert_no_secret(str(caught.value))


def test_webhooks_cannot_settle() -> None:
    notifier = notifier_for(REAL)
    assert DiscordNotifier.settles is False and notifier.can_settle() is False
    assert notifier.new_reference(message().key, NOW) is None
    assert notifier.settle("ref", "text", NOW, NOW).status == "unknown"


# ---------------------------------------------------------------- check --online


def test_check_online_reads_the_webhook_without_posting(
    discord: DiscordNotifier, discord_server: DiscordStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.notifiers.discord")
    discord.check_online()
    [request] = discord_server.requests
    assert request.method == "GET" and request.query == {} and request.status == 200
    assert discord_server.messages == []
    assert "'Reading group' posts to channel 1200000000000000002" in caplog.text
    assert_no_secret(caplog.text)  # the webhook object carries the token: never shown


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"token": "Wr0ng-" + TOKEN[6:]}, "401: Invalid Webhook Token"),
        ({"webhook_id": "1399999999999999999"}, "404: Unknown Webhook"),
    ],
)
def test_check_online_says_the_webhook_is_invalid_or_deleted(
    discord_server: DiscordStandIn, change: dict[str, str], words: str
) -> None:
    notifier = notifier_for(discord_server.url_for(**change))
    with pytest.raises(PermanentError, match=words) as caught:
        notifier.check_online()
    assert "the webhook is invalid or was deleted" in str(caught.value)
    assert "Wr0ng" not in str(caught.value)
    assert_no_secret(str(caught.value))


def test_check_online_when_rate_limited_is_transient(
    discord: DiscordNotifier, discord_server: DiscordStandIn
) -> None:
    discord_server.set_fault("status_429", retry_after=3)
    with pytest.raises(TransientError, match="429"):
        discord.check_online()


# ---------------------------------------------------------------- secrets


def test_the_token_stays_out_of_debug_logs(
    discord: DiscordNotifier, discord_server: DiscordStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    discord.send(message(), NOW)
    discord.check_online()
    discord_server.set_fault("status_401", times=1)
    with pytest.raises(PermanentError):
        discord.send(message("again"), NOW)
    discord_server.set_fault("hang", times=1, hang_seconds=3)
    with pytest.raises(MaybeSentError):
        notifier_for(discord_server.webhook_url, DISCORD_TIMEOUT="0.5").send(message("late"), NOW)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError):
        notifier_for(f"http://127.0.0.1:{port}/api/webhooks/1/{TOKEN}").send(message(), NOW)
    assert "POST /api/webhooks/1300000000000000001/***?wait=true" in caplog.text  # urllib3's line
    assert_no_secret(caplog.text)


def test_config_takes_real_webhook_urls() -> None:
    for url in (
        REAL,
        REAL.replace("discord.com", "discordapp.com"),
        REAL.replace("discord.com", "canary.discord.com"),
        REAL.replace("/api/", "/api/v10/"),
        REAL + "/",
    ):
        config = DiscordNotifier.parse_config({"DISCORD_WEBHOOK_URL": url})
        assert isinstance(config, DiscordConfig)
        assert config.webhook_url.get() == url.rstrip("/")
        assert (config.webhook_id, config.token.get()) == ("1300000000000000001", TOKEN)
        assert config.timeout == 30.0
    config = DiscordNotifier.parse_config({"DISCORD_WEBHOOK_URL": REAL, "DISCORD_TIMEOUT": "2.5"})
    assert config.timeout == 2.5
    assert_no_secret(repr(config))
    assert_no_secret(repr(DiscordNotifier(config).__dict__))


def test_config_names_a_missing_url() -> None:
    with pytest.raises(ConfigError) as caught:
        DiscordNotifier.parse_config({})
    assert caught.value.problems == [
        "DISCORD_WEBHOOK_URL: required by the discord channel (missing)"
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not a url", "must not contain spaces (value hidden)"),
        ("discord.com/api/webhooks/1/" + TOKEN, "must be a Discord webhook URL like"),
        ("http://discord.com/api/webhooks/1/" + TOKEN, "must be an https:// URL"),
        (REAL + "?wait=true", "without a query or fragment"),
        (REAL + "#x", "without a query or fragment"),
        ("https://me:pw@discord.com/api/webhooks/1/" + TOKEN, "user name or password"),
        ("https://discord.com/api/webhooks/" + TOKEN, "must be a Discord webhook URL like"),
        ("https://discord.com/api/webhooks/abc/" + TOKEN, "must be a Discord webhook URL like"),
        ("https://discord.com/channels/1/" + TOKEN, "must be a Discord webhook URL like"),
        ("https://discord.com:99999/api/webhooks/1/" + TOKEN, "must be a Discord webhook URL"),
    ],
)
def test_config_rejects_malformed_urls_without_showing_them(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        DiscordNotifier.parse_config({"DISCORD_WEBHOOK_URL": value})
    [line] = caught.value.problems
    assert line.startswith("DISCORD_WEBHOOK_URL: ") and problem in line
    assert "(value hidden)" in line
    assert TOKEN not in line and "me:pw" not in line


def test_config_lists_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        DiscordNotifier.parse_config({"DISCORD_WEBHOOK_URL": "x", "DISCORD_TIMEOUT": "0"})
    assert caught.value.problems == [
        "DISCORD_TIMEOUT: must be a number of seconds above 0, at most 600 (0)",
        "DISCORD_WEBHOOK_URL: must be a Discord webhook URL like "
        "https://discord.com/api/webhooks/ID/TOKEN (value hidden)",
    ]


def test_the_url_and_its_token_are_redacted_from_the_logs_of_every_command() -> None:
    settings = load_settings({"CHANNELS": "discord", "DISCORD_WEBHOOK_URL": REAL})
    found = secret_values(settings)
    assert REAL in found and TOKEN in found


def test_the_registry_knows_the_channel() -> None:
    assert registry.get("discord") is DiscordNotifier


def test_importing_the_channel_does_not_import_requests() -> None:
    code = "import sys, bot.notifiers.discord; print('requests' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False"]


# ---------------------------------------------------------------- templates

NOTICES = (
    "announce",
    "reminder",
    "starting",
    "rescheduled",
    "cancelled",
    "reinstated",
    "recording",
)
WHEN = "Mon Mar 18 · 10 AM EDT / 3 PM CET"


def _session(**changes: Any) -> SessionData:
    values: dict[str, Any] = {
        "id": "diffucoder",
        "title": TITLE,
        "starts_at": START,
        "speakers": (Speaker("Shansan Gong", "The University of Hong Kong", x="@shansangong"),),
        "abstract": "Diffusion language models (DLMs) generate text by denoising a sequence. " * 40,
        "papers": (Paper("DiffuCoder", "https://arxiv.org/abs/2506.20639"),),
        "meeting_url": "https://example.zoom.us/j/123",
        "recording_url": "https://www.youtube.com/watch?v=abcdefghijk",
    }
    return SessionData(**(values | changes))


def _render(notice: str, *, number: int = 1, first: bool = True, **settings: str) -> Message:
    env = {
        "CHANNELS": "discord",
        "DISCORD_WEBHOOK_URL": REAL,
        "GROUP_URL": "https://example.org/dllm",
        "SITE_URL": "https://example.org/dllm",
        **settings,
    }
    session = _session(status="cancelled") if notice == "cancelled" else _session()
    offsets = {"announce": timedelta(days=7), "reminder": timedelta(days=1)}
    return Renderer(load_settings(env)).render(
        key=DeliveryKey(session.id, notice, "discord", session.starts_at),
        session=session,
        notice=notice,
        offset=offsets.get(notice, timedelta(hours=1)),
        first=first,
        now=session.starts_at - offsets.get(notice, timedelta(hours=1)),
        parts=DiscordNotifier.parts,
        previous=_session(starts_at=START - timedelta(days=7)),
        number=number,
    )


@pytest.mark.parametrize("notice", NOTICES)
@pytest.mark.parametrize("first", [True, False])
def test_every_notice_has_its_own_template_and_fits(notice: str, first: bool) -> None:
    renderer = Renderer(load_settings({"CHANNELS": "discord", "DISCORD_WEBHOOK_URL": REAL}))
    assert renderer.resolve("discord", notice, "txt") == f"discord/{notice}.txt.j2"
    rendered = _render(notice, first=first)
    assert TITLE in rendered.text
    assert WHEN in rendered.text or notice == "recording"
    assert "None" not in rendered.text
    assert DiscordNotifier.over_limit(rendered.text) is None  # a 3,000-character abstract
    assert rendered.card is not None and rendered.card.title == TITLE
    links = ("zoom.us" in rendered.text, "youtube.com/watch" in rendered.text)
    assert links == (
        {"cancelled": False, "recording": False}.get(notice, True),
        notice == "recording",
    )


def test_a_reminder_with_another_name_falls_back_to_the_default_template() -> None:
    renderer = Renderer(load_settings({"CHANNELS": "discord", "DISCORD_WEBHOOK_URL": REAL}))
    assert renderer.resolve("discord", "weekly", "txt") == "discord/default.txt.j2"
    assert renderer.check_syntax() == []


@pytest.mark.parametrize("notice", ["rescheduled", "cancelled", "reinstated"])
def test_a_repeated_change_says_which_update_it_is(notice: str) -> None:
    first, second = _render(notice).text, _render(notice, number=2).text
    assert first != second and "(update 2)" in second


def test_meeting_links_are_left_out_where_the_channel_is_public() -> None:
    text = _render("announce", MEETING_LINK_CHANNELS="email", CHANNELS="discord,email").text
    assert "zoom.us" not in text
    assert "The meeting link is in the email to the list." in text
