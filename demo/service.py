"""A small HTTP service for the live demo: every path answers with its version, except that a
knob makes a share of requests fail (500) or slow. It exposes Prometheus metrics the way a
real service would: ``http_requests_total{code}`` and the ``http_request_duration_seconds``
histogram, on ``/metrics``.

Faults are deterministic: with ``--error-rate 0.25`` exactly every fourth request fails.
Latency is lognormal around ``--latency-ms`` (sigma 0.5, like a real service's long tail),
drawn from a generator seeded by the version, so two runs draw the same latencies.

    python -m demo.service --version 2.0.0 --port 8082 --error-rate 0.25 --latency-ms 40
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_SIGMA = 0.5
# Finer than the client's default buckets where the answers fall, as a team would set them:
# the judge's slow-request bound is a bucket's edge, and a coarse one leaves too few requests
# above it to tell a healthy canary from a slow one in a short demo.
BUCKETS = (*(n / 100 for n in range(1, 21)), 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


class Knobs:
    """What the service does wrong, and a count to make it exact."""

    def __init__(self, error_rate: float, latency_ms: float, seed: str) -> None:
        self.error_rate = error_rate
        self.latency_ms = latency_ms
        self._served = 0
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def latency_seconds(self) -> float:
        if self.latency_ms <= 0:
            return 0.0
        with self._lock:
            return self._random.lognormvariate(math.log(self.latency_ms / 1000), LATENCY_SIGMA)

    def next_fails(self) -> bool:
        """True for the requests that must fail: floor(n·rate) grows by one at each of them."""
        with self._lock:
            self._served += 1
            n = self._served
        return math.floor(n * self.error_rate) > math.floor((n - 1) * self.error_rate)


def serve(version: str, port: int, knobs: Knobs) -> ThreadingHTTPServer:
    registry = CollectorRegistry()
    requests = Counter("http_requests", "Requests served", ["code"], registry=registry)
    duration = Histogram(
        "http_request_duration_seconds",
        "Time to answer a request",
        registry=registry,
        buckets=BUCKETS,
    )
    # Labelled series exist only once used: create both now, so that "no 500s yet" reads
    # as a zero in Prometheus rather than as no data.
    for code in ("200", "500"):
        requests.labels(code=code)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                return
            if self.path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
                return
            started = time.perf_counter()
            time.sleep(knobs.latency_seconds())
            code = 500 if knobs.next_fails() else 200
            body = f"{version} {'error' if code == 500 else 'ok'}\n".encode()
            self._send(code, body, "text/plain")
            requests.labels(code=str(code)).inc()
            duration.observe(time.perf_counter() - started)

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Version", version)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet: the load generator counts what matters

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    knobs = Knobs(args.error_rate, args.latency_ms, seed=args.version)
    server = serve(args.version, args.port, knobs)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
