"""X's own rules for counting a post: every case of twitter-text's conformance suite that
decides a length (v3 weighted, directional markers, invalid characters) or finds a URL
(urls, urls_with_indices, urls_with_directional_markers, tco_urls_with_params, every TLD).

`.venv/bin/python -m tests.conformance.twitter_text` prints the cases and passes per section.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.render import x_tlds
from tests.conformance.twitter_text import HERE, Case, all_cases, check

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance_case(case: Case) -> None:
    want, got = check(case)
    assert got == want, case.text


def test_the_bot_knows_exactly_the_tlds_of_the_suite() -> None:
    tests = yaml.safe_load((HERE / "tlds.yml").read_text("utf-8"))["tests"]
    for section, names in (("country", x_tlds.COUNTRY), ("generic", x_tlds.GENERIC)):
        listed = [c["text"].split("://", 1)[1].rsplit(".", 1)[1] for c in tests[section]]
        assert names == listed, section


def test_the_vendored_files_say_where_they_come_from() -> None:
    source = (Path(HERE) / "SOURCE").read_text()
    assert "github.com/twitter/twitter-text" in source and "30e2430d" in source
    assert "Apache License" in (Path(HERE) / "LICENSE").read_text()
    assert len(CASES) == 22 + 2 + 108 + 1574
