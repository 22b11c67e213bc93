"""A client of HAProxy's runtime API (the stats socket): one command per connection.

HAProxy answers a command sent without ``prompt`` and closes the connection, so each call
connects, writes the command and a newline, and reads to the end. Every failure (no socket,
refused, timed out, or HAProxy's own error answer) is one ``RouterUnavailable`` line naming
the socket, the command and the cause.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from bot.ports.traffic import RouterUnavailable

_HOST_PORT = re.compile(r"^(?P<host>[^\s/:]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")
# Bounds what one answer may hold (``show servers state`` of a big backend is far below).
_MAX_ANSWER = 4 * 1024 * 1024


def parse_address(value: str) -> str | tuple[str, int]:
    """A unix socket path, or ``(host, port)`` for ``host:port``; ValueError otherwise."""
    value = value.strip()
    match = _HOST_PORT.match(value)
    if match is not None and "/" not in value:
        port = int(match["port"])
        if not 0 < port < 65536:
            raise ValueError(f"port {port} of {value!r} is out of range 1-65535")
        return match["host"].strip("[]"), port
    if not value or value.endswith("/") or any(c.isspace() for c in value) or "/" not in value:
        raise ValueError(
            f"{value!r} is neither a socket path (e.g. /run/haproxy/admin.sock) "
            "nor host:port (e.g. 127.0.0.1:9999)"
        )
    return value


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "(empty answer)"


@dataclass(frozen=True)
class RuntimeAPI:
    """HAProxy's stats socket at ``address`` (a path or ``host:port``), ``timeout`` seconds
    for each connect, write and read."""

    address: str
    timeout: float = 2.0

    def send(self, command: str) -> str:
        """HAProxy's whole answer to ``command``. Raises RouterUnavailable."""
        if "\n" in command or ";" in command:
            # One command per call: ';' would chain commands and hide which one failed.
            raise ValueError(f"one command at a time, without ';' or newlines: {command!r}")
        try:
            where = parse_address(self.address)
        except ValueError as exc:
            raise self._error(command, str(exc)) from None
        try:
            if isinstance(where, str):
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            else:
                family = socket.AF_INET6 if ":" in where[0] else socket.AF_INET
                conn = socket.socket(family, socket.SOCK_STREAM)
            with conn:
                conn.settimeout(self.timeout)
                conn.connect(where)
                conn.sendall(command.encode() + b"\n")
                chunks: list[bytes] = []
                size = 0
                while size <= _MAX_ANSWER:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except TimeoutError:
            raise self._error(command, f"no answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise self._error(command, exc.strerror or str(exc)) from None
        return b"".join(chunks).decode(errors="replace")

    def run(self, command: str) -> None:
        """A command that answers nothing when it works (``set ...``); any text is HAProxy
        refusing it. Raises RouterUnavailable."""
        answer = self.send(command)
        if answer.strip():
            raise self._error(command, f"HAProxy answered {_one_line(answer)!r}")

    def show_servers_state(self, backend: str) -> list[dict[str, str]]:
        """``show servers state BACKEND``: one dict per server, keyed by the header's column
        names (``srv_name``, ``srv_uweight``, ``srv_admin_state``, ...)."""
        command = f"show servers state {backend}"
        answer = self.send(command)
        lines = [line for line in answer.splitlines() if line.strip()]
        header = next((line for line in lines if line.startswith("#")), None)
        if header is None:
            raise self._error(command, f"HAProxy answered {_one_line(answer)!r}")
        names = header.lstrip("#").split()
        rows: list[dict[str, str]] = []
        for line in lines[lines.index(header) + 1 :]:
            values = line.split()
            if len(values) < len(names):
                raise self._error(command, f"unreadable line {line.strip()!r}")
            rows.append(dict(zip(names, values, strict=False)))
        return rows

    def get_weight(self, backend: str, server: str) -> int:
        """``get weight B/S``: the server's current weight."""
        command = f"get weight {backend}/{server}"
        answer = self.send(command)
        match = re.match(r"\s*(\d+)\s+\(initial\s+\d+\)", answer)
        if match is None:
            raise self._error(command, f"HAProxy answered {_one_line(answer)!r}")
        return int(match[1])

    def _error(self, command: str, cause: str) -> RouterUnavailable:
        return RouterUnavailable(
            f"HAProxy runtime API at {self.address}: {command!r} failed: {cause}".replace("\n", " ")
        )
