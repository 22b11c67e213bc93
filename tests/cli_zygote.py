"""A process that imports the whole app once and forks a child per CLI invocation.

A fresh ``python -m bot`` spends most of a short command importing the app; the tests run
hundreds of them. Started by tests/cli_runner.py (one per pytest process), it reads one JSON
request per line on fd 0 and, for each, forks a child that becomes the command: its own argv,
environment, working directory, stdin and stdout/stderr files, and user when asked. It answers with two lines on
fd 1, the child's pid as soon as it runs (so a timeout can kill it) and then its wait status.
It ends when its stdin closes (the pytest process is gone).

The child leaves by the interpreter's normal way out (``SystemExit`` from click, or a
traceback and exit 1), so atexit hooks, non-daemon threads and buffered output behave as in
a process of its own; ``os._exit`` and signals end it as they would end that process.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import pwd
import sys
from typing import Any

TARGET = "bot.cli:main"  # what ``python -m bot`` runs
PROG_NAME = "python -m bot"  # the name click shows in usage lines for ``python -m bot``
# What a release run imports on its way, beyond the CLI itself: imported once here too. None
# keeps state a child could share (the simulator seeds its own numpy generators).
WARM = (
    "numpy.random", "numpy.ma", "_strptime", "apscheduler.triggers.interval", "tzdata",
    "encodings.ascii",
)  # fmt: skip


def _target(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _redirect(path: str, fd: int, flags: int) -> None:
    opened = os.open(path, flags, 0o600)
    os.dup2(opened, fd)
    os.close(opened)


def _become(request: dict[str, Any]) -> None:
    """In the forked child: turn into the requested command, then run it; never returns."""
    _redirect(request.get("stdin") or os.devnull, 0, os.O_RDONLY)
    _redirect(request["stdout"], 1, os.O_WRONLY | os.O_TRUNC)
    _redirect(request["stderr"], 2, os.O_WRONLY | os.O_TRUNC)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    target = _target(request.get("target") or TARGET)  # while the files are ours to read
    if request.get("user"):  # as ``subprocess.run(user=..., group=..., extra_groups=[])``
        account = pwd.getpwnam(request["user"])
        os.setgroups([])
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    sys.argv = [request["argv0"], *request["args"]]
    if request.get("target"):
        target()
    else:
        target(prog_name=PROG_NAME)
    sys.exit(0)


def _read_line(buffer: bytearray) -> bytes | None:
    while b"\n" not in buffer:
        chunk = os.read(0, 65536)
        if not chunk:
            return None
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def _answer(value: int) -> None:
    os.write(1, f"{value}\n".encode())


def serve() -> None:
    """Answer requests until stdin closes; returns in the parent only."""
    _target(TARGET)  # the import every child would otherwise pay for
    for module in WARM:
        importlib.import_module(module)
    # What is imported lives as long as the process: out of the collector's sight, a child's
    # collections do not touch (and so copy) the pages it shares with us.
    gc.freeze()
    buffer = bytearray()
    while (line := _read_line(buffer)) is not None:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become(request)  # raises SystemExit out of serve(): the child's normal exit
        _answer(pid)
        _, status = os.waitpid(pid, 0)
        _answer(status)


if __name__ == "__main__":
    serve()
