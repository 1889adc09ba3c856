"""The `group:` block of a session file (SPEC §4): validation with field paths, stored all or
nothing with the sessions, replaced whole by the next file that has one, exported back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from bot.domain import GroupInfo, GroupLinks, Organizer
from bot.errors import DataError
from bot.sources.sessions_file import export_sessions, parse_session_file
from bot.store.imports import import_sessions, load_all_sessions
from bot.store.site import load_site, stored_group
from tests.support.cli import BotCli

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SESSION = {"id": "s1", "title": "A talk", "starts_at": "2026-12-14 10:00", "timezone": "UTC"}
URL_RULE = "must be an http(s) URL with a host and no spaces"
GROUP = {
    "name": "Diffusion LLM Reading Group",
    "about": "Diffusion LLMs are faster.\n\nEach session is recorded.\n",
    "organizers": [
        {"name": "Ada Example", "bio": "Ph.D. from somewhere.", "url": "https://example.org/ada"},
        {"name": "Grace Example", "photo": "https://example.org/grace.jpg"},
    ],
    "links": {
        "email_list": "https://groups.google.com/g/example",
        "x": "https://x.com/example",
        "youtube": "https://www.youtube.com/@example",
        "bluesky": "https://bsky.app/profile/example.org",
        "mastodon": "https://mastodon.social/@example",
    },
}


def file_with(group: object, sessions: list[object] | None = None) -> str:
    return yaml.safe_dump(
        {"group": group, "sessions": [SESSION] if sessions is None else sessions},
        sort_keys=False,
        allow_unicode=True,
    )


def problems(text: str) -> list[str]:
    with pytest.raises(DataError) as caught:
        parse_session_file(text, "f.yaml")
    return caught.value.problems


def test_the_group_block_is_read_into_its_fields() -> None:
    found = parse_session_file(file_with(GROUP), "f.yaml")
    assert found.group == GroupInfo(
        name="Diffusion LLM Reading Group",
        about="Diffusion LLMs are faster.\n\nEach session is recorded.",
        organizers=(
            Organizer("Ada Example", "Ph.D. from somewhere.", "https://example.org/ada"),
            Organizer("Grace Example", photo="https://example.org/grace.jpg"),
        ),
        links=GroupLinks(
            email_list="https://groups.google.com/g/example",
            x="https://x.com/example",
            bluesky="https://bsky.app/profile/example.org",
            mastodon="https://mastodon.social/@example",
            youtube="https://www.youtube.com/@example",
        ),
    )
    assert [s.id for s in found.sessions] == ["s1"]
    assert parse_session_file(yaml.safe_dump({"sessions": []}), "f.yaml").group is None


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("Our group", "group: must be a mapping with `name` (Our group)"),
        (None, "group: must be a mapping with `name` (null)"),
        ({"nam": "x"}, "group.nam: unknown field (x)"),
        ({"name": 3}, "group.name: must be text (put it in quotes) (3)"),
        (
            {"name": "a\x07b"},
            "group.name: must not hold control characters (U+0007 found) (a\\x07b)",
        ),
        (
            {"about": "x\x00"},
            "group.about: must not hold control characters (U+0000 found) (x\\x00)",
        ),
        ({"organizers": "Ada"}, "group.organizers: must be a list (Ada)"),
        ({"organizers": [{"bio": "b"}]}, "group.organizers[0].name: missing"),
        (
            {"organizers": [{"name": "A", "twitter": "@a"}]},
            "group.organizers[0].twitter: unknown field (@a)",
        ),
        (
            {"organizers": [{"name": "A"}, {"name": "B", "photo": "javascript:alert(1)"}]},
            f"group.organizers[1].photo: {URL_RULE} (javascript:alert(1))",
        ),
        (
            {"organizers": [{"name": "A", "url": "ftp://x.org"}]},
            f"group.organizers[0].url: {URL_RULE} (ftp://x.org)",
        ),
        (
            {"links": ["https://x.com/a"]},
            "group.links: must be a mapping with `email_list` (a list)",
        ),
        (
            {"links": {"tiktok": "https://t.example"}},
            "group.links.tiktok: unknown field (https://t.example)",
        ),
        ({"links": {"x": "x.com/example"}}, f"group.links.x: {URL_RULE} (x.com/example)"),
        (
            {"links": {"email_list": "https://a b.org"}},
            f"group.links.email_list: {URL_RULE} (https://a b.org)",
        ),
    ],
)
def test_each_group_error_names_its_field_and_value(group: object, expected: str) -> None:
    assert problems(file_with(group)) == [f"f.yaml: {expected}"]


def test_group_and_session_errors_are_reported_together() -> None:
    text = file_with(
        {"name": "G", "organizers": [{"url": "javascript:x"}], "links": {"x": 1}},
        [SESSION | {"title": None}],
    )
    assert problems(text) == [
        "f.yaml: group.organizers[0].name: missing",
        f"f.yaml: group.organizers[0].url: {URL_RULE} (javascript:x)",
        "f.yaml: group.links.x: must be text (put it in quotes) (1)",
        "f.yaml: sessions[0].title: missing",
    ]


def test_export_writes_the_group_block_back(engine: Engine) -> None:
    found = parse_session_file(file_with(GROUP), "f.yaml")
    import_sessions(engine, found.sessions, now=NOW, group=found.group)
    text = export_sessions(load_all_sessions(engine), stored_group(engine))
    assert text.startswith("group:\n  name: Diffusion LLM Reading Group\n")
    assert parse_session_file(text, "back.yaml") == found


def test_import_stores_the_group_and_replaces_it_whole(engine: Engine) -> None:
    first = parse_session_file(file_with(GROUP), "f.yaml")
    report = import_sessions(engine, first.sessions, now=NOW, group=first.group)
    assert report.group == "added"
    data = load_site(engine)
    assert data.group == first.group
    assert data.group_changed_at == NOW

    again = import_sessions(engine, first.sessions, now=NOW + timedelta(hours=1), group=first.group)
    assert again.group == "unchanged"
    assert load_site(engine).group_changed_at == NOW  # an unchanged block keeps its stamp

    smaller = GROUP | {"organizers": [GROUP["organizers"][1]], "links": {"x": "https://x.com/b"}}
    second = parse_session_file(file_with(smaller), "f.yaml")
    later = NOW + timedelta(days=1)
    assert import_sessions(engine, [], now=later, group=second.group).group == "updated"
    data = load_site(engine)
    assert data.group.organizers == (
        Organizer("Grace Example", photo="https://example.org/grace.jpg"),
    )
    assert data.group.links == GroupLinks(x="https://x.com/b")
    assert data.group_changed_at == later

    # A file without a group block keeps the stored one.
    assert import_sessions(engine, first.sessions, now=later, group=None).group == ""
    assert load_site(engine).group == second.group


def test_a_dry_run_reports_the_group_and_writes_nothing(engine: Engine) -> None:
    found = parse_session_file(file_with(GROUP), "f.yaml")
    report = import_sessions(engine, found.sessions, now=NOW, group=found.group, dry_run=True)
    assert (report.group, report.added) == ("added", ["s1"])
    assert stored_group(engine) is None
    assert load_all_sessions(engine) == []


@pytest.mark.slow  # real `python -m bot` processes
def test_a_file_with_a_bad_group_changes_nothing_through_the_cli(tmp_path: Path) -> None:
    bot = BotCli(tmp_path, {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"})
    good = tmp_path / "good.yaml"
    good.write_text(file_with(GROUP), encoding="utf-8")
    code, out, err = bot("sessions", "import", str(good))
    assert code == 0, err
    assert "added: the group block" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        file_with(GROUP | {"links": {"x": "javascript:alert(1)"}}, [SESSION | {"id": "s2"}]),
        encoding="utf-8",
    )
    code, out, err = bot("sessions", "import", str(bad))
    assert code == 2
    assert err.splitlines() == [f"{bad}: group.links.x: {URL_RULE} (javascript:alert(1))"]
    assert "Traceback" not in err
    code, out, _ = bot("sessions", "export")
    assert code == 0
    exported = yaml.safe_load(out)
    assert exported["group"]["links"]["x"] == "https://x.com/example"
    assert [s["id"] for s in exported["sessions"]] == ["s1"]
