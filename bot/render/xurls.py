"""URLs as X finds them in a post: twitter-text's `extractUrlsWithIndices`, written here.

X counts every URL it finds as 23 characters, so the post length depends on finding exactly the
URLs X finds: with a scheme (`https://…`) or bare (`bit.ly`, `zoom.us`, `setup.py`: the TLD
decides, not what the author meant), on any of the TLDs of twitter-text's list
(`bot/render/x_tlds.py`, internationalised ones included), with its rules for what may come
before a URL, which characters a host (Latin-accented letters in bare ones), a path and a query
may hold, where a path ends, t.co slugs (at most 40 characters, nothing after the slug but a
query), punycode labels (an `xn--` domain may hold no other non-ASCII letter; each label at most
63 characters once encoded), and a 4,096-character limit. The vendored conformance suite
(tests/conformance/twitter-text) checks every case of its URL sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import regex  # type: ignore[import-untyped, unused-ignore]

from bot.render.x_tlds import COUNTRY, GENERIC

__all__ = ["XUrl", "extract_urls", "has_invalid_characters"]

MAX_URL_LENGTH: Final = 4096
MAX_TCO_SLUG_LENGTH: Final = 40
MAX_LABEL_LENGTH: Final = 63
DEFAULT_PROTOCOL: Final = "https://"

INVALID_CHARS: Final = "\ufffe\ufeff\uffff"
_DIRECTIONAL: Final = "\u202a-\u202e\u061c\u200e\u200f\u2066\u2067\u2068\u2069"
_SPACES: Final = "\x09-\x0d\x20\x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PUNCT: Final = r"!'#%&()*+,\\\-./:;<=>?@\[\]^_{|}~$"
_LATIN_ACCENTS: Final = (
    r"\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b"
    r"\u0263\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)
_CYRILLIC: Final = r"\u0400-\u04ff"
_TLD_END: Final = r"(?=[^a-z0-9@+\-]|\Z)"


def _alternation(names: list[str]) -> str:
    # Longest first, so that a TLD that is the start of another (co, com) cannot shadow it.
    return "|".join(regex.escape(n) for n in sorted(set(names), key=len, reverse=True))


_DOMAIN_CHAR = rf"[^{_PUNCT}{_SPACES}{INVALID_CHARS}{_DIRECTIONAL}]"
_SUBDOMAIN = rf"(?:(?:{_DOMAIN_CHAR}(?:[_\-]|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\.)"
_DOMAIN_NAME = rf"(?:(?:{_DOMAIN_CHAR}(?:-|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\.)"
_GTLD = rf"(?:(?:{_alternation(GENERIC)}){_TLD_END})"
_CCTLD = rf"(?:(?:{_alternation(COUNTRY)}){_TLD_END})"
_PUNYCODE = r"(?:xn--[\-0-9a-z]+)"
_DOMAIN = rf"(?:{_SUBDOMAIN}*{_DOMAIN_NAME}(?:{_GTLD}|{_CCTLD}|{_PUNYCODE}))"

_PRECEDING = rf"(?:[^a-z0-9@\uff20$#\uff03{INVALID_CHARS}]|[{_DIRECTIONAL}]|^)"
_PATH_CHAR = rf"[a-z{_CYRILLIC}0-9!*';:=+,.$/%#\[\]\-\u2013_~@|&{_LATIN_ACCENTS}]"
_PARENS = rf"\((?:{_PATH_CHAR}+|(?:{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*))\)"
_PATH_END = rf"(?:[+\-a-z{_CYRILLIC}0-9=_#/{_LATIN_ACCENTS}]|(?:{_PARENS}))"
_PATH = rf"(?:(?:{_PATH_CHAR}*(?:{_PARENS}{_PATH_CHAR}*)*{_PATH_END})|(?:@{_PATH_CHAR}+/))"
_QUERY_CHAR = r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]"
_QUERY_END = r"[a-z0-9\-_&=#/]"

_FLAGS: Final = regex.IGNORECASE | regex.VERSION0
_EXTRACT: Final = regex.compile(
    rf"(?P<before>{_PRECEDING})"
    rf"(?P<url>(?P<protocol>https?://)?(?P<domain>{_DOMAIN})(?::[0-9]+)?"
    rf"(?P<path>/{_PATH}*)?(?:\?{_QUERY_CHAR}*{_QUERY_END})?)",
    _FLAGS,
)
_ASCII_DOMAIN: Final = regex.compile(
    rf"(?:(?:[\-a-z0-9{_LATIN_ACCENTS}]+)\.)+(?:{_GTLD}|{_CCTLD}|{_PUNYCODE})", _FLAGS
)
_TCO: Final = regex.compile(rf"https?://t\.co/([a-z0-9]+)(?:\?{_QUERY_CHAR}*{_QUERY_END})?", _FLAGS)
_NO_PROTOCOL_BEFORE: Final = regex.compile(r"[\-_./]\Z")
_INVALID: Final = regex.compile(f"[{INVALID_CHARS}]")


@dataclass(frozen=True)
class XUrl:
    """One URL X would find: its text and [start, end) code point indices in the post."""

    url: str
    start: int
    end: int


def has_invalid_characters(text: str) -> bool:
    """True when the text holds a character X refuses in a post (U+FFFE, U+FEFF, U+FFFF)."""
    return _INVALID.search(text) is not None


def _to_ascii(domain: str) -> str | None:
    """The domain with each label punycode-encoded, or None when X would not accept it."""
    if domain[:4].lower() == "xn--" and _ASCII_DOMAIN.fullmatch(domain) is None:
        return None  # a punycode-encoded domain cannot hold non-ASCII characters
    labels = []
    for label in domain.split("."):
        try:
            ascii_label = label if label.isascii() else "xn--" + label.encode("punycode").decode()
        except UnicodeError:
            return None
        if not 1 <= len(ascii_label) <= MAX_LABEL_LENGTH:
            return None
        labels.append(ascii_label)
    return ".".join(labels)


def _valid(url: str, protocol: str, domain: str) -> bool:
    encoded = _to_ascii(domain)
    if not encoded:
        return False
    return len(protocol) + len(url) - len(domain) + len(encoded) <= MAX_URL_LENGTH


def extract_urls(text: str, *, without_protocol: bool = True) -> list[XUrl]:
    """Every URL X finds in `text`, in order (bare domains only with `without_protocol`)."""
    if "." not in text if without_protocol else ":" not in text:
        return []
    found: list[XUrl] = []
    for match in _EXTRACT.finditer(text):
        url, protocol, domain = match["url"], match["protocol"], match["domain"]
        start, end = match.start("url"), match.end("url")
        if not _valid(url, protocol or DEFAULT_PROTOCOL, domain):
            continue
        if protocol:
            tco = _TCO.match(url)
            if tco is not None:
                if len(tco[1]) > MAX_TCO_SLUG_LENGTH:
                    continue
                url, end = tco[0], start + len(tco[0])  # nothing after a t.co slug but a query
            found.append(XUrl(url, start, end))
            continue
        if not without_protocol or _NO_PROTOCOL_BEFORE.search(match["before"]):
            continue
        found.extend(_bare(url, domain, start, end, match["path"]))
    return found


def _bare(url: str, domain: str, start: int, end: int, path: str | None) -> list[XUrl]:
    """The ASCII (or Latin-accented) domains inside a URL found without a protocol; the last
    one carries the path and query that followed it."""
    urls: list[XUrl] = []
    position = 0
    for ascii_match in _ASCII_DOMAIN.finditer(domain):
        ascii_domain = ascii_match[0]
        first = domain.index(ascii_domain, position)
        position = first + len(ascii_domain)
        urls.append(XUrl(ascii_domain, start + first, start + position))
    if urls and path:
        last = urls[-1]
        urls[-1] = XUrl(url.replace(domain, last.url, 1), last.start, end)
    return urls
