"""Local fakes of PagerDuty's Events API v2 and Statuspage's REST API on 127.0.0.1:0: they
check what the real ones check (the routing key, the API key, the body's required fields),
answer as they answer, record each request, and refuse on demand."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback import LoopbackServer


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class _FakeApi(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self._refusals: list[int] = []  # statuses answered to the next requests, in turn

    def refuse(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status``."""
        with self.lock:
            self._refusals += [status] * times

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        raise NotImplementedError

    def _make_server(self) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                with fake.lock:
                    fake.requests.append(Request(self.path, headers, body))
                    refused = fake._refusals.pop(0) if fake._refusals else None
                if refused is not None:
                    status, answer = refused, {"status": "error", "message": "refused"}
                else:
                    status, answer = fake.answer(self.path, headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server


class FakePagerDuty(_FakeApi):
    """``POST /v2/enqueue``: 202 with the dedup key, 400 on a malformed event; the open
    alerts by dedup key in ``alerts`` ("triggered", "resolved")."""

    name = "fake-pagerduty"

    def __init__(self, routing_key: str = "R0UTINGKEY") -> None:
        super().__init__()
        self.routing_key = routing_key
        self.alerts: dict[str, str] = {}

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        if path != "/v2/enqueue":
            return 404, {"status": "error", "message": "Not found"}
        action, key = body.get("event_action"), body.get("dedup_key")
        errors = []
        if body.get("routing_key") != self.routing_key:
            errors.append("'routing_key' is invalid")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        payload = body.get("payload") or {}
        if action == "trigger" and not all(
            payload.get(f) for f in ("summary", "source", "severity")
        ):
            errors.append("'payload' lacks summary, source or severity")
        if action != "trigger" and not key:
            errors.append("'dedup_key' is required")
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid",
                         "errors": errors}  # fmt: skip
        dedup = str(key or uuid.uuid4().hex)
        with self.lock:
            self.alerts[dedup] = "triggered" if action == "trigger" else "resolved"
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup}


class FakeStatuspage(_FakeApi):
    """``POST /v1/pages/{page_id}/incidents`` with ``Authorization: OAuth KEY``: 201 with the
    incident; 401 on a wrong key, 404 on another page. ``incidents``: those created."""

    name = "fake-statuspage"

    def __init__(self, page_id: str = "PAGE1", api_key: str = "SP-KEY") -> None:
        super().__init__()
        self.page_id, self.api_key = page_id, api_key
        self.incidents: list[dict[str, Any]] = []

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        if headers.get("authorization") != f"OAuth {self.api_key}":
            return 401, {"error": "Could not authenticate"}
        if path != f"/v1/pages/{self.page_id}/incidents":
            return 404, {"error": "Page not found"}
        incident = body.get("incident") or {}
        if not incident.get("name"):
            return 422, {"error": "name can't be blank"}
        created = {"id": f"inc{len(self.incidents) + 1}", "page_id": self.page_id, **incident}
        with self.lock:
            self.incidents.append(created)
        return 201, created
