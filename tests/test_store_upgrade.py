"""A database written by an earlier version keeps working: its releases are upgraded by the
store's migrations at start-up and resume where they stood."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.adapters.sqlite import store as sqlite_store
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.store import SqliteReleaseStore, observed_apart_state
from bot.adapters.terminal import TerminalChat
from bot.bootstrap import bootstrap
from bot.domain.observations import WindowSample
from bot.domain.release import PauseRecord, Release
from bot.service import resume

# A payments-api release paused by bob at its 5 % step, as the state column held it before
# ``observed_apart`` (written by the engine of that version, with logs, traces and windows).
V1_STATE = Path(__file__).parent / "data" / "release-state-v1.json"


def old_database(path: Path, state: dict[str, Any]) -> None:
    """The database as the earlier version left it: its migrations, and the release row."""
    database = Database(path)
    sqlite_store.migrations.apply(database.db, stop_before="observed_apart")
    database.db.table("releases").insert(
        {
            "id": state["id"],
            "service": state["request"]["service"],
            "version": state["request"]["release_package"]["version"],
            "status": state["status"],
            "active": 1,
            "revision": state["revision"],
            "created_at": state["created_at"],
            "updated_at": state["created_at"],
            "state": json.dumps(state),
            "narrate": 0,
        }
    )
    database.close()


def test_a_paused_release_from_before_observed_apart_is_upgraded_and_resumes(
    tmp_path: Path,
) -> None:
    state = json.loads(V1_STATE.read_text())
    path = tmp_path / "release-bot.db"
    old_database(path, state)
    paused_at = datetime.fromisoformat(state["paused_at"])
    wiring = bootstrap(path, clock_start=paused_at, chat=TerminalChat(io.StringIO()))
    services = wiring.services
    release = services.store.get(state["id"])
    assert release.status == "paused" and release.step_index == state["step_index"]
    assert release.paused == PauseRecord(reason=state["pause_reason"], by="bob", at=paused_at)
    observed = release.observed
    assert observed.user_requests == state["user_requests"] > 0
    assert observed.windows == [WindowSample.model_validate(w) for w in state["windows"]]
    assert observed.logs is not None and observed.logs.model_dump(mode="json") == state["logs"]
    assert observed.traces is not None and len(observed.verifications) == 2
    resume(services, release.id, "alice")
    for _ in range(2000):
        if not services.store.get(release.id).is_active:
            break
        wiring.ticker.tick()  # one tick of virtual time, then the reconcile
    assert services.store.get(release.id).status == "completed"
    wiring.close()


def test_the_upgrade_leaves_a_new_state_as_it_is_and_loads_an_old_one() -> None:
    old = json.loads(V1_STATE.read_text())
    new = observed_apart_state(old)
    assert observed_apart_state(new) == new
    assert not {"windows", "paused_by", "step_canary", "rejected"} & set(new)
    Release.model_validate(new)  # every field the model knows, none it does not
    unpaused = observed_apart_state({**old, "pause_reason": None, "paused_by": None})
    assert unpaused["paused"] is None


def test_a_step_resumed_before_its_next_window_starts_counting_afresh() -> None:
    """The old state copied a step's requests from its running sum at each window; a resume
    reset the sum but not the copy, so the upgrade takes the sum."""
    old = json.loads(V1_STATE.read_text())
    index = old["step_index"]
    assert old["steps"][index]["requests"] > 0
    resumed = {**old, "status": "rolling_out", "pause_reason": None, "paused_by": None,
               "paused_at": None, "step_canary": {**old["step_canary"], "requests": 0}}  # fmt: skip
    new = observed_apart_state(resumed)
    assert isinstance(new["steps"], list) and new["steps"][index]["requests"] == 0
    assert new["steps"][:index] == old["steps"][:index]


def test_a_state_an_older_process_writes_after_the_upgrade_still_loads(fresh_db: Database) -> None:
    old = json.loads(V1_STATE.read_text())
    fresh_db.db.table("releases").insert(
        {"id": old["id"], "service": "payments-api", "version": "2.4.1", "status": "paused",
         "active": 1, "revision": 0, "created_at": old["created_at"],
         "updated_at": old["created_at"], "state": json.dumps(old), "narrate": 0}
    )  # fmt: skip
    release = SqliteReleaseStore(fresh_db).get(old["id"])
    assert release.paused is not None and release.paused.by == "bob"
