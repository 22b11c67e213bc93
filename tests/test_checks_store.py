from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.sqlite.checks import SqliteChecks
from bot.adapters.sqlite.database import Database
from bot.domain.observations import ArtifactRecord, CheckEvidence
from bot.ports.checks import AbstractChecks
from tests.conftest import migrated_db, postgres_stores_for
from tests.fakes import FakeChecks

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
IMAGE = "ghcr.io/acme/payments-api:2.4.0"


def evidence(name: str, status: str, at: datetime, details: str = "x") -> CheckEvidence:
    return CheckEvidence.model_validate(
        {"name": name, "status": status, "details": details, "recorded_at": at}
    )


@pytest.fixture(params=["sqlite", "postgres", "fake"])
def checks(request: pytest.FixtureRequest) -> AbstractChecks:
    if request.param == "postgres":
        return postgres_stores_for(request).checks
    return SqliteChecks(migrated_db()) if request.param == "sqlite" else FakeChecks()


def test_artifact_round_trip_and_replace(checks: AbstractChecks) -> None:
    assert checks.artifact(IMAGE) is None
    record = ArtifactRecord(
        image=IMAGE, digest="sha256:abc123", build_id="b-1", signed=True, sbom_attached=False
    )
    checks.record_artifact(record)
    assert checks.artifact(IMAGE) == record
    rebuilt = record.model_copy(update={"digest": "sha256:def456", "sbom_attached": True})
    checks.record_artifact(rebuilt)
    assert checks.artifact(IMAGE) == rebuilt


def test_latest_result_per_name_wins(checks: AbstractChecks) -> None:
    checks.record("payments-api", "2.4.0", evidence("staging_tests", "fail", T0, "3 failed"))
    checks.record("payments-api", "2.4.0", evidence("security_scan", "pass", T0))
    later = T0 + timedelta(minutes=5)
    checks.record("payments-api", "2.4.0", evidence("staging_tests", "pass", later, "0 failed"))
    # An older result recorded afterwards (a late webhook) does not win.
    checks.record(
        "payments-api", "2.4.0", evidence("staging_tests", "fail", T0 - timedelta(hours=1))
    )
    results = checks.results("payments-api", "2.4.0")
    assert [(e.name, e.status) for e in results] == [
        ("security_scan", "pass"),
        ("staging_tests", "pass"),
    ]
    assert results[1].details == "0 failed" and results[1].recorded_at == later


def test_equal_times_the_later_record_wins(checks: AbstractChecks) -> None:
    checks.record("svc", "1", evidence("smoke_tests", "pass", T0))
    checks.record("svc", "1", evidence("smoke_tests", "warning", T0))
    assert [e.status for e in checks.results("svc", "1")] == ["warning"]


def test_results_are_per_service_and_version(checks: AbstractChecks) -> None:
    checks.record("payments-api", "2.4.0", evidence("smoke_tests", "pass", T0))
    assert checks.results("payments-api", "2.4.1") == []
    assert checks.results("search-api", "2.4.0") == []


def test_evidence_survives_a_new_connection(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    first = migrated_db(path)
    e = CheckEvidence(
        name="staging_tests",
        status="pass",
        details="412 passed, 0 failed in staging",
        passed=412,
        failed=0,
        recorded_at=T0,
    )
    SqliteChecks(first).record("payments-api", "2.4.0", e)
    first.close()
    assert SqliteChecks(Database(path)).results("payments-api", "2.4.0") == [e]
