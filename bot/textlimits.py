"""Post lengths as X, Bluesky and Mastodon count them.

X (``x_weighted_length``) follows twitter-text's ``parseTweet`` with config v3: the text is
NFC-normalised; code points in U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F and U+2032-U+2037
weigh 1, every other code point (CJK, fullwidth, astral...) weighs 2; each whole emoji sequence
(ZWJ sequence, skin tone, flag, tag flag, keycap, VS16 form) weighs 2; each URL weighs 23.

URLs follow twitter-text's extractor (``extractUrlsWithIndices``), in this subset:

* ``http://`` / ``https://`` URLs (case-insensitive) whose host is dot-separated labels (letters,
  digits, symbols, inner ``-``/``_``) ending in an alphabetic or ``xn--`` TLD. Any such TLD is
  accepted: X knows every IANA TLD, so this differs only for made-up ones.
* Bare ASCII domains whose TLD is in ``_GTLDS`` (a common subset of X's list) or ``_CCTLDS`` (all
  ASCII ccTLDs), not preceded by ``-_./`` (so no ``ftp://`` hosts). As in twitter-text, a
  two-label ccTLD domain with no path (``setup.py``, ``foo.jp``) is not a URL unless the ccTLD is
  ``co``/``tv`` (``t.co``), and a bare URL without a path ends at its domain (``?q`` is text).
* Neither may follow a letter, digit, ``@``, ``$`` or ``#``; the TLD may not run on into
  ``[0-9a-z@+-]``. Then an optional ``:port``, a path (twitter-text's characters, balanced
  parentheses, must end in ``[a-z0-9+=_#/-]``/``)``, so trailing ``.``/``,``/``!`` stay text) and
  a query. A host label over 63 characters (after punycode) or a URL over 4096 is not a URL.

So ``3.14``, ``e.g.``, ``file.txt``, ``user@example.com`` and ``http://localhost`` are text, and
as in twitter-text a path stops at letters other than Latin/Cyrillic (``/wiki/日本``: 日本 is text).
Not implemented: IP-address hosts (X's extractor ignores them too), the t.co slug rule, X's other
~1400 gTLDs for bare domains (such a domain counts as plain text, which undercounts when it is
shorter than 23), and twemoji's fixed list: any pictograph ZWJ chain counts 2 here.

Bluesky (``graphemes``) counts extended grapheme clusters, as given, without normalising.

Mastodon (``mastodon_length``) mirrors StatusLengthValidator: only URLs with a scheme count 23
(bare domains count in full), a mention counts as ``@user`` and overlapping entities keep the
earlier one. Differences: it counts code points as specified, but the server counts grapheme
clusters (so emoji and combining marks count more here, never less); the server also shortens
dat/ipfs/gemini... URLs and keeps non-Latin path letters in the URL, which end the URL here.
"""

from __future__ import annotations

import unicodedata
from typing import Final

import regex  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "MAX_X_WEIGHTED_LENGTH",
    "URL_LENGTH",
    "graphemes",
    "mastodon_length",
    "x_weighted_length",
]

MAX_X_WEIGHTED_LENGTH: Final = 280
URL_LENGTH: Final = 23
_SCALE: Final = 100
_DEFAULT_WEIGHT: Final = 200
_LIGHT_RANGES: Final = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_MAX_URL_LENGTH: Final = 4096
_MAX_LABEL_LENGTH: Final = 63

# Every entry is in twitter-text's gTLD list; zip/mov/mobi/java/pub/docs are there on purpose,
# since X counts "book.mobi" or "notes.zip" as a 23-character URL.
_GTLD_NAMES = """
    com net org edu gov mil int info biz name pro mobi aero asia cat coop jobs museum tel travel
    xxx app dev blog xyz online site tech store shop art club top news live page link wiki social
    space website world today email cloud design digital network media studio agency life fun one
    ninja codes tools software systems academy events solutions services company center group guru
    photography photos team tips zone church community foundation school university education
    institute book gle google zip mov java pub docs
"""
_CCTLD_NAMES = """
    ac ad ae af ag ai al am an ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo
    bq br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm
    do dz ec ee eg eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs
    gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp
    kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms
    mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps
    pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st su sv sx sy sz
    tc td tf tg th tj tk tl tm tn to tp tr tt tv tw tz ua ug uk um us uy uz va vc ve vg vi vn vu
    wf ws ye yt za zm zw
"""
_GTLDS: Final = frozenset(_GTLD_NAMES.split())
_CCTLDS: Final = frozenset(_CCTLD_NAMES.split())
_SHORT_CCTLDS: Final = _CCTLDS - {"co", "tv"}  # "foo.jp" is text, "t.co" a URL

_TLD_END = r"(?![0-9a-z@+\-])"
_LIST_TLD = "(?:" + "|".join(sorted(_GTLDS | _CCTLDS, key=len, reverse=True)) + ")" + _TLD_END
_ANY_TLD = r"(?:xn--[a-z0-9\-]+|[^\W\d_]{2,63})" + _TLD_END
# A scheme URL's host character: not whitespace, punctuation, ASCII symbol or a non-character.
_HC = r"[^\s\p{P}$+<=>^`|~\ufffe\ufeff\uffff]"
_SCHEME_HOST = rf"(?:{_HC}(?:[\-_]*{_HC})*\.)*{_HC}(?:-*{_HC})*\.{_ANY_TLD}"
_ASCII_LABEL = r"[a-z0-9](?:-*[a-z0-9])*"
_BARE_HOST = rf"(?:{_ASCII_LABEL}\.)+{_LIST_TLD}"
# Latin accents and Cyrillic: the letters twitter-text allows in URL paths.
_PATH_LETTERS = r"\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0253\u0254\u0256\u0257\u0259\u025b\u0263"
_PATH_LETTERS += r"\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff\u0400-\u04ff"
_PATH_CHAR = rf"[a-z0-9!*';:=+,.$/%#\[\]\-\u2013_~@|&{_PATH_LETTERS}]"
_PATH_END = rf"[+\-a-z0-9=_#/{_PATH_LETTERS}]"
_PARENS = rf"\((?:{_PATH_CHAR}+|{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*)\)"
_URL: Final = regex.compile(
    r"(?<![a-z0-9@\uff20$#\uff03\ufffe\ufeff\uffff])"
    rf"(?:(?P<scheme>https?://)(?P<host>{_SCHEME_HOST})|(?<![\-_./])(?P<bare>{_BARE_HOST}))"
    r"(?::[0-9]+)?"
    rf"(?P<path>/(?:(?:{_PATH_CHAR}|{_PARENS})*(?:{_PATH_END}|{_PARENS}))?)?"
    r"(?:\?[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9\-_&=#/])?",
    regex.IGNORECASE,
)

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


def _to_ascii_label(label: str) -> str:
    return label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")


def _url_spans(text: str, *, bare: bool) -> list[tuple[int, int]]:
    """Return (start, end) of each URL found; scheme-less ones only if bare."""
    if "." not in text:
        return []
    spans: list[tuple[int, int]] = []
    for m in _URL.finditer(text):
        host: str = m["host"] or m["bare"]
        ascii_labels = [_to_ascii_label(label) for label in host.split(".")]
        if any(len(label) > _MAX_LABEL_LENGTH for label in ascii_labels):
            continue
        url_length = len(m[0]) - len(host) + len(".".join(ascii_labels))
        if len(m["scheme"] or "https://") + url_length > _MAX_URL_LENGTH:
            continue
        if m["scheme"]:
            spans.append((m.start(), m.end()))
        elif not bare:
            continue
        elif m["path"] is not None:
            spans.append((m.start(), m.end()))
        elif len(ascii_labels) > 2 or ascii_labels[-1].lower() not in _SHORT_CCTLDS:
            spans.append((m.start(), m.end("bare")))
    return spans


def _char_weight(char: str) -> int:
    code = ord(char)
    if any(low <= code <= high for low, high in _LIGHT_RANGES):
        return _SCALE
    return _DEFAULT_WEIGHT


def x_weighted_length(text: str) -> int:
    """Return the length of a post as X counts it (twitter-text v3 weighted length)."""
    text = unicodedata.normalize("NFC", text)
    url_ends = dict(_url_spans(text, bare=True))
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


def graphemes(text: str) -> int:
    """Return the number of extended grapheme clusters (Bluesky's unit for its 300 limit)."""
    return len(_GRAPHEME.findall(text))


def mastodon_length(text: str) -> int:
    """Return Mastodon's count: http(s) URLs 23, ``@user@domain`` as ``@user``, else code points."""
    entities = [(start, end, URL_LENGTH) for start, end in _url_spans(text, bare=False)]
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
