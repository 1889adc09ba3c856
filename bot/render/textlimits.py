"""Post lengths as X, Bluesky and Mastodon count them.

X (``x_weighted_length``) follows twitter-text's ``parseTweet`` with config v3: the text is
NFC-normalised; code points in U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F and U+2032-U+2037
weigh 1, every other code point (CJK, fullwidth, astral...) weighs 2; each whole emoji sequence
(ZWJ sequence, skin tone, flag, tag flag, keycap, VS16 form) weighs 2; each URL weighs 23.
URLs are the ones twitter-text's extractor finds (``bot.render.xurls``, with its full TLD list);
a post that holds U+FFFE, U+FEFF or U+FFFF is refused whatever its length
(``x_invalid_character``). The vendored conformance suite (tests/conformance/twitter-text)
checks it case by case. Not implemented: twemoji's fixed list (any pictograph ZWJ chain counts 2
here).

Bluesky (``graphemes``) counts extended grapheme clusters, as given, without normalising.

Mastodon (``mastodon_length``) mirrors StatusLengthValidator, which uses the same extractor with
URLs without a scheme left as text: each http(s) URL counts 23, a mention counts as ``@user``
and overlapping entities keep the earlier one. Difference: it counts code points as specified,
but the server counts grapheme clusters (so emoji and combining marks count more here, never
less).
"""

from __future__ import annotations

import unicodedata
from typing import Final

import regex  # type: ignore[import-untyped, unused-ignore]

from bot.render.xurls import extract_urls, has_invalid_characters

__all__ = [
    "MAX_X_WEIGHTED_LENGTH",
    "URL_LENGTH",
    "graphemes",
    "mastodon_length",
    "x_invalid_character",
    "x_weighted_length",
]

MAX_X_WEIGHTED_LENGTH: Final = 280
URL_LENGTH: Final = 23
_SCALE: Final = 100
_DEFAULT_WEIGHT: Final = 200
_LIGHT_RANGES: Final = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

# One emoji "element": a pictograph (bare (c)/(R) are text, as in twitter-text) with optional
# VS16, skin tone and tag sequence (England's flag); elements chain with ZWJ.
_PICT = (
    r"(?:[\u00a9\u00ae]\ufe0f|(?![\u00a9\u00ae])\p{Extended_Pictographic}\ufe0f?"
    r"\p{Emoji_Modifier}?|\p{Emoji_Modifier})(?:[\U000e0020-\U000e007e]+\U000e007f)?"
)
_EMOJI: Final = regex.compile(
    r"[#*0-9]\ufe0f?\u20e3|\p{Regional_Indicator}{2}|" + _PICT + r"(?:\u200d" + _PICT + ")*"
)
_GRAPHEME: Final = regex.compile(r"\X")
_MASTODON_MENTION: Final = regex.compile(
    r"(?<![=/\w])@([a-z0-9_]+(?:[a-z0-9_.\-]+[a-z0-9_]+)?)(?:@[\w.\-]+\w)?", regex.IGNORECASE
)


def _char_weight(char: str) -> int:
    code = ord(char)
    if any(low <= code <= high for low, high in _LIGHT_RANGES):
        return _SCALE
    return _DEFAULT_WEIGHT


def x_weighted_length(text: str) -> int:
    """Return the length of a post as X counts it (twitter-text v3 weighted length)."""
    text = unicodedata.normalize("NFC", text)
    url_ends = {url.start: url.end for url in extract_urls(text)}
    total = 0
    i = 0
    while i < len(text):
        if i in url_ends:
            total += URL_LENGTH * _SCALE
            i = url_ends[i]
            continue
        emoji = _EMOJI.match(text, i)
        if emoji is not None:
            total += _DEFAULT_WEIGHT
            i = emoji.end()
            continue
        total += _char_weight(text[i])
        i += 1
    return total // _SCALE


def x_invalid_character(text: str) -> str | None:
    """The first character X refuses in a post (U+FFFE, U+FEFF, U+FFFF), as U+XXXX, or None."""
    text = unicodedata.normalize("NFC", text)
    if not has_invalid_characters(text):
        return None
    bad = next(c for c in text if c in "\ufffe\ufeff\uffff")
    return f"U+{ord(bad):04X}"


def graphemes(text: str) -> int:
    """Return the number of extended grapheme clusters (Bluesky's unit for its 300 limit)."""
    return len(_GRAPHEME.findall(text))


def mastodon_length(text: str) -> int:
    """Return Mastodon's count: http(s) URLs 23, ``@user@domain`` as ``@user``, else code points."""
    entities = [(u.start, u.end, URL_LENGTH) for u in extract_urls(text, without_protocol=False)]
    for m in _MASTODON_MENTION.finditer(text):
        entities.append((m.start(), m.end(), 1 + len(m[1])))
    total = len(text)
    last_end = 0
    for start, end, counted in sorted(entities):
        if start < last_end:
            continue
        total += counted - (end - start)
        last_end = end
    return total
