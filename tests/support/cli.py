"""Run the real command line, `python -m bot ARGS`, as a subprocess with a chosen environment.

    bot = BotCli(tmp_path, {"DATABASE_URL": url, "CHANNELS": "email"})
    code, out, err = bot("send", "--now", "2026-12-07T15:00:00Z", "--json")
    records = json_lines(out)

The child starts from a minimal environment (PATH and HOME, plus what the test gives), and runs in
a folder of its own, so neither the developer's variables nor a stray `.env` file can leak in.

Each run is a separate process. By default it is forked from a server that has already imported
the program (tests/support/forkserver.py), which saves ~0.45 s of CPU per run; BOT_TEST_SPAWN=1
starts every run as `python -m bot` instead, and so does a run whose environment changes how the
interpreter starts (PYTHON*, LANG, LC_*).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TIMEOUT = 60.0
Result = tuple[int, str, str]
REPO = Path(__file__).resolve().parents[2]
_INTERPRETER_VARIABLES = ("PYTHON", "LANG", "LC_", "COVERAGE_")
_server_lock = threading.Lock()
_server: tuple[subprocess.Popen[bytes], str] | None = None


def base_env() -> dict[str, str]:
    """PATH and HOME of this process: the least a child needs to run."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    # Measure coverage of the child too, when the test run does.
    if "COVERAGE_PROCESS_START" in os.environ:
        env["COVERAGE_PROCESS_START"] = os.environ["COVERAGE_PROCESS_START"]
    return env


def run_bot(
    args: list[str] | tuple[str, ...],
    env: Mapping[str, str],
    cwd: Path | str,
    *,
    timeout: float = TIMEOUT,
) -> Result:
    """`python -m bot *args` with base_env() plus `env`, in `cwd`: (exit code, stdout, stderr)."""
    full = base_env() | dict(env)
    spawn = os.environ.get("BOT_TEST_SPAWN") == "1" or any(
        key.startswith(_INTERPRETER_VARIABLES) for key in full
    )
    if not spawn:
        return _run_forked([str(a) for a in args], full, Path(cwd), timeout)
    proc = subprocess.run(
        [sys.executable, "-m", "bot", *map(str, args)],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _fork_server() -> str:
    """The socket of this test process's fork server, started on first use."""
    global _server
    with _server_lock:
        if _server is None or _server[0].poll() is not None:
            path = os.path.join(tempfile.mkdtemp(prefix="bot-forkserver-"), "socket")
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.forkserver", path],
                stdin=subprocess.PIPE,  # closed when this process ends: the server stops
                stdout=subprocess.PIPE,
                env=base_env(),
                cwd=REPO,
            )
            assert proc.stdout is not None
            if proc.stdout.readline() != b"ready\n":
                raise RuntimeError("the fork server did not start")
            _server = (proc, path)
        return _server[1]


def _run_forked(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Result:
    path = _fork_server()
    with tempfile.TemporaryDirectory(prefix="bot-run-") as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        out.touch()
        err.touch()
        request = {
            "args": args,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
        }
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
            conn.settimeout(timeout)
            conn.sendall(json.dumps(request).encode() + b"\n")
            answers = conn.makefile("rb")
            pid = int(answers.readline())
            try:
                status = answers.readline().strip()
            except TimeoutError as exc:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["bot", *args], timeout) from exc
        code = int(status) if status else -signal.SIGKILL  # closed without a status: killed
        read = {"encoding": "utf-8", "errors": "replace"}
        return code, out.read_text(**read), err.read_text(**read)  # type: ignore[arg-type]


class BotCli:
    """A bound runner: one working folder and one base environment, overridable per call."""

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.cwd = Path(cwd)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str] = dict(env or {})

    def __call__(
        self, *args: str, env: Mapping[str, str | None] | None = None, **kw: Any
    ) -> Result:
        """Run with the base environment updated by `env` (a None value removes a variable)."""
        merged = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return run_bot(list(args), merged, self.cwd, **kw)


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of `stdout` parsed as one JSON object (fails on any other line)."""
    records = []
    for line in stdout.splitlines():
        if line.strip():
            value = json.loads(line)
            assert isinstance(value, dict), line
            records.append(value)
    return records


def iso(moment: datetime) -> str:
    """`2026-12-20T15:00:00Z`: the form `--now` takes and JSON records carry."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_yaml(sessions: Sequence[Mapping[str, Any]]) -> str:
    """A session file (SPEC §4) holding `sessions`; datetimes are written as UTC `…Z` times."""
    import yaml

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return iso(value)
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return yaml.safe_dump({"sessions": [plain(s) for s in sessions]}, sort_keys=False)
