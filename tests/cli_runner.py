"""``cli()``: run the real ``release-bot`` command as a child process and collect its answer.

The child is forked from a zygote that imported the app once (tests/cli_zygote.py), one per
pytest process, instead of paying a fresh interpreter and import per command. It is still a
separate process with its own argv, environment, working directory and exit code; tests that
need a process started from nothing (signals, SIGKILL, two processes at once, chaos) use
``subprocess`` themselves. ``TESTS_CLI_FRESH_PROCESS=1`` runs every command in a fresh
interpreter instead, to compare.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FRESH = os.environ.get("TESTS_CLI_FRESH_PROCESS") == "1"


class ZygoteGone(RuntimeError):
    """The zygote died: a bug in the harness, not in the command."""


class _Zygote:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cli_zygote"],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        self.buffer = bytearray()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, kill: bool = False) -> None:
        """Close its stdin (it ends by itself then), or kill it; wait for it either way."""
        if kill:
            self.process.kill()
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                pipe.close() if pipe else None
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()

    def read_int(self, deadline: float | None) -> int | None:
        """The next answer line; None when the deadline passes first."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], wait)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise ZygoteGone("the CLI zygote exited; see its stderr above")
            self.buffer.extend(chunk)
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer[:] = rest
        return int(line)


# A fresh ``python -m bot`` as another user: it imports the app while root (the user may not
# read the checkout), then drops root's ids as the zygote's child does.
_FRESH_AS = (
    "import os, pwd, sys, encodings.ascii, bot.cli; a = pwd.getpwnam(sys.argv.pop(1)); "
    "os.setgroups([]); os.setgid(a.pw_gid); os.setuid(a.pw_uid); "
    "bot.cli.main(prog_name='python -m bot')"
)

_lock = threading.Lock()  # one command at a time per zygote: it waits for each child
_zygote: _Zygote | None = None


def _zygote_for(env: dict[str, str]) -> _Zygote:
    global _zygote
    if _zygote is not None and not _zygote.alive():
        _discard(None)
    if _zygote is None:
        _zygote = _Zygote(env)
    return _zygote


def _discard(pid: int | None) -> None:
    """Kill the zygote and its running child; the next command starts a new one."""
    global _zygote
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if _zygote is not None:
        _zygote.stop(kill=True)
        _zygote = None


def stop_zygote() -> None:
    """End this process's zygote and wait for it, so its children's CPU time is counted."""
    global _zygote
    with _lock:
        if _zygote is not None:
            _zygote.stop()
            _zygote = None


def bare_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """What a command sees: a bare environment (plus ``env``), no token or setting of ours."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "USER": "tester",
        **(env or {}),
    }


def _text(data: bytes) -> str:
    # As subprocess's text mode: the locale's encoding, universal newlines.
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


def forked(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    user: str | None = None,
    target: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in a child of the zygote, as ``user`` when given (root only);
    ``target`` ("module:function") replaces the CLI (the harness's own tests use it)."""
    command = [sys.executable, "-m", "bot", *args]
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp, _lock:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        out.touch()
        err.touch()
        zygote = _zygote_for(bare_env())
        pid = None
        try:
            zygote.send({
                "args": args, "env": env, "cwd": str(cwd), "stdout": str(out),
                "stderr": str(err), "argv0": str(ROOT / "bot" / "__main__.py"), "target": target,
                "user": user,
            })  # fmt: skip
            pid = zygote.read_int(None)
            status = zygote.read_int(time.monotonic() + timeout)
        except BaseException:  # interrupted, or the zygote died: its answers are out of step
            _discard(pid)
            raise
        assert pid is not None
        if status is None:  # as subprocess.run does on a timeout: kill, then tell
            with contextlib.suppress(ProcessLookupError):  # it may have just ended
                os.kill(pid, signal.SIGKILL)
            zygote.read_int(None)
            raise subprocess.TimeoutExpired(
                command, timeout, output=_text(out.read_bytes()), stderr=_text(err.read_bytes())
            )
        return subprocess.CompletedProcess(
            command, os.waitstatus_to_exitcode(status), _text(out.read_bytes()),
            _text(err.read_bytes()),
        )  # fmt: skip


def cli(
    *args: str,
    check: bool = False,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real command in a child process, with a bare environment (plus ``env``), as
    ``user`` (with no supplementary groups) when given: root only."""
    environment = bare_env(env)
    if FRESH:
        command = [sys.executable, "-c", _FRESH_AS, user, *args] if user else [
            sys.executable, "-m", "bot", *args
        ]  # fmt: skip
        proc = subprocess.run(
            command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
        )
    else:
        proc = forked(list(args), env=environment, cwd=cwd, timeout=timeout, user=user)
    if check:
        proc.check_returncode()
    return proc
