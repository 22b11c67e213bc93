"""How long a tick takes: the judge over a 60-minute run of 10-second windows, the judge's
share of one tick over 1,000 active releases, and the whole reconcile tick over them.

The judge's share, for each release: its stored state read back from JSON, the new window
added, the decision taken (the engine builds the full judgement, every test and the
contract's ``canary_analysis.metrics``, only when the judge has something to say or once a
minute; a row shows it built every tick too), and the state written back to JSON.
Windows come from the benchmark's healthy scenario.

The whole tick runs ``bot.service.reconcile`` on the embedded defaults (SQLite store in a
temporary file, the simulated fleet for metrics and traffic), with every release in its
first canary step and the start's posts delivered, over a minute of ticks (so the full
judgement, once a minute, is in it). Run: ``make bench-tick``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.ours import START, cohort_sample
from bench.scenarios import WINDOW_SECONDS, Window, scenario_named
from bot.bootstrap import bootstrap
from bot.config import DEFAULT_CONFIG
from bot.domain.judge import CanaryJudge
from bot.domain.judgement import judgement
from bot.domain.observations import WindowSample
from bot.domain.planner import trigger_for
from bot.domain.release import Release
from bot.parsing import parse_guardrail
from bot.ports.chat import AbstractChat
from bot.ports.store import StoredEvent
from bot.service import Services, reconcile, start_release

SCRAPE_INTERVAL = 15.0  # seconds: Prometheus's usual
GUARDRAILS = "error_rate<1% p95<300ms p99<800ms availability>=99.5% kpi:conversion>=-5%"


def _sample(window: Window) -> WindowSample:
    end = START + timedelta(seconds=window.end_seconds)
    return WindowSample(
        start=end - timedelta(seconds=WINDOW_SECONDS),
        end=end,
        baseline=cohort_sample(window.baseline, "conversion"),
        canary=cohort_sample(window.canary, "conversion"),
    )


def _new_judge() -> CanaryJudge:
    guardrails = [parse_guardrail(token) for token in GUARDRAILS.split()]
    judge = CanaryJudge.create(guardrails, [trigger_for(g, "medium") for g in guardrails], stages=5)
    judge.start_stage(START, 10.0)
    return judge


def run_judged(samples: list[WindowSample]) -> tuple[float, float]:
    """CPU seconds to judge a whole run: (decisions only, full judgement every window). CPU
    time, as for every judge row: one process's work, less disturbed by others'."""
    judge = _new_judge()
    began = time.process_time()
    for sample in samples:
        judge.observe(sample)
        judge.decide(sample.end)
    decide_only = time.process_time() - began
    judge = _new_judge()
    began = time.process_time()
    for sample in samples:
        judge.observe(sample)
        judgement(judge, sample.end)
    return decide_only, time.process_time() - began


def tick(states: list[str], sample: WindowSample, full: bool) -> tuple[float, list[str]]:
    """One tick over every release's stored judge state; returns (CPU seconds, new states)."""
    began = time.process_time()
    out = []
    for state in states:
        judge = CanaryJudge.model_validate_json(state)
        judge.observe(sample)
        if full:
            judgement(judge, sample.end)
        else:
            judge.decide(sample.end)
        out.append(judge.model_dump_json())
    return time.process_time() - began, out


class _Silent(AbstractChat):
    def post(self, release: Release, events: list[StoredEvent]) -> None:
        pass


def reconcile_tick(
    releases: int, repeat: int, scrape_interval: float = 0.0
) -> tuple[float, float, int]:
    """Whole reconcile ticks over ``releases`` releases in their first canary step, once
    the start's posts are delivered (steady state): the median seconds of ``repeat`` ticks,
    their mean CPU seconds (this process's, less disturbed by other work on the machine),
    and how many releases were observed in the last. ``scrape_interval``: the simulated
    metrics are scraped as a Prometheus would be, so a window needs two scrapes; the
    releases start a tick apart in turn, as they would, not all on one tick."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "services.toml"
        metrics = f'{{ provider = "simulator", scrape_interval = {scrape_interval} }}'
        config.write_text(
            DEFAULT_CONFIG.read_text()
            + "".join(
                f"\n[services.svc-{i:04d}]\nmetrics = {metrics}\n"
                f'traffic = {{ router = "simulator" }}\nci = "simulator"\n'
                'environments = ["prod"]\n'
                for i in range(releases)
            )
        )  # every bench service on the simulator, as the demo's are; prod only: the first
        # step is the canary, judged every tick (a staging step bakes unjudged)
        wiring = bootstrap(
            Path(tmp) / "bench.db", clock_start=START, chat=_Silent(), config_path=config
        )
        services, clock = wiring.services, wiring.virtual_clock
        assert clock is not None
        # the ticks one window spans: the releases start spread over them
        spread = max(1, math.ceil(2 * scrape_interval / services.tick_seconds) + 1)
        for i in range(releases):
            line = (
                f"svc-{i:04d} 1.0.1 risk=low ticket=CHG-{i} "
                f"artifact=registry.local/svc-{i:04d}:1.0.1 changes=bench"
            )
            started = start_release(services, line, "bench")
            if not isinstance(started, Release):
                raise SystemExit(f"bench release {i} not started: {started}")
            if spread > 1 and (i + 1) % math.ceil(releases / spread) == 0:
                clock.advance(services.tick_seconds)
                reconcile(services)
        ticks = 0
        while (not _all_observing(services) or services.store.undelivered()) and ticks < 100:
            clock.advance(services.tick_seconds)
            reconcile(services)
            ticks += 1
        seconds, cpu = [], []
        for _ in range(repeat):
            clock.advance(services.tick_seconds)
            began, began_cpu = time.perf_counter(), time.process_time()
            reconcile(services)
            seconds.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        observing = sum(_judged(services.store.get(i)) for i in services.store.active_ids())
        wiring.database.close()
    return statistics.median(seconds), statistics.fmean(cpu), observing


def _judged(release: Release) -> bool:
    """In a canary step, its windows judged."""
    step = release.current_step
    return release.status == "rolling_out" and step is not None and step.kind == "traffic"


def _all_observing(services: Services) -> bool:
    now = services.clock.now()
    return all(
        services.store.get(i).next_work(now) == "observe" and _judged(services.store.get(i))
        for i in services.store.active_ids()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--ticks", type=int, default=6, help="whole ticks measured (6: a minute of judging)"
    )
    args = parser.parse_args()
    samples = [_sample(w) for w in scenario_named("healthy").windows(1)]

    runs = [run_judged(samples) for _ in range(args.repeat)]
    decide = statistics.median(r[0] for r in runs)
    full = statistics.median(r[1] for r in runs)

    warm = _new_judge()
    for sample in samples[:60]:  # ten minutes into a stage: a typical state
        warm.observe(sample)
    per_tick = {}
    for every_tick in (False, True):
        states = [warm.model_dump_json()] * args.releases
        ticks = []
        for sample in samples[60 : 60 + args.repeat]:
            seconds, states = tick(states, sample, every_tick)
            ticks.append(seconds)
        per_tick[every_tick] = statistics.median(ticks)
    whole, whole_cpu, observing = reconcile_tick(args.releases, args.ticks)
    scraped, scraped_cpu, _ = reconcile_tick(args.releases, 2 * args.ticks, SCRAPE_INTERVAL)

    print("| what | measured |")
    print("|---|--:|")
    print(f"| 60-minute run, {len(samples)} windows, decisions only | {decide * 1000:.1f} ms |")
    print(f"| 60-minute run, full judgement every window | {full * 1000:.1f} ms |")
    print(
        f"| judge's share of one tick over {args.releases} active releases (state from JSON, "
        f"decide, back to JSON) | {per_tick[False] * 1000:.0f} ms |"
    )
    print(f"| the same with the full judgement every tick | {per_tick[True] * 1000:.0f} ms |")
    print(
        f"| whole reconcile tick over {args.releases} active releases ({observing} in a canary step, judged; "
        f"SQLite store, simulated fleet), median of {args.ticks} | {whole * 1000:.0f} ms |"
    )
    print(f"| the same, CPU time of this process, mean | {whole_cpu * 1000:.0f} ms |")
    print(
        f"| the same releases on metrics scraped every {SCRAPE_INTERVAL:g} s, as a Prometheus's "
        f"(a window needs two scrapes: only the releases due are read), median of "
        f"{2 * args.ticks} | {scraped * 1000:.0f} ms |"
    )
    print(f"| the same, CPU time of this process, mean | {scraped_cpu * 1000:.0f} ms |")
    print(f"| judge state stored per release | {len(states[0]) / 1024:.1f} KiB |")


if __name__ == "__main__":
    main()
