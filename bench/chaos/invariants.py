"""What must hold after every round, read from the database and the fake Slack."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from bench.chaos.world import CHANNEL, TERMINAL, World

#: The audit trail's last word on a release (the narration may still add to it afterwards).
ENDINGS = ("release_completed", "rollback_completed", "release_failed", "rejected", "cancelled")


def check(world: World, started: set[str], slack: bool) -> None:
    """Record on ``world.outcome`` what was lost or doubled. ``started``: release ids a process
    said it started (each must exist); ``slack``: whether the round's releases post to Slack."""
    outcome = world.outcome
    releases = {r["id"]: r for r in world.releases()}
    for release_id in sorted(started - set(releases)):
        outcome.lose(f"{release_id} was started but is not in the database")
    for release in releases.values():
        if release["status"] not in TERMINAL:
            why = world.rows(
                "SELECT details FROM events WHERE release_id = ? AND action = 'paused' "
                "ORDER BY id DESC LIMIT 1",
                release["id"],
            )
            because = (
                f" ({why[0]['details'][:120]})" if why and release["status"] == "paused" else ""
            )
            outcome.lose(f"{release['id']} is left {release['status']} after convergence{because}")
    _one_active_per_service(world)
    _traffic_matches(world)
    if slack:
        _delivered_once(world)
    for proc in world.procs:
        if not proc.killed and "Traceback" in proc.stderr:
            last = proc.stderr.strip().splitlines()[-1]
            outcome.crash(f"{proc.name}: {last}")


def _one_active_per_service(world: World) -> None:
    """Never two releases of one service active at once: their audit trails (event ids are
    one sequence) must not interleave once both have begun."""
    spans: dict[str, list[tuple[int, int, str]]] = {}
    ends = ", ".join(f"'{action}'" for action in ENDINGS)
    for row in world.rows(
        "SELECT e.release_id AS id, r.service AS service, MIN(e.id) AS first, "
        f"COALESCE(MIN(CASE WHEN e.action IN ({ends}) THEN e.id END), MAX(e.id)) AS last "
        "FROM events e JOIN releases r ON r.id = e.release_id GROUP BY e.release_id"
    ):
        spans.setdefault(row["service"], []).append((row["first"], row["last"], row["id"]))
    for service, found in spans.items():
        found.sort()
        latest_end, earlier = found[0][1], found[0][2]
        for first, last, later in found[1:]:
            if first < latest_end:
                world.outcome.double(f"{earlier} and {later} of {service} were active together")
            if last > latest_end:
                latest_end, earlier = last, later


def _traffic_matches(world: World) -> None:
    """The simulator's router serves what the last release of each service says it left."""
    routed = {
        r["service"]: json.loads(r["state"])
        for r in world.rows("SELECT service, state FROM sim_traffic WHERE env = 'prod'")
    }
    last: dict[str, tuple[str, str, str]] = {}
    for release in world.releases():
        if release["status"] in ("completed", "rolled_back"):
            last[release["service"]] = (release["id"], release["version"], release["status"])
    for service, (release_id, version, status) in last.items():
        state = routed.get(service)
        if state is None:
            world.outcome.lose(f"{release_id} {status} but {service} has no router state")
            continue
        serving = state.get("stable_version")
        if state.get("new_version") or state.get("new_weight"):
            world.outcome.lose(
                f"{release_id} is {status} but the router still sends "
                f"{state.get('new_weight')} to {state.get('new_version')}"
            )
        elif (status == "completed") != (serving == version):
            world.outcome.lose(f"{release_id} is {status} but the router serves {serving}")


def _each_post_once(world: World) -> None:
    """What the bot names in each message's metadata: one card per release, and no event in
    two of its replies (a reply posted again after a kill may carry more events than the
    first, so its text differs: the ranges of events tell)."""
    cards: Counter[str] = Counter()
    shown: dict[str, list[tuple[int, int]]] = {}
    for message in world.fake.messages(CHANNEL):
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        release_id, post = str(payload.get("release_id")), str(payload.get("post", ""))
        if post == "card":
            cards[release_id] += 1
        elif post.startswith("reply:"):
            last = int(post.removeprefix("reply:"))
            shown.setdefault(release_id, []).append((int(payload.get("first_event", last)), last))
    for release_id, times in sorted(cards.items()):
        if times > 1:
            world.outcome.double(f"{release_id}: its status card is in Slack {times} times")
    for release_id, spans in sorted(shown.items()):
        spans.sort()
        reached = spans[0][1]
        for first, last in spans[1:]:
            if first <= reached:
                world.outcome.double(
                    f"{release_id}: events {first}-{min(reached, last)} are in two replies"
                )
            reached = max(reached, last)


def _each_file_once(world: World, release_id: str, replies: list[dict[str, Any]]) -> None:
    """No file shared twice in a thread: each upload's name names its release and upload
    (a chart's step and event, the report)."""
    names = Counter(
        str(f.get("name")) for m in replies for f in m.get("files") or [] if isinstance(f, dict)
    )
    for name, times in sorted(names.items()):
        if times > 1:
            world.outcome.double(f"{release_id}: file {name} is in its thread {times} times")


def _delivered_once(world: World) -> None:
    """Every event delivered; one status card per release; no thread reply posted twice and
    no file shared twice."""
    undelivered = world.undelivered()
    if undelivered:
        world.outcome.lose(f"{undelivered} events never delivered")
    _each_post_once(world)
    threads = world.rows("SELECT release_id, thread_ts FROM slack_threads")
    cards = world.fake.messages(CHANNEL, thread_ts="")
    if len(cards) > len(threads):
        world.outcome.double(f"{len(cards)} status cards for {len(threads)} threads")
    for thread in threads:
        replies = world.fake.messages(CHANNEL, thread["thread_ts"])
        seen = Counter(
            json.dumps([m.get("text"), m.get("blocks")], sort_keys=True)
            for m in replies
            if "files" not in m
        )
        for reply, times in seen.items():
            if times > 1:
                text = json.loads(reply)[0]
                world.outcome.double(f"{thread['release_id']}: {text[:80]!r} posted {times} times")
        _each_file_once(world, thread["release_id"], replies)
        if not replies:
            world.outcome.lose(f"{thread['release_id']}'s thread got no reply")
    from_slack = {
        r["id"]
        for r in world.rows(
            "SELECT id FROM releases WHERE json_extract(state, '$.channel') = ?", CHANNEL
        )
    }
    without = from_slack - {t["release_id"] for t in threads}
    if without:
        world.outcome.lose(f"no Slack thread for {', '.join(sorted(without))}")
