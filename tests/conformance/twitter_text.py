"""twitter-text's conformance suite (vendored beside this file, Apache-2.0, see SOURCE), as cases.

    .venv/bin/python -m tests.conformance.twitter_text    # cases and passes per section

The sections that decide how X counts a post: the v3 weighted length (emoji discounted), the
directional-marker and invalid-character cases, every URL extraction section, and the TLD list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bot.render.textlimits import MAX_X_WEIGHTED_LENGTH, x_invalid_character, x_weighted_length
from bot.render.xurls import extract_urls

HERE = Path(__file__).resolve().parent / "twitter-text"
WEIGHTED = ("WeightedTweetsWithDiscountedEmojiCounterTest", "UnicodeDirectionalMarkerCounterTest")
URLS = ("urls", "urls_with_indices", "urls_with_directional_markers", "tco_urls_with_params")
TLDS = ("country", "generic")


@dataclass(frozen=True)
class Case:
    """One conformance case: which file and section, its description, text and expectation."""

    file: str
    section: str
    description: str
    text: str
    expected: Any

    @property
    def id(self) -> str:
        return f"{self.section}: {self.description}"


@cache
def _load(name: str) -> dict[str, list[dict[str, Any]]]:
    tests: dict[str, list[dict[str, Any]]] = yaml.safe_load((HERE / name).read_text("utf-8"))[
        "tests"
    ]
    return tests


def cases(name: str, sections: tuple[str, ...]) -> Iterator[Case]:
    """The cases of some sections of one file."""
    for section in sections:
        for raw in _load(name)[section]:
            yield Case(name, section, raw["description"], raw["text"], raw["expected"])


def weighted(text: str) -> dict[str, Any]:
    """Our answer to a weighted-length case: the length, and whether X takes the post."""
    length = x_weighted_length(text)
    valid = bool(text) and length <= MAX_X_WEIGHTED_LENGTH and x_invalid_character(text) is None
    return {"weightedLength": length, "valid": valid}


def urls(case: Case) -> Any:
    """Our answer to a URL case, in the form the section expects."""
    found = extract_urls(case.text)
    if case.expected and isinstance(case.expected[0], dict):
        return [{"url": u.url, "indices": [u.start, u.end]} for u in found]
    return [u.url for u in found]


def check(case: Case) -> tuple[Any, Any]:
    """(expected, got) for any case."""
    if case.section in WEIGHTED:
        want = case.expected
        return {"weightedLength": want["weightedLength"], "valid": want["valid"]}, weighted(
            case.text
        )
    return case.expected, urls(case)


def all_cases() -> list[Case]:
    """Every case these tests run."""
    return [
        *cases("validate.yml", WEIGHTED),
        *cases("extract.yml", URLS),
        *cases("tlds.yml", TLDS),
    ]


def report(out: Callable[[str], None] = print) -> int:
    """Print cases and passes per section; the number of failures."""
    failures = 0
    by_section: dict[tuple[str, str], list[bool]] = {}
    for case in all_cases():
        want, got = check(case)
        by_section.setdefault((case.file, case.section), []).append(want == got)
    for (file, section), results in by_section.items():
        failures += results.count(False)
        out(f"{file:<13} {section:<46} {sum(results):>5} / {len(results):<5} pass")
    return failures


if __name__ == "__main__":
    raise SystemExit(1 if report() else 0)
