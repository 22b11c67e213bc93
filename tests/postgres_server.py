"""A throwaway PostgreSQL for the tests: Debian's ``postgresql`` binaries (``initdb``,
``pg_ctl``) run on a fresh data directory as an unprivileged user, on 127.0.0.1.

    with PostgresServer() as server:
        url = server.create_database()  # postgresql://postgres@127.0.0.1:PORT/t_1

initdb refuses to run as root: as root the server runs as ``nobody``, its directory handed to
that user. One server per pytest process (each xdist worker has its own); one database per
test, created in a few milliseconds.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg

UNPRIVILEGED = "nobody"  # initdb and postgres refuse root
START_ATTEMPTS = 5  # a port chosen free may be taken before the server binds it


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be started; the message says why and how to get it."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None
    )
    if found is None:
        raise PostgresUnavailable(
            f"PostgreSQL's {name} is not installed: `sudo apt-get install postgresql` "
            "(make test installs it)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="release-bot-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = [
                "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"
            ]  # fmt: skip

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_user, *args],
            cwd=self.root,
            env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> PostgresServer:
        done = self._run(_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U",
                         "postgres", "--no-sync", "-E", "UTF8")  # fmt: skip
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip() or done.stdout}")
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
            done = self._run(_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                             "-o", options, "-w", "-t", "60", "start")  # fmt: skip
            if done.returncode == 0:
                return self
            if "could not bind" not in self._log_text():
                break  # not the race on the port: retrying will not help
        raise PostgresUnavailable(
            f"PostgreSQL did not start on 127.0.0.1: {self._log_text().strip()[-400:]}"
        )

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
