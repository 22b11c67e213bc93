"""The faults: each one a round on a fresh database, injected at a seeded random point, then
converged (a process runs again until every release has ended) and checked."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.chaos.invariants import check
from bench.chaos.node import SIGNING_SECRET
from bench.chaos.world import (
    ALICE,
    HANG_GUARD,
    SERVICES,
    Proc,
    World,
    release_line,
    wait_until,
)
from tests.slack_signing import signed_headers

FIRST, SECOND = SERVICES
RELEASE_ID = re.compile(r"\brel-[a-z0-9][a-z0-9.\-]*-[0-9a-f]{6}\b")


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    run: Callable[[World, random.Random], None]
    llm_outage: bool = False


def _version(rng: random.Random) -> str:
    return f"1.{rng.randrange(1, 99)}.{rng.randrange(0, 99)}"


def _started(world: World, *outputs: str) -> set[str]:
    return {m for out in outputs for m in RELEASE_ID.findall(out)}


# -- SIGKILL ----------------------------------------------------------------------------------


def kill_run(world: World, rng: random.Random) -> None:
    """``release-bot run`` SIGKILLed at a random moment of its release (it takes about a
    second and a half); ``resume`` carries the release to its end."""
    run = world.spawn("run", "run", release_line(FIRST, _version(rng)), "--db", str(world.db),
                      "--approve-as", "alice")  # fmt: skip
    wait_until(lambda: world.releases() or run.popen.poll() is not None, "the release stored")
    time.sleep(rng.uniform(0.0, 1.0))
    world.kill(run)
    world.converge_cli()
    check(world, _started(world, run.stdout), slack=False)


def kill_node(world: World, rng: random.Random) -> None:
    """The app process SIGKILLed mid-release (between a router change and its record, a post
    and its delivery mark, where the random moment falls); a new process converges it."""
    node = world.start_node("node-1")
    _start_on_slack(world, node, FIRST, _version(rng))
    _approve_when_asked(world)
    time.sleep(rng.uniform(0.0, 1.5))
    world.kill(node)
    _converge_after(world)


def kill_posting(world: World, rng: random.Random) -> None:
    """The app SIGKILLed while Slack holds the answer to one of its posts (a card or a thread
    reply, the Nth): Slack applied it, the process never recorded it. The next process must
    not post it again."""
    _kill_when_applied(world, rng, "chat.postMessage", after=rng.randrange(0, 4))


def kill_uploading(world: World, rng: random.Random) -> None:
    """The same for a file: the app SIGKILLed once Slack shared its Nth upload (a stage's
    chart, or the final report) into the thread, before the upload was recorded."""
    _kill_when_applied(world, rng, "files.completeUploadExternal", after=rng.randrange(0, 3))


def _kill_when_applied(world: World, rng: random.Random, method: str, after: int) -> None:
    """The app SIGKILLed while Slack holds the answer to its call of ``method`` (the one after
    ``after`` more), or once its release ended with fewer calls; a new process converges."""
    applied = world.fake.lose_next_answer(method, after=after, hold=HANG_GUARD)
    node = world.start_node("node-1")
    _start_on_slack(world, node, FIRST, _version(rng))
    wait_until(lambda: applied.is_set() or _approve_when_asked(world), "a post held")
    world.kill(node)
    world.fake.keep_answers()  # the release ended with fewer posts: the next process's are kept
    _converge_after(world)


def kill_traffic(world: World, rng: random.Random) -> None:
    """The app SIGKILLs itself the moment its Nth router change took effect, before the tick
    recorded anything after it; a new process converges the router and the release."""
    node = world.start_node("node-1", "--kill-after-apply", str(rng.randint(1, 4)))
    _start_on_slack(world, node, FIRST, _version(rng))
    wait_until(lambda: world.ended(node) or _approve_when_asked(world), "the router changed")
    world.stop(node)  # done already, or the release ended with fewer changes
    _converge_after(world)


def _converge_after(world: World) -> None:
    again = world.start_node("node-2")
    world.converge_node(again)
    world.stop(again)
    check(world, set(), slack=True)


def _start_on_slack(world: World, node: Proc, service: str, version: str) -> None:
    """``/release SERVICE VERSION`` from Slack; returns once the release is stored."""
    body, _ = world.slack_body(release_line(service, version))
    world.send(node, body)
    wait_until(lambda: any(r["service"] == service for r in world.releases()), f"{service} stored")


def _approve_when_asked(world: World) -> bool:
    """Approve what waits for it; True once no release is active (nothing more will come)."""
    active = world.active()
    for release in active:
        if release["status"] == "awaiting_approval":
            world.cli("approve", "approve", release["id"], "--as", ALICE)
    return not active


# -- two processes ----------------------------------------------------------------------------


def second_process(world: World, rng: random.Random) -> None:
    """A second app process on the same database, started at a random moment while releases
    move, and a CLI ``run`` and ``status`` beside them."""
    first = world.start_node("node-1")
    _start_on_slack(world, first, FIRST, _version(rng))
    time.sleep(rng.uniform(0.0, 1.0))
    second = world.start_node("node-2")
    run = world.spawn("run", "run", release_line(SECOND, _version(rng)), "--db",
                      str(world.db), "--approve-as", "alice")  # fmt: skip
    world.cli("status", "status")
    world.finish(run)
    world.converge_node(first)
    world.stop(second)
    world.stop(first)
    check(world, _started(world, run.stdout), slack=True)


# -- outages ----------------------------------------------------------------------------------

SLACK_FAILURES = (
    ("chat.update", 200, "internal_error"),
    ("chat.update", 500, "fatal_error"),
    ("chat.postMessage", 500, "service_unavailable"),
    ("chat.postMessage", 200, "internal_error"),
    ("chat.postMessage", 429, "ratelimited"),
    ("files.getUploadURLExternal", 503, "service_unavailable"),
)


def slack_outage(world: World, rng: random.Random) -> None:
    """Slack refuses a few calls of one method, from a random moment of the release."""
    node = world.start_node()
    _start_on_slack(world, node, FIRST, _version(rng))
    time.sleep(rng.uniform(0.0, 1.0))
    method, status, error = rng.choice(SLACK_FAILURES)
    world.fake.fail_next(method, rng.randint(1, 5), status=status, error=error, retry_after=0)
    world.converge_node(node)
    world.stop(node)
    check(world, set(), slack=True)


def llm_outage(world: World, rng: random.Random) -> None:
    """The model's API is down (the fake Anthropic answers nothing but errors) for the whole
    release: the rules must carry it, and no traceback reach the logs."""
    node = world.start_node()
    time.sleep(rng.uniform(0.0, 0.5))
    _start_on_slack(world, node, FIRST, _version(rng))
    world.converge_node(node)
    world.stop(node)
    check(world, set(), slack=True)


def metrics_outage(world: World, rng: random.Random) -> None:
    """The canary's metrics go dark at a random exposure while it misbehaves: with no data
    there is no proof of safety, so the release must end (rolled back), not wait for a human
    with the bad version serving."""
    at = rng.choice((5, 10, 25, 50))
    run = world.spawn("run", "run", release_line(FIRST, _version(rng)), "--db", str(world.db),
                      "--approve-as", "alice", "--fault", f"metrics:down@{at}",
                      "--fault", f"errors:3x@{at}")  # fmt: skip
    world.finish(run)
    world.converge_cli()
    check(world, _started(world, run.stdout), slack=False)


# -- replays and duplicates ---------------------------------------------------------------------


def replay(world: World, rng: random.Random) -> None:
    """A signed request sent again inside Slack's window, after the state it changed was
    changed back: ``unlock`` replayed after a new ``lock`` (or ``lock`` after an ``unlock``)."""
    node = world.start_node()
    scope = rng.choice(("prod", f"{rng.choice(SERVICES)}/prod"))
    lock_first = rng.random() < 0.5
    steps = ("lock", "unlock", "lock") if lock_first else ("lock", "unlock")
    sent: list[tuple[str, dict[str, str]]] = []
    for step in steps:
        text = f"lock {scope} chaos" if step == "lock" else f"unlock {scope}"
        body, _ = world.slack_body(text)
        headers = signed_headers(body, SIGNING_SECRET)
        world.send(node, body, headers)
        sent.append((body, headers))
        locking = step == "lock"
        wait_until(lambda: _locked(world, scope) == locking, f"{step} {scope}")  # noqa: B023
    replayed_body, replayed_headers = sent[1] if lock_first else sent[0]
    expected = _locked(world, scope)
    time.sleep(rng.uniform(0.0, 1.0))
    world.send(node, replayed_body, replayed_headers)
    # A later request answered means the replay was handed over before it; SIGTERM lets the
    # work already handed over finish before the database is read.
    sentinel, name = world.slack_body("locks")
    world.send(node, sentinel)
    wait_until(lambda: world.fake.responses(name), "the answer to /release locks")
    world.stop(node)
    if _locked(world, scope) != expected:
        world.outcome.double(f"a replayed {'unlock' if lock_first else 'lock'} {scope} acted again")
    check(world, set(), slack=True)


def _locked(world: World, scope: str) -> bool:
    return bool(world.rows("SELECT scope FROM locks WHERE scope = ?", scope))


def duplicates(world: World, rng: random.Random) -> None:
    """The same release asked for several times at once: from Slack (2 to 4 commands) and
    from two CLIs. One release of each may run; the others are refused."""
    node = world.start_node()
    version = _version(rng)
    copies = [world.slack_body(release_line(FIRST, version))[0] for _ in range(rng.randint(2, 4))]
    senders = [threading.Thread(target=world.send, args=(node, body)) for body in copies]
    cli_version = _version(rng)
    runs = [world.spawn(f"run-{i}", "run", release_line(SECOND, cli_version), "--db",
                        str(world.db), "--approve-as", "alice") for i in range(2)]  # fmt: skip
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    wait_until(lambda: any(r["service"] == FIRST for r in world.releases()), f"{FIRST} stored")
    for run in runs:
        world.finish(run)
    world.converge_node(node)
    world.stop(node)
    for service, wanted in ((FIRST, version), (SECOND, cli_version)):
        stored = [r for r in world.releases() if r["service"] == service]
        if len(stored) > 1:
            world.outcome.double(f"{len(stored)} releases of {service} {wanted} stored")
    check(world, _started(world, *(r.stdout for r in runs)), slack=True)


FAULTS: tuple[Fault, ...] = (
    Fault("sigkill-run", "SIGKILL of `release-bot run` mid-release", kill_run),
    Fault("sigkill-app", "SIGKILL of the app mid-release (tick, router, post)", kill_node),
    Fault(
        "sigkill-post",
        "SIGKILL of the app after Slack took a post, before its record",
        kill_posting,
    ),
    Fault(
        "sigkill-upload",
        "SIGKILL of the app after Slack shared an upload, before its record",
        kill_uploading,
    ),
    Fault("sigkill-traffic", "SIGKILL of the app right after a router change", kill_traffic),
    Fault("second-process", "a second app and a CLI on the same database", second_process),
    Fault("slack-outage", "Slack refuses calls (update, post, upload)", slack_outage),
    Fault("llm-outage", "the model's API answers only errors", llm_outage, llm_outage=True),
    Fault("metrics-outage", "canary metrics go dark while it misbehaves", metrics_outage),
    Fault("replay", "a signed Slack request replayed in its window", replay),
    Fault("duplicates", "the same release asked 2-4 times at once (Slack, CLI)", duplicates),
)
