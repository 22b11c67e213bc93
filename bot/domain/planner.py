"""Rule planner: turns a request into a plan. The default whenever no LLM is configured.

Low risk takes few big steps with short bakes (the brief allows accelerating low-risk
changes); high and critical take more, smaller steps, longer bakes and a human gate before
prod. Regions are waves: canary steps under 25 % run in the first region only.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from bot.domain.config import MetricsLossPolicy
from bot.domain.judge import MAXIMUM_BAKE_FACTOR
from bot.domain.plan import EnvTarget, Plan, ReportedStrategy, Step, Trigger, Velocity
from bot.domain.request import WEEKDAYS, Guardrail, ReleaseRequest, Risk, TimeRange
from bot.domain.verdict_time import (
    GuardrailTime,
    MeasuredTraffic,
    Measurement,
    NotMeasured,
    minutes_to_verdict,
)

STAGES_BY_RISK: dict[Risk, list[float]] = {
    "low": [10, 50, 100],
    "medium": [5, 25, 50, 100],
    "high": [1, 5, 10, 25, 50, 100],
    "critical": [1, 2, 5, 10, 25, 50, 75, 100],
}
BAKE_MINUTES: dict[Risk, float] = {"low": 5, "medium": 10, "high": 15, "critical": 30}
PREPROD_BAKE_MINUTES: dict[Risk, float] = {"low": 3, "medium": 5, "high": 10, "critical": 15}
VELOCITY: dict[Risk, Velocity] = {
    "low": "fast",
    "medium": "normal",
    "high": "slow",
    "critical": "slow",
}
WAVE_THRESHOLD = 25.0  # steps below this percentage stay in the first region
# The longest a step's bake is lengthened to for its traffic to reach a verdict, per risk,
# unless the service's config sets ``max_bake_minutes`` (a longer ``bake_minutes`` is kept);
# and how far the first step's share may be raised instead.
MAX_BAKE_MINUTES: dict[Risk, float] = {"low": 20, "medium": 40, "high": 60, "critical": 90}
FIRST_STEP_CEILING: dict[Risk, float] = {"low": 20, "medium": 10, "high": 2, "critical": 1}
RAISED_SHARES = (2.0, 5.0, 10.0, 20.0)
SHADOW_MIRROR = 100.0
# The provider must answer: after this many failed reads in a row the release rolls back or
# pauses, as the service's ``on_metrics_loss`` says.
CONSECUTIVE_ERROR_LIMIT = 3


def plan_release(
    request: ReleaseRequest,
    now: datetime,
    instances: int,
    tick_seconds: float,
    bake_minutes: float | None = None,
    on_metrics_loss: MetricsLossPolicy = "rollback",
    measured: Measurement | None = None,
    raise_first_step: bool = True,
    max_bake_minutes: float | None = None,
) -> Plan:
    """``bake_minutes``: the service's own bake for every step (``bake_minutes`` in its
    config, like an Argo Rollouts pause), replacing the risk's defaults. ``on_metrics_loss``:
    what the metrics-provider trigger does (the service's ``on_metrics_loss``).
    ``measured``: the service's measured traffic, used when the line gives no ``traffic=``.
    ``max_bake_minutes``: the service's maximum bake (its config's), else the risk's.
    ``raise_first_step``: whether a first step too small to reach a verdict may take a larger
    share (the plan policy plans an agent's amended request without: exposure only grows
    from the rules' plan where the rules chose it)."""
    cfg = request.deployment_config
    risk = request.release_package.risk
    regions = cfg.regions
    percentages = cfg.stages or STAGES_BY_RISK[risk]
    bake = BAKE_MINUTES[risk] if bake_minutes is None else bake_minutes
    short_bake = max(bake / 2, 2) if bake_minutes is None else bake_minutes
    notes: list[str] = []
    if bake_minutes is not None:
        notes.append(f"every step bakes {bake_minutes:g} min, as the service's config says")
    if cfg.stages is not None:
        notes.append(f"rollout percentages from the request: {_pcts(cfg.stages)}")
    else:
        notes.append(f"rollout percentages for {risk} risk: {_pcts(percentages)}")

    drafts: list[dict[str, object]] = [
        {
            "env": env,
            "kind": "env_deploy",
            "percentage": 100.0,
            "regions": regions[:1],
            "bake_minutes": PREPROD_BAKE_MINUTES[risk] if bake_minutes is None else bake_minutes,
            "phase": "preprod",
            "description": f"deploy {request.release_package.version} to {env} and verify",
        }
        for env in cfg.environments
        if env != "prod"
    ]
    ceiling = max(max_bake_minutes or MAX_BAKE_MINUTES[risk], bake_minutes or 0.0)
    if "prod" in cfg.environments:
        prod = _prod_steps(request, percentages, regions, bake, short_bake, notes)
        _fit_to_traffic(request, prod, regions, ceiling, notes, measured, raise_first_step)
        notes.append(
            f"a prod step with no verdict after {MAXIMUM_BAKE_FACTOR:g}× its bake (at most "
            f"{ceiling:g} min) asks its approvers: extend, promote on override, or roll back"
        )
        if risk in ("high", "critical"):
            prod[0]["manual_gate"] = True
            notes.append(f"a human approves before the first prod step (risk is {risk})")
        if risk == "critical" and len(prod) > 1:
            prod[-1]["manual_gate"] = True
            notes.append("a human approves before 100 % (risk is critical)")
        drafts += prod
    steps = [Step.model_validate({"index": i, **d}) for i, d in enumerate(drafts)]

    envs: list[EnvTarget] = []
    for env in cfg.environments:
        for region in regions if env == "prod" else regions[:1]:
            envs.append(EnvTarget(name=env, region=region, order=len(envs) + 1))

    start = next_window_start(request.operational_context.maintenance_windows, now)
    if start > now:
        notes.append(f"start delayed to the maintenance window opening at {start:%a %H:%M} UTC")
    hold = risk in ("high", "critical") and bool(request.operational_context.peak_hours)
    if hold:
        notes.append("no step advances during peak hours (risk is " + risk + ")")
    velocity = VELOCITY[risk]
    return Plan(
        strategy=cfg.strategy,
        reported_strategy=_reported(cfg.strategy),
        risk=risk,
        environments=envs,
        steps=steps,
        triggers=derive_triggers(request, tick_seconds, on_metrics_loss),
        velocity=velocity,
        start=start,
        hold_in_peak_hours=hold,
        instances=instances,
        notes=notes,
        max_bake_minutes=ceiling if "prod" in cfg.environments else None,
    )


def _prod_steps(
    request: ReleaseRequest,
    percentages: list[float],
    regions: list[str],
    bake: float,
    short_bake: float,
    notes: list[str],
) -> list[dict[str, object]]:
    steps: list[dict[str, object]] = []

    def add_step(**fields: object) -> None:
        steps.append({"env": "prod", **fields})

    strategy = request.deployment_config.strategy
    version = request.release_package.version

    def wave(pct: float) -> list[str]:
        return regions[:1] if pct < WAVE_THRESHOLD else list(regions)

    def phase(pct: float) -> str:
        return "validation" if pct >= 100 else "canary" if pct < WAVE_THRESHOLD else "rollout"

    if strategy == "blue_green":
        if request.deployment_config.stages is not None:
            notes.append("blue_green switches all at once: rollout percentages are not used")
        add_step(
            kind="green_verify",
            percentage=0.0,
            regions=list(regions),
            bake_minutes=short_bake,
            phase="canary",
            description=f"green ({version}) beside blue at 0 %, verified with synthetic traffic",
        )
        if len(regions) > 1:
            add_step(
                kind="switch",
                percentage=100.0,
                regions=regions[:1],
                bake_minutes=bake,
                phase="rollout",
                description=f"switch {regions[0]} to green; blue kept for rollback",
            )
        add_step(
            kind="switch",
            percentage=100.0,
            regions=list(regions),
            bake_minutes=bake,
            phase="validation",
            description="switch every region to green; blue kept for the rollback window",
        )
        return steps
    if strategy == "shadow":
        add_step(
            kind="shadow",
            percentage=0.0,
            mirror=SHADOW_MIRROR,
            regions=regions[:1],
            bake_minutes=bake,
            phase="canary",
            description=f"mirror {SHADOW_MIRROR:g} % of {regions[0]} traffic to {version}; "
            "responses discarded",
        )
    if strategy == "feature_flag":
        flag = request.deployment_config.flags[0]
        add_step(
            kind="dark_launch",
            percentage=0.0,
            regions=list(regions),
            bake_minutes=short_bake,
            phase="canary",
            description=f"deploy {version} dark: code everywhere, flag {flag.name} off",
        )
        for pct in percentages:
            capped = min(pct, flag.percentage)
            add_step(
                kind="flag",
                percentage=capped,
                regions=list(regions),
                bake_minutes=bake,
                phase=phase(pct),
                description=f"flag {flag.name} at {capped:g} %",
            )
            if capped >= flag.percentage:
                break
        return steps
    kind = "batch" if strategy == "rolling" else "traffic"
    for pct in percentages:
        desc = (
            f"replace {pct:g} % of instances with {version}"
            if kind == "batch"
            else f"{pct:g} % of traffic to {version}"
        )
        add_step(
            kind=kind,
            percentage=pct,
            regions=wave(pct),
            bake_minutes=bake,
            phase=phase(pct),
            description=desc,
        )
    return steps


def _fit_to_traffic(
    request: ReleaseRequest,
    prod: list[dict[str, object]],
    regions: list[str],
    ceiling: float,
    notes: list[str],
    measured: Measurement | None,
    raise_first_step: bool,
) -> None:
    """Give each prod step the bake its traffic needs to reach a verdict on every guardrail
    (``bot.domain.verdict_time``), up to ``ceiling`` minutes; where even that is too short,
    raise the first step's share within the risk's ``FIRST_STEP_CEILING``, or warn before the
    release starts. Each step's note says why its bake is long enough, and the plan says where
    its traffic figure came from."""
    rps = request.operational_context.traffic_rps
    rails = request.guardrails.all()
    unmeasured = measured.reason if isinstance(measured, NotMeasured) else "none measured"
    figure = measured if isinstance(measured, MeasuredTraffic) else None
    shares = figure.shares if figure is not None else {}
    if rps is not None:
        notes.append(f"traffic: {rps:,.0f} rps, from the line's traffic=")
    elif figure is not None:
        rps = figure.rps
        notes.append(f"traffic: measured {rps:,.0f} rps over the last {figure.minutes:.2g} min")
    if figure is not None and shares:
        notes.append(
            f"the stable version's bad requests over the last {figure.minutes:.2g} min (upper "
            f"estimates): {figure.describe_shares(rails)}"
        )
    if rps is None or rps <= 0:
        bakes = ", ".join(f"{float(str(s['bake_minutes'])):g}" for s in prod)
        notes.append(
            f"no traffic figure ({unmeasured}, no traffic= on the line): assumed the "
            f"planned bakes ({bakes} min) reach a verdict; the judge waits for evidence"
        )
        return
    risk = request.release_package.risk
    judged = [s for s in prod if float(str(s["percentage"])) > 0]
    for i, step in enumerate(judged):
        pct = float(str(step["percentage"]))
        where = list(step["regions"])  # type: ignore[call-overload]
        local = rps * len(where) / max(1, len(regions))
        traffic = f"{pct:g} % of {local:,.0f} rps" + (
            f" ({', '.join(where)})" if len(where) < len(regions) else ""
        )
        slowest = _slowest(rails, local, pct, shares)
        bake = float(str(step["bake_minutes"]))
        need = math.ceil(slowest.minutes) if math.isfinite(slowest.minutes) else math.inf
        said = f"{traffic} reaches a verdict on {slowest.guardrail} in ~{need:g} min"
        # The step's own line says it too: the dry run and the thread list the steps.
        verdict_in = f"a verdict in ~{need:g} min at {local:,.0f} rps"
        if need <= bake:
            notes.append(f"{said}: the {bake:g} min bake is long enough")
            step["description"] = f"{step['description']} ({verdict_in}; bakes {bake:g} min)"
            continue
        if need <= ceiling:
            step["bake_minutes"] = float(need)
            notes.append(f"{said}: its bake lengthened from {bake:g} to {need:g} min")
            step["description"] = f"{step['description']} ({verdict_in}; bakes {need:g} min)"
            continue
        if (
            i == 0
            and raise_first_step
            and _raise_first(request, step, judged, local, ceiling, risk, notes, shares)
        ):
            continue
        step["bake_minutes"] = ceiling
        needs = "never" if math.isinf(need) else f"only in ~{need:g} min"
        step["description"] = (
            f"{step['description']} (warning: no verdict within its {ceiling:g} min at "
            f"{local:,.0f} rps)"
        )
        notes.append(
            f"warning: {traffic} reaches a verdict on {slowest.guardrail} {needs}, past the "
            f"{ceiling:g} min a step may bake: give it more time (bake_minutes in the "
            "service's config), a larger first step (stages=), or a load test that adds "
            "traffic; otherwise the step will wait for its approvers"
        )


def _slowest(
    rails: list[Guardrail], rps: float, pct: float, shares: dict[str, float]
) -> GuardrailTime:
    times = minutes_to_verdict(
        rails, rps * pct / 100, rps * (1 - pct / 100), baseline_shares=shares
    )
    return max(times, key=lambda t: t.minutes, default=GuardrailTime("no guardrail", 0.0))


def _raise_first(
    request: ReleaseRequest,
    step: dict[str, object],
    judged: list[dict[str, object]],
    rps: float,
    ceiling: float,
    risk: Risk,
    notes: list[str],
    shares: dict[str, float],
) -> bool:
    """Raise the first step's share to the smallest one the risk allows that reaches a
    verdict within ``ceiling`` minutes (never past the next step's, nor a share the request
    set itself)."""
    if request.deployment_config.stages is not None or step["kind"] != "traffic":
        return False
    pct = float(str(step["percentage"]))
    nxt = float(str(judged[1]["percentage"])) if len(judged) > 1 else 100.0
    for share in RAISED_SHARES:
        if not pct < share <= FIRST_STEP_CEILING[risk] or share >= nxt:
            continue
        slowest = _slowest(request.guardrails.all(), rps, share, shares)
        if slowest.minutes <= ceiling:
            need = max(math.ceil(slowest.minutes), float(str(step["bake_minutes"])))
            version = request.release_package.version
            step.update(
                percentage=share,
                bake_minutes=float(need),
                description=f"{share:g} % of traffic to {version} (raised from {pct:g} % for "
                f"a verdict in ~{math.ceil(slowest.minutes):g} min at {rps:,.0f} rps; bakes "
                f"{need:g} min)",
            )
            notes.append(
                f"first step raised from {pct:g} % to {share:g} % ({risk} risk allows up to "
                f"{FIRST_STEP_CEILING[risk]:g} %): {share:g} % of {rps:,.0f} rps reaches a "
                f"verdict on {slowest.guardrail} in ~{math.ceil(slowest.minutes):g} min, "
                f"{pct:g} % would not within {ceiling:g} min; it bakes {need:g} min"
            )
            return True
    return False


def _reported(strategy: str) -> ReportedStrategy:
    # The contract's enum has no "shadow": a shadow release is a canary whose first step
    # mirrors traffic (percentage 0, no user impact).
    return "canary" if strategy == "shadow" else strategy  # type: ignore[return-value]


def _pcts(values: list[float]) -> str:
    return ", ".join(f"{v:g}%" for v in values)


def trigger_for(
    guardrail: Guardrail, risk: Risk, tick_seconds: float = 10.0, compared: str = ""
) -> Trigger:
    """The guardrail's trigger, judged every tick on all the evidence since the stage began.

    ``compared`` names the judge's canary-against-baseline test that fires it too (errors
    for the error-rate guardrail, slow requests for the first latency one).
    """
    action: str = "auto_rollback"
    # A p99 breach is tail noise more often than a regression: for low risk it alerts.
    if guardrail.metric == "latency_p99" and risk == "low":
        action = "alert"
    extra = f" or {compared} above the baseline's" if compared else ""
    return Trigger(
        guardrail=guardrail.name,
        metric=guardrail.name,
        threshold=f"{guardrail.describe()}{extra} (sequential test, 99% confidence)",
        window_minutes=round(tick_seconds / 60, 2),
        action=action,
    )


def derive_triggers(
    request: ReleaseRequest, tick_seconds: float, on_metrics_loss: MetricsLossPolicy = "rollback"
) -> list[Trigger]:
    risk = request.release_package.risk
    rails = request.guardrails
    compared = {id(rails.error_rate): "errors", id(rails.latency[0]): "slow requests"}
    triggers = [trigger_for(g, risk, tick_seconds, compared.get(id(g), "")) for g in rails.all()]
    # No data is no proof of safety: "rollback" rolls back a canary that serves production
    # users (and pauses one that serves none, as nothing is at risk).
    rolls_back = on_metrics_loss == "rollback"
    triggers.append(
        Trigger(
            guardrail="metrics_provider",
            metric="metrics_provider",
            threshold=f"no data for {CONSECUTIVE_ERROR_LIMIT} consecutive checks"
            + (" (pauses while no production user is on the new version)" if rolls_back else ""),
            window_minutes=round(CONSECUTIVE_ERROR_LIMIT * tick_seconds / 60, 2),
            action="auto_rollback" if rolls_back else "pause",
        )
    )
    return triggers


def in_ranges(ranges: list[TimeRange], moment: datetime) -> bool:
    weekday = WEEKDAYS[moment.weekday()]
    return any(r.contains(weekday, moment.time()) for r in ranges)


def next_window_start(windows: list[TimeRange], now: datetime) -> datetime:
    """``now`` when no window is required or one is open, else the next opening."""
    if not windows or in_ranges(windows, now):
        return now
    candidate = now.replace(second=0, microsecond=0)
    for _ in range(8 * 24 * 60):  # a week and a day, by minutes: always finds a weekly window
        candidate += timedelta(minutes=1)
        if in_ranges(windows, candidate):
            return candidate
    return now


def peak_ends(peaks: list[TimeRange], now: datetime) -> datetime:
    """When the current peak-hours range ends (``now`` if not in peak hours)."""
    moment = now
    for _ in range(24 * 60):
        if not in_ranges(peaks, moment):
            return moment
        moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return moment


def instances_for(percentage: float, total: int) -> int:
    return min(total, max(1, math.ceil(total * percentage / 100))) if percentage > 0 else 0
