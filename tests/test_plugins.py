"""Channels from other packages, found through the `bot.notifiers` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.notifiers import registry

PLUGIN = '''
from bot.notifiers.base import Notifier, Receipt
from bot.errors import ConfigError


class FileNotifier(Notifier):
    """Appends each message to the file named by FILE_CHANNEL_PATH."""

    name = "file"
    max_length = 500

    @classmethod
    def parse_config(cls, env):
        path = env.get("FILE_CHANNEL_PATH", "").strip()
        if not path:
            raise ConfigError(["FILE_CHANNEL_PATH: required by the file channel (missing)"])
        return path

    def send(self, message, now):
        with open(self.config, "a", encoding="utf-8") as handle:
            handle.write(message.key.notice + "|" + message.text.replace("\\n", " ") + "\\n")
        return Receipt(external_id="line")
'''


def _install_plugin(root: Path) -> None:
    """A real installed distribution on PYTHONPATH: a module plus dist-info with entry points."""
    (root / "file_channel.py").write_text(PLUGIN)
    info = root / "file_channel-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: file-channel\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bot.notifiers]\nfile = file_channel:FileNotifier\n")


def _bot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_plugin_channel_is_configured_rendered_and_sent(tmp_path: Path) -> None:
    _install_plugin(tmp_path)
    # `sessions import` stamps the real time as when the session became known, so the session
    # lies ahead of the real clock and the pass runs (by --now) after its announcement fell due.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    (tmp_path / "s.yaml").write_text(
        "sessions:\n"
        "  - id: mdlm\n"
        "    title: Simple and Effective Masked Diffusion Language Models\n"
        f"    starts_at: {start:%Y-%m-%dT%H:%M:%SZ}\n"
    )
    out_file = tmp_path / "out.txt"
    env = {
        "CHANNELS": "file",
        "REMINDERS": "announce=7d",
        "FILE_CHANNEL_PATH": str(out_file),
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
    }
    assert _bot(tmp_path, "sessions", "import", "s.yaml", **env).returncode == 0
    now = start - timedelta(days=6)
    result = _bot(tmp_path, "send", "--json", "--now", f"{now:%Y-%m-%dT%H:%M:%SZ}", **env)
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (record["channel"], record["status"]) == ("file", "sent")
    # No template exists for `file`: the generic default/default.txt.j2 rendered it.
    written = out_file.read_text()
    assert written.startswith("announce|")
    assert "Simple and Effective Masked Diffusion Language Models" in written


def test_a_plugin_channel_missing_its_variable_is_a_configuration_error(tmp_path: Path) -> None:
    _install_plugin(tmp_path)
    result = _bot(tmp_path, "check", CHANNELS="file", DATABASE_URL=f"sqlite:///{tmp_path}/b.db")
    assert result.returncode == 2
    assert result.stderr.strip() == "FILE_CHANNEL_PATH: required by the file channel (missing)"


def test_an_unknown_channel_lists_the_known_ones() -> None:
    with pytest.raises(KeyError):
        registry.get("carrier-pigeon")
    assert {"console", "email", "x"} <= set(registry.names())
