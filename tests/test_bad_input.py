"""Every bad input the CLI can be given is one line naming the problem and the fix (issue 15),
never a traceback: recordings dated year 1, config paths that are not a config, config
mistakes anywhere in the file (found at start-up, for every command), databases that are not
databases or cannot be written, and a --json-out that could lose a finished report."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import load_config
from bot.domain import access
from bot.domain.contract import InsufficientContext
from bot.parsing import parse_release
from tests.conftest import ROOT, cli

LINE = "payments-api 2.4.1 risk=medium ticket=CHG-1 changes=x"
START = "2026-11-24T14:00:00Z"
EXAMPLE = ROOT / "data" / "examples" / "canary-errors.jsonl"


def one_clear_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The error, asserted to be a single `error:` line with each of ``words``."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


# -- analyze ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "t", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
def test_analyze_a_line_dated_at_the_edge_of_time(tmp_path: Path, t: str) -> None:
    first = EXAMPLE.read_text().splitlines()[0].replace("2026-11-24T10:00:10Z", t)
    recording = tmp_path / "edge.jsonl"
    recording.write_text(first + "\n")
    proc = cli("analyze", str(recording))
    assert proc.returncode == 1
    one_clear_line(proc, f"{recording}:1:", "`t`", "e.g. 2026-11-24T10:00:10Z")


# -- the config file --------------------------------------------------------------------------


def _config_ways(path: Path) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    return [(("--config", str(path)), {}), ((), {"RELEASE_BOT_CONFIG": str(path)})]


@pytest.mark.parametrize("way", [0, 1], ids=["--config", "RELEASE_BOT_CONFIG"])
@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.mkdir(), ("is a directory", "--config PATH")),
        (lambda p: p.write_text("[services\n"), ("not valid TOML",)),
        (lambda p: p.write_bytes(b"lock_admins = ['\xff']\n"), ("not UTF-8",)),
        (lambda p: None, ("not found", "--config PATH")),
    ],
    ids=["directory", "not-toml", "not-utf8", "missing"],
)
def test_a_config_path_that_is_no_config(tmp_path: Path, way: int, make, words) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "services.toml"
    make(config)
    flags, env = _config_ways(config)[way]
    proc = cli("list", "--db", str(tmp_path / "r.db"), *flags, env=env)
    assert proc.returncode == 1
    one_clear_line(proc, str(config), *words)


def _broken_config(tmp_path: Path) -> Path:
    text = (ROOT / "data" / "services.toml").read_text()
    text = text.replace("instances = 12", "instances = -3", 1)  # payments-api's own
    text = text.replace('"p99<800ms", "availability>=99.5%"]', '"p99<800xs"]', 1)  # defaults'
    text = text.replace("capacity_rps = 5000", "capacity_rps = 0", 1)  # search-api's
    config = tmp_path / "broken.toml"
    config.write_text(text)
    return config


# Every command that reads the config, with what it needs to get that far.
CONFIG_COMMANDS: list[tuple[str, ...]] = [
    ("parse", LINE),
    ("run", LINE, "--approve-as", "alice", "--db", "{db}"),
    ("dry-run", LINE, "--db", "{db}"),
    ("list", "--db", "{db}"),
    ("status", "--db", "{db}"),
    ("report", "rel-x", "--db", "{db}"),
    ("history", "payments-api", "--db", "{db}"),
    ("approve", "rel-x", "--as", "alice", "--db", "{db}"),
    ("reject", "rel-x", "--as", "alice", "--reason", "no", "--db", "{db}"),
    ("rollback", "rel-x", "--as", "alice", "--db", "{db}"),
    ("pause", "rel-x", "--as", "alice", "--db", "{db}"),
    ("resume-release", "rel-x", "--as", "alice", "--db", "{db}"),
    ("promote", "rel-x", "--as", "alice", "--db", "{db}"),
    ("extend", "rel-x", "--as", "alice", "--minutes", "30", "--db", "{db}"),
    ("override", "rel-x", "--as", "alice", "--reason", "why", "--db", "{db}"),
    ("lock", "prod", "--as", "alice", "--db", "{db}"),
    ("unlock", "prod", "--as", "alice", "--db", "{db}"),
    ("locks", "--db", "{db}"),
    ("issue", "rel-x", "checkout", "fails", "--as", "alice", "--db", "{db}"),
    ("evidence", "list", "payments-api", "2.4.1", "--db", "{db}"),
    ("evidence", "add", "payments-api", "2.4.1", "{file}", "--db", "{db}"),
    ("audit", "verify", "--db", "{db}"),
    ("audit", "export", "--db", "{db}"),
    ("resume", "--db", "{db}"),
    ("worker", "--db", "{db}"),
    ("serve",),
]


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_config_mistake_is_named_at_start_up_by_every_command(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = _broken_config(tmp_path)
    db = tmp_path / "r.db"
    db.touch()  # `resume` wants one
    file = tmp_path / "report.xml"
    file.write_text("<testsuite tests='1'/>")
    args = [a.replace("{db}", str(db)).replace("{file}", str(file)) for a in command]
    # serve reaches the config once its Slack settings are there
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s", "PORT": "0"}
    proc = cli(*args, "--config", str(config), env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f'error: {config}: defaults.guardrails: "p99<800xs": is not a guardrail; guardrails are '
        "error_rate, success_rate, availability, p50, p95, p99 or kpi:<name> with < <= > or "
        '>=, e.g. "p95<300ms"',
        f"error: {config}: services.payments-api.instances: -3 is not a number of instances; "
        "give the count the service runs, at least 1",
        f"error: {config}: services.search-api.capacity_rps: 0 must be above 0 (requests per "
        "second the service can take), or leave it out",
    ]


def test_every_command_that_reads_the_config_takes_config() -> None:
    from bot.cli import main

    def leaves(group, prefix=()):  # type: ignore[no-untyped-def]
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from leaves(command, (*prefix, name))
            else:
                yield (*prefix, name), command

    without = sorted(
        " ".join(path)
        for path, command in leaves(main)
        if not any(p.name == "config" for p in command.params)
    )
    assert without == ["analyze", "schema"]  # they read no config
    tested = {" ".join(c[:2]) if c[0] in ("evidence", "audit") else c[0] for c in CONFIG_COMMANDS}
    assert tested >= {" ".join(p) for p, _ in leaves(main)} - {"analyze", "schema"}


def test_a_mistake_in_the_defaults_is_named_once_not_per_service(tmp_path: Path) -> None:
    text = (ROOT / "data" / "services.toml").read_text()
    config = tmp_path / "s.toml"
    config.write_text(text.replace('regions = ["us-east-1"]\n', "regions = []\n", 1))
    proc = cli("parse", LINE, "--config", str(config))
    assert proc.returncode == 1
    one_clear_line(proc, f"{config}: defaults.regions: is empty")


def test_unknown_and_mistyped_fields_are_each_one_line(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text('[defaults]\ninstances = "many"\nbogus = 1\n')
    proc = cli("list", "--db", str(tmp_path / "r.db"), "--config", str(config))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: {config}: defaults.instances: Input should be a valid integer, unable to "
        "parse string as an integer",
        f"error: {config}: defaults.bogus: Extra inputs are not permitted",
    ]


# -- the database -----------------------------------------------------------------------------


def test_db_that_is_a_directory(tmp_path: Path) -> None:
    proc = cli("list", "--db", str(tmp_path))
    assert proc.returncode == 1
    one_clear_line(proc, f"--db {tmp_path} is a directory")


def test_db_in_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    proc = cli("list", "--db", str(tmp_path / "nowhere" / "r.db"))
    assert proc.returncode == 1
    one_clear_line(proc, "does not exist", "create it first")


@pytest.mark.parametrize("content", [b"not a database at all\n" * 100, b"\x00" * 4096])
def test_db_that_is_not_a_sqlite_database(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "notes.db"
    db.write_bytes(content)
    proc = cli("status", "--db", str(db))
    assert proc.returncode == 1
    one_clear_line(proc, f"--db {db} is not a SQLite database")
    assert db.read_bytes() == content  # left as it was


# Root writes through file modes: the child drops to nobody once Python and the CLI are loaded.
def cli_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """As a user without root's right to read and write anything (nobody, when root)."""
    if os.geteuid() != 0:
        return cli(*args)
    return cli(*args, env={"HOME": "/tmp"}, user="nobody")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="release-bot-ro-"))
    path.chmod(0o755)
    yield path
    path.chmod(0o755)
    shutil.rmtree(path)


@pytest.mark.parametrize("where", ["file", "directory"])
def test_a_read_only_database(shared_dir: Path, where: str) -> None:
    db = shared_dir / "r.db"
    assert cli("list", "--db", str(db)).returncode == 0  # created and migrated
    for leftover in shared_dir.glob("r.db-*"):
        leftover.unlink()
    if where == "file":
        db.chmod(0o444)
    else:  # the file may be written, but not the -wal and -shm SQLite puts beside it
        db.chmod(0o666)
        shared_dir.chmod(0o555)
    before = db.read_bytes()
    proc = cli_unprivileged("run", LINE, "--approve-as", "alice", "--db", str(db))
    assert proc.returncode == 1
    one_clear_line(proc, f"--db {db} cannot be written", "writable")
    assert db.read_bytes() == before


# -- --json-out -------------------------------------------------------------------------------


def test_json_out_into_a_missing_directory_is_refused_before_the_release(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    out = tmp_path / "missing" / "report.json"
    proc = cli("run", LINE, "--approve-as", "alice", "--db", str(db), "--json-out", str(out))
    assert proc.returncode == 1
    one_clear_line(proc, f"--json-out {out}", "does not exist")
    assert not db.exists()  # nothing ran


def test_a_report_that_cannot_be_written_at_the_end_is_printed_not_lost(tmp_path: Path) -> None:
    full = Path("/dev/full")  # opens fine, every write fails (ENOSPC), for root too
    if not full.exists():
        pytest.skip("no /dev/full here")
    proc = cli(
        "run", LINE, "--approve-as", "alice", "--db", str(tmp_path / "r.db"),
        "--clock-start", START, "--json-out", str(full),
    )  # fmt: skip
    assert proc.returncode == 1
    line = one_clear_line(proc, "could not be written to /dev/full", "printed above")
    assert "No space left" in line
    report = proc.stdout[proc.stdout.index("\n{") + 1 :]
    assert '"status": "completed"' in report and report.rstrip().endswith("}")


# -- other options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--clock-start", "0001-01-01T00:00:00Z"), ("--clock-start", "out of range")),
        (("--speed", "nan"), ("--speed", "positive")),
        (("--speed", "-5"), ("--speed", "positive")),
    ],
)
def test_run_options_out_of_range(tmp_path: Path, args: tuple[str, ...], words) -> None:  # type: ignore[no-untyped-def]
    proc = cli("run", LINE, "--approve-as", "alice", "--db", str(tmp_path / "r.db"), *args)
    assert proc.returncode == 1
    one_clear_line(proc, *words)


def test_a_release_id_that_is_not_there(tmp_path: Path) -> None:
    for command in ("report", "status", "approve"):
        proc = cli(command, "rel-nope", "--db", str(tmp_path / "r.db"))
        assert proc.returncode == 1
        one_clear_line(proc, "no release 'rel-nope'")


def test_a_config_that_cannot_be_read(shared_dir: Path) -> None:
    config = shared_dir / "services.toml"
    shutil.copy(ROOT / "data" / "services.toml", config)
    config.chmod(0o000 if os.geteuid() != 0 else 0o600)  # root's own: nobody may read it
    proc = cli_unprivileged("parse", LINE, "--config", str(config))
    assert proc.returncode == 1
    one_clear_line(proc, f"{config} cannot be read (permission denied)")


@pytest.mark.parametrize("way", [0, 1], ids=["--config", "RELEASE_BOT_CONFIG"])
def test_refusals_name_the_config_actually_read(tmp_path: Path, way: int) -> None:
    config = tmp_path / "team" / "release.toml"
    config.parent.mkdir()
    config.write_text((ROOT / "data" / "services.toml").read_text())
    flags, env = _config_ways(config)[way]
    proc = cli("dry-run", LINE.replace("payments-api", "paymnts-api"), *flags, env=env)
    assert proc.returncode == 1
    line = one_clear_line(proc, f"paymnts-api is not a service in {config}", "payments-api")
    assert "data/services.toml" not in line


def test_access_and_parsing_messages_name_the_config_read(tmp_path: Path) -> None:
    config_file = tmp_path / "other.toml"
    config_file.write_text(
        (ROOT / "data" / "services.toml").read_text() + '\n[services.bare]\nowner = "x"\n'
    )
    config = load_config(config_file)
    assert config.source == str(config_file)
    assert f"has no metrics provider and no traffic router in {config_file}" in (
        config.refusal("bare") or ""
    )
    locked = access.check("lock", "mallory", "prod", None, config) or ""
    assert f"of any table in {config_file}" in locked
    gap = parse_release("payments-api 2.4.1 changes=x", config)  # no risk: where to set one
    assert isinstance(gap, InsufficientContext)
    assert gap.next_best_step.endswith(f"under [services.payments-api] in {config_file}.")
