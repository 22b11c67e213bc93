"""A release's report (the brief's output contract), built from the release, its audit trail
and the facts the ports give at report time."""

from __future__ import annotations

from bot.domain.config import ServiceConfig
from bot.domain.contract import ReleaseReport
from bot.domain.report import CanaryPoint, ReportContext, build_report
from bot.service.gates import dependency_names
from bot.service.notifications import deliveries
from bot.service.services import Services


def report(services: Services, release_id: str) -> ReleaseReport:
    release = services.store.get(release_id)
    events = services.store.events(release_id)
    svc: ServiceConfig = services.config.for_service(release.request.service)
    now = services.clock.now()
    dep_names = dependency_names(services, release.request)
    ctx = ReportContext(
        service_config=svc,
        flags={f.name: services.flags.get(f.name) for f in release.request.deployment_config.flags},
        dependencies=services.metrics.dependencies(release.request.service, dep_names),
        evidence=services.checks.results(release.request.service, release.version),
        notified=services.store.delivered_count(release_id) > 0,
        deliveries=deliveries(services, release_id),
        now=now,
        audit=services.audit.verify(release_id) if services.audit else None,
        series=[
            CanaryPoint(
                step=p.step,
                canary_requests=p.canary_requests,
                canary_errors=p.canary_errors,
                baseline_requests=p.baseline_requests,
            )
            for p in services.series.points(release_id)
        ],
    )
    return build_report(release, events, ctx)
