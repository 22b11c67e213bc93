"""The ``release-bot`` command line: thin wrappers over the service functions."""

from __future__ import annotations

import getpass
import json
import math
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, get_args

import click
from pydantic import BaseModel

from bot.adapters.llm.settings import LLMSettingsError
from bot.adapters.postgres import is_postgres_url
from bot.adapters.sim.faults import FaultSpecError, parse_fault
from bot.adapters.sim.profiles import SimulatorConfigError
from bot.analyze import (
    MalformedRecording,
    analyze,
    parse_guardrails,
    parse_recording,
    summary_record,
    window_record,
)
from bot.bootstrap import DEFAULT_DB, Wiring, bootstrap, llm_from_env, read_targets
from bot.config import DEFAULT_CONFIG, ConfigError, load_config
from bot.domain.config import Config
from bot.domain.contract import InsufficientContext, contract_json_schema
from bot.domain.evidence import Kind as EvidenceKind
from bot.domain.evidence import digest_of
from bot.domain.release import CommandRejected, Release
from bot.evidence import EvidenceError
from bot.parsing import ParseError, named_service, parse_release
from bot.ports.store import DatabaseBusy, ReleaseNotFound, StoreUnavailable
from bot.presenters import analysis_line, status_lines
from bot.service import (
    Services,
    approve,
    dry_run,
    extend_bake,
    find,
    lock_env,
    pause,
    promote_now,
    promote_on_override,
    reconcile,
    reject,
    report,
    report_issue,
    resume,
    rollback,
    start_release,
    unlock_env,
)
from bot.service.evidence import add_evidence, list_evidence
from bot.stopping import StopSignals

# Exit codes for scripts (README "Exit codes"); click's own usage errors exit 2 as well.
EXIT_INPUT = 1  # bad input or a refusal: the message says what to fix
EXIT_INSUFFICIENT = 2
EXIT_ROLLED_BACK = 3
EXIT_FAILED = 4
EXIT_WAITING = 5  # waits for a human (approval, a pause) and no terminal to ask at
EXIT_BY_OUTCOME = {"completed": 0, "rolled_back": EXIT_ROLLED_BACK, "failed": EXIT_FAILED}
WAITING_STATES = ("awaiting_approval", "paused")


def _fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    for line in message.splitlines() or [""]:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def _dump(model: BaseModel | dict[str, Any]) -> str:
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return json.dumps(data, indent=2, ensure_ascii=False)


def _user() -> str:
    try:
        return getpass.getuser()
    except OSError:
        return "cli"


def _config_path() -> Path | None:
    """The ``--config`` (or ``$RELEASE_BOT_CONFIG``) of this command, if given."""
    given = click.get_current_context().meta.get("release_bot.config")
    return Path(given) if given else None


def _load_config() -> Config:
    """The config, checked whole as ``bootstrap`` checks it, for commands that need no
    database; a mistake is one line each."""
    path = _config_path()
    try:
        config = load_config(path)
        read_targets(config, path or DEFAULT_CONFIG)
    except ConfigError as exc:
        _fail(str(exc))
    return config


def _wire(db: str, **kwargs: Any) -> Wiring:
    """Bootstrap on ``db`` with data/services.toml, or the file ``--config`` or
    ``$RELEASE_BOT_CONFIG`` names (as ``serve`` reads it)."""
    if not is_postgres_url(db) and (problem := _db_path_problem(Path(db))):
        _fail(problem)
    try:
        return bootstrap(db, llm=llm_from_env(), config_path=_config_path(), **kwargs)
    except (ConfigError, LLMSettingsError, SimulatorConfigError, StoreUnavailable) as exc:
        _fail(str(exc))
    except sqlite3.DatabaseError as exc:  # opened, but not a database, or not writable
        _fail(_db_problem(db, exc))


def _db_path_problem(path: Path) -> str | None:
    """What stops SQLite from opening ``path`` at all, said before it tries."""
    if path.is_dir():
        return f"--db {path} is a directory; give the path of a SQLite file (created if missing)"
    if not path.parent.is_dir():
        return f"--db {path}: the directory {path.parent} does not exist; create it first"
    return None


def _db_problem(db: str, exc: sqlite3.DatabaseError) -> str:
    why = str(exc)
    if "not a database" in why:
        return (
            f"--db {db} is not a SQLite database ({why}); give release-bot's database, or "
            "a new path to create one"
        )
    if "readonly" in why or "unable to open" in why:
        return (
            f"--db {db} cannot be written ({why}); make the file and its directory writable "
            f"(SQLite writes {Path(db).name}-wal and -shm beside it), or copy it elsewhere"
        )
    return f"--db {db}: {why}"


def _remember_config(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta["release_bot.config"] = value


config_option = click.option(
    "--config",
    envvar="RELEASE_BOT_CONFIG",
    expose_value=False,
    callback=_remember_config,
    metavar="PATH",
    help="The services config (default: data/services.toml).",
)
_db_only = click.option(
    "--db",
    default=str(DEFAULT_DB),
    show_default=True,
    envvar="RELEASE_BOT_DB",
    help="SQLite file holding releases, the audit trail and the simulator, or a "
    "postgresql:// URL for the store (the simulator then stays in this process).",
)


def db_option(command: Any) -> Any:
    """``--db`` and ``--config``: every command on the database reads the config too."""
    return _db_only(config_option(command))


class _Commands(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatabaseBusy as exc:  # another process kept the write lock past the timeout
            _fail(str(exc))


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="release-bot")
def main() -> None:
    """release-bot: progressive releases with quality gates, guardrails and automatic rollback."""


@main.command()
@click.argument("text")
@config_option
def parse(text: str) -> None:
    """Parse a /release line (or the brief's pasted template) and print the request as JSON.

    Prints the insufficient_context object and exits 2 when something required is missing.
    """
    try:
        result = parse_release(text, _load_config())
    except ParseError as exc:
        _fail(str(exc), EXIT_INSUFFICIENT)
    click.echo(_dump(result))
    if isinstance(result, InsufficientContext):
        sys.exit(EXIT_INSUFFICIENT)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the output contract (the report, or insufficient_context)."""
    click.echo(json.dumps(contract_json_schema(), indent=2))


def _progress(services: Services, release_id: str) -> Any:
    """A tick callback printing the metrics line whenever a new judgement lands."""
    last: list[Any] = [None]

    def on_tick(_: int) -> None:
        release = services.store.get(release_id)
        if release.judged_at is not None and release.judged_at != last[0]:
            last[0] = release.judged_at
            line = analysis_line(release)
            # One metrics line per simulated minute keeps the thread readable.
            if line and release.judged_at.second < services.tick_seconds:
                click.echo(
                    f"{release.judged_at:%H:%M:%S} {release.request.service} {release.version} │ {line}"
                )

    return on_tick


def _drive(
    wiring: Wiring,
    release_id: str,
    approve_as: str | None,
    speed: float | None,
    crash_after: int | None,
) -> Release:
    """Tick until the release ends, answering approvals and pauses along the way."""
    services = wiring.services
    on_tick = _progress(services, release_id)

    def tick(n: int) -> None:
        on_tick(n)
        if crash_after is not None and n >= crash_after:
            os._exit(137)  # a hard kill, for the resume tests: nothing is flushed or closed

    while True:
        release = services.store.get(release_id)
        if release.status == "awaiting_approval":
            release = _answer_approval(services, release, approve_as)
        elif release.status == "paused":
            release = _answer_pause(services, release)
        if not release.is_active:
            return release
        if release.status in WAITING_STATES:
            continue

        def done() -> bool:
            current = services.store.get(release_id)
            return not current.is_active or current.status in WAITING_STATES

        wiring.ticker.run_until(done, speed, tick)


def _answer_approval(services: Services, release: Release, approve_as: str | None) -> Release:
    if approve_as is not None:
        try:
            return approve(services, release.id, approve_as)
        except CommandRejected as exc:
            _fail(f"{exc}")
    if not sys.stdin.isatty():
        _fail(
            f"{release.id} waits for approval ({release.pending_approval}); pass --approve-as USER, "
            f"or run `release-bot approve {release.id} --as USER` and then `release-bot resume`",
            EXIT_WAITING,
        )
    click.echo(
        f"\n{release.id} needs approval for {release.pending_approval} from {', '.join(release.approvers)}."
    )
    while True:
        answer = click.prompt("Approve? [y]es / [n]o", default="y").strip().lower()
        user = click.prompt(
            "Your approver name", default=release.approvers[0] if release.approvers else _user()
        )
        try:
            if answer.startswith("y"):
                return approve(services, release.id, user)
            reason = click.prompt("Reason", default="rejected at the terminal")
            return reject(services, release.id, user, reason)
        except CommandRejected as exc:
            click.echo(f"not accepted: {exc}")


def _answer_hold(services: Services, release: Release) -> Release:
    """A step held for its approvers' decision: extend, override, or roll back."""
    held = release.held
    assert held is not None
    rid = release.id
    if not sys.stdin.isatty():
        _fail(
            f"{rid} is held for a decision: {held.reason}. An approver runs "
            f"`release-bot extend {rid} --minutes N`, `release-bot override {rid} --reason WHY` "
            f"or `release-bot rollback {rid}`, then `release-bot resume`",
            EXIT_WAITING,
        )
    click.echo(f"\n{rid} is held for a decision: {held.reason}")
    click.echo("\n".join(f"  {line}" for line in held.evidence))
    while True:
        choice = click.prompt("[e]xtend, [o]verride or [r]oll back?", default="r").strip().lower()
        user = click.prompt(
            "Your approver name", default=release.approvers[0] if release.approvers else _user()
        )
        try:
            if choice.startswith("e"):
                minutes = click.prompt("Minutes", type=float, default=30.0)
                return extend_bake(services, rid, user, minutes, "extended at the terminal")
            if choice.startswith("o"):
                reason = click.prompt("Why is it safe to promote?")
                return promote_on_override(services, rid, user, reason)
            return rollback(services, rid, user, "rolled back at the terminal after a hold")
        except CommandRejected as exc:
            click.echo(f"not accepted: {exc}")


def _answer_pause(services: Services, release: Release) -> Release:
    if release.held is not None:
        return _answer_hold(services, release)
    if not sys.stdin.isatty():
        _fail(
            f"{release.id} is paused: {release.pause_reason}. Run `release-bot resume-release {release.id}` "
            f"or `release-bot rollback {release.id}`",
            EXIT_WAITING,
        )
    click.echo(f"\n{release.id} is paused: {release.pause_reason}")
    while True:
        choice = click.prompt("[c]ontinue or [r]oll back?", default="r").strip().lower()
        user = click.prompt(
            "Your name", default=release.approvers[0] if release.approvers else _user()
        )
        try:
            if choice.startswith("c"):
                return resume(services, release.id, user)
            return rollback(services, release.id, user, "rolled back at the terminal after a pause")
        except CommandRejected as exc:
            click.echo(f"not accepted: {exc}")


def _check_json_out(json_out: str | None) -> None:
    """Refuse a --json-out the report could not be written to, before the release runs."""
    if json_out is None:
        return
    path = Path(json_out)
    if not path.parent.is_dir():
        _fail(f"--json-out {json_out}: the directory {path.parent} does not exist; create it first")
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        _fail(f"--json-out {json_out} cannot be written ({exc.strerror or exc}); give another path")
    if not existed:
        path.unlink()


def _emit_report(services: Services, release_id: str, json_out: str | None) -> bool:
    """Write (or print) the report; False when --json-out failed: it is printed instead, never
    lost."""
    text = _dump(report(services, release_id))
    if json_out:
        try:
            Path(json_out).write_text(text + "\n")
        except OSError as exc:
            click.echo(text)
            click.echo(
                f"error: the report could not be written to {json_out} "
                f"({exc.strerror or exc}); it is printed above",
                err=True,
            )
            return False
        click.echo(f"report written to {json_out}")
    else:
        click.echo(text)
    return True


def _exit_for(final: Release, written: bool) -> NoReturn:
    """Exit with the release's outcome (README "Exit codes"); a report that could not be
    written is an input error even when the release completed."""
    sys.exit(EXIT_BY_OUTCOME.get(final.status, EXIT_FAILED) if written else EXIT_INPUT)


@main.command()
@click.argument("line")
@click.option(
    "--approve-as", help="Approve every approval gate as this user (an approver of the service)."
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    help="Inject a fault into the new version, e.g. errors:3x@25.",
)
@db_option
@click.option(
    "--speed", type=float, help="Virtual seconds per real second (default: as fast as it can)."
)
@click.option(
    "--json-out", type=click.Path(dir_okay=False), help="Write the report here instead of stdout."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulated fleet.")
@click.option(
    "--requested-by", default=None, help="Who asks for the release (default: your login)."
)
@click.option(
    "--clock-start",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S"]),
    help="Start of the virtual clock, UTC.",
)
@click.option(
    "--crash-after-ticks", type=int, hidden=True, help="Kill the process after N ticks (tests)."
)
def run(
    line: str,
    approve_as: str | None,
    faults: tuple[str, ...],
    db: str,
    speed: float | None,
    json_out: str | None,
    seed: int,
    requested_by: str | None,
    clock_start: datetime | None,
    crash_after_ticks: int | None,
) -> None:
    """Run a whole release on the simulator with the virtual clock, printing the thread."""
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        _fail("--speed is virtual seconds per real second and must be positive, e.g. --speed 60")
    _check_json_out(json_out)
    for spec in faults:
        try:
            parse_fault(spec)
        except FaultSpecError as exc:
            _fail(str(exc))
    if clock_start is not None and not 1970 <= clock_start.year <= 9000:
        _fail(
            f"--clock-start {clock_start:%Y-%m-%d} is out of range; give a UTC time such as 2026-11-24T14:00:00Z"
        )
    start = clock_start.replace(tzinfo=UTC) if clock_start else None
    wiring = _wire(db, clock_start=start, seed=seed)
    services = wiring.services
    service = named_service(line)
    if service is not None and (why := services.config.refusal(service)):
        _fail(why)
    metrics = services.config.for_service(service or "").metrics
    if service is not None and metrics is not None and metrics.provider != "simulator":
        _fail(
            f"run drives the simulated fleet on a virtual clock; {service} is on "
            f"{metrics.provider}: release it from Slack (release-bot serve), or see demo/live.py"
        )
    try:
        parsed = parse_release(line, services.config)
    except ParseError as exc:
        _fail(str(exc), EXIT_INSUFFICIENT)
    if isinstance(parsed, InsufficientContext):
        click.echo(_dump(parsed))
        sys.exit(EXIT_INSUFFICIENT)
    if faults:
        wiring.fleet.inject(parsed.service, parsed.release_package.version, list(faults))
    try:
        started = start_release(services, line, requested_by or _user())
    except CommandRejected as exc:
        _fail(str(exc))
    assert isinstance(started, Release)
    final = _drive(wiring, started.id, approve_as, speed, crash_after_ticks)
    _exit_for(final, _emit_report(services, final.id, json_out))


@main.command(name="resume")
@db_option
@click.option("--approve-as", help="Approve waiting approval gates as this user.")
@click.option(
    "--speed", type=float, help="Virtual seconds per real second (default: as fast as it can)."
)
@click.option("--json-out", type=click.Path(dir_okay=False), help="Write the last report here.")
def resume_all(db: str, approve_as: str | None, speed: float | None, json_out: str | None) -> None:
    """Carry every unfinished release in the database to its end (after a crash); exits as
    `run` does, with the worst outcome when it finishes several."""
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        _fail("--speed is virtual seconds per real second and must be positive, e.g. --speed 60")
    if not is_postgres_url(db) and not Path(db).exists():
        _fail(f"no database at {db}; pass --db PATH of the run to resume")
    _check_json_out(json_out)
    wiring = _wire(db)
    services = wiring.services
    ids = services.store.active_ids()
    if not ids:
        click.echo("nothing to resume: no unfinished releases")
        return
    codes = [0]
    for release_id in ids:
        click.echo(f"resuming {release_id}")
        final = _drive(wiring, release_id, approve_as, speed, None)
        written = _emit_report(services, final.id, json_out)
        codes.append(EXIT_BY_OUTCOME.get(final.status, EXIT_FAILED) if written else EXIT_INPUT)
    # failed (4) outranks rolled back (3), which outranks completed (0); input errors (1) last
    sys.exit(max(codes, key=lambda code: (code != EXIT_INPUT, code)))


def _release_command(action: str) -> Any:
    @click.argument("release_id")
    @click.option("--as", "user", default=None, help="Who does it (default: your login).")
    @db_option
    def command(release_id: str, user: str | None, db: str, **kwargs: Any) -> None:
        services = _wire(db).services
        who = user or _user()
        try:
            release = find(services, release_id)
            match action:
                case "approve":
                    release = approve(services, release.id, who)
                case "reject":
                    release = reject(services, release.id, who, kwargs["reason"])
                case "rollback":
                    release = rollback(services, release.id, who, kwargs["reason"])
                case "pause":
                    release = pause(services, release.id, who, kwargs["reason"])
                case "promote":
                    release = promote_now(services, release.id, who)
                case "extend":
                    minutes, why = kwargs["minutes"], kwargs["reason"]
                    release = extend_bake(services, release.id, who, minutes, why)
                case "override":
                    release = promote_on_override(services, release.id, who, kwargs["reason"])
                case _:
                    release = resume(services, release.id, who)
        except (CommandRejected, ReleaseNotFound) as exc:
            _fail(str(exc))
        click.echo(f"{release.id}: {release.status.replace('_', ' ')}")

    return command


main.command(name="approve", help="Approve a release waiting for approval.")(
    _release_command("approve")
)
main.command(name="reject", help="Reject a release waiting for approval.")(
    click.option("--reason", required=True, help="Why.")(_release_command("reject"))
)
main.command(name="rollback", help="Roll a release back now (manual trigger).")(
    click.option("--reason", default="manual rollback", show_default=True, help="Why.")(
        _release_command("rollback")
    )
)
main.command(name="resume-release", help="Continue a paused release.")(_release_command("resume"))
main.command(name="pause", help="Hold a rollout at its current step until resumed.")(
    click.option("--reason", default="", help="Why (default: paused by USER).")(
        _release_command("pause")
    )
)
main.command(name="promote", help="End the current step's bake early (an approver).")(
    _release_command("promote")
)
main.command(
    name="extend", help="A step held without a verdict bakes on for MINUTES (an approver)."
)(
    click.option("--minutes", type=float, required=True, help="How much longer (1 to 240).")(
        click.option("--reason", default="", help="Why (recorded).")(_release_command("extend"))
    )
)
main.command(
    name="override",
    help="Promote a held step without the judge's verdict; who and why are recorded.",
)(
    click.option("--reason", required=True, help="Why it is safe (recorded).")(
        _release_command("override")
    )
)


def _lock_command(action: str) -> Any:
    @click.argument("scope", metavar="ENV|SERVICE/ENV")
    @click.option("--as", "user", default=None, help="Who does it (default: your login).")
    @db_option
    def command(scope: str, user: str | None, db: str, **kwargs: Any) -> None:
        services = _wire(db).services
        who = user or _user()
        try:
            if action == "lock":
                lock = lock_env(services, scope, who, kwargs["reason"])
                click.echo(f"locked: {lock.describe()}")
            else:
                lock = unlock_env(services, scope, who)
                click.echo(f"unlocked {lock.scope} (locked by {lock.by}: {lock.reason})")
        except CommandRejected as exc:
            _fail(str(exc))

    return command


main.command(name="lock", help="Refuse every release reaching ENV (or SERVICE/ENV).")(
    click.option("--reason", default="", help="Why.")(_lock_command("lock"))
)
main.command(name="unlock", help="Lift a lock on ENV or SERVICE/ENV.")(_lock_command("unlock"))


@main.command(name="locks")
@db_option
def locks_command(db: str) -> None:
    """List the locked environments: who locked each, when and why."""
    services = _wire(db).services
    locks = services.locks.all()
    if not locks:
        click.echo("nothing is locked")
    for lock in locks:
        click.echo(lock.describe())


@main.group(name="evidence")
def evidence_group() -> None:
    """Upload and list a version's evidence: test reports, scans, SBOMs, signatures, k6."""


@evidence_group.command(name="add")
@click.argument("service")
@click.argument("version")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--kind", type=click.Choice(list(get_args(EvidenceKind))), help="Else guessed.")
@click.option("--digest", help="The artifact digest (sha256:…) an SBOM or signature is for.")
@click.option(
    "--artifact",
    type=click.Path(exists=True, dir_okay=False),
    help="The artifact file itself: its sha256 is the digest.",
)
@click.option("--as", "user", help="Who uploads (default: your login).")
@db_option
def evidence_add(
    service: str,
    version: str,
    files: tuple[str, ...],
    kind: EvidenceKind | None,
    digest: str | None,
    artifact: str | None,
    user: str | None,
    db: str,
) -> None:
    """Read, check and store FILES as SERVICE VERSION's evidence; all or none."""
    if artifact is not None:
        computed = digest_of(Path(artifact).read_bytes())
        if digest is not None and digest != computed:
            _fail(f"--digest {digest} is not {artifact}'s digest {computed}; give one of them")
        digest = computed
    services = _wire(db).services
    read = [(path, Path(path).read_bytes()) for path in files]
    try:
        stored = add_evidence(services, service, version, read, user or _user(), kind, digest)
    except (CommandRejected, EvidenceError) as exc:
        _fail(str(exc))
    for file in stored:
        click.echo(f"stored {file.kind} {file.cite()} for {service} {version}")


@evidence_group.command(name="list")
@click.argument("service")
@click.argument("version")
@db_option
def evidence_list(service: str, version: str, db: str) -> None:
    """What SERVICE VERSION's gates will read: each file, its kind, who sent it and when."""
    files = list_evidence(_wire(db).services, service, version)
    if not files:
        click.echo(f"no evidence for {service} {version}: `release-bot evidence add` uploads it")
    for file in files:
        bound = f" for {file.digest}" if file.digest else ""
        click.echo(f"{file.uploaded_at:%Y-%m-%d %H:%M} {file.kind:<9} {file.cite()}{bound}")


@main.command(name="dry-run")
@click.argument("line")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the dry run as JSON.")
def dry_run_command(line: str, db: str, as_json: bool) -> None:
    """Plan a /release line and judge its gates without storing or deploying anything.

    Exits 0 when the release would start, 1 when it would be refused or stopped by a gate,
    and 2 when the line is incomplete (the insufficient_context object is printed)."""
    services = _wire(db).services
    try:
        result = dry_run(services, line)
    except ParseError as exc:
        _fail(str(exc), EXIT_INSUFFICIENT)
    except CommandRejected as exc:  # a service the config cannot release
        _fail(str(exc))
    if isinstance(result, InsufficientContext):
        click.echo(_dump(result))
        sys.exit(EXIT_INSUFFICIENT)
    click.echo(_dump(result) if as_json else "\n".join(result.lines()))
    if result.outcome in ("refused", "blocked"):
        sys.exit(1)


@main.command(name="report")
@click.argument("release_id")
@db_option
def report_command(release_id: str, db: str) -> None:
    """Print a release's report (the output contract JSON)."""
    services = _wire(db).services
    try:
        release = find(services, release_id)
    except ReleaseNotFound as exc:
        _fail(str(exc))
    click.echo(_dump(report(services, release.id)))


@main.command(name="issue")
@click.argument("release_id")
@click.argument("text", nargs=-1, required=True)
@click.option("--as", "user", default=None, help="Who reports it (default: your login).")
@db_option
def issue_command(release_id: str, text: tuple[str, ...], user: str | None, db: str) -> None:
    """Report a problem with a release (while it runs, or up to 7 days after it ended): audited
    on it, counted in its report's user_feedback."""
    services = _wire(db).services
    try:
        release = report_issue(
            services, find(services, release_id).id, user or _user(), " ".join(text)
        )
    except (CommandRejected, ReleaseNotFound) as exc:
        _fail(str(exc))
    click.echo(f"{release.id}: problem recorded in its audit trail")


@main.command(name="list")
@db_option
@click.option("--service", help="Only this service.")
@click.option("--limit", default=20, show_default=True)
def list_command(db: str, service: str | None, limit: int) -> None:
    """List releases, newest first."""
    services = _wire(db).services
    rows = services.store.listing(service, limit)
    if not rows:
        click.echo('no releases yet: start one with `release-bot run "SERVICE VERSION …"`')
        return
    for r in rows:
        click.echo(f"{r['created_at']:.19}  {r['status']!s:18} {r['id']}")


@main.command()
@click.argument("release_id", required=False)
@db_option
def status(release_id: str | None, db: str) -> None:
    """Show where a release stands (or every active release)."""
    services = _wire(db).services
    try:
        releases = (
            [find(services, release_id)]
            if release_id
            else [services.store.get(i) for i in services.store.active_ids()]
        )
    except ReleaseNotFound as exc:
        _fail(str(exc))
    if not releases:
        click.echo("no active releases")
    for release in releases:
        for line in status_lines(release):
            click.echo(line)


@main.command()
@click.argument("service")
@db_option
def history(service: str, db: str) -> None:
    """Show a service's releases with their audit trails."""
    services = _wire(db).services
    rows = services.store.listing(service, 50)
    if not rows:
        click.echo(f"no releases of {service}")
        return
    for r in rows:
        click.echo(f"{r['id']}  {r['status']}")
        for event in services.store.events(str(r["id"])):
            click.echo(
                f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.actor:18} {event.action:20} {event.details}"
            )


@main.command(name="analyze")
@click.argument("files", nargs=-1, required=True, metavar="FILE.jsonl...")
@click.option(
    "--guardrails",
    default="",
    help='Absolute guardrails to test too, e.g. "error_rate<1% p95<300ms" '
    "(default: only the canary-vs-baseline tests).",
)
@click.option(
    "--min-soak",
    type=click.FloatRange(min=0),
    metavar="MINUTES",
    default=5.0,
    show_default=True,
    help="Minutes before a promotion can be recommended.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    metavar="ALPHA",
    default=0.01,
    show_default=True,
    help="False-rollback budget, shared by all tests.",
)
@click.option("--summary", is_flag=True, help="One line per file instead of one per window.")
def analyze_command(
    files: tuple[str, ...], guardrails: str, min_soak: float, alpha: float, summary: bool
) -> None:
    """Judge recorded metric windows (JSON Lines, one window a line), printing one JSON line
    per window; exits 1 when a file has malformed lines (the others are still analysed)."""
    try:
        rails = parse_guardrails(guardrails)
    except ParseError as exc:
        _fail(f"--guardrails {exc}", EXIT_INSUFFICIENT)
    texts: list[tuple[str, bytes]] = []
    for file in files:
        try:
            texts.append((file, Path(file).read_bytes()))
        except OSError as exc:
            _fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_INSUFFICIENT)
    malformed = False
    for file, data in texts:
        try:
            windows = parse_recording(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            click.echo(f"error: {file}: not UTF-8 text (byte {exc.start})", err=True)
            malformed = True
            continue
        except MalformedRecording as exc:
            for error in exc.errors:
                click.echo(f"error: {error.describe(file)}", err=True)
            malformed = True
            continue
        samples = [w.sample for w in windows]
        results = analyze(samples, rails, min_soak, alpha)
        if summary:
            click.echo(json.dumps(summary_record(file, samples, results), ensure_ascii=False))
            continue
        label = file if len(files) > 1 else None
        for result in results:
            click.echo(json.dumps(window_record(result, label), ensure_ascii=False))
    if malformed:
        sys.exit(1)


@main.command()
@db_option
@click.option("--real-clock/--virtual-clock", default=True, help="Tick on real time (production).")
def worker(db: str, real_clock: bool) -> None:
    """Run the reconcile tick forever without Slack (the chat is the terminal)."""
    stop = StopSignals()
    wiring = _wire(db, virtual_clock=not real_clock)
    reconcile(wiring.services)
    tick = wiring.services.tick_seconds
    click.echo(
        f"release-bot worker: reconciling every {tick:g}s on {db}"
        + ("" if real_clock else f" (virtual time moves {tick:g}s each tick)")
    )
    wiring.ticker.start()
    stop.wait()
    wiring.close()


@main.command()
@click.option("--env-file", default=".env", show_default=True, help="Read settings from here too.")
@config_option
def serve(env_file: str) -> None:
    """Serve the Slack app (HTTP on $PORT, or Socket Mode with SLACK_APP_TOKEN) and run the
    reconcile tick in the same process (the Procfile's web process)."""
    import logging

    from bot.serve.wiring import serve_forever
    from bot.settings import SettingsError, load_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(env_file)
        if config := _config_path():
            settings = settings.model_copy(update={"release_bot_config": config})
        db = str(settings.release_bot_db)
        if not is_postgres_url(db) and (problem := _db_path_problem(Path(db))):
            _fail(problem.replace("--db", "RELEASE_BOT_DB", 1))
        serve_forever(settings, llm_from_env(env_file))
    except (SettingsError, ConfigError, LLMSettingsError, SimulatorConfigError) as exc:
        _fail(str(exc))
    except StoreUnavailable as exc:
        _fail(f"RELEASE_BOT_DB: {exc}")
    except sqlite3.DatabaseError as exc:
        _fail(_db_problem(str(settings.release_bot_db), exc).replace("--db", "RELEASE_BOT_DB", 1))


@main.group(name="audit")
def audit_group() -> None:
    """Prove the audit trail: verify its hash chain, export it with its hashes."""


def _audit_scope(services: Services, release_id: str | None) -> str | None:
    """The release an ID (or prefix) names; as given when its release row is gone."""
    if release_id is None:
        return None
    try:
        return find(services, release_id).id
    except ReleaseNotFound:
        return release_id


@audit_group.command(name="verify")
@click.option("--release", "release_id", help="Only this release's events (an ID prefix too).")
@db_option
def audit_verify(release_id: str | None, db: str) -> None:
    """Check every event's hash and link (and HMAC with RELEASE_BOT_AUDIT_KEY); print OK with
    the count, or the first broken link, and exit 1."""
    if not is_postgres_url(db) and not Path(db).is_file():
        _fail(f"no database at {db}; pass --db PATH")
    services = _wire(db).services
    assert services.audit is not None
    scope = _audit_scope(services, release_id)
    verdict = services.audit.verify(scope)
    if scope is not None and verdict.ok and verdict.count == 0:
        _fail(f"no audit events of release {scope}; `release-bot list` shows the releases")
    if not verdict.ok:
        _fail(verdict.line())
    click.echo(verdict.line())


@audit_group.command(name="export")
@click.option("--release", "release_id", help="Only this release's events (an ID prefix too).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write here (default: stdout).")
@db_option
def audit_export(release_id: str | None, out: str | None, db: str) -> None:
    """Write the events as JSON Lines, one a line with its hashes, in chain order."""
    if not is_postgres_url(db) and not Path(db).is_file():
        _fail(f"no database at {db}; pass --db PATH")
    services = _wire(db).services
    assert services.audit is not None
    records = services.audit.export(_audit_scope(services, release_id))
    lines = "".join(r.model_dump_json() + "\n" for r in records)
    if out is None:
        click.echo(lines, nl=False)
        return
    try:
        Path(out).write_text(lines, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}; give a writable --out FILE")
    click.echo(f"wrote {len(records)} events to {out}", err=True)
