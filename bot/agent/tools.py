"""The agent's read tools: what it may look at, answered from the service's read-only lookups.

Every answer is JSON with ``<``/``>`` escaped (``prompts.tool_json``), so untrusted text in
it (changes, flag descriptions, audit details) stays quoted data. None of these change
anything.
"""

from __future__ import annotations

from typing import Any

from bot.agent.context import Context
from bot.agent.prompts import tool_json
from bot.domain.release import Release
from bot.ports.llm import ToolHandler, ToolOutcome


def _ok(value: Any) -> ToolOutcome:
    return ToolOutcome(tool_json(value))


def _bounded(args: dict[str, Any], key: str, default: int, top: int) -> int:
    value = args.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 1 <= value <= top:
        return default
    return int(value)


def canary_evidence(release: Release) -> dict[str, Any]:
    """What get_canary_analysis answers: the last judgement, alerts and any rollback."""
    return {
        "judgement": release.judgement.model_dump(mode="json") if release.judgement else None,
        "alerts": [a.model_dump(mode="json") for a in release.alerts],
        "rollback": release.rollback.model_dump(mode="json") if release.rollback else None,
        "status": release.status,
        "current_percentage": release.current_percentage(),
    }


def read_handlers(ctx: Context) -> dict[str, ToolHandler]:
    look, config, req, rel = ctx.agent.lookups, ctx.agent.config, ctx.request, ctx.release

    def request(_: dict[str, Any]) -> ToolOutcome:
        return _ok({"service": req.service, **req.model_dump(mode="json", exclude={"service"})})

    def rule_plan(_: dict[str, Any]) -> ToolOutcome:
        plan = ctx.rule_plan or (rel.plan if rel else None)
        return _ok(plan.model_dump(mode="json") if plan else {"note": "no plan yet"})

    def checks(_: dict[str, Any]) -> ToolOutcome:
        version = req.release_package.version
        if rel is not None and rel.observed.checks:
            return _ok(
                {
                    "checks": [c.model_dump(mode="json") for c in rel.observed.checks],
                    "artifacts": rel.observed.artifacts.model_dump(mode="json")
                    if rel.observed.artifacts
                    else None,
                    "approvals": [a.model_dump(mode="json") for a in rel.approvals],
                    "blockers": rel.blockers,
                }
            )
        art = look.artifact(req.release_package.artifact.image)
        return _ok(
            {
                "note": "the quality gates have not run yet; this is the CI evidence so far",
                "evidence": [
                    e.model_dump(mode="json") for e in look.evidence(req.service, version)
                ],
                "artifact": art.model_dump(mode="json") if art else None,
            }
        )

    def metrics(args: dict[str, Any]) -> ToolOutcome:
        if rel is None or not rel.observed.windows:
            return _ok({"note": "no canary windows yet: the rollout has not reached a judged step"})
        minutes = _bounded(args, "minutes", 5, 120)
        end = rel.observed.windows[-1].end
        recent = [w for w in rel.observed.windows if (end - w.end).total_seconds() < minutes * 60]
        return _ok([w.model_dump(mode="json") for w in recent])

    def analysis(_: dict[str, Any]) -> ToolOutcome:
        if rel is None:
            return _ok({"note": "no analysis before the rollout"})
        return _ok(canary_evidence(rel))

    def flags(_: dict[str, Any]) -> ToolOutcome:
        settings = {f.name: f for f in config.for_service(req.service).flag_settings}
        out = []
        for spec in req.deployment_config.flags:
            state = look.flag(spec.name)
            cfg = settings.get(spec.name)
            out.append(
                {
                    "name": spec.name,
                    "target_percentage": spec.percentage,
                    "state": state.model_dump(mode="json") if state else None,
                    "configured": cfg.model_dump(mode="json") if cfg else None,
                }
            )
        return _ok(out)

    def dependencies(_: dict[str, Any]) -> ToolOutcome:
        cfg = config.for_service(req.service)
        names = [d.name for d in cfg.dependencies] + [
            d.name for d in req.operational_context.dependencies
        ]
        probes = look.dependencies(req.service, list(dict.fromkeys(names)))
        return _ok(
            {
                "live": [p.model_dump(mode="json") for p in probes],
                "configured": [d.model_dump(mode="json") for d in cfg.dependencies],
            }
        )

    def history(args: dict[str, Any]) -> ToolOutcome:
        limit = _bounded(args, "limit", 5, 20)
        out = []
        for past in look.past_releases(req.service, limit, rel.id if rel else None):
            out.append(
                {
                    "id": past.id,
                    "version": past.version,
                    "status": past.status,
                    "strategy": past.plan.strategy,
                    "risk": past.plan.risk,
                    "created_at": past.created_at.isoformat(),
                    "rollback_reason": past.rollback.reason if past.rollback else None,
                }
            )
        return _ok(out)

    def audit(args: dict[str, Any]) -> ToolOutcome:
        if rel is None:
            return _ok([])
        events = look.events(rel.id)
        if "last" in args:
            events = events[-_bounded(args, "last", 50, 200) :]
        return _ok(
            [
                {"action": e.action, "actor": e.actor, "at": e.at.isoformat(), "details": e.details}
                for e in events
            ]
        )

    return {
        "get_release_request": request,
        "get_rule_plan": rule_plan,
        "get_checks": checks,
        "get_metrics": metrics,
        "get_canary_analysis": analysis,
        "get_feature_flags": flags,
        "get_dependency_health": dependencies,
        "get_release_history": history,
        "get_audit_trail": audit,
    }
