"""Table tests for bot.render.textlimits: worked examples of the rules, beside twitter-text's own
conformance suite (tests/test_twitter_conformance.py), which decides what X's rules are.

Cases marked "(validate.yml)" are twitter-text's own WeightedTweetsWithDiscountedEmojiCounterTest
numbers.
"""

from __future__ import annotations

import pytest

from bot.render.textlimits import (
    MAX_X_WEIGHTED_LENGTH,
    graphemes,
    mastodon_length,
    x_weighted_length,
)

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 7 code points
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
KANA_10 = "あいうえおかきくけこ"


def p(text: str, expected: int, case_id: str) -> object:
    return pytest.param(text, expected, id=case_id)


PLAIN = [
    p("", 0, "empty"),
    p("I am a Tweet", 12, "ascii"),
    p("a" * 280, 280, "exactly-280"),
    p("a" * 281, 281, "281"),
    p("line one\nline two", 17, "newline-counts-1"),
]
CJK = [
    p("故人西辞黄鹤楼", 14, "cjk-7-chars"),
    p("の" * 140, 280, "140-kana-fill-280"),  # (validate.yml)
    p("the故人西辞", 11, "latin-then-cjk"),  # 3 + 4*2
    p("，", 2, "fullwidth-comma"),
    p("한국어", 6, "hangul-syllables"),
]
LIGHT_RANGES = [
    p("café naïve", 10, "latin-1"),
    p("Привет", 6, "cyrillic"),
    p("שלום", 4, "hebrew"),
    p("नमस्ते", 6, "devanagari-6-code-points"),  # न म स ् त े
    p("\u10ff", 1, "u10ff-last-light"),
    p("\u1100", 2, "u1100-hangul-jamo-heavy"),
    p("\u2000\u200d", 2, "u2000-u200d-light"),
    p("\u200e", 2, "u200e-lrm-heavy"),
    p("\u2010\u201f\u2032\u2037", 4, "general-punctuation-light"),
    p("\u2020\u2038", 4, "dagger-caret-heavy"),
    # “ quoted ” space – space dash = 1+6+1+1+1+1+4; the ellipsis U+2026 is outside every range.
    p("“quoted” – dash…", 17, "quotes-dash-ellipsis"),
]
EMOJI = [
    p("😀", 2, "single"),
    p("Hi 😀!", 6, "in-text"),
    p("👍🏽", 2, "skin-tone"),
    p(FAMILY, 2, "zwj-family"),
    p("🏳️‍🌈", 2, "zwj-rainbow-flag"),
    p("🇯🇵", 2, "flag"),
    p("🇯🇵🇺🇸", 4, "two-flags"),
    p(ENGLAND, 2, "tag-flag"),
    p("1️⃣", 2, "keycap"),
    p("#⃣", 2, "keycap-without-vs16"),
    p("❤️", 2, "heart-vs16"),
    p("©", 1, "bare-copyright-is-text"),  # U+00A9 is in the light range, not an emoji
    p("©️", 2, "copyright-vs16-is-emoji"),
    p("H🐱☺" + FAMILY, 7, "mixed"),  # (validate.yml) 1 + 2 + 2 + 2
    p("🙋🏽👨‍🎤", 4, "skin-tone-and-zwj"),  # (validate.yml)
]
URLS = [
    p("Hi http://test.co", 26, "short-url"),  # (validate.yml)
    p("https://example.com/a/very/long/path/that/goes/on/and/on?with=query&and=more", 23, "long"),
    # (validate.yml) "285 chars-" 10 + space + url 23 + space + 24 * 11
    p("285 chars- http://www.twitter.com/jack " + "xxxxxxxxxx-" * 24, 299, "url-in-middle"),
    p("https://www.twitter.com/aloha " * 10, 240, "ten-urls"),  # (validate.yml) 10 * (23 + 1)
    p("a https://x.com b https://y.org", 51, "two-urls"),  # 2 + 23 + 3 + 23
    p("HTTPS://WWW.EXAMPLE.COM", 23, "upper-case"),
    p("http://☃.net/", 23, "unicode-host"),
    p("example.com", 23, "bare-domain"),
    p("www.example.com/reading-list", 23, "bare-domain-path"),
    p("Visit example.com today", 35, "bare-in-text"),  # 6 + 23 + 6
    p("t.co", 23, "bare-special-cctld"),
    p("foo.co.jp", 23, "bare-three-labels"),
    p("foo.jp/bar", 23, "bare-cctld-with-path"),
    # extract.yml "Extract short URLs without protocol on ccTLD domains without path": X counts
    # a bare two-label ccTLD domain as a URL too, even when it is a file name.
    p("foo.jp", 23, "bare-two-label-cctld"),
    p("setup.py", 23, "two-label-cctld-filename"),
    p("bit.ly", 23, "bare-short-link-host"),
    p("example.com?q=1", 27, "bare-no-path-ends-at-domain"),  # 23 + "?q=1"
    p("book.mobi", 23, "file-like-gtld"),  # mobi is a gTLD in X's list
    p("(http://example.com/foo)", 25, "in-parentheses"),
    p("(see example.com)", 29, "bare-in-parentheses"),  # 5 + 23 + 1
    p("https://en.wikipedia.org/wiki/Primer_(film)", 23, "balanced-parens"),
    p("Read https://example.com/foo.", 29, "trailing-period-is-text"),  # 5 + 23 + 1
    p("https://" + "a" * 63 + ".com", 23, "63-char-label"),
    p("https://" + "a" * 64 + ".com/foo", 80, "64-char-label-is-text"),  # 8 + 64 + 8
    p("randomurl" * 7 + "s.com", 68, "bare-64-char-label"),  # (validate.yml)
    # (validate.yml) 120 kana (240) + space + http:// (7) + 53-kana host, punycode 64 > 63: text.
    p(KANA_10 * 12 + " http://" + KANA_10 * 5 + "あいう.com", 358, "idn-label-too-long"),
    p(KANA_10 * 12 + " http://" + KANA_10 * 5 + "あい.com", 264, "idn-label-63"),  # 240+1+23
]
NOT_URLS = [
    p("3.14", 4, "decimal"),
    p("e.g.", 4, "abbreviation"),
    p("file.txt", 8, "filename"),
    p("example.comx", 12, "tld-runs-on"),
    p("user@example.com", 16, "email"),
    p("ftp://example.com", 17, "ftp"),  # bare domain after "/" is not a URL
    p("http://localhost:8000", 21, "no-tld"),
    p("xhttp://example.com", 19, "scheme-after-letter"),
]
NFC = [
    p("e\u0301", 1, "decomposed-e-acute"),
    p("\u00c1B", 2, "composed-a-acute"),  # (validate.yml)
    p("A\u0301B", 2, "decomposed-a-acute"),
    p("A\ufb2c", 4, "hebrew-decomposes-to-3"),  # (validate.yml) U+FB2C is excluded from NFC
]


@pytest.mark.parametrize(("text", "expected"), PLAIN + CJK + LIGHT_RANGES)
def test_x_weighted_length_text(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


@pytest.mark.parametrize(("text", "expected"), EMOJI)
def test_x_weighted_length_emoji(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


@pytest.mark.parametrize(("text", "expected"), URLS + NOT_URLS)
def test_x_weighted_length_urls(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


@pytest.mark.parametrize(("text", "expected"), NFC)
def test_x_weighted_length_normalises_to_nfc(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


def test_x_limit_constant() -> None:
    assert MAX_X_WEIGHTED_LENGTH == 280
    assert x_weighted_length("の" * 141) > MAX_X_WEIGHTED_LENGTH


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        p("", 0, "empty"),
        p("hello", 5, "ascii"),
        p(FAMILY, 1, "zwj-family"),
        p(FAMILY + " ok", 4, "family-then-text"),
        p("👍🏽", 1, "skin-tone"),
        p("🇯🇵🇺🇸", 2, "two-flags"),
        p("1️⃣", 1, "keycap"),
        p("e\u0301", 1, "combining-acute"),
        p("a\u0308\u0301", 1, "two-combining-marks"),
        p("\u1100\u1161\u11a8", 1, "hangul-jamo-syllable"),
        p("\r\n", 1, "crlf"),
        p("故人", 2, "cjk-not-weighted"),
    ],
)
def test_graphemes(text: str, expected: int) -> None:
    assert graphemes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        p("hello", 5, "ascii"),
        p("日本語", 3, "cjk-not-weighted"),
        p("https://example.com", 23, "short-url-still-23"),  # 19 characters, counted as 23
        p("Read https://example.com/a/very/long/path/to/the/list ok", 31, "long-url"),  # 5+23+3
        p("example.com", 11, "bare-domain-counted-in-full"),
        p("cc @alice@example.social thanks", 16, "remote-mention"),  # 3 + "@alice" 6 + 7
        p("@bob hi", 7, "local-mention"),
        p("email me@example.com", 20, "email-is-not-a-mention"),
    ],
)
def test_mastodon_length(text: str, expected: int) -> None:
    assert mastodon_length(text) == expected
