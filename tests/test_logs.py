"""Logs: one event per line, JSON when asked, secrets redacted whatever logs them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.logs import JsonFormatter, Redactor


def test_json_logs_are_one_object_per_line_with_the_delivery_fields(tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    (tmp_path / "s.yaml").write_text(
        f"sessions:\n  - id: mdlm\n    title: MDLM\n    starts_at: {start:%Y-%m-%dT%H:%M:%SZ}\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "LOG_FORMAT": "json",
        "REMINDERS": "announce=7d",
    }
    run = [sys.executable, "-m", "bot"]
    subprocess.run([*run, "sessions", "import", "s.yaml"], cwd=tmp_path, env=env, check=True)
    now = f"{start - timedelta(days=6):%Y-%m-%dT%H:%M:%SZ}"
    result = subprocess.run(
        [*run, "send", "--json", "--now", now, "-v"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records, result.stderr
    sent = [r for r in records if r.get("event") == "delivery_sent"]
    assert [(r["session"], r["notice"], r["channel"], r["level"]) for r in sent] == [
        ("mdlm", "announce", "console", "INFO")
    ]
    assert any(r.get("event") == "pass_planned" and r["level"] == "DEBUG" for r in records)


def test_redactor_replaces_secrets_in_messages_arguments_and_extras() -> None:
    record = logging.LogRecord(
        "oauthlib", logging.DEBUG, __file__, 1, "signing with %s", ("key-ABCDEF",), None
    )
    record.header = "OAuth oauth_consumer_key=key-ABCDEF"
    assert Redactor(["key-ABCDEF"]).filter(record)
    line = JsonFormatter().format(record)
    assert "key-ABCDEF" not in line
    assert json.loads(line)["message"] == "signing with ***"
    assert json.loads(line)["header"] == "OAuth oauth_consumer_key=***"
