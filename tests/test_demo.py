"""`make demo` and the README's demo text: what the README shows is what the commands print.

The releases are the Makefile's own `release-bot run` lines, each run here on a fresh database
as `make demo` runs them. Everything they print is deterministic on the virtual clock
(`--clock-start`) and the simulator's seed, so the README's lines are compared exactly, but for:
- the README's `…` lines, which mark lines left out (each stretch between two of them must
  appear in the output as it is, in order);
- the requester in `release requested [LOGIN]`: the login of whoever runs the command;
- the paths of `--db` and `--json-out`, which the test points into its own directory.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import demo_summary
from tests.conftest import ROOT, cli

MAKEFILE = (ROOT / "Makefile").read_text()
README = (ROOT / "README.md").read_text()
ELISION = "…"


@dataclass(frozen=True)
class DemoRelease:
    args: list[str]  # after `release-bot`, as make demo passes them
    expected_exit: int

    @property
    def report_path(self) -> str:
        return self.args[self.args.index("--json-out") + 1]

    def run_in(self, directory: Path, login: str = "tester") -> tuple[int, str, Path]:
        """Runs it with its database and report in `directory`; the report's README path is
        put back in what it prints."""
        args = list(self.args)
        report = directory / Path(self.report_path).name
        args[args.index("--json-out") + 1] = str(report)
        args[args.index("--db") + 1] = str(report.with_suffix(".db"))
        proc = cli(*args, env={"USER": login})
        assert "Traceback" not in proc.stderr, proc.stderr
        output = (proc.stdout + proc.stderr).replace(str(report), self.report_path)
        return proc.returncode, output, report


def _recipe(target: str) -> list[str]:
    """The target's recipe lines, continuation lines joined."""
    body = MAKEFILE.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines()[1:]]


def demo_releases() -> list[DemoRelease]:
    flags = re.search(r"^DEMO_FLAGS := (.*)$", MAKEFILE, re.MULTILINE)
    assert flags is not None, "Makefile: DEMO_FLAGS is gone"
    demo_flags = flags.group(1).split("$(if $(SPEED)")[0]  # SPEED is unset
    releases = []
    for line in _recipe("demo"):
        if not line.startswith("$(RELEASE_BOT) run "):
            continue
        expect = re.search(r"\$\(call expect,(\d+),[^)]*\)", line)
        command = line.split("$(call expect", 1)[0].removeprefix("$(RELEASE_BOT) ")
        args = shlex.split(command.replace("$(DEMO_FLAGS)", demo_flags))
        releases.append(DemoRelease(args, int(expect.group(1)) if expect else 0))
    return releases


def readme_block(after: str, fence: str) -> list[str]:
    """The lines of the first ```fence block after the text `after`."""
    text = README.split(after, 1)[1]
    body = text.split(f"```{fence}\n", 1)[1].split("\n```", 1)[0]
    return body.splitlines()


def session() -> tuple[list[str], list[str]]:
    """The README's session: the command's arguments, and the lines shown as its output."""
    lines = readme_block("## A session", "console")
    command_lines = [lines[0]]
    while command_lines[-1].endswith("\\"):
        command_lines.append(lines[len(command_lines)])
    command = " ".join(line.rstrip("\\").strip() for line in command_lines)
    assert command.startswith("$ release-bot "), command
    return shlex.split(command.removeprefix("$ release-bot ")), lines[len(command_lines) :]


def _anonymous_requester(line: str) -> str:
    return re.sub(r"(release requested \[)[^\]]*(\])", r"\1LOGIN\2", line)


def assert_shows(shown: list[str], printed: list[str]) -> None:
    """Every stretch of `shown` between `…` lines is in `printed` as it is, in order; without a
    `…` at an end, `shown` starts (ends) where `printed` does."""
    shown = [_anonymous_requester(line) for line in shown]
    printed = [_anonymous_requester(line) for line in printed]
    stretches: list[list[str]] = [[]]
    for line in shown:
        if line.strip().startswith(ELISION):
            stretches.append([])
        else:
            stretches[-1].append(line)
    at = 0
    for number, stretch in enumerate(stretches):
        if not stretch:
            continue
        found = next(
            (
                i
                for i in range(at, len(printed) - len(stretch) + 1)
                if printed[i : i + len(stretch)] == stretch
            ),
            None,
        )
        first = stretch[0]
        if found is None:
            unprinted = [line for line in stretch if line not in printed[at:]]
            problem = (
                f"a line the command does not print: {unprinted[0]!r}"
                if unprinted
                else f"lines left out without a `…` after: {first!r}"
            )
            raise AssertionError(f"README's demo text: {problem}; regenerate it from a real run")
        assert number > 0 or found == 0, (
            f"README's output does not start where the run does: {first!r}"
        )
        at = found + len(stretch)
    assert stretches[-1] == [] or at == len(printed), (
        f"the run prints more after {stretches[-1][-1]!r} than the README shows, without a `…`"
    )


@dataclass(frozen=True)
class DemoRun:
    release: DemoRelease
    exit_code: int
    output: str
    report: Path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> list[DemoRun]:
    """make demo's releases, each on its own new database, as make demo runs them."""
    directory = tmp_path_factory.mktemp("demo")
    return [DemoRun(release, *release.run_in(directory)) for release in demo_releases()]


def test_make_demo_runs_three_releases_each_on_a_fresh_database() -> None:
    releases = demo_releases()
    assert [r.expected_exit for r in releases] == [0, 3, 4]
    databases = [r.args[r.args.index("--db") + 1] for r in releases]
    assert len(set(databases)) == 3, databases
    recipe = "\n".join(_recipe("demo"))
    # nothing of an earlier run is read: its databases and reports are removed first
    assert "rm -f data/demo*.db data/demo*.db-* data/demo-*.json" in recipe
    assert "unlock" not in recipe  # the third release is judged on its own gates, not a lock
    assert "|| true" not in recipe


def test_each_demo_release_ends_as_make_demo_expects(demo_run: list[DemoRun]) -> None:
    statuses = []
    for run in demo_run:
        assert run.exit_code == run.release.expected_exit, (run.release.args, run.output)
        statuses.append(json.loads(run.report.read_text())["status"])
    assert statuses == ["completed", "rolled_back", "failed"]
    failed = json.loads(demo_run[2].report.read_text())
    stopped_by = [c["check"] for c in failed["pre_deployment"]["checks"] if c["status"] == "fail"]
    assert stopped_by == ["dependency_health"]
    assert failed["progressive_rollout"]["current_percentage"] == 0


def test_readme_shows_what_make_demo_ends_with(
    demo_run: list[DemoRun],
) -> None:
    printed = demo_summary.summary_lines([run.report for run in demo_run])
    shown = readme_block("`make demo` ends with one line per release:", "text")
    assert shown == printed, "README's `make demo` summary differs from a real run:\n" + "\n".join(
        printed
    )


def test_readme_session_is_a_real_run_of_its_command(demo_run: list[DemoRun]) -> None:
    args, shown = session()
    # the session is one of make demo's releases, whose real run the fixture has
    run = next((run for run in demo_run if run.release.args == args), None)
    assert run is not None, f"README's session runs {args}, not one of make demo's releases"
    assert_shows(shown, run.output.splitlines())


def test_the_summary_names_a_report_this_run_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "demo-failed.json"
    assert demo_summary.main([str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: no report") and err.count("\n") == 1


def test_assert_shows_refuses_a_stale_line_and_an_unmarked_gap() -> None:
    printed = ["a", "b", "c", "d"]
    assert_shows(["a", "   … b", "c", "d"], printed)
    with pytest.raises(AssertionError):
        assert_shows(["a", "c", "d"], printed)  # b left out without a `…`
    with pytest.raises(AssertionError):
        assert_shows(["a", "b", "x", "d"], printed)  # a line the run does not print
    with pytest.raises(AssertionError):
        assert_shows(["a", "b"], printed)  # c and d left out at the end
