"""Local fakes of PagerDuty's Events API v2 and Statuspage's REST API on 127.0.0.1:0: they
check what the real ones check (the routing key, the API key, the body's required fields),
answer as they answer, record each request, and refuse on demand."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback import LoopbackServer


@dataclass(frozen=True)
class Request:
    method: str
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

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def stall(self) -> float:
        """Seconds to wait, once the answer is decided, before sending it (0: none)."""
        return 0.0

    def _make_server(self) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def _serve(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                with fake.lock:
                    fake.requests.append(Request(method, self.path, headers, body))
                    refused = fake._refusals.pop(0) if fake._refusals else None
                if refused is not None:
                    status, answer = refused, {"status": "error", "message": "refused"}
                else:
                    status, answer = fake.answer(method, self.path, headers, body)
                if delay := fake.stall():
                    time.sleep(delay)  # the work is done; the answer comes too late
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

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        if method != "POST" or path != "/v2/enqueue":
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
    """Statuspage's incidents with ``Authorization: OAuth KEY`` (401 on a wrong key, 404 on
    another page): ``POST /v1/pages/{page_id}/incidents`` creates one (201),
    ``GET …/incidents/unresolved`` lists those not resolved, ``PATCH …/incidents/{id}``
    updates one. ``incidents``: those created, as they are now. ``time_out_after_create``
    makes the next creation answer only after ``seconds``, as a slow Statuspage does: the
    incident exists, the caller's request timed out."""

    name = "fake-statuspage"

    def __init__(self, page_id: str = "PAGE1", api_key: str = "SP-KEY") -> None:
        super().__init__()
        self.page_id, self.api_key = page_id, api_key
        self.incidents: list[dict[str, Any]] = []
        self._late_creations: list[float] = []
        self._stall = threading.local()

    def time_out_after_create(self, seconds: float) -> None:
        with self.lock:
            self._late_creations.append(seconds)

    def stall(self) -> float:
        return float(getattr(self._stall, "seconds", 0.0))

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        self._stall.seconds = 0.0
        if headers.get("authorization") != f"OAuth {self.api_key}":
            return 401, {"error": "Could not authenticate"}
        root = f"/v1/pages/{self.page_id}/incidents"
        if not path.startswith(root):
            return 404, {"error": "Page not found"}
        rest = path[len(root) :]
        with self.lock:
            if method == "GET" and rest == "/unresolved":
                return 200, [i for i in self.incidents if i.get("status") not in _RESOLVED]
            if method == "PATCH" and rest.startswith("/"):
                found = next((i for i in self.incidents if i["id"] == rest[1:]), None)
                if found is None:
                    return 404, {"error": "Incident not found"}
                found.update(body.get("incident") or {})
                return 200, found
            if method != "POST" or rest:
                return 404, {"error": "Not found"}
            incident = body.get("incident") or {}
            if not incident.get("name"):
                return 422, {"error": "name can't be blank"}
            created = {"id": f"inc{len(self.incidents) + 1}", "page_id": self.page_id, **incident}
            self.incidents.append(created)
            if self._late_creations:
                self._stall.seconds = self._late_creations.pop(0)
        return 201, created


_RESOLVED = ("resolved", "postmortem", "completed")
