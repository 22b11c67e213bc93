"""The HAProxy router against a real HAProxy 2.6: weights set through the runtime API, read
back, and the requests through the frontend split as they say.

Each test gets its own HAProxy (``demo.servers.HAProxy``, about 0.1 s to start): backend
``payments-prod`` with servers ``blue`` (the stable 1.0.0, weight 256 in the config file) and
``green`` (weight 0), each a local HTTP server answering its version.

Why the bands on request counts are narrow: HAProxy's ``roundrobin`` is a deterministic
weighted round robin that spreads each server's picks evenly over every cycle of
(sum of weights) picks, so N consecutive requests reach the new server N·w/256 times give or
take a request or two wherever in the cycle they start; ±3 leaves room for that and nothing
else (a wrong weight moves the count by 2 per unit of 256 at N=500).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.adapters.haproxy import router as haproxy_router
from bot.adapters.haproxy.router import SHADOW_REASON, HAProxyRouter, HAProxySettings
from bot.adapters.haproxy.runtime import RuntimeAPI
from bot.adapters.sqlite.database import Database
from bot.domain.observations import Target, TrafficState
from bot.ports.traffic import RouterUnavailable
from demo.servers import HAProxy, free_port, installed
from tests.conftest import migrated_db
from tests.real_haproxy import VersionServer, answers

if installed("haproxy", "/usr/sbin") is None:
    pytest.skip(
        "HAPROXY NOT INSTALLED: the HAProxy router's tests need /usr/sbin/haproxy "
        "(apt-get install haproxy)",
        allow_module_level=True,
    )

BACKEND = "payments-prod"
TARGET = Target(service="payments", env="prod", region="eu-west-1")
REQUESTS = 500


@dataclass
class Rig:
    haproxy: HAProxy
    blue: VersionServer
    green: VersionServer
    database: Database

    def router(self, **settings: object) -> HAProxyRouter:
        values: dict[str, object] = {
            "socket": str(self.haproxy.socket_path),
            "backend": "$service-$env",
            **settings,
        }
        return HAProxyRouter("payments", HAProxySettings.model_validate(values), self.database)

    def weights(self) -> dict[str, int]:
        """The servers' weights from ``show servers state``, 0 for one in maint."""
        api = RuntimeAPI(str(self.haproxy.socket_path))
        return {
            row["srv_name"]: 0 if int(row["srv_admin_state"]) & 0x01 else int(row["srv_uweight"])
            for row in api.show_servers_state(BACKEND)
        }

    def admin(self) -> dict[str, str]:
        """Each server's forced admin state: maint, drain or ready."""
        api = RuntimeAPI(str(self.haproxy.socket_path))
        names = {0: "ready", 1: "maint", 8: "drain"}
        return {
            row["srv_name"]: names[int(row["srv_admin_state"]) & 0x09]
            for row in api.show_servers_state(BACKEND)
        }

    def served(self, requests: int = REQUESTS) -> dict[str, int]:
        return dict(answers(self.haproxy.frontend_url, requests))


def blue_green(
    directory: Path, blue: VersionServer, green: VersionServer, disabled: set[str] | None = None
) -> HAProxy:
    """HAProxy whose config file sends everything to blue (256) and nothing to green (0)."""
    servers = {"blue": (blue.port, 256), "green": (green.port, 0)}
    return HAProxy(directory, free_port(), BACKEND, servers, disabled or set())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    database = migrated_db()
    database.migrate(haproxy_router.migrations)  # a no-op when bootstrap's set has it
    with (
        VersionServer("1.0.0") as blue,
        VersionServer("1.1.0") as green,
        blue_green(tmp_path, blue, green) as haproxy,
    ):
        yield Rig(haproxy, blue, green, database)
    database.close()


def canary(weight: float, new: str = "1.1.0", stable: str = "1.0.0") -> TrafficState:
    return TrafficState(
        stable_version=stable,
        new_version=new,
        new_weight=weight,
        instances_total=10,
        instances_updated=max(1, round(weight / 10)),
        release_id="rel-1",
    )


def converge(router: HAProxyRouter, target: Target, desired: TrafficState) -> bool:
    """What the reconcile tick does (``bot.service.tick.converge``); True when it applied."""
    if router.state(target) != desired:
        router.apply(target, desired)
        return True
    return False


def near(count: int, expected: float) -> bool:
    return abs(count - expected) <= 3


def test_canary_weights_split_the_requests(rig: Rig) -> None:
    router = rig.router()
    assert router.state(TARGET) == TrafficState()  # nothing applied: no stable version known
    assert rig.served(50) == {"1.0.0": 50}

    desired = canary(10)
    assert router.apply(TARGET, desired) == desired
    assert rig.weights() == {"blue": 230, "green": 26}  # round(256 * 10 %) = 26
    assert router.state(TARGET) == desired  # snapped to 10, not 26/256 = 10.16
    served = rig.served()
    assert set(served) == {"1.0.0", "1.1.0"}
    assert near(served["1.1.0"], REQUESTS * 26 / 256), served  # 50.8

    assert router.apply(TARGET, desired) == desired  # idempotent
    assert rig.weights() == {"blue": 230, "green": 26}
    assert not converge(router, TARGET, desired)

    router.apply(TARGET, canary(50))
    assert rig.weights() == {"blue": 128, "green": 128}
    assert near(rig.served()["1.1.0"], REQUESTS / 2), rig.served()

    router.apply(TARGET, canary(100))
    assert rig.weights() == {"blue": 0, "green": 256}
    assert rig.admin() == {"blue": "ready", "green": "ready"}  # blue can take it back at once
    assert rig.served() == {"1.1.0": REQUESTS}
    assert router.state(TARGET) == canary(100)


def test_blue_green_switch(rig: Rig) -> None:
    router = rig.router()
    verify = TrafficState(
        stable_version="1.0.0", new_version="1.1.0", instances_total=10, instances_updated=10
    )
    router.apply(TARGET, verify)  # green deployed, verified, serving nobody
    assert rig.weights() == {"blue": 256, "green": 0}
    assert rig.admin() == {"blue": "ready", "green": "ready"}
    assert rig.served(100) == {"1.0.0": 100}

    switched = verify.model_copy(update={"new_weight": 100.0})
    router.apply(TARGET, switched)
    assert rig.weights() == {"blue": 0, "green": 256}
    assert rig.served(100) == {"1.1.0": 100}
    assert router.state(TARGET) == switched


def test_promotion_swaps_the_roles(rig: Rig) -> None:
    router = rig.router()
    router.apply(TARGET, canary(100))
    promoted = TrafficState(stable_version="1.1.0", instances_total=10, release_id="rel-1")
    router.apply(TARGET, promoted)
    # Green serves the new stable version; blue is drained to maint.
    assert rig.weights() == {"blue": 0, "green": 256}
    assert rig.admin() == {"blue": "maint", "green": "ready"}
    assert rig.served(100) == {"1.1.0": 100}
    assert router.state(TARGET) == promoted
    assert not converge(router, TARGET, promoted)

    # The next release goes on blue, where the CD has deployed it.
    rig.blue.version = "1.2.0"
    nxt = canary(10, new="1.2.0", stable="1.1.0")
    router.apply(TARGET, nxt)
    assert rig.weights() == {"blue": 26, "green": 230}
    assert rig.admin() == {"blue": "ready", "green": "ready"}
    served = rig.served()
    assert set(served) == {"1.1.0", "1.2.0"}
    assert near(served["1.2.0"], REQUESTS * 26 / 256), served
    assert router.state(TARGET) == nxt

    # The roles live in the database: a new router (a restarted bot) knows them.
    assert rig.router().state(TARGET) == nxt


def test_rollback_puts_the_new_server_in_maint(rig: Rig) -> None:
    router = rig.router()
    router.apply(TARGET, canary(50))
    rolled_back = TrafficState(stable_version="1.0.0", instances_total=10, release_id="rel-1")
    router.apply(TARGET, rolled_back)
    assert rig.weights() == {"blue": 256, "green": 0}
    assert rig.admin() == {"blue": "ready", "green": "maint"}
    assert rig.served() == {"1.0.0": REQUESTS}
    assert router.state(TARGET) == rolled_back

    # The next release goes on green again: blue still hosts the stable version.
    nxt = canary(10, new="1.1.1")
    router.apply(TARGET, nxt)
    assert rig.weights() == {"blue": 230, "green": 26}


def test_an_operator_and_a_restart_are_seen_and_repaired(rig: Rig) -> None:
    router = rig.router()
    desired = canary(10)
    router.apply(TARGET, desired)

    # An operator sets green's weight by hand.
    assert rig.haproxy.command(f"set weight {BACKEND}/green 128").strip() == ""
    seen = router.state(TARGET)
    assert seen != desired
    assert seen.new_weight == pytest.approx(100 * 128 / (128 + 230), abs=0.01)
    assert converge(router, TARGET, desired)
    assert rig.weights() == {"blue": 230, "green": 26}
    assert router.state(TARGET) == desired

    # An operator puts green in maint: it counts as weight 0.
    rig.haproxy.command(f"set server {BACKEND}/green state maint")
    assert router.state(TARGET).new_weight == 0
    assert converge(router, TARGET, desired)
    assert rig.admin() == {"blue": "ready", "green": "ready"}

    # A restart brings back the config file's weights: 256/0.
    rig.haproxy.restart()
    assert rig.weights() == {"blue": 256, "green": 0}
    seen = router.state(TARGET)
    assert seen == desired.model_copy(update={"new_weight": 0.0})
    assert converge(router, TARGET, desired)  # the tick re-applies...
    assert rig.weights() == {"blue": 230, "green": 26}
    assert router.state(TARGET) == desired
    assert not converge(router, TARGET, desired)  # ...once
    assert near(rig.served()["1.1.0"], REQUESTS * 26 / 256)


def test_an_idle_server_disabled_in_the_config_file(tmp_path: Path) -> None:
    # A common blue-green config: the idle server starts in maintenance ("disabled").
    database = migrated_db()
    database.migrate(haproxy_router.migrations)
    with (
        VersionServer("1.0.0") as blue,
        VersionServer("1.1.0") as green,
        blue_green(tmp_path, blue, green, disabled={"green"}) as haproxy,
    ):
        rig = Rig(haproxy, blue, green, database)
        router = rig.router()
        assert rig.admin() == {"blue": "ready", "green": "maint"}
        assert router.state(TARGET) == TrafficState()
        assert router.rehearse_rollback(TARGET, "1.1.0")
        assert rig.admin() == {"blue": "ready", "green": "maint"}
        desired = canary(10)
        router.apply(TARGET, desired)
        assert rig.weights() == {"blue": 230, "green": 26}
        assert router.state(TARGET) == desired
        assert near(rig.served()["1.1.0"], REQUESTS * 26 / 256)
        haproxy.restart()  # back in maintenance: nothing for the new version
        assert router.state(TARGET).new_weight == 0
        assert converge(router, TARGET, desired)
        assert router.state(TARGET) == desired
    database.close()


def test_shadow_is_refused_with_the_reason(rig: Rig) -> None:
    router = rig.router()
    reason = router.refusal("payments", "shadow")
    assert reason == SHADOW_REASON
    assert reason is not None and "\n" not in reason
    assert "strategy=canary" in reason and "webhook" in reason and "mirror" in reason
    for strategy in ("canary", "blue_green", "rolling", "feature_flag"):
        assert router.refusal("payments", strategy) is None

    shadow = TrafficState(stable_version="1.0.0", new_version="1.1.0", mirror=10)
    with pytest.raises(RouterUnavailable, match="cannot mirror") as caught:
        router.apply(TARGET, shadow)
    assert TARGET.describe() in str(caught.value)
    assert rig.weights() == {"blue": 256, "green": 0}  # nothing touched


def test_rolling_and_flag_map_to_weights(rig: Rig) -> None:
    router = rig.router()
    batch = TrafficState(
        stable_version="1.0.0",
        new_version="1.1.0",
        new_weight=30.0,
        instances_total=10,
        instances_updated=3,
    )
    router.apply(TARGET, batch)
    assert rig.weights() == {"blue": 179, "green": 77}  # round(76.8) = 77
    assert router.state(TARGET) == batch
    dark = batch.model_copy(update={"new_weight": 100.0, "flag": "new-ledger"})
    router.apply(TARGET, dark)
    assert rig.weights() == {"blue": 0, "green": 256}
    assert router.state(TARGET) == dark


def test_a_missing_socket_is_one_line(rig: Rig, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sock"
    router = rig.router(socket=str(missing))
    with pytest.raises(RouterUnavailable) as caught:
        router.state(TARGET)
    message = str(caught.value)
    assert "\n" not in message
    assert TARGET.describe() in message
    assert str(missing) in message
    assert "show servers state payments-prod" in message
    assert "No such file or directory" in message

    with pytest.raises(RouterUnavailable) as caught:
        router.apply(TARGET, canary(10))
    assert "\n" not in str(caught.value) and str(missing) in str(caught.value)


def test_haproxy_error_answers_are_router_unavailable(rig: Rig) -> None:
    wrong_backend = rig.router(backend="$service")
    with pytest.raises(RouterUnavailable, match="Can't find backend") as caught:
        wrong_backend.state(TARGET)
    assert "\n" not in str(caught.value)

    wrong_servers = rig.router(servers=["blue", "purple"])
    with pytest.raises(RouterUnavailable, match="has no server purple") as caught:
        wrong_servers.apply(TARGET, canary(10))
    assert "its servers: blue, green" in str(caught.value)
    assert rig.weights() == {"blue": 256, "green": 0}

    other = Target(service="orders", env="prod", region="eu-west-1")
    with pytest.raises(RouterUnavailable, match="configured for payments only"):
        rig.router().apply(other, canary(10))

    api = RuntimeAPI(str(rig.haproxy.socket_path))
    with pytest.raises(RouterUnavailable, match="Absolute weight can only be between"):
        api.run(f"set weight {BACKEND}/green 300")


def test_a_port_that_does_not_answer_is_one_line(rig: Rig) -> None:
    router = rig.router(socket=f"127.0.0.1:{free_port()}")
    with pytest.raises(RouterUnavailable, match="Connection refused") as caught:
        router.state(TARGET)
    assert "\n" not in str(caught.value)


def test_rehearse_rollback(rig: Rig) -> None:
    router = rig.router(frontend_url=rig.haproxy.frontend_url + "/healthz")
    before = (rig.weights(), rig.admin())
    assert router.rehearse_rollback(TARGET, "1.1.0")
    assert (rig.weights(), rig.admin()) == before
    assert router.state(TARGET) == TrafficState()

    # After a promotion, green is stable and blue (in maint) rehearses; maint is restored.
    router.apply(TARGET, canary(100))
    router.apply(TARGET, TrafficState(stable_version="1.1.0"))
    before = (rig.weights(), rig.admin())
    assert before[1] == {"blue": "maint", "green": "ready"}
    assert router.rehearse_rollback(TARGET, "1.2.0")
    assert (rig.weights(), rig.admin()) == before


def test_rehearse_rollback_fails_and_restores(rig: Rig) -> None:
    # The frontend answers 500 on /broken: the rehearsal fails, the state comes back.
    broken = rig.router(frontend_url=rig.haproxy.frontend_url + "/broken")
    before = (rig.weights(), rig.admin())
    assert not broken.rehearse_rollback(TARGET, "1.1.0")
    assert (rig.weights(), rig.admin()) == before

    # The stable server is in maint: after the rollback nothing would serve.
    rig.haproxy.command(f"set server {BACKEND}/blue state maint")
    assert not rig.router().rehearse_rollback(TARGET, "1.1.0")
    assert rig.admin() == {"blue": "maint", "green": "ready"}

    # During a release the idle server serves traffic: no rehearsal there.
    rig.haproxy.command(f"set server {BACKEND}/blue state ready")
    router = rig.router()
    router.apply(TARGET, canary(10))
    with pytest.raises(RouterUnavailable, match="serves traffic"):
        router.rehearse_rollback(TARGET, "1.1.0")
    assert rig.weights() == {"blue": 230, "green": 26}


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({}, "socket"),
        ({"socket": "admin.sock"}, "neither a socket path"),
        ({"socket": "127.0.0.1:99999"}, "out of range"),
        ({"socket": "/run/a.sock", "servers": ["a", "b", "c"]}, "exactly two"),
        ({"socket": "/run/a.sock", "servers": ["a", "a"]}, "exactly two"),
        ({"socket": "/run/a.sock", "servers": ["a b", "c"]}, "not an HAProxy server name"),
        ({"socket": "/run/a.sock", "initial_stable": "red"}, "not one of servers"),
        ({"socket": "/run/a.sock", "backend": "$service-$team"}, "placeholders"),
        ({"socket": "/run/a.sock", "backend": "my backend"}, "backend name holds"),
        ({"socket": "/run/a.sock", "frontend_url": "ftp://x"}, "http:// or https://"),
        ({"socket": "/run/a.sock", "timeout_seconds": 0}, "greater than 0"),
        ({"socket": "/run/a.sock", "router": "webhook"}, "haproxy"),
        ({"socket": "/run/a.sock", "weights": 3}, "Extra inputs"),
    ],
)
def test_settings_errors_are_one_line(settings: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HAProxySettings.model_validate(settings)
    errors = caught.value.errors()
    assert len(errors) == 1
    assert "\n" not in errors[0]["msg"]
    assert words in errors[0]["msg"] or words in str(errors[0]["loc"]), errors[0]


def test_settings_defaults() -> None:
    settings = HAProxySettings.model_validate(
        {"router": "haproxy", "socket": "127.0.0.1:9999", "backend": "${service}_$env"}
    )
    assert settings.servers == ["blue", "green"]
    assert settings.initial_stable == "blue"
    assert settings.timeout_seconds == 2.0
    assert settings.frontend_url is None
    assert HAProxySettings(socket="/run/haproxy/admin.sock").backend == "$service"
