"""`release-bot serve` as a real process: one clear line on bad settings; serving otherwise."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.serve.wiring import wire
from bot.settings import Settings, SettingsError
from tests.conftest import ROOT
from tests.fake_slack import FakeSlack
from tests.slack_signing import post


def _env(tmp: Path, **values: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "RELEASE_BOT_DB": str(tmp / "release-bot.db"),
        **values,
    }


def _serve(tmp: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--env-file", str(tmp / "none.env")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_missing_or_wrong_settings_give_one_line(tmp_path: Path) -> None:
    cases = {
        "SLACK_BOT_TOKEN is not set": {},
        "should start with xoxb-": {"SLACK_BOT_TOKEN": "xoxp-user"},
        "SLACK_SIGNING_SECRET is not set": {"SLACK_BOT_TOKEN": "xoxb-1"},
        "SLACK_API_URL": {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_URL": "slack.example",
        },
    }
    for expected, values in cases.items():
        done = _serve(tmp_path, _env(tmp_path, **values)).communicate(timeout=60)
        err = done[1].strip()
        assert expected in err, err
        assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_refused_token_gives_one_line(tmp_path: Path) -> None:
    with FakeSlack(tokens=["xoxb-good"]) as fake:
        env = _env(
            tmp_path,
            SLACK_BOT_TOKEN="xoxb-bad",
            SLACK_SIGNING_SECRET="s",
            SLACK_API_URL=fake.url,
            PORT="0",
        )
        err = _serve(tmp_path, env).communicate(timeout=60)[1].strip()
    assert "invalid_auth" in err and "Traceback" not in err, err


def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    with FakeSlack() as fake:
        env = _env(
            tmp_path,
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET="secret",
            SLACK_API_URL=fake.url,
            PORT=str(port),
            HOST="127.0.0.1",
        )
        process = _serve(tmp_path, env)
        try:
            deadline = time.monotonic() + 30
            status, body = 0, ""
            while time.monotonic() < deadline:
                try:
                    status, _, body = post(f"http://127.0.0.1:{port}/healthz", "", {}, method="GET")
                    break
                except OSError:
                    time.sleep(0.1)
            assert status == 200, body
            assert json.loads(body)["scheduler"] == "running"
            assert fake.count("auth.test") == 1
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err


def test_a_port_in_use_gives_one_line(tmp_path: Path) -> None:
    with FakeSlack() as fake, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(
            _env_file=None,
            slack_bot_token="xoxb-test",
            slack_signing_secret="s",
            slack_api_url=fake.url,
            release_bot_db=tmp_path / "release-bot.db",
            host="127.0.0.1",
            port=taken.getsockname()[1],
        )
        with pytest.raises(SettingsError, match=r"cannot listen on 127\.0\.0\.1:") as caught:
            wire(settings)
    assert "PORT" in str(caught.value) and "\n" not in str(caught.value)
