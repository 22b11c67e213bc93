"""What the quality gates judge, gathered through the ports; and when a release needs no person."""

from __future__ import annotations

from datetime import datetime

from bot.domain.contract import Check
from bot.domain.evidence import (
    artifact_from_evidence,
    artifact_hint,
    checks_from_evidence,
    upload_hint,
)
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
    rehearsed = "rollback not rehearsed"
    router_error: str | None = None
    try:
        stable = services.traffic.state(first).stable_version or _last_shipped(
            services, request.service, first.env
        )
        rehearsal_env = next((e for e in plan.environments if e.name == "staging"), prod[0])
        where = Target(service=request.service, env=rehearsal_env.name, region=rehearsal_env.region)
        router = svc.traffic.router if svc.traffic is not None else "the router"
        if stable is not None and not dry:
            rehearsal = services.traffic.rehearse_rollback(where, version)
            rehearsed = (
                f"rollback of {version} to {stable} rehearsed through {router} on "
                f"{where.describe()} at {now:%Y-%m-%d %H:%M:%S} UTC"
            )
    except RouterUnavailable as exc:
        router_error = str(exc)
    art = request.release_package.artifact
    artifact: ArtifactRecord | None
    artifact_missing, unsigned_hint, artifact_cites = None, "", ""
    ci = services.ci_for(request.service)
    if dry and ci is not None:  # what the build would publish, recorded nowhere
        build = ci.build(request.service, version, art, now)
        artifact, results = build.artifact, latest_by_name(build.evidence)
    elif ci is not None:
        artifact = services.checks.artifact(art.image)
        results = services.checks.results(request.service, version)
    else:  # a real service: only what its CI uploaded counts
        files = services.evidence.files(request.service, version)
        stable_files = services.evidence.files(request.service, stable) if stable else []
        latency = [g.value for g in request.guardrails.latency if g.metric == "latency_p95"]
        results = checks_from_evidence(
            files,
            stable_files,
            request.service,
            version,
            (min(latency) if latency else None, request.guardrails.error_rate.value),
            svc.waivers,
            now,
            [c.name for c in svc.smoke],
        )
        computed = {r.name for r in results}
        results += [
            r for r in services.checks.results(request.service, version) if r.name not in computed
        ]
        artifact, shown = artifact_from_evidence(files, art.hash, art.build_id)
        if artifact is None:
            artifact_missing = shown or artifact_hint(request.service, version)
        else:
            artifact_cites = shown
        unsigned_hint = (
            ": no signature over its digest verified against signing_key; "
            + upload_hint(request.service, version, "one", "image.sig --digest sha256:…")
        )
    dep_names = dependency_names(services, request)
    return GateEvidence(
        artifact=artifact,
        results=results,
        stable_version=stable,
        rehearsal_ok=rehearsal,
        rehearsal=rehearsed,
        router_error=router_error,
        artifact_missing=artifact_missing,
        unsigned_hint=unsigned_hint,
        artifact_cites=artifact_cites,
        metrics_answering=services.metrics.probe(request.service),
        dependencies=services.metrics.dependencies(request.service, dep_names),
        flags={f.name: services.flags.get(f.name) for f in request.deployment_config.flags},
        flag_kill_switch={f.name: f.kill_switch for f in svc.flag_settings},
        approvers=approvers,
        now=now,
        config_file=services.config.source,
    )


def dependency_names(services: Services, request: ReleaseRequest) -> list[str]:
    """The dependencies the config lists for the service, then those the request adds."""
    configured = [d.name for d in services.config.for_service(request.service).dependencies]
    added = [d.name for d in request.operational_context.dependencies]
    return list(dict.fromkeys(configured + added))


def _last_shipped(services: Services, service: str, env: str) -> str | None:
    """The version this bot last completed in ``env`` for the service: the stable one when
    the router cannot tell (HAProxy and webhooks know weights, not versions, until the bot
    has acted and unless their settings say)."""
    for row in services.store.listing(service, 50):
        if row["status"] == "completed":
            release = services.store.get(str(row["id"]))
            if any(e.name == env for e in release.plan.environments):
                return release.version
    return None
