"""Quality gates: each check's pass, warning or fail, and details that name the problem."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.contract import Check
from bot.domain.flags import FlagState
from bot.domain.observations import ArtifactRecord, CheckEvidence, DependencyProbe
from bot.domain.request import ReleaseRequest
from tests.domain_helpers import (
    APPROVERS,
    BUILD,
    DIGEST,
    IMAGE,
    STABLE,
    T0,
    VERSION,
    by_name,
    ci_results,
    gates_for,
    kpi_rail,
    make_plan,
    make_request,
    tr,
)

CHECK_NAMES = [
    "build_artifacts",
    "staging_tests",
    "smoke_tests",
    "security_scan",
    "performance_benchmark",
    "rollback_plan",
    "monitoring",
    "feature_flags",
    "change_approval",
    "dependency_health",
    "deployment_window",
    "rollout_plan",
]


def check(request: ReleaseRequest, name: str, **overrides: object) -> Check:
    checks, _ = gates_for(request, make_plan(request), **overrides)
    return by_name(checks)[name]


def record(**fields: object) -> ArtifactRecord:
    base: dict[str, object] = {
        "image": IMAGE,
        "digest": DIGEST,
        "build_id": BUILD,
        "signed": True,
        "sbom_attached": True,
    }
    return ArtifactRecord.model_validate(base | fields)


# -- all pass -----------------------------------------------------------------------------------


@pytest.mark.parametrize("risk", ["low", "medium", "high", "critical"])
def test_everything_passes_with_complete_evidence(risk: str) -> None:
    request = make_request(risk=risk)
    checks, artifacts = gates_for(request, make_plan(request))
    assert [c.check for c in checks] == CHECK_NAMES
    assert {c.check: c.status for c in checks} == dict.fromkeys(CHECK_NAMES, "pass")
    assert artifacts.image == IMAGE
    assert artifacts.hash == DIGEST
    assert artifacts.build_id == BUILD
    assert artifacts.signed and artifacts.sbom_attached


def test_passing_details_say_what_was_verified() -> None:
    request = make_request(risk="medium")
    checks = by_name(gates_for(request, make_plan(request))[0])
    assert "signed" in checks["build_artifacts"].details
    assert "SBOM attached" in checks["build_artifacts"].details
    assert STABLE in checks["rollback_plan"].details
    assert "CHG-1234" in checks["change_approval"].details
    assert all(a in checks["change_approval"].details for a in APPROVERS)


# -- build artifacts ----------------------------------------------------------------------------


def test_missing_artifact_fails_and_nothing_is_verified() -> None:
    request = make_request()
    checks, artifacts = gates_for(request, make_plan(request), artifact=None)
    art = by_name(checks)["build_artifacts"]
    assert art.status == "fail"
    assert IMAGE in art.details and "not in the registry" in art.details
    assert not artifacts.signed and not artifacts.sbom_attached
    assert artifacts.hash == DIGEST  # what the request claimed, unverified


def test_digest_mismatch_fails_naming_both_digests() -> None:
    other = "sha256:" + "ff" * 32
    art = check(make_request(), "build_artifacts", artifact=record(digest=other))
    assert art.status == "fail"
    assert "digest mismatch" in art.details
    assert DIGEST in art.details and other in art.details


def test_build_mismatch_fails() -> None:
    art = check(make_request(), "build_artifacts", artifact=record(build_id="9999"))
    assert art.status == "fail"
    assert "9999" in art.details and BUILD in art.details


def test_unsigned_artifact_fails() -> None:
    art = check(make_request(), "build_artifacts", artifact=record(signed=False))
    assert art.status == "fail"
    assert "not signed" in art.details


@pytest.mark.parametrize(("risk", "status"), [("low", "warning"), ("medium", "warning"),
                                              ("high", "fail"), ("critical", "fail")])  # fmt: skip
def test_no_sbom_warns_for_low_and_medium_fails_for_high(risk: str, status: str) -> None:
    art = check(make_request(risk=risk), "build_artifacts", artifact=record(sbom_attached=False))
    assert art.status == status
    assert "no SBOM" in art.details


def test_request_without_hash_takes_the_registry_digest() -> None:
    request = make_request(image_hash=None, build_id=None)
    checks, artifacts = gates_for(request, make_plan(request))
    assert by_name(checks)["build_artifacts"].status == "pass"
    assert artifacts.hash == DIGEST
    assert artifacts.build_id == BUILD


# -- CI evidence --------------------------------------------------------------------------------


def test_missing_staging_tests_fail() -> None:
    result = check(make_request(), "staging_tests", results=ci_results(skip=("staging_tests",)))
    assert result.status == "fail"
    assert "no tests passing in staging recorded" in result.details


def test_failing_security_scan_fails_with_its_details() -> None:
    result = check(make_request(), "security_scan", results=ci_results(security_scan="fail"))
    assert result.status == "fail"
    assert "security_scan" in result.details


def test_missing_smoke_tests_and_benchmarks_fail() -> None:
    results = ci_results(skip=("smoke_tests", "performance_benchmark"))
    request = make_request()
    checks = by_name(gates_for(request, make_plan(request), results=results)[0])
    assert checks["smoke_tests"].status == "fail"
    assert "smoke tests" in checks["smoke_tests"].details
    assert checks["performance_benchmark"].status == "fail"
    assert "performance benchmarks" in checks["performance_benchmark"].details


def test_an_extra_check_in_the_plan_is_gated_like_the_others() -> None:
    request = make_request()
    plan = make_plan(request).model_copy(update={"extra_checks": ["contract_tests"]})
    missing = by_name(gates_for(request, plan)[0])["contract_tests"]
    assert missing.status == "fail"
    assert "no consumer contract tests recorded" in missing.details
    failing = CheckEvidence(
        name="contract_tests",
        status="fail",
        details="2 of 27 pact interactions failed",
        recorded_at=T0 - timedelta(minutes=5),
    )
    found = by_name(gates_for(request, plan, results=[*ci_results(), failing])[0])
    assert found["contract_tests"].status == "fail"
    assert found["contract_tests"].details == "2 of 27 pact interactions failed"
    assert "contract_tests" not in by_name(gates_for(request, make_plan(request))[0])


def test_the_latest_result_of_a_kind_wins() -> None:
    old_fail = CheckEvidence(
        name="security_scan",
        status="fail",
        details="CVE-2025-1 critical",
        recorded_at=T0 - timedelta(hours=5),
    )
    new_pass = CheckEvidence(
        name="security_scan",
        status="pass",
        details="rescanned: clean",
        recorded_at=T0 - timedelta(hours=1),
    )
    others = ci_results(skip=("security_scan",))
    result = check(make_request(), "security_scan", results=[*others, new_pass, old_fail])
    assert (result.status, result.details) == ("pass", "rescanned: clean")


# -- rollback plan ------------------------------------------------------------------------------


@pytest.mark.parametrize(("risk", "status"), [("low", "warning"), ("medium", "warning"),
                                              ("high", "fail")])  # fmt: skip
def test_no_previous_version_warns_low_fails_high(risk: str, status: str) -> None:
    result = check(make_request(risk=risk), "rollback_plan", stable_version=None)
    assert result.status == status
    assert "no previous version" in result.details


def test_failed_rehearsal_fails() -> None:
    result = check(make_request(), "rollback_plan", rehearsal_ok=False)
    assert result.status == "fail"
    assert "rehearsal" in result.details and STABLE in result.details


def test_releasing_the_stable_version_again_fails() -> None:
    result = check(make_request(), "rollback_plan", stable_version=VERSION)
    assert result.status == "fail"
    assert "already the stable version" in result.details


@pytest.mark.parametrize(
    ("strategy", "words"),
    [("feature_flag", "kill switch"), ("blue_green", "blue"), ("rolling", "batches")],
)
def test_rollback_plan_says_how_the_strategy_rolls_back(strategy: str, words: str) -> None:
    flags = [("new_checkout", 100.0)] if strategy == "feature_flag" else None
    result = check(make_request(strategy=strategy, flags=flags), "rollback_plan")
    assert result.status == "pass"
    assert words in result.details


# -- monitoring ---------------------------------------------------------------------------------


def test_metrics_not_answering_fail_naming_what_is_missing() -> None:
    result = check(make_request(), "monitoring", metrics_answering=["requests"])
    assert result.status == "fail"
    assert "errors" in result.details and "latency" in result.details
    assert "requests" not in result.details.split(":")[1]


def test_missing_kpi_metric_is_a_warning() -> None:
    request = make_request(kpis=[kpi_rail("conversion")])
    result = check(request, "monitoring", metrics_answering=["requests", "errors", "latency"])
    assert result.status == "warning"
    assert "kpi:conversion" in result.details


def test_monitoring_passes_when_kpis_answer() -> None:
    result = check(make_request(kpis=[kpi_rail("conversion")]), "monitoring")
    assert result.status == "pass"
    assert "kpi:conversion" in result.details


# -- feature flags ------------------------------------------------------------------------------


def flag_request() -> ReleaseRequest:
    return make_request(strategy="feature_flag", flags=[("new_checkout", 50.0)])


def test_flag_without_kill_switch_fails() -> None:
    state = FlagState(name="new_checkout", service="shop", kill_switch=False)
    result = check(flag_request(), "feature_flags", flags={"new_checkout": state})
    assert result.status == "fail"
    assert "new_checkout has no kill switch" in result.details


def test_new_flag_configured_without_kill_switch_fails() -> None:
    result = check(
        flag_request(),
        "feature_flags",
        flags={"new_checkout": None},
        flag_kill_switch={"new_checkout": False},
    )
    assert result.status == "fail"
    assert "new_checkout" in result.details


def test_flags_with_kill_switch_pass() -> None:
    state = FlagState(name="new_checkout", service="shop", percentage=10)
    existing = check(flag_request(), "feature_flags", flags={"new_checkout": state})
    assert existing.status == "pass"
    assert "new_checkout at 10%" in existing.details
    created = check(flag_request(), "feature_flags")
    assert created.status == "pass"
    assert "created off" in created.details
    assert check(make_request(), "feature_flags").details == "no feature flags in this release"


# -- change approval ----------------------------------------------------------------------------


@pytest.mark.parametrize(("risk", "status"), [("low", "warning"), ("medium", "warning"),
                                              ("high", "fail"), ("critical", "fail")])  # fmt: skip
def test_no_ticket_warns_for_medium_fails_for_high(risk: str, status: str) -> None:
    result = check(make_request(risk=risk, ticket=None), "change_approval")
    assert result.status == status
    assert "no change ticket" in result.details


def test_no_approvers_fails() -> None:
    result = check(make_request(), "change_approval", approvers=[])
    assert result.status == "fail"
    assert "no approvers" in result.details and "shop" in result.details


# -- dependencies -------------------------------------------------------------------------------


def test_unhealthy_dependency_fails() -> None:
    request = make_request(dependencies=[("ledger", "unhealthy"), ("db", "healthy")])
    result = check(request, "dependency_health")
    assert result.status == "fail"
    assert "unhealthy: ledger" in result.details
    assert "(reported)" in result.details  # nothing probed it: what the line said


def test_degraded_dependency_warns() -> None:
    result = check(make_request(dependencies=[("ledger", "degraded")]), "dependency_health")
    assert result.status == "warning"
    assert "degraded: ledger" in result.details


def test_a_live_probe_overrides_a_healthy_line() -> None:
    result = check(
        make_request(dependencies=[("ledger", "healthy")]),
        "dependency_health",
        dependencies=[DependencyProbe(name="ledger", health="unhealthy")],
    )
    assert result.status == "fail"
    assert "unhealthy: ledger" in result.details
    assert "probe: unhealthy" in result.details


def test_a_probe_agreeing_with_the_line_is_not_marked_reported() -> None:
    result = check(
        make_request(dependencies=[("ledger", "healthy")]),
        "dependency_health",
        dependencies=[DependencyProbe(name="ledger", health="healthy")],
    )
    assert result.status == "pass"
    assert result.details == "ledger healthy"


def test_a_human_reporting_a_dependency_down_still_blocks_a_healthy_probe() -> None:
    """gates._dependencies: the worse of the line and the probe counts."""
    result = check(
        make_request(dependencies=[("ledger", "unhealthy")]),
        "dependency_health",
        dependencies=[DependencyProbe(name="ledger", health="healthy")],
    )
    assert result.status == "fail"
    assert "ledger unhealthy (reported; probe: healthy)" in result.details


def test_probed_dependencies_count_even_when_the_line_names_none() -> None:
    result = check(
        make_request(),
        "dependency_health",
        dependencies=[DependencyProbe(name="search", health="degraded")],
    )
    assert result.status == "warning"
    assert check(make_request(), "dependency_health").details == "no dependencies declared"


# -- deployment window --------------------------------------------------------------------------


def test_peak_hours_warn_for_high_risk() -> None:
    peak = [tr("13:00", "15:00")]
    high = check(make_request(risk="high", peak_hours=peak), "deployment_window")
    assert high.status == "warning"
    assert "peak hours" in high.details
    medium = check(make_request(risk="medium", peak_hours=peak), "deployment_window")
    assert medium.status == "pass"
    assert "may proceed" in medium.details


def test_outside_the_maintenance_window_the_start_is_delayed() -> None:
    result = check(
        make_request(maintenance_windows=[tr("02:00", "04:00", ["sat"])]), "deployment_window"
    )
    assert result.status == "pass"
    assert "start delayed" in result.details and "Sat 02:00" in result.details


# -- rollout plan -------------------------------------------------------------------------------


@pytest.mark.parametrize("stages", [[100.0], [50.0, 100.0], [20.0, 60.0, 100.0]])
def test_high_risk_all_at_once_fails_the_rollout_plan(stages: list[float]) -> None:
    result = check(make_request(risk="high", stages=stages), "rollout_plan")
    assert result.status == "fail"
    assert "high-risk" in result.details and "at least 3 steps" in result.details


def test_medium_risk_may_go_all_at_once() -> None:
    assert check(make_request(risk="medium", stages=[100.0]), "rollout_plan").status == "pass"


def test_rollout_plan_passes_without_prod() -> None:
    result = check(make_request(environments=("dev", "staging")), "rollout_plan")
    assert result.status == "pass"
    assert "no prod" in result.details
