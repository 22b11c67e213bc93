"""The outside world a release wants, derived from its state: the traffic on each target it
has reached and the states of its feature flags. ``bot.service.tick.converge`` applies them;
nothing here is stored.
"""

from __future__ import annotations

from bot.domain.flags import FlagState
from bot.domain.observations import Target, TrafficState
from bot.domain.plan import Step
from bot.domain.planner import instances_for
from bot.domain.release import Release

RolloutKey = tuple[object, ...]


def rollout_key(release: Release) -> RolloutKey:
    """What ``desired_traffic`` and ``desired_flags`` read of the release: equal keys, the same
    outside world wanted (a step that changes none of it needs no second converge)."""
    return (
        release.status,
        release.rollback is not None,
        release.step_index,
        release.previous_version,
        tuple(s.status for s in release.steps),
    )


def desired_traffic(release: Release) -> dict[Target, TrafficState]:
    """For every environment the release has reached, the traffic state it should have."""
    service, version = release.request.service, release.version
    total = release.plan.instances
    flag = _gating_flag(release)
    out: dict[Target, TrafficState] = {}
    for env in release.plan.environments:
        target = Target(service=service, env=env.name, region=env.region)
        reached = [
            s
            for s in release.plan.steps
            if s.env == env.name
            and env.region in s.regions
            and release.steps[s.index].status != "pending"
        ]
        if not reached:
            continue
        stable = TrafficState(stable_version=release.previous_version, instances_total=total)
        if release.status == "completed":
            out[target] = TrafficState(stable_version=version, instances_total=total)
        elif release.rollback is not None:
            if release.plan.strategy == "feature_flag" and env.name == "prod":
                # The kill switch is the rollback: the code stays, the flag goes off.
                out[target] = _state_for(reached[-1], stable, version, total, flag)
            else:
                out[target] = stable
        else:
            out[target] = _state_for(reached[-1], stable, version, total, flag)
    return {t: state.model_copy(update={"release_id": release.id}) for t, state in out.items()}


def _gating_flag(release: Release) -> str | None:
    flags = release.request.deployment_config.flags
    return flags[0].name if release.plan.strategy == "feature_flag" and flags else None


def desired_flags(release: Release, existing: dict[str, FlagState | None]) -> list[FlagState]:
    """Flag states to write: configured at the start, ramped, or killed on rollback."""
    if release.step_index < 0 and release.status != "completed":
        return []
    out: list[FlagState] = []
    gating = _gating_flag(release)
    for spec in release.request.deployment_config.flags:
        current = existing.get(spec.name) or FlagState(
            name=spec.name, service=release.request.service
        )
        if release.rollback is not None:
            wanted = current.model_copy(update={"killed": True, "percentage": 0.0})
        elif spec.name == gating:
            pct = 0.0
            for s in release.plan.steps:
                if s.kind == "flag" and release.steps[s.index].status != "pending":
                    pct = s.percentage
            if release.status == "completed":
                pct = spec.percentage
            wanted = current.model_copy(update={"percentage": pct, "killed": False})
        else:
            wanted = current.model_copy(update={"percentage": spec.percentage, "killed": False})
        if wanted != current or existing.get(spec.name) is None:
            out.append(wanted)
    return out


def _state_for(
    step: Step, stable: TrafficState, version: str, total: int, flag: str | None
) -> TrafficState:
    base = stable.model_copy(update={"new_version": version})
    match step.kind:
        case "traffic":
            return base.model_copy(
                update={
                    "new_weight": step.percentage,
                    "instances_updated": instances_for(step.percentage, total),
                }
            )
        case "shadow":
            return base.model_copy(
                update={
                    "mirror": step.mirror,
                    "instances_updated": instances_for(step.mirror, total),
                }
            )
        case "green_verify":
            return base.model_copy(update={"instances_updated": total})
        case "batch":
            updated = instances_for(step.percentage, total)
            return base.model_copy(
                update={
                    "instances_updated": updated,
                    "new_weight": round(updated / total * 100, 2) if total else 0,
                }
            )
        case "dark_launch" | "flag":
            return base.model_copy(
                update={"new_weight": 100.0, "instances_updated": total, "flag": flag}
            )
        case _:  # env_deploy, switch
            return base.model_copy(update={"new_weight": 100.0, "instances_updated": total})
