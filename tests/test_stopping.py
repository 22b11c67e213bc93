"""SIGINT and SIGTERM stop ``worker``, ``serve`` and the chaos node cleanly, through a wake-up
pipe rather than a handler that sets a ``threading.Event`` (that one can deadlock the process:
see ``bot/stopping.py``). Each case runs in a process of its own: handlers are per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

HANG_GUARD = 60  # seconds: only stops a process that would hang, never judges speed


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env={"PATH": os.environ.get("PATH", "")},
        cwd=Path(__file__).resolve().parents[1],
    )


def test_a_signal_to_any_thread_waits_for_the_main_thread_to_ask() -> None:
    done = _python(
        """
        import os, signal, threading
        from bot.stopping import StopSignals

        import numpy  # its native threads start at import, with every signal open to them

        stop = StopSignals()
        assert not stop.wait(0.01)
        worker = threading.Thread(target=lambda: os.kill(os.getpid(), signal.SIGTERM))
        worker.start()
        worker.join()
        assert stop.wait(30) and stop.wait(0) and stop.received == signal.SIGTERM
        print("stopped")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"


def test_a_loop_of_short_waits_stops_on_every_signal() -> None:
    """The loop the chaos node runs. With ``signal.signal(..., lambda *_: event.set())`` about
    one SIGTERM in 300 hung it; here every one of 50 stops it, wherever it lands."""
    done = _python(
        """
        import os, signal, subprocess, sys
        child = '''
        import sys
        from bot.stopping import StopSignals
        stop = StopSignals()
        print("ready", flush=True)
        while not stop.wait(0.0001):
            pass
        '''
        stopped = 0
        for i in range(50):
            p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
            assert p.stdout.readline() == "ready\\n"
            p.send_signal(signal.SIGINT if i % 2 else signal.SIGTERM)
            stopped += p.wait(timeout=30) == 0
        print(stopped)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "50"


def test_worker_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", "--db", str(tmp_path / "w.db"), "--virtual-clock"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        assert "reconciling every" in process.stdout.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=HANG_GUARD)
    assert process.returncode == 0, err
