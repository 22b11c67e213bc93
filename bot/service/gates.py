"""What the quality gates judge, gathered through the ports; and when a release needs no person."""

from __future__ import annotations

from datetime import datetime

from bot.domain.contract import Check
from bot.domain.gates import GateEvidence
from bot.domain.observations import ArtifactRecord, Target, latest_by_name
from bot.domain.plan import Plan
from bot.domain.request import ReleaseRequest
from bot.ports.traffic import RouterUnavailable
from bot.service.services import Services


def auto_approves(plan: Plan, checks: list[Check], read_by_agent: bool) -> bool:
    """Low risk with every check passing starts without a person, unless the agent read the
    request from plain words: then a person confirms what it read."""
    return plan.risk == "low" and all(c.status == "pass" for c in checks) and not read_by_agent


def gate_evidence(
    services: Services,
    request: ReleaseRequest,
    plan: Plan,
    approvers: list[str],
    now: datetime,
    dry: bool = False,
) -> GateEvidence:
    """What the gates judge, gathered through the ports. ``dry``: change nothing, so no
    rollback rehearsal (it deploys to staging) and no build published (the embedded CI's
    evidence is computed in memory)."""
    svc = services.config.for_service(request.service)
    version = request.release_package.version
    prod = [e for e in plan.environments if e.name == "prod"] or plan.environments
    first = Target(service=request.service, env=prod[0].name, region=prod[0].region)
    stable: str | None = None
    rehearsal: bool | None = None
    router_error: str | None = None
    try:
        stable = services.traffic.state(first).stable_version or _last_shipped(
            services, request.service
        )
        rehearsal_env = next((e for e in plan.environments if e.name == "staging"), prod[0])
        if stable is not None and not dry:
            rehearsal = services.traffic.rehearse_rollback(
                Target(
                    service=request.service, env=rehearsal_env.name, region=rehearsal_env.region
                ),
                version,
            )
    except RouterUnavailable as exc:
        router_error = str(exc)
    art = request.release_package.artifact
    artifact: ArtifactRecord | None
    ci = services.ci_for(request.service)
    if dry and ci is not None:  # what the build would publish, recorded nowhere
        build = ci.build(request.service, version, art, now)
        artifact, results = build.artifact, latest_by_name(build.evidence)
    else:
        artifact = services.checks.artifact(art.image)
        results = services.checks.results(request.service, version)
    dep_names = dependency_names(services, request)
    return GateEvidence(
        artifact=artifact,
        results=results,
        stable_version=stable,
        rehearsal_ok=rehearsal,
        router_error=router_error,
        metrics_answering=services.metrics.probe(request.service),
        dependencies=services.metrics.dependencies(request.service, dep_names),
        flags={f.name: services.flags.get(f.name) for f in request.deployment_config.flags},
        flag_kill_switch={f.name: f.kill_switch for f in svc.flag_settings},
        approvers=approvers,
        now=now,
    )


def dependency_names(services: Services, request: ReleaseRequest) -> list[str]:
    """The dependencies the config lists for the service, then those the request adds."""
    configured = [d.name for d in services.config.for_service(request.service).dependencies]
    added = [d.name for d in request.operational_context.dependencies]
    return list(dict.fromkeys(configured + added))


def _last_shipped(services: Services, service: str) -> str | None:
    """The version this bot last completed for the service: the stable one when the router
    cannot tell (HAProxy and webhooks know weights, not versions, until the bot has acted)."""
    for row in services.store.listing(service, 50):
        if row["status"] == "completed":
            return str(row["version"])
    return None
