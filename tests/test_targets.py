"""Each service's metrics provider and traffic router, as data/services.toml names them:
checked at start-up one line per mistake, unknown and untargeted services refused, the
simulator only where the config says so, and a router that fails handled by the release.

Service tests run the real bootstrap (in-memory SQLite, virtual clock)."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.per_service import ServiceMetrics, ServiceRouters
from bot.adapters.sim.fleet import SimulatedFleet
from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap, read_targets
from bot.config import DEFAULT_CONFIG, ConfigError, load_config
from bot.domain.observations import Target, TrafficState
from bot.domain.release import CommandRejected, Release
from bot.domain.request import Strategy
from bot.ports.traffic import AbstractTrafficRouter, RouterUnavailable
from bot.service import approve, dry_run, reconcile, start_release

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'
SHOP = """
[services.shop]
approvers = ["alice"]
environments = ["prod"]
regions = ["us-east-1"]
strategy = "canary"
artifact = "registry.local/shop:{version}"
guardrails = ["error_rate<1%", "p95<300ms", "availability>=99%"]
"""


def config_file(tmp_path: Path, extra: str, base: str | None = None) -> Path:
    path = tmp_path / "services.toml"
    path.write_text((DEFAULT_CONFIG.read_text() if base is None else base) + extra)
    return path


def wired(config: Path | None = None) -> Wiring:
    return bootstrap(
        ":memory:", clock_start=START, chat=TerminalChat(io.StringIO()), config_path=config
    )


# -- start-up: every table checked against its adapter's schema --------------------------------


def test_the_repository_config_keeps_the_demo_services_on_the_simulator() -> None:
    targets = read_targets(load_config())
    for service in ("payments-api", "search-api"):
        assert targets[service].metrics is not None
        assert targets[service].traffic is not None
    wiring = wired()
    try:
        metrics, traffic = wiring.services.metrics, wiring.services.traffic
        assert isinstance(metrics, ServiceMetrics) and isinstance(traffic, ServiceRouters)
        assert all(isinstance(p, SimulatedFleet) for p in metrics.providers.values())
        assert all(isinstance(r, SimulatedFleet) for r in traffic.routers.values())
    finally:
        wiring.close()


def test_each_mistake_is_one_line_naming_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOP_HOOK_SECRET", raising=False)
    path = config_file(
        tmp_path,
        SHOP
        + 'metrics = { provider = "promethus" }\n'
        + 'traffic = { router = "haproxy", sokcet = "/run/haproxy.sock" }\n'
        + '[services.cart]\nmetrics = { provider = "prometheus" }\n'
        + 'traffic = { router = "webhook", url = "http://cd:8080/hook", '
        + 'secret_env = "SHOP_HOOK_SECRET" }\n',
    )
    with pytest.raises(ConfigError) as caught:
        read_targets(load_config(path), path)
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    text = "\n".join(lines)
    assert "services.shop.metrics.provider: 'promethus' is unknown; use one of prometheus" in text
    assert "services.shop.traffic.socket: Field required (haproxy)" in text
    assert "services.shop.traffic.sokcet: Extra inputs are not permitted (haproxy)" in text
    assert "services.cart.metrics.url: Field required (prometheus)" in text
    assert "services.cart.traffic: " in text and "SHOP_HOOK_SECRET" in text
    assert len(lines) == 5


def test_what_only_shows_beside_the_service_is_checked_too(tmp_path: Path) -> None:
    """One HAProxy backend for two environments, selectors blind to regions, a dependency
    without a probe or with a bound that cannot be read: each one line."""
    extra = (
        SHOP.replace('environments = ["prod"]', 'environments = ["staging", "prod"]').replace(
            'regions = ["us-east-1"]', 'regions = ["us-east-1", "eu-west-1"]'
        )
        + 'metrics = { provider = "prometheus", url = "http://prom:9090" }\n'
        + 'traffic = { router = "haproxy", socket = "/run/haproxy.sock" }\n'
        + '[[services.shop.dependencies]]\nname = "ledger"\n'
        + '[[services.shop.dependencies]]\nname = "db"\nhealth_query = "up"\nhealthy = "high"\n'
    )
    path = config_file(tmp_path, extra)
    with pytest.raises(ConfigError) as caught:
        read_targets(load_config(path), path)
    text = str(caught.value)
    assert (
        "services.shop.traffic: backend '$service' is the same for every env (prod, staging): "
        "put $env in it" in text
    )
    assert "services.shop.metrics: baseline " in text and 'region="$region"' in text
    assert "dependency ledger has no live probe: give it health_url" in text
    assert "dependency db: healthy 'high' is not a comparison" in text
    # backend: env and region; baseline and canary: env and region each; two dependencies
    assert len(text.splitlines()) == 8


def test_a_line_reaching_more_than_the_config_names_is_refused(tmp_path: Path) -> None:
    """The config's one environment passes start-up; a line adding staging would put both on
    one backend, so the release is refused before anything moves."""
    extra = (
        SHOP
        + 'metrics = { provider = "simulator" }\n'
        + f'traffic = {{ router = "haproxy", socket = "{tmp_path}/none.sock" }}\n'
    )
    wiring = wired(config_file(tmp_path, extra))
    try:
        with pytest.raises(CommandRejected) as caught:
            start_release(wiring.services, 'shop 1.2.0 risk=low changes="x" env=staging,prod', "a")
        assert str(caught.value).startswith(
            "HAProxy for shop: backend '$service' is the same for every env (prod, staging)"
        )
    finally:
        wiring.close()


def test_bootstrap_refuses_to_start_on_a_bad_table(tmp_path: Path) -> None:
    path = config_file(tmp_path, SHOP + 'metrics = { provider = "prometheus" }\n')
    with pytest.raises(ConfigError, match=r"services\.shop\.metrics\.url: Field required"):
        wired(path)


def test_defaults_give_every_service_its_targets(tmp_path: Path) -> None:
    base = '[defaults]\nmetrics = { provider = "simulator" }\ntraffic = { router = "simulator" }\n'
    path = config_file(tmp_path, SHOP, base=base)
    assert load_config(path).refusal("shop") is None
    assert read_targets(load_config(path), path)["shop"].metrics is not None


# -- the /release of a service the config cannot release ------------------------------------


def test_a_typo_in_the_service_is_refused_naming_the_closest() -> None:
    wiring = wired()
    try:
        with pytest.raises(CommandRejected) as caught:
            start_release(wiring.services, "/release paymnets-api 1.0 artifact=x", "alice")
        assert str(caught.value) == (
            "paymnets-api is not a service in data/services.toml: did you mean payments-api? "
            "(a new service needs its own [services.paymnets-api] table)"
        )
        with pytest.raises(CommandRejected, match="known: payments-api, search-api"):
            dry_run(wiring.services, "/release inventory 1.0.0")
        assert wiring.services.store.listing() == []
    finally:
        wiring.close()


def test_a_service_without_targets_is_refused_saying_what_to_add(tmp_path: Path) -> None:
    path = config_file(tmp_path, SHOP)
    wiring = wired(path)
    try:
        with pytest.raises(CommandRejected) as caught:
            start_release(wiring.services, 'shop 1.2.0 risk=low changes="x"', "alice")
        assert str(caught.value) == (  # the file actually read, not the default's name
            f"shop has no metrics provider and no traffic router in {path}: add "
            '[services.shop.metrics] provider = "prometheus" and [services.shop.traffic] '
            'router = "haproxy" (or "simulator" for a demo)'
        )
    finally:
        wiring.close()


def test_a_router_refuses_a_strategy_it_cannot_run(tmp_path: Path) -> None:
    extra = (
        SHOP
        + 'metrics = { provider = "simulator" }\n'
        + f'traffic = {{ router = "haproxy", socket = "{tmp_path}/none.sock" }}\n'
    )
    wiring = wired(config_file(tmp_path, extra))
    try:
        with pytest.raises(CommandRejected, match=r"HAProxy 2\.6 cannot mirror"):
            start_release(wiring.services, 'shop 1.2.0 risk=low changes="x" strategy=shadow', "a")
    finally:
        wiring.close()


# -- a router that does not answer ------------------------------------------------------------


class BrokenRouter(AbstractTrafficRouter):
    """The simulated fleet's router, until ``broken``: then every call fails."""

    def __init__(self, inner: AbstractTrafficRouter) -> None:
        self.inner, self.broken = inner, False

    def _check(self) -> None:
        if self.broken:
            raise RouterUnavailable("HAProxy for payments-api/prod/us-east-1: connection refused")

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        self._check()
        return self.inner.apply(target, desired)

    def state(self, target: Target) -> TrafficState:
        self._check()
        return self.inner.state(target)

    def rehearse_rollback(self, target: Target, version: str) -> bool:
        self._check()
        return self.inner.rehearse_rollback(target, version)

    def refusal(self, service: str, strategy: Strategy) -> str | None:
        return None


def test_gates_fail_when_the_router_does_not_answer() -> None:
    wiring = wired()
    try:
        router = BrokenRouter(wiring.services.traffic)
        router.broken = True
        services = dataclasses.replace(wiring.services, traffic=router)
        release = start_release(services, LINE, "carol")
        assert isinstance(release, Release)
        assert release.status == "failed"
        check = next(c for c in release.observed.checks if c.check == "rollback_plan")
        assert check.status == "fail"
        assert "the traffic router failed: HAProxy for" in check.details
    finally:
        wiring.close()


def test_a_rollout_pauses_after_the_router_fails_three_ticks_in_a_row() -> None:
    wiring = wired()
    try:
        router = BrokenRouter(wiring.services.traffic)
        services = dataclasses.replace(wiring.services, traffic=router)
        release = start_release(services, LINE, "carol")
        assert isinstance(release, Release)
        approve(services, release.id, "alice")
        clock = wiring.virtual_clock
        assert clock is not None
        while services.store.get(release.id).status != "rolling_out":
            clock.advance(10)
            reconcile(services)
        router.broken = True
        for _ in range(3):
            clock.advance(10)
            reconcile(services)
        after = services.store.get(release.id)
        assert after.status == "paused"
        assert after.paused is not None
        assert after.paused.reason.startswith("traffic router failed 3 times in a row: HAProxy")
        kinds = [e.action for e in services.store.events(release.id)]
        assert kinds.count("router_unavailable") == 3
        for _ in range(5):  # still down while paused: counted, not posted again
            clock.advance(10)
            reconcile(services)
        kinds = [e.action for e in services.store.events(release.id)]
        assert kinds.count("router_unavailable") == 3
        router.broken = False  # back: the next tick converges and counts afresh
        clock.advance(10)
        reconcile(services)
        assert services.store.get(release.id).consecutive_router_errors == 0
    finally:
        wiring.close()


def test_a_dependency_that_turns_unhealthy_pauses_the_rollout() -> None:
    wiring = wired()
    try:
        services, clock = wiring.services, wiring.virtual_clock
        assert clock is not None
        release = start_release(services, LINE, "carol")
        assert isinstance(release, Release)
        approve(services, release.id, "alice")
        while services.store.get(release.id).window_cursor is None:
            clock.advance(10)
            reconcile(services)
        wiring.fleet.inject("payments-api", "2.4.1", ["dep:ledger=unhealthy"])
        clock.advance(10)
        reconcile(services)
        after = services.store.get(release.id)
        assert after.status == "paused"
        assert after.paused is not None
        assert after.paused.reason == "dependency ledger unhealthy during the rollout"
    finally:
        wiring.close()


def test_the_simulated_ci_serves_only_services_on_the_simulator(tmp_path: Path) -> None:
    extra = SHOP + 'metrics = { provider = "prometheus", url = "http://prom:9090" }\n'
    extra += 'traffic = { router = "simulator" }\nci = "simulator"\n'
    path = config_file(tmp_path, extra)
    with pytest.raises(ConfigError) as caught:
        read_targets(load_config(path), path)
    assert str(caught.value) == (
        f"{path}: services.shop.ci: the simulated CI serves only services on the simulator, "
        "and shop's metrics come from prometheus: remove ci and upload its evidence "
        "(`release-bot evidence add`)"
    )
