"""Session files: YAML <-> sessions, all-or-nothing validation with field paths, bulk upsert."""

from __future__ import annotations

import contextlib
import gc
import re
import unicodedata
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.config import format_duration, parse_duration
from bot.domain import GROUP_LINKS, GroupInfo, GroupLinks, Organizer, Paper, SessionData, Speaker
from bot.errors import DataError

if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:  # libyaml's parser when PyYAML was built with it: several times faster
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

STATUSES = ("scheduled", "cancelled")
YEARS = (1970, 2200)  # far from datetime's limits, so no zone conversion can overflow
MAX_DURATION = timedelta(days=7)
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
)
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})  # machine-dependent or placeholders
_MISSING = object()


class _Loader(_BaseLoader):
    """A safe loader that also notes duplicate keys, which plain YAML silently lets the last win."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, key.value) in seen:
                    line = key.start_mark.line + 1
                    self.duplicates.append(f"line {line}: duplicate key ({_show(key.value)})")
                seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> date:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:  # e.g. 2025-02-30 10:00:00: keep the text, validation names the field
            return cast(date, node.value)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


class _Problems:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: list[str] = []

    def add(self, path: str, what: str, value: object = _MISSING) -> None:
        shown = "" if value is _MISSING else f" ({_show(value)})"
        self.lines.append(f"{self.filename}: {path}: {what}{shown}")


def _show(value: object) -> str:
    """A short, one-line rendering of a value for an error message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if value is None:
        return "null"
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    text = text if text.strip() else repr(text)
    return text if len(text) <= 80 else text[:79] + "…"


@dataclass(frozen=True)
class SessionFile:
    """What a session file holds: its sessions, and its `group:` block when it has one."""

    sessions: list[SessionData]
    group: GroupInfo | None = None


def parse_sessions(text: str, filename: str) -> list[SessionData]:
    """Parse and validate a session file; DataError lists every problem found in it."""
    return parse_session_file(text, filename).sessions


def parse_session_file(text: str, filename: str) -> SessionFile:
    """Parse and validate a session file with its `group:` block; DataError lists every problem."""
    problems = _Problems(filename)
    loader = _Loader(text)
    # The loaded document is a tree without reference cycles: the cyclic collector only burns
    # time on it (about 70% of a 10,000-session parse), so it is paused while loading.
    collecting = gc.isenabled()
    gc.disable()
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise DataError([f"{filename}: line {line}: {exc.problem or exc.context}"]) from exc
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", 0)
        line = text.count("\n", 0, position) + 1
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise DataError([f"{filename}: line {line}: {reason}"]) from exc
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise DataError([f"{filename}: line 1: cannot read the file ({_show(exc)})"]) from exc
    finally:
        loader.dispose()
        if collecting:
            gc.enable()
    problems.lines.extend(f"{filename}: {d}" for d in loader.duplicates)
    found = _document(doc, problems)
    if problems.lines:
        raise DataError(problems.lines)
    return found


def _document(doc: object, p: _Problems) -> SessionFile:
    if not isinstance(doc, dict):
        p.add("sessions", "the file must be a mapping with a `sessions` list", doc)
        return SessionFile([])
    for key in doc:
        if key not in ("sessions", "group"):
            p.add(_show(key), "unknown field", doc[key])
    group = _group(doc["group"], "group", p) if "group" in doc else None
    raw = doc.get("sessions", _MISSING)
    if raw is _MISSING:
        p.add("sessions", "missing: the file must be a mapping with a `sessions` list")
        return SessionFile([], group)
    if not isinstance(raw, list):
        p.add("sessions", "must be a list (write [] for none)", raw)
        return SessionFile([], group)
    return SessionFile(_sessions(raw, p), group)


def _sessions(raw: list[Any], p: _Problems) -> list[SessionData]:
    sessions: list[SessionData] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(raw):
        session = _session(item, f"sessions[{index}]", p)
        sid = item.get("id") if isinstance(item, dict) else None
        if isinstance(sid, str) and _ID.fullmatch(sid):
            if sid in first_index:
                p.add(f"sessions[{index}].id", f"duplicate of sessions[{first_index[sid]}]", sid)
            first_index.setdefault(sid, index)
        if session is not None:
            sessions.append(session)
    return sessions


Check = Callable[[Any, str, _Problems], Any]  # (value, path, problems) -> the clean value


def _control(text: str, newlines: bool) -> str | None:
    """The first control character in `text` (a newline allowed where `newlines`), as U+XXXX."""
    for char in text:
        if unicodedata.category(char) == "Cc" and not (newlines and char == "\n"):
            return f"U+{ord(char):04X}"
    return None


def _text(
    value: object, path: str, p: _Problems, required: bool = False, newlines: bool = False
) -> str | None:
    if isinstance(value, str) and value.strip():
        control = _control(value, newlines)
        if control is not None:
            p.add(path, f"must not hold control characters ({control} found)", value)
            return None
        return value.strip()
    if value is not None and not isinstance(value, str):
        p.add(path, "must be text (put it in quotes)", value)
    elif required and value is None:
        p.add(path, "missing")
    elif required:
        p.add(path, "must not be empty", value)
    return None


def _required(value: object, path: str, p: _Problems) -> str | None:
    return _text(value, path, p, required=True)


def _paragraphs(value: object, path: str, p: _Problems) -> str | None:
    return _text(value, path, p, newlines=True)


def _url(value: object, path: str, p: _Problems) -> str | None:
    text = _text(value, path, p)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or a broken IPv6 literal
        ok = False
    if not ok or any(c.isspace() or not c.isprintable() for c in text):
        p.add(path, "must be an http(s) URL with a host and no spaces", value)
        return None
    return text


def _id(value: object, path: str, p: _Problems) -> str | None:
    if value is None:
        p.add(path, "missing")
    elif not isinstance(value, str) or not _ID.fullmatch(value):
        p.add(path, "must match [a-z0-9][a-z0-9-]{0,79}", value)
    else:
        return value
    return None


def _status(value: object, path: str, p: _Problems) -> str:
    if value is not None and value not in STATUSES:
        p.add(path, "must be scheduled or cancelled", value)
    return value if isinstance(value, str) else "scheduled"


def _duration(value: object, path: str, p: _Problems) -> timedelta:
    if value is None:
        return timedelta(minutes=60)
    text = value.strip() if isinstance(value, str) else "?"
    try:
        duration = parse_duration(text.removeprefix("-"))
    except ValueError:
        p.add(path, "must be a duration like 60m or 1h30m", value)
        return timedelta(minutes=60)
    if text.startswith("-") or not duration:
        p.add(path, "must be positive", value)
    elif duration > MAX_DURATION:
        p.add(path, "must be at most 7d", value)
    elif duration % timedelta(minutes=1):
        p.add(path, "must be whole minutes", value)
    return duration


def _list(one: Check) -> Check:
    def check(value: object, path: str, p: _Problems) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            p.add(path, "must be a list", value)
            return ()
        return tuple(one(item, f"{path}[{i}]", p) for i, item in enumerate(value))

    return check


def _fields(raw: object, path: str, p: _Problems, checks: dict[str, Check], *more: str) -> (
    dict[str, Any] | None
):  # fmt: skip
    """Each checked field's clean value; reports a non-mapping and every unknown field."""
    if not isinstance(raw, dict):
        p.add(path, f"must be a mapping with `{next(iter(checks))}`", raw)
        return None
    for key, value in raw.items():
        if key not in checks and key not in more:
            p.add(f"{path}.{_show(key)}", "unknown field", value)
    return {key: check(raw.get(key), f"{path}.{key}", p) for key, check in checks.items()}


def _record(cls: Callable[..., Any], checks: dict[str, Check]) -> Check:
    def check(raw: object, path: str, p: _Problems) -> Any:
        values = _fields(raw, path, p, checks)
        return None if values is None else cls(**values)

    return check


SPEAKER_CHECKS: dict[str, Check] = {
    "name": _required,
    **dict.fromkeys(("affiliation", "x", "bluesky", "mastodon"), _text),
    "url": _url,
}
SESSION_CHECKS: dict[str, Check] = {
    "id": _id,
    "title": _required,
    "duration": _duration,
    "speakers": _list(_record(Speaker, SPEAKER_CHECKS)),
    "abstract": _paragraphs,
    "papers": _list(_record(Paper, {"title": _required, "url": _url})),
    "meeting_url": _url,
    "recording_url": _url,
    "status": _status,
}


ORGANIZER_CHECKS: dict[str, Check] = {
    "name": _required,
    "bio": _paragraphs,
    "url": _url,
    "photo": _url,
}


def _links(value: object, path: str, p: _Problems) -> GroupLinks:
    if value is None:
        return GroupLinks()
    found = _record(GroupLinks, dict.fromkeys(GROUP_LINKS, _url))(value, path, p)
    return found if isinstance(found, GroupLinks) else GroupLinks()


GROUP_CHECKS: dict[str, Check] = {
    "name": _text,
    "about": _paragraphs,
    "organizers": _list(_record(Organizer, ORGANIZER_CHECKS)),
    "links": _links,
}


def _group(raw: object, path: str, p: _Problems) -> GroupInfo | None:
    before = len(p.lines)
    values = _fields(raw, path, p, GROUP_CHECKS)
    if values is None or len(p.lines) > before:
        return None
    values["about"] = values["about"] or ""
    return GroupInfo(**values)


def _session(raw: object, path: str, p: _Problems) -> SessionData | None:
    before = len(p.lines)
    values = _fields(raw, path, p, SESSION_CHECKS, "starts_at", "timezone")
    if values is None:
        return None
    starts_at, zone = _start(cast(dict[Any, Any], raw), path, p)
    if len(p.lines) > before or starts_at is None:
        return None
    values["abstract"] = values["abstract"] or ""
    return SessionData(starts_at=starts_at, timezone=zone, **values)


def _start(raw: dict[Any, Any], path: str, p: _Problems) -> tuple[datetime | None, str | None]:
    value, tzname = raw.get("starts_at"), raw.get("timezone")
    when = _when(value, f"{path}.starts_at", p)
    if when is not None and when.tzinfo is not None and tzname is not None:
        p.add(f"{path}.timezone", "must be left out when starts_at has an offset or Z", tzname)
        return None, None
    zone = None if tzname is None else _zone(tzname, f"{path}.timezone", p)
    if when is None:
        return None, None
    if when.tzinfo is not None:
        return when.astimezone(UTC), None
    if tzname is None:
        p.add(f"{path}.starts_at", "a local time needs `timezone`, or give an offset or Z", value)
    if zone is None:
        return None, None
    local = when.replace(tzinfo=zone)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != when:
        p.add(f"{path}.starts_at", f"does not exist in {tzname}: skipped by a clock change", value)
    elif local.utcoffset() != when.replace(tzinfo=zone, fold=1).utcoffset():
        what = f"is ambiguous in {tzname}: it happens twice when clocks go back; give an offset"
        p.add(f"{path}.starts_at", what, value)
    else:
        return local.astimezone(UTC), cast(str, tzname)
    return None, None


def _zone(name: object, path: str, p: _Problems) -> ZoneInfo | None:
    if isinstance(name, str) and 0 < len(name) <= 64 and name not in _NOT_ZONES:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    p.add(path, "unknown time zone, expected an IANA name like America/New_York", name)
    return None


def _when(value: object, path: str, p: _Problems) -> datetime | None:
    if value is None:
        p.add(path, "missing")
        return None
    when = None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and _TIME.fullmatch(value.strip()):
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(value.strip())
    if when is not None:
        if YEARS[0] <= when.year <= YEARS[1]:
            return when
        p.add(path, f"must be between the years {YEARS[0]} and {YEARS[1]}", value)
        return None
    what = "needs a time of day" if isinstance(value, date) else "must be a time"
    p.add(path, f"{what} like 2025-12-15 10:00 or 2025-12-15T15:00:00Z", value)
    return None


class _Dumper(yaml.SafeDumper):
    """Writes multi-line text as literal blocks, so abstracts stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # YAML folds \r, NEL and friends into plain line breaks unless they are escaped.
    style = '"' if any(c in value for c in "\r\x85\u2028\u2029") else None
    style = "|" if style is None and "\n" in value else style
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def export_sessions(sessions: list[SessionData], group: GroupInfo | None = None) -> str:
    """The sessions (and the group block) as a YAML file in the import format
    (parse_session_file reads it back equal)."""
    doc: dict[str, Any] = {} if group is None else {"group": _export_group(group)}
    doc["sessions"] = [_export(s) for s in sessions]
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _export_group(group: GroupInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if group.name:
        doc["name"] = group.name
    if group.about:
        doc["about"] = group.about
    if group.organizers:
        doc["organizers"] = [{k: v for k, v in vars(o).items() if v} for o in group.organizers]
    links = {k: v for k, v in vars(group.links).items() if v}
    if links:
        doc["links"] = links
    return doc


def _export(s: SessionData) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": s.id, "title": s.title}
    doc.update(_export_start(s.starts_at, s.timezone))
    doc["duration"] = format_duration(s.duration)
    if s.speakers:
        doc["speakers"] = [{k: v for k, v in vars(sp).items() if v} for sp in s.speakers]
    if s.abstract:
        doc["abstract"] = s.abstract
    if s.papers:
        doc["papers"] = [{k: v for k, v in vars(pa).items() if v} for pa in s.papers]
    for key in ("meeting_url", "recording_url"):
        if getattr(s, key):
            doc[key] = getattr(s, key)
    if s.status != "scheduled":
        doc["status"] = s.status
    return doc


def _export_start(starts_at: datetime, timezone: str | None) -> dict[str, str]:
    if timezone is not None:
        local = starts_at.astimezone(ZoneInfo(timezone))
        # A time set by other means may sit in a fold; only an offset says which one.
        if local.utcoffset() == local.replace(fold=1 - local.fold).utcoffset():
            naive = local.replace(tzinfo=None)
            spec = "seconds" if naive.second or naive.microsecond else "minutes"
            spec = "microseconds" if naive.microsecond else spec
            return {"starts_at": naive.isoformat(sep=" ", timespec=spec), "timezone": timezone}
        return {"starts_at": local.isoformat()}
    return {"starts_at": starts_at.astimezone(UTC).isoformat().replace("+00:00", "Z")}
