#!/usr/bin/env python3
"""A release-bot webhook receiver that drives an Argo Rollouts canary with kubectl.

Standard library only: copy it next to a kubectl that has the argo-rollouts plugin and run

    RELEASE_BOT_WEBHOOK_SECRET=... python3 receiver.py --port 8787 \\
        --image 'registry.example.com/{service}:{version}'

It checks each call's signature and timestamp, answers a repeated idempotency key with the
first answer, and maps the bot's actions onto the Rollout (docs/webhooks.md, README.md):

    deploy             kubectl argo rollouts set image ROLLOUT CONTAINER=IMAGE
    set_weight W       nothing when the rollout is at W already (its first setWeight step is
                       taken on deploy); `promote` when it is paused just before setWeight W
    set_weight 100     in a pre-prod environment (--preprod, default dev and staging), or on
                       a rollout without a setWeight 100 step: `promote --full`
    promote            kubectl argo rollouts promote ROLLOUT --full
    rollback           kubectl argo rollouts abort ROLLOUT, then set image back to the stable
                       version (or `undo` without an image template); `promote --full` when
                       going back is an update of its own (the new version had completed)
    rehearse_rollback  {"ok": true} when the rollout is Healthy and not aborted; nothing is
                       deployed, so the answer says "rehearsed": false

In prod the rollout's steps must mirror the bot's plan: `setWeight: W` then `pause: {}` for
every percentage of the plan, 100 included (rollout.yaml). The bot deploys to dev and staging
first with `deploy` then `set_weight 100`: there the rollout is promoted whole, whatever its
steps. Each environment has its own Rollout: --rollout and --namespace are templates.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACTIONS = ("deploy", "set_weight", "promote", "rollback", "rehearse_rollback")
MAX_BODY = 1 << 20
KEYS_KEPT = 10_000


class Refused(Exception):
    """An answer other than 200: the status tells the bot whether to retry (5xx) or not."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def verify(secret: str, timestamp: str, body: bytes, signature: str, tolerance: float) -> bool:
    """HMAC-SHA256 over "<timestamp>." + body, compared in constant time; stale is refused."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - sent) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    given = signature.strip().removeprefix("v1=")
    return hmac.compare_digest(expected.hexdigest().encode(), given.encode())


class Kubectl:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.ran: list[str] = []

    def run(self, *args: str, record: bool = True) -> str:
        command = [self.binary, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Refused(502, f"{' '.join(command)}: {exc}") from None
        if done.returncode != 0:
            said = " ".join((done.stderr or done.stdout).split())[:300]
            # 502: the bot retries; a lasting cause reaches the release thread after them.
            raise Refused(502, f"{' '.join(command)} exited {done.returncode}: {said}")
        if record:
            self.ran.append(" ".join(command))
        return done.stdout

    def rollout(self, name: str, namespace: str) -> dict[str, Any]:
        out = self.run("get", "rollout", name, "-n", namespace, "-o", "json", record=False)
        try:
            doc: dict[str, Any] = json.loads(out)
        except ValueError:
            raise Refused(502, f"kubectl get rollout {name} printed no JSON") from None
        return doc

    def argo(self, namespace: str, *args: str) -> None:
        self.run("argo", "rollouts", *args, "-n", namespace)


class Receiver:
    def __init__(self, args: argparse.Namespace, secret: str) -> None:
        self.args = args
        self.secret = secret
        self.preprod = {e.strip() for e in args.preprod.split(",") if e.strip()}
        self.lock = threading.Lock()  # one change at a time, in the order they arrive
        self.answered: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        # Rollbacks that ran `undo` but were not answered 2xx yet: their retry must not undo
        # again (a second undo goes back to the version rolled back).
        self.undone: OrderedDict[str, None] = OrderedDict()

    # -- HTTP -----------------------------------------------------------------------------

    def handle(self, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        stamp = headers.get("X-Release-Bot-Timestamp", "")
        signature = headers.get("X-Release-Bot-Signature", "")
        if not verify(self.secret, stamp, raw, signature, self.args.tolerance):
            return 401, {"ok": False, "error": "bad or stale signature"}
        try:
            call = json.loads(raw)
            action, key = call["action"], headers.get("Idempotency-Key", "")
        except (ValueError, KeyError, TypeError):
            return 400, {"ok": False, "error": "the body is not a release-bot call"}
        if action not in ACTIONS:
            return 422, {"ok": False, "error": f"unknown action {action!r}"}
        if not key or key != call.get("idempotency_key"):
            return 400, {"ok": False, "error": "Idempotency-Key must match idempotency_key"}
        with self.lock:
            if key in self.answered:
                status, doc = self.answered[key]
                return status, {**doc, "replayed": True}
            kubectl = Kubectl(self.args.kubectl)
            try:
                doc = getattr(self, action)(call, kubectl)
                status = 200
            except Refused as exc:
                status, doc = exc.status, {"ok": False, "error": str(exc)}
            doc["ran"] = kubectl.ran
            if status == 200:
                self.answered[key] = (status, doc)
                while len(self.answered) > KEYS_KEPT:
                    self.answered.popitem(last=False)
        return status, doc

    # -- where a call lands ---------------------------------------------------------------

    def _names(self, call: dict[str, Any]) -> tuple[str, str, str]:
        fields = {
            "service": call.get("service", ""),
            "environment": call.get("environment", ""),
            "region": call.get("region", ""),
        }
        return (
            self.args.rollout.format(**fields),
            self.args.namespace.format(**fields),
            self.args.container.format(**fields),
        )

    def _image(self, call: dict[str, Any], version: str | None) -> str | None:
        if version is None:
            return None
        if self.args.image:
            return str(self.args.image.format(service=call.get("service", ""), version=version))
        return str(call["image"]) if call.get("image") and version == call.get("version") else None

    # -- actions --------------------------------------------------------------------------

    def deploy(self, call: dict[str, Any], kubectl: Kubectl) -> dict[str, Any]:
        rollout, namespace, container = self._names(call)
        image = self._image(call, call.get("version"))
        if image is None:
            raise Refused(422, "no image: start the receiver with --image or set the bot's image")
        # Argo starts the canary steps at once: the rollout moves to its first setWeight.
        kubectl.argo(namespace, "set", "image", rollout, f"{container}={image}")
        return {"ok": True}

    def set_weight(self, call: dict[str, Any], kubectl: Kubectl) -> dict[str, Any]:
        rollout, namespace, _ = self._names(call)
        weight, mirror = float(call.get("weight") or 0), float(call.get("mirror") or 0)
        if mirror > 0:
            raise Refused(
                422,
                "this receiver does not mirror traffic (Argo Rollouts mirrors only through a "
                "traffic-router plugin's setMirrorRoute step): release without shadow",
            )
        ro = kubectl.rollout(rollout, namespace)
        steps, at, status = _steps(ro), _index(ro), ro.get("status") or {}
        if status.get("abort"):
            raise Refused(409, f"rollout {rollout} is aborted: nothing to move")
        k = next((i for i, s in enumerate(steps) if _weight(s) == weight), None)
        if weight >= 100 and (call.get("environment") in self.preprod or k is None):
            # Pre-prod takes the new version whole (the bot sends deploy, then 100 %); a
            # rollout without a setWeight 100 step reaches 100 % at its end. Either way the
            # remaining steps and pauses are skipped.
            return self._whole(kubectl, rollout, namespace, ro)
        if k is None:
            plan = ", ".join(f"{_weight(s):g}" for s in steps if _weight(s) is not None)
            raise Refused(
                422,
                f"rollout {rollout} has no setWeight {weight:g} step (its weights: "
                f"{plan or 'none'}): make its steps mirror the bot's plan",
            )
        if at >= k:
            detail = f"rollout {rollout} is at or past setWeight {weight:g} (step {at})"
            return {"ok": True, "detail": detail}
        if not _indefinite_pause(steps[at]):
            # Still scaling towards its pause: the bot retries 503 with backoff.
            raise Refused(503, f"rollout {rollout} is still moving (step {at}); try again")
        if any("pause" in s for s in steps[at + 1 : k]):
            raise Refused(
                409,
                f"rollout {rollout} is paused at step {at}; setWeight {weight:g} is more "
                "than one promotion away: make its steps mirror the bot's plan",
            )
        kubectl.argo(namespace, "promote", rollout)
        return {"ok": True}

    def promote(self, call: dict[str, Any], kubectl: Kubectl) -> dict[str, Any]:
        rollout, namespace, _ = self._names(call)
        ro = kubectl.rollout(rollout, namespace)
        status = ro.get("status") or {}
        done = _index(ro) >= len(_steps(ro)) and status.get("phase") == "Healthy"
        if done and not status.get("abort"):
            return {"ok": True, "detail": f"rollout {rollout} is promoted already"}
        kubectl.argo(namespace, "promote", rollout, "--full")
        return {"ok": True}

    def rollback(self, call: dict[str, Any], kubectl: Kubectl) -> dict[str, Any]:
        rollout, namespace, container = self._names(call)
        key = str(call.get("idempotency_key"))
        stable = self._image(call, call.get("stable_version"))
        ro = kubectl.rollout(rollout, namespace)
        changed = True
        # abort sends all traffic back to the stable ReplicaSet at once, but leaves the new
        # version in spec.template (the rollout stays Degraded and would try again): putting
        # the stable image back makes it Healthy, and Argo skips the steps going back to the
        # stable ReplicaSet of an update that had not completed. A template already on the
        # stable image (a retry, a repeat) needs neither again.
        if stable is not None and _image_of(ro, container) != stable:
            kubectl.argo(namespace, "abort", rollout)
            kubectl.argo(namespace, "set", "image", rollout, f"{container}={stable}")
        elif stable is None and key not in self.undone:
            kubectl.argo(namespace, "abort", rollout)
            kubectl.argo(namespace, "undo", rollout)
            self.undone[key] = None
            while len(self.undone) > KEYS_KEPT:
                self.undone.popitem(last=False)
        else:
            changed = False
        # An update that had completed (pre-prod, promoted whole) made the rolled-back version
        # the stable one: going back is then an update of its own, which would walk the
        # canary steps and stop at the first pause. The stable version takes everything now.
        done = self._whole(kubectl, rollout, namespace, None if changed else ro)
        self.undone.pop(key, None)
        return done

    def _whole(
        self, kubectl: Kubectl, rollout: str, namespace: str, ro: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Once the controller has seen the template, finish the update it is making, if
        any, with `promote --full` (a no-op before it has seen it, hence the wait): the
        template's version serves everything. 503 if it has not seen it in time."""
        deadline = time.monotonic() + self.args.observe_seconds
        ro = ro or kubectl.rollout(rollout, namespace)
        while not _observed(ro):
            if time.monotonic() >= deadline:
                raise Refused(
                    503,
                    f"rollout {rollout}: the controller has not seen the change yet; try again",
                )
            time.sleep(0.2)
            ro = kubectl.rollout(rollout, namespace)
        if not _updating(ro):
            return {"ok": True, "detail": f"rollout {rollout} runs its template fully"}
        kubectl.argo(namespace, "promote", rollout, "--full")
        return {"ok": True}

    def rehearse_rollback(self, call: dict[str, Any], kubectl: Kubectl) -> dict[str, Any]:
        rollout, namespace, _ = self._names(call)
        ro = kubectl.rollout(rollout, namespace)
        status = ro.get("status") or {}
        phase = status.get("phase") or "Unknown"
        if phase == "Healthy" and not status.get("abort"):
            return {
                "ok": True,
                "rehearsed": False,
                "detail": f"rollout {rollout} is Healthy: abort returns all traffic to its "
                "stable ReplicaSet (checked, not exercised)",
            }
        said = status.get("message") or ("aborted" if status.get("abort") else "")
        return {
            "ok": False,
            "rehearsed": False,
            "detail": f"rollout {rollout} is {phase}" + (f": {said}" if said else ""),
        }


def _steps(ro: dict[str, Any]) -> list[dict[str, Any]]:
    canary = ((ro.get("spec") or {}).get("strategy") or {}).get("canary")
    if canary is None:
        raise Refused(422, "this receiver drives canary Rollouts (spec.strategy.canary)")
    return list(canary.get("steps") or [])


def _index(ro: dict[str, Any]) -> int:
    """The step the controller is on; past the last one when the rollout is complete."""
    index = (ro.get("status") or {}).get("currentStepIndex")
    return len(_steps(ro)) if index is None else int(index)


def _observed(ro: dict[str, Any]) -> bool:
    """The controller has seen the latest spec: what `kubectl argo rollouts status` checks
    (an observedGeneration that is not a number is an old controller's: taken as seen)."""
    seen = (ro.get("status") or {}).get("observedGeneration")
    try:
        return int(str(seen)) == int((ro.get("metadata") or {})["generation"])
    except (TypeError, ValueError, KeyError):
        return True


def _updating(ro: dict[str, Any]) -> bool:
    """An update is under way: the template's pods are not the stable ReplicaSet's."""
    status = ro.get("status") or {}
    current, stable = status.get("currentPodHash"), status.get("stableRS")
    if current is None or stable is None:  # not reported: the step says it
        return _index(ro) < len(_steps(ro))
    return bool(current != stable)


def _image_of(ro: dict[str, Any], container: str) -> str | None:
    spec = ((ro.get("spec") or {}).get("template") or {}).get("spec") or {}
    return next(
        (c.get("image") for c in spec.get("containers") or [] if c.get("name") == container), None
    )


def _weight(step: dict[str, Any]) -> float | None:
    return float(step["setWeight"]) if "setWeight" in step else None


def _indefinite_pause(step: dict[str, Any]) -> bool:
    return "pause" in step and not (step["pause"] or {}).get("duration")


def serve(receiver: Receiver, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200, {"ok": True})
            else:
                self._answer(404, {"ok": False, "error": "POST release-bot calls to any path"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"ok": False, "error": "body too large"})
                return
            status, doc = receiver.handle(self.headers, self.rfile.read(length))
            self._answer(status, doc)

        def _answer(self, status: int, doc: dict[str, Any]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "5")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"receiver: {self.address_string()} {format % args}\n")

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--secret-env", default="RELEASE_BOT_WEBHOOK_SECRET")
    parser.add_argument("--tolerance", type=float, default=300, help="seconds (default 300)")
    parser.add_argument("--kubectl", default="kubectl")
    fields = "{service}, {environment} and {region}"
    parser.add_argument("--rollout", default="{service}", help=f"the Rollout; uses {fields}")
    parser.add_argument("--namespace", default="{service}-{environment}", help=f"uses {fields}")
    parser.add_argument("--container", default="{service}", help=f"uses {fields}")
    parser.add_argument(
        "--image", default=None, help="e.g. 'registry.example.com/{service}:{version}'"
    )
    parser.add_argument(
        "--preprod",
        default="dev,staging",
        help="environments the bot takes whole (deploy, then set_weight 100): there "
        "set_weight 100 is `promote --full` (default dev,staging)",
    )
    parser.add_argument(
        "--observe-seconds",
        type=float,
        default=2.0,
        help="how long to wait for the controller to see a change before `promote --full`; "
        "then 503 and the bot retries (default 2; keep it below the bot's timeout_seconds)",
    )
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        print(f"receiver: {args.secret_env} is not set: export the bot's secret", file=sys.stderr)
        return 2
    server = serve(Receiver(args, secret), args.host, args.port)
    print(f"receiver: listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
