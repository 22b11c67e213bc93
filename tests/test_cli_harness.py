"""The harness behind ``cli()``: a child forked from the zygote behaves like a fresh process
(exit codes, stdout and stderr, environment, working directory, a crash, a timeout)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import cli_runner
from tests.cli_runner import ROOT, cli, forked

HERE = "tests.test_cli_harness"
ENV = {"PATH": os.environ.get("PATH", ""), "HARNESS": "yes"}


def probe(
    name: str, *args: str, cwd: Path = ROOT, timeout: float = 60, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``name``, a function of this module, in a forked child in place of the CLI."""
    target = f"{HERE}:{name}"
    return forked(list(args), env=ENV, cwd=cwd, timeout=timeout, user=user, target=target)


# The probes below run in the forked child, in place of the CLI.


def show_everything() -> None:
    print("argv", sys.argv[1:])
    print("cwd", os.getcwd())
    print("env", sorted(os.environ))
    print("stdin", repr(sys.stdin.read()))
    print("oops", file=sys.stderr)
    sys.exit(int(sys.argv[-1]))


def raise_an_error() -> None:
    raise ValueError("boom")


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def exit_hard() -> None:
    print("lost", end="")  # buffered, never flushed: os._exit skips it, as in a real process
    os._exit(137)


def finish_in_a_thread() -> None:
    def later() -> None:
        time.sleep(0.2)
        print("the thread finished")

    threading.Thread(target=later).start()  # not a daemon: the interpreter waits for it


def show_ids() -> None:
    print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())


def sleep_long() -> None:
    print("started", flush=True)
    time.sleep(60)


def test_exit_code_output_argv_env_cwd_and_stdin_are_the_childs_own(tmp_path: Path) -> None:
    proc = probe("show_everything", "a b", "7", cwd=tmp_path)
    assert proc.returncode == 7
    assert proc.stdout.splitlines() == [
        "argv ['a b', '7']",
        f"cwd {tmp_path}",
        "env ['HARNESS', 'PATH']",
        "stdin ''",
    ]
    assert proc.stderr == "oops\n"
    assert proc.args[-2:] == ["a b", "7"]
    assert os.getcwd() != str(tmp_path) and "HARNESS" not in os.environ  # ours is untouched


def test_an_exception_prints_its_traceback_and_exits_1() -> None:
    proc = probe("raise_an_error")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and proc.stderr.endswith("ValueError: boom\n")


def test_a_child_killed_by_a_signal_reports_it_as_subprocess_does() -> None:
    assert probe("kill_myself").returncode == -signal.SIGKILL


def test_os_exit_keeps_its_code_and_drops_unflushed_output() -> None:
    proc = probe("exit_hard")
    assert (proc.returncode, proc.stdout) == (137, "")


def test_the_child_waits_for_its_threads_before_it_exits() -> None:
    proc = probe("finish_in_a_thread")
    assert (proc.returncode, proc.stdout) == (0, "the thread finished\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can run a command as another user")
def test_a_command_run_as_another_user_has_none_of_roots_ids() -> None:
    nobody = pwd.getpwnam("nobody")
    proc = probe("show_ids", user="nobody")
    assert proc.stdout == f"{nobody.pw_uid} {nobody.pw_uid} {nobody.pw_gid} []\n", proc.stderr
    assert os.geteuid() == 0


def test_a_timeout_kills_the_child_and_the_next_command_still_runs() -> None:
    with pytest.raises(subprocess.TimeoutExpired) as timed_out:
        probe("sleep_long", timeout=1)
    assert timed_out.value.output == "started\n"
    assert cli("--version").returncode == 0


def test_the_real_command_answers_as_from_a_fresh_process(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    forked_run = cli("list", env={"RELEASE_BOT_DB": str(db)})
    assert forked_run.returncode == 0 and forked_run.stdout.startswith("no releases yet")
    assert db.exists()  # --db came from the child's environment
    fresh = subprocess.run(
        [sys.executable, "-m", "bot", "parse", "newsvc 1.0.0"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    again = cli("parse", "newsvc 1.0.0")
    assert (again.returncode, again.stdout, again.stderr) == (
        fresh.returncode, fresh.stdout, fresh.stderr,
    )  # fmt: skip
    usage = cli("run")
    assert usage.returncode == 2 and usage.stderr.startswith("Usage: python -m bot run")


def test_a_dead_zygote_is_replaced_by_the_next_command() -> None:
    assert cli("--version").returncode == 0
    zygote = cli_runner._zygote
    assert zygote is not None
    zygote.process.kill()
    zygote.process.wait()
    assert cli("--version").returncode == 0
    assert cli_runner._zygote is not zygote
