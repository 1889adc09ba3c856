"""The deployment recipes (deploy/, Procfile), parsed and run as far as this machine allows.

There is no cron daemon, no systemd as PID 1 and no GitHub here, so each recipe's commands are run
the way its runner would run them: the crontab's lines with /bin/sh in a stand-in install folder,
the units' Exec lines with their Environment=, EnvironmentFile= and WorkingDirectory= (stopped with
their KillSignal= within TimeoutStopSec=), the workflow's `run:` steps with bash. Paths the recipes
name (/srv/bot, /var/lib/reading-group-bot, /etc/reading-group-bot/env) are rewritten to temporary
folders and this checkout's virtualenv. `systemd-analyze` checks the units when it is installed.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from bot.cli import cli
from bot.store.db import ensure_schema, make_engine, sqlite_path
from bot.worker import STOP_DEADLINE_SECONDS, latest_heartbeat
from tests.support.data import add_session

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
WORKER_UNIT = SYSTEMD / "reading-group-bot.service"
SEND_UNIT = SYSTEMD / "reading-group-bot-send.service"
TIMER_UNIT = SYSTEMD / "reading-group-bot-send.timer"
WORKFLOW = DEPLOY / "github-actions" / "announce.yml"
INSTALL_DIR = "/srv/bot"
STATE_DIR = "/var/lib/reading-group-bot"
ENV_FILE = "/etc/reading-group-bot/env"
VENV = Path(sys.prefix)
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed"
)
TIMEOUT = 30


# ---------------------------------------------------------------- helpers


def bot_invocations(command: str) -> list[list[str]]:
    """The argument lists of every `bot …` / `python -m bot …` in a shell command line."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    found = []
    for i, token in enumerate(tokens):
        if token == "bot":  # `python -m bot` or the `bot` console script
            args = []
            for arg in tokens[i + 1 :]:
                if arg[0] in "<>|&;":  # a redirection or the end of this command
                    break
                args.append(arg)
            found.append(args)
    return found


def resolve(args: list[str]) -> click.Command:
    """The click command `bot ARGS` runs, or a failed assertion naming the unknown part."""
    command: click.Command = cli
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest, f"`bot {' '.join(args)}` names a group, not a command"
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`bot {' '.join(args)}`: no command {name!r}"
        command = sub
    with click.Context(command) as ctx:
        command.parse_args(ctx, rest)  # unknown options fail here
    return command


CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def cron_field_ok(field: str, low: int, high: int) -> bool:
    """A numeric cron field: `*`, N, N-M, lists of those, each with an optional /STEP."""
    for part in field.split(","):
        base, slash, step = part.partition("/")
        if slash and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        numbers = [first, last] if dash else [first]
        if not all(n.isdigit() and low <= int(n) <= high for n in numbers):
            return False
        if dash and int(first) > int(last):
            return False
    return True


def parse_crontab(text: str) -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    """(variables, [(five schedule fields, command)]) of a user crontab; fails on anything else."""
    variables: dict[str, str] = {}
    jobs = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line):
            variables[match[1]] = match[2].strip("\"'")
            continue
        parts = line.split(None, 5)
        assert len(parts) == 6, f"crontab line {number}: 5 fields and a command needed: {raw}"
        fields, command = parts[:5], parts[5]
        for field, (low, high) in zip(fields, CRON_RANGES, strict=True):
            assert cron_field_ok(field, low, high), f"crontab line {number}: bad field {field!r}"
        # cron turns an unescaped % into a newline: a command must not contain one.
        assert not re.search(r"(?<!\\)%", command), f"crontab line {number}: unescaped %"
        jobs.append((fields, command))
    return variables, jobs


Unit = dict[str, list[tuple[str, str]]]


def parse_unit(path: Path) -> Unit:
    """A systemd unit file as {section: [(key, value), …]}, repeated keys kept in order."""
    # configparser (strict=False: systemd allows repeated keys) must read it as INI too.
    ini = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    ini.optionxform = str  # type: ignore[assignment,method-assign]
    ini.read(path, encoding="utf-8")
    unit: Unit = {}
    section = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: continuation lines not expected"
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit[section] = []
            continue
        key, eq, value = line.partition("=")
        assert eq and section, f"{path.name}:{number}: not `Key=value` in a section: {raw}"
        unit[section].append((key.strip(), value.strip()))
    assert set(unit) == set(ini.sections())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = [v for k, v in unit.get(section, []) if k == key]
    assert len(values) == 1, f"[{section}] {key}= expected once, found {values}"
    return values[0]


def every(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def timespan_seconds(value: str) -> float:
    """A systemd time span (`30`, `30s`, `1min 30s`, `2m`) in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    assert total > 0, value
    return total


def exec_argv(value: str) -> list[str]:
    """An Exec*= line's argv, without systemd's `-@:+!` prefixes."""
    return shlex.split(value.lstrip("-@:+!"))


def unit_environment(unit: Unit, env_file: Path) -> dict[str, str]:
    """Environment= assignments, then the EnvironmentFile= (which wins), as systemd builds them."""
    env: dict[str, str] = {}
    for value in every(unit, "Service", "Environment"):
        for assignment in shlex.split(value):
            name, _, val = assignment.partition("=")
            env[name] = val
    for raw in env_file.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.startswith("export "), "EnvironmentFile= takes no `export`"
        name, _, val = line.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
        env[name.strip()] = val
    return env


@pytest.fixture
def install(tmp_path: Path) -> Path:
    """A stand-in for /srv/bot: its `.venv` is this test run's virtualenv."""
    if not (VENV / "bin" / "python").exists():
        pytest.skip(f"not running from a virtualenv with bin/python ({VENV})")
    folder = tmp_path / "srv-bot"
    folder.mkdir()
    (folder / ".venv").symlink_to(VENV, target_is_directory=True)
    return folder


@pytest.fixture
def rewritten(tmp_path: Path, install: Path) -> dict[str, str]:
    """Where each path the recipes name lives during a test."""
    state = tmp_path / "var-lib-reading-group-bot"
    env_file = tmp_path / "etc-reading-group-bot-env"
    # The install steps copy config.example.env to the EnvironmentFile.
    shutil.copy(ROOT / "config.example.env", env_file)
    return {INSTALL_DIR: str(install), STATE_DIR: str(state), ENV_FILE: str(env_file)}


def rewrite(text: str, paths: dict[str, str]) -> str:
    for old, new in paths.items():
        text = text.replace(old, new)
    return text


def minimal_env(**more: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", **more}


# ---------------------------------------------------------------- Procfile


def test_procfile_releases_with_a_migration_and_runs_the_worker() -> None:
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    assert lines == ["release: python -m bot db upgrade", "worker: python -m bot run"]
    for line in lines:
        (args,) = bot_invocations(line.partition(":")[2])
        resolve(args)


# ---------------------------------------------------------------- crontab


def test_crontab_parses_and_names_real_commands() -> None:
    variables, jobs = parse_crontab((DEPLOY / "crontab").read_text(encoding="utf-8"))
    assert variables["SHELL"] == "/bin/sh"
    assert "@" in variables["MAILTO"]
    schedules = {" ".join(fields): command for fields, command in jobs}
    send = schedules["* * * * *"]
    assert send.startswith(f"cd {INSTALL_DIR} && .venv/bin/python -m bot send")
    assert re.search(r">> *\S+ +2>&1$", send), "send output must be appended to a log"
    assert "flock" not in send
    daily = [cmd for fields, cmd in jobs if fields[:2] != ["*", "*"] and fields[2:] == ["*"] * 3]
    assert any(["check"] in bot_invocations(cmd) for cmd in daily), "a daily `bot check` line"
    for _, command in jobs:
        assert command.startswith(f"cd {INSTALL_DIR} && ")
        for args in bot_invocations(command):
            assert args[0] != "health", "cron mode has no heartbeat"
            resolve(args)


def run_cron_line(command: str, variables: dict[str, str], install: Path) -> subprocess.Popen[str]:
    """Start a crontab command as cron would: $SHELL -c, the crontab's variables, HOME."""
    command = command.replace(INSTALL_DIR, str(install))
    env = {"HOME": str(install), "LOGNAME": "reading-group-bot", **variables}
    return subprocess.Popen(
        [variables["SHELL"], "-c", command],
        env=env,
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_crontab_send_line_sends_once_even_when_two_passes_overlap(install: Path) -> None:
    variables, jobs = parse_crontab((DEPLOY / "crontab").read_text(encoding="utf-8"))
    (send,) = [command for fields, command in jobs if fields == ["*"] * 5]
    # The configuration the crontab expects in the install folder; a relative SQLite URL, so
    # the database appears where the line's `cd` went.
    (install / ".env").write_text(
        "DATABASE_URL=sqlite:///bot.db\nCHANNELS=console\nREMINDERS=announce=7d\n"
    )
    engine = make_engine(f"sqlite:///{install}/bot.db")
    ensure_schema(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    # In the database for an hour; its 7-day notice fell due a minute ago.
    due = now - timedelta(minutes=1)
    add_session(engine, "due-now", due + timedelta(days=7), since=now - timedelta(hours=1))
    engine.dispose()

    passes = [run_cron_line(send, variables, install) for _ in range(2)]  # no flock
    for proc in passes:
        out, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, out
        assert out == "", "everything goes to the log, so cron mails nothing"
    log = (install / "send.log").read_text(encoding="utf-8")
    assert log.count("--- due-now · announce · console ---") == 1, log


def test_crontab_check_line_is_silent_when_all_is_well_and_prints_problems(
    install: Path,
) -> None:
    variables, jobs = parse_crontab((DEPLOY / "crontab").read_text(encoding="utf-8"))
    (check,) = [cmd for _, cmd in jobs if ["check"] in bot_invocations(cmd)]
    env_file = install / ".env"
    env_file.write_text("DATABASE_URL=sqlite:///bot.db\nCHANNELS=console\n")
    proc = run_cron_line(check, variables, install)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out) == (0, "")  # nothing for cron to mail
    env_file.write_text("DATABASE_URL=sqlite:///bot.db\nCHANNELS=console,pigeon\n")
    proc = run_cron_line(check, variables, install)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert "pigeon" in out  # printed, so cron mails it to MAILTO


# ---------------------------------------------------------------- systemd


def test_worker_unit_settings() -> None:
    unit = parse_unit(WORKER_UNIT)
    assert one(unit, "Service", "Type") == "simple"
    assert exec_argv(one(unit, "Service", "ExecStartPre"))[1:] == ["-m", "bot", "db", "upgrade"]
    assert exec_argv(one(unit, "Service", "ExecStart"))[1:] == ["-m", "bot", "run"]
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    # systemd waits TimeoutStopSec after KillSignal, then SIGKILLs: it must outlast the drain.
    assert timespan_seconds(one(unit, "Service", "TimeoutStopSec")) > STOP_DEADLINE_SECONDS


@pytest.mark.parametrize("path", [WORKER_UNIT, SEND_UNIT], ids=lambda p: p.name)
def test_service_units_run_as_a_sandboxed_user_that_can_write_the_database(path: Path) -> None:
    unit = parse_unit(path)
    assert one(unit, "Service", "User") not in ("root", "0", "nobody")
    assert one(unit, "Service", "EnvironmentFile") == ENV_FILE
    assert one(unit, "Service", "WorkingDirectory") == STATE_DIR
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    env = {}
    for value in every(unit, "Service", "Environment"):
        env.update(a.split("=", 1) for a in shlex.split(value))
    database = sqlite_path(env["DATABASE_URL"])
    assert database is not None and database.is_absolute()
    # SQLite writes the file and its -wal/-shm files next to it: the folder must be writable.
    writable = [
        Path(p.lstrip("-")) for v in every(unit, "Service", "ReadWritePaths") for p in v.split()
    ]
    assert database.parent in writable
    assert Path(STATE_DIR, "bot.db") == database  # where a relative sqlite:///bot.db lands too
    for key in ("ExecStartPre", "ExecStart"):
        for value in every(unit, "Service", key):
            argv = exec_argv(value)
            assert argv[0] == f"{INSTALL_DIR}/.venv/bin/python"
            resolve(argv[3:])


def test_timer_starts_a_oneshot_send_every_minute() -> None:
    timer, service = parse_unit(TIMER_UNIT), parse_unit(SEND_UNIT)
    assert one(timer, "Timer", "OnCalendar") == "*:*:00"
    assert timespan_seconds(one(timer, "Timer", "AccuracySec")) <= 1
    assert one(timer, "Timer", "Persistent") == "true"
    assert one(timer, "Timer", "Unit") == SEND_UNIT.name
    assert one(timer, "Install", "WantedBy") == "timers.target"
    assert one(service, "Service", "Type") == "oneshot"
    assert exec_argv(one(service, "Service", "ExecStart"))[1:] == ["-m", "bot", "send"]
    assert "Install" not in service, "the timer is enabled, not the service"


@pytest.fixture
def unit_copies(tmp_path: Path, rewritten: dict[str, str]) -> Path:
    """The three units, with their paths rewritten to this machine, in a folder of their own."""
    folder = tmp_path / "units"
    folder.mkdir()
    for path in (WORKER_UNIT, SEND_UNIT, TIMER_UNIT):
        (folder / path.name).write_text(rewrite(path.read_text(encoding="utf-8"), rewritten))
    return folder


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_units(unit_copies: Path) -> None:
    names = [WORKER_UNIT.name, SEND_UNIT.name, TIMER_UNIT.name]
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", "--man=no", *names],
        cwd=unit_copies,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    # It checks every key is known, every value parses and every Exec* binary is executable.
    complaints = [line for line in result.stderr.splitlines() if any(n in line for n in names)]
    assert result.returncode == 0 and not complaints, result.stderr


@needs_systemd_analyze
def test_systemd_calendar_fires_at_second_zero_of_every_minute() -> None:
    spec = one(parse_unit(TIMER_UNIT), "Timer", "OnCalendar")
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "calendar", "--iterations=3", spec],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=minimal_env(TZ="UTC", LC_ALL="C"),
    )
    assert result.returncode == 0, result.stderr
    elapses = re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", result.stdout)
    times = [datetime.fromisoformat(t) for t in elapses]
    assert len(times) == 3 and all(t.second == 0 for t in times), result.stdout
    assert {b - a for a, b in pairwise(times)} == {timedelta(minutes=1)}


@needs_systemd_analyze
@pytest.mark.parametrize("name", [WORKER_UNIT.name, SEND_UNIT.name])
def test_systemd_analyze_security_rates_the_services_well_hardened(
    unit_copies: Path, name: str
) -> None:
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "security", "--offline=yes", name],
        cwd=unit_copies,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    # Today 1.7 ("OK"); an unhardened service rates about 9.6. The margin absorbs new checks
    # in newer systemd versions.
    assert float(match[1]) < 4.0, result.stdout


def test_worker_unit_migrates_runs_and_stops_cleanly_within_its_stop_timeout(
    rewritten: dict[str, str], unit_copies: Path
) -> None:
    """ExecStartPre, then ExecStart, then KillSignal: what `systemctl start` and `stop` do."""
    unit = parse_unit(unit_copies / WORKER_UNIT.name)
    state = Path(one(unit, "Service", "WorkingDirectory"))
    state.mkdir()  # StateDirectory= creates it
    env = minimal_env(**unit_environment(unit, Path(rewritten[ENV_FILE])))
    pre = subprocess.run(
        exec_argv(one(unit, "Service", "ExecStartPre")),
        cwd=state,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert pre.returncode == 0, pre.stderr
    database = state / "bot.db"
    assert database.exists(), "the database is created in the writable state folder"
    engine = make_engine(f"sqlite:///{database}")
    worker = subprocess.Popen(
        exec_argv(one(unit, "Service", "ExecStart")),
        cwd=state,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        limit = time.monotonic() + TIMEOUT
        while latest_heartbeat(engine) is None and worker.poll() is None:
            assert time.monotonic() < limit, "the worker wrote no heartbeat"
            time.sleep(0.05)
        assert worker.poll() is None, worker.communicate()
        worker.send_signal(signal.Signals[one(unit, "Service", "KillSignal")])
        stop_timeout = timespan_seconds(one(unit, "Service", "TimeoutStopSec"))
        _, err = worker.communicate(timeout=stop_timeout)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        engine.dispose()
    # 0 is a clean stop: Restart=on-failure leaves it stopped.
    assert worker.returncode == 0, err
    assert "worker stopped" in err


def test_timer_service_runs_one_pass(rewritten: dict[str, str], unit_copies: Path) -> None:
    unit = parse_unit(unit_copies / SEND_UNIT.name)
    state = Path(one(unit, "Service", "WorkingDirectory"))
    state.mkdir()
    env = minimal_env(**unit_environment(unit, Path(rewritten[ENV_FILE])))
    result = subprocess.run(
        exec_argv(one(unit, "Service", "ExecStart")),
        cwd=state,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert (state / "bot.db").exists()


# ---------------------------------------------------------------- GitHub Actions


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def job_of(workflow: dict[Any, Any]) -> dict[str, object]:
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict) and len(jobs) == 1
    (job,) = jobs.values()
    assert isinstance(job, dict)
    return job


def test_workflow_is_scheduled_serialised_and_sends(workflow: dict[Any, Any]) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(triggers, dict)
    assert "workflow_dispatch" in triggers
    (entry,) = triggers["schedule"]
    fields = entry["cron"].split()
    assert len(fields) == 5, entry
    for field, (low, high) in zip(fields, CRON_RANGES, strict=True):
        assert cron_field_ok(field, low, high), entry
    concurrency = workflow["concurrency"]
    assert isinstance(concurrency, dict) and concurrency["group"]
    assert concurrency["cancel-in-progress"] is False, "cancelling a pass leaves `uncertain`"
    runs = [str(step["run"]) for step in job_of(workflow)["steps"] if "run" in step]
    assert any(["send"] in bot_invocations(run) for run in runs)
    for run in runs:
        for args in bot_invocations(run):
            resolve(args)
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "does NOT run scheduled workflows on time" in text
    assert "skipped entirely" in text and "starting=1h" in text
    assert "SQLite does NOT persist" in text


def test_workflow_takes_secrets_from_secrets_and_names_only_known_variables(
    workflow: dict[Any, Any],
) -> None:
    env = job_of(workflow)["env"]
    assert isinstance(env, dict)
    assert env["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"
    for name, value in env.items():
        if re.search(r"PASSWORD|SECRET|TOKEN|KEY|USERNAME", name):
            assert value == f"${{{{ secrets.{name} }}}}", name
    documented = set(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / "config.example.env").read_text(), re.M)
    )
    assert set(env) <= documented, set(env) - documented
    assert "starting" not in str(env.get("REMINDERS", "starting")), "late runs miss it"


def actions_env(workflow: dict[Any, Any], secrets: dict[str, str]) -> dict[str, str]:
    """The job's env with `${{ secrets.NAME }}` filled in as GitHub would."""
    env = {}
    for name, value in job_of(workflow)["env"].items():
        filled = re.sub(
            r"\$\{\{\s*secrets\.(\w+)\s*\}\}", lambda m: secrets.get(m[1], ""), str(value)
        )
        assert "${{" not in filled, f"{name}: an expression this test does not know"
        env[name] = filled
    return env


def run_step(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A `run:` step as GitHub runs it on ubuntu (`bash -e {0}`), with the venv's bin on PATH."""
    path = f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    return subprocess.run(
        ["bash", "-e", "-c", script],
        env={"HOME": str(cwd), **env, "PATH": path},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def steps_of(workflow: dict[Any, Any]) -> Iterator[dict[str, object]]:
    for step in job_of(workflow)["steps"]:
        assert isinstance(step, dict)
        yield step


def test_workflow_refuses_a_database_that_does_not_persist(
    workflow: dict[Any, Any], tmp_path: Path
) -> None:
    guard = next(s for s in steps_of(workflow) if "DATABASE_URL" in str(s.get("run", "")))
    for url, code in [
        ("sqlite:///bot.db", 1),
        ("", 1),  # the secret is missing: the bot would fall back to SQLite
        ("postgresql+psycopg://bot:pw@db.example.org:5432/bot?sslmode=require", 0),
    ]:
        result = run_step(str(guard["run"]), actions_env(workflow, {"DATABASE_URL": url}), tmp_path)
        assert result.returncode == code, (url, result.stdout, result.stderr)
        assert ("::error::" in result.stdout) == bool(code)


def test_workflow_steps_install_migrate_import_and_send(
    workflow: dict[Any, Any], tmp_path: Path
) -> None:
    """The steps after the install run here against SQLite, `send` as a dry run (nothing is
    contacted, but the job's configuration for email and X must be complete)."""
    steps = list(steps_of(workflow))
    assert "DATABASE_URL" in str(steps[0].get("run", "")), "the guard comes first"
    bot_checkout = next(
        s for s in steps if str(s.get("uses", "")).startswith("actions/checkout") and "with" in s
    )
    bot_path = bot_checkout["with"]["path"]
    (install,) = [s for s in steps if "pip install" in str(s.get("run", ""))]
    assert f"-e './{bot_path}[postgres]'" in str(install["run"]), "editable: templates, psycopg"
    workspace = tmp_path / "workspace"  # the sessions repository's checkout
    workspace.mkdir()
    shutil.copy(ROOT / "examples" / "sessions.yaml", workspace / "sessions.yaml")
    fake = {name: f"test-{name.lower()}" for name in ("SMTP_USERNAME", "SMTP_PASSWORD")}
    fake |= {"SMTP_HOST": "smtp.example.org", "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"}
    for name in ("X_API_KEY", "X_API_KEY_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET"):
        fake[name] = f"test-{name.lower()}"
    env = actions_env(workflow, fake)
    after_install = steps[steps.index(install) + 1 :]
    assert [s.get("run") for s in after_install][-1] == "bot send"
    for step in after_install:
        script = str(step["run"])
        if script == "bot send":
            script = "bot send --dry-run"
        result = run_step(script, env, workspace)
        assert result.returncode == 0, (script, result.stdout, result.stderr)
