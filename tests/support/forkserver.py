"""A fork server for `python -m bot`: the test suite's thousands of short CLI runs, at a fraction
of the start-up cost.

Starting `python -m bot` costs ~0.45 s of CPU here, nearly all of it importing SQLAlchemy,
Alembic, Jinja2 and requests; the suite runs thousands of them. This server imports those once,
then forks one child per run: a real, separate process that applies the run's environment,
working folder and standard streams, runs `bot.cli.main()` with the run's arguments and exits
with its status. Every run still gets a fresh process with its own state, so what the tests see
is what a user's shell sees; only the interpreter's start-up is shared.

Runs whose environment changes how the interpreter itself starts (PYTHON*, LANG, LC_*) are not
sent here: tests/support/cli.py starts them as `python -m bot`, as it does every run when
BOT_TEST_SPAWN=1. Tests that kill or signal processes start their own (tests/reliability).

Protocol, over a Unix socket, one connection per run: the client sends one JSON line
{"args", "env", "cwd", "stdout", "stderr"}; the child answers its pid, then, when done, its exit
status, each on a line. A connection closed without a status means the child was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
from typing import Any

# What nearly every run imports: loaded once here, before any fork.
PRELOAD = (
    "bot.cli",
    "bot.config",
    "bot.dispatch",
    "bot.operator",
    "bot.store.db",
    "bot.store.imports",
    "bot.store.ledger",
    "bot.render.renderer",
    "bot.notifiers.base",
    "bot.notifiers.http",
    "bot.notifiers.email",
    "alembic.command",
    "alembic.config",
    "alembic.runtime.migration",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "psycopg",
    "jinja2",
    "yaml",
    "dotenv",
    "requests",
    "smtplib",
    "email.mime.multipart",
)


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        # An optional driver may be missing: the child imports what it needs.
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _run_child(conn: socket.socket) -> None:
    """In the forked child: set up the run, run the CLI, report the status; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        reader = conn.makefile("rb")
        request: dict[str, Any] = json.loads(reader.readline())
        conn.sendall(f"{os.getpid()}\n".encode())
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import time

        time.tzset()
        sys.path[0] = os.getcwd()  # as `python -m` sets it
        sys.argv = ["bot", *request["args"]]
        for fd, path, mode in ((0, os.devnull, os.O_RDONLY),
                               (1, request["stdout"], os.O_WRONLY | os.O_TRUNC),
                               (2, request["stderr"], os.O_WRONLY | os.O_TRUNC)):  # fmt: skip
            target = os.open(path, mode)
            os.dup2(target, fd)
            os.close(target)
        code = _main()
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(f"{code}\n".encode())
        os._exit(code)


def _main() -> int:
    import logging
    import threading

    from bot.cli import main

    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    # What the interpreter does at exit: flush logs, wait for non-daemon threads.
    main_thread = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main_thread and not thread.daemon:
            thread.join()
    logging.shutdown()
    return code


def serve(path: str) -> None:
    """Listen on `path` until standard input closes (the test process is gone)."""
    _preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        ready, _, _ = select.select([server, sys.stdin], [], [])
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
            server.close()
            return
        if server in ready:
            conn, _ = server.accept()
            if os.fork() == 0:
                server.close()
                _run_child(conn)
            conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
