"""``make chaos``: inject faults into real release-bot processes on one SQLite file, at seeded
random points, and check after each round that nothing was lost or doubled.

Each round is one fault on a fresh database: the processes are ``python -m bot run|resume|
approve|status`` and the app (``bench/chaos/node.py``: the Slack app and the tick on a fast
virtual clock), posting to the local fake Slack; the model's API is the local fake Anthropic.
After the fault, a process runs again until every release has ended, and the invariants are
read from the database and the fake Slack (``bench/chaos/invariants.py``). The table counts
rounds: injected, survived (nothing lost, nothing doubled, no traceback in a process that
was not killed), and the problems found. Exits 1 when a round did not survive.

    python -m bench.chaos                 # 20 rounds of each fault (make chaos)
    python -m bench.chaos --short         # one round of each (make test)
    python -m bench.chaos --only replay --seed 7 --rounds 1   # replay one round
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos.faults import FAULTS, Fault
from bench.chaos.world import World
from tests.fake_anthropic import FakeAnthropic
from tests.fake_slack import FakeSlack


@dataclass
class Tally:
    injected: int = 0
    survived: int = 0
    lost: int = 0
    doubled: int = 0
    failures: list[str] = field(default_factory=list)


def run_round(fault: Fault, seed: int, fake: FakeSlack, llm: FakeAnthropic) -> World:
    """One round of ``fault``; its random points come from ``seed`` alone."""
    rng = random.Random(f"{fault.name}:{seed}")
    fake.reset()
    llm.reset()
    env = llm.env("chaos-key") if fault.llm_outage else {}
    with tempfile.TemporaryDirectory(prefix=f"chaos-{fault.name}-") as tmp:
        world = World(Path(tmp), fake, env)
        try:
            fault.run(world, rng)
        except (
            TimeoutError,
            RuntimeError,
            subprocess.TimeoutExpired,
        ) as exc:  # a hang guard, a process that died or hung
            world.outcome.lose(f"round stopped: {exc}")
        finally:
            world.close()
    return world


def table(tallies: dict[str, Tally]) -> str:
    lines = [
        "| fault | injected | survived | lost | doubled |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, t in tallies.items():
        lines.append(f"| {name} | {t.injected} | {t.survived} | {t.lost} | {t.doubled} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of each fault")
    parser.add_argument("--seed", type=int, default=1, help="round i of a fault uses seed+i")
    parser.add_argument("--short", action="store_true", help="one round of each (make test)")
    parser.add_argument("--only", action="append", choices=[f.name for f in FAULTS])
    args = parser.parse_args(argv)
    rounds = 1 if args.short else args.rounds
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    faults = [f for f in FAULTS if not args.only or f.name in args.only]
    tallies = {f.name: Tally() for f in faults}
    with FakeSlack() as fake, FakeAnthropic() as llm:
        for i in range(rounds):
            for fault in faults:
                seed = args.seed + i
                began = time.monotonic()
                world = run_round(fault, seed, fake, llm)
                took = time.monotonic() - began
                tally = tallies[fault.name]
                outcome = world.outcome
                tally.injected += 1
                tally.survived += outcome.survived
                tally.lost += outcome.lost
                tally.doubled += outcome.doubled
                mark = "ok" if outcome.survived else "FAILED"
                print(f"{fault.name:<15} seed {seed:<4} {mark:<6} ({took:.1f}s)", flush=True)
                if not outcome.survived:
                    replay = f"python -m bench.chaos --only {fault.name} --seed {seed} --rounds 1"
                    tally.failures.append(f"{fault.name} (replay: {replay})")
                    for note in outcome.notes[:4]:
                        print(f"    {note}", flush=True)
    print()
    print(table(tallies))
    failed = [t for t in tallies.values() if t.survived < t.injected]
    if failed:
        print(f"\n{sum(t.injected - t.survived for t in failed)} round(s) did not survive:")
        for tally in failed:
            for line in tally.failures[:3]:
                print(f"  {line}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
