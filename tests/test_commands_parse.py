"""``parse_command``: every /release subcommand, the release line, and the usage errors."""

from __future__ import annotations

import pytest

from bot.commands import (
    USAGE,
    Command,
    CommandError,
    DryRun,
    Help,
    History,
    ListReleases,
    Lock,
    OpenModal,
    Pause,
    Promote,
    Resume,
    Rollback,
    Start,
    Status,
    Unlock,
    help_text,
    parse_command,
)

LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", OpenModal()),
        ("   ", OpenModal()),
        ("help", Help()),
        ("HELP", Help()),
        ("help lock", Help()),
        ("status", Status()),
        ("status rel-payments-api-2.4.1-abc123", Status("rel-payments-api-2.4.1-abc123")),
        ("list", ListReleases()),
        ("history payments-api", History("payments-api")),
        ("rollback rel-1", Rollback("rel-1")),
        ("rollback rel-1 customer reports 500s", Rollback("rel-1", "customer reports 500s")),
        ('rollback rel-1 "customer reports"', Rollback("rel-1", "customer reports")),
        ("rollback  rel-1   two  spaces ", Rollback("rel-1", "two  spaces")),
        ("pause rel-1", Pause("rel-1")),
        ("pause rel-1 looking at the logs", Pause("rel-1", "looking at the logs")),
        ("resume rel-1", Resume("rel-1")),
        ("promote rel-1", Promote("rel-1")),
        ("lock prod", Lock("prod")),
        ("lock PROD code freeze until Monday", Lock("prod", "code freeze until Monday")),
        ("lock payments-api/prod incident INC-7", Lock("payments-api/prod", "incident INC-7")),
        ("unlock staging", Unlock("staging")),
        ("unlock payments-api/Prod", Unlock("payments-api/prod")),
        (f"dry-run {LINE}", DryRun(LINE)),
        ("status\trel-1", Status("rel-1")),
        (LINE, Start(LINE)),
        (f"  {LINE}  ", Start(LINE)),
        (
            "payments-api\n<release_package>\n- Version: 2.4.1",
            Start("payments-api\n<release_package>\n- Version: 2.4.1"),
        ),
    ],
)
def test_every_subcommand_parses(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_a_multi_line_dry_run_keeps_its_lines() -> None:
    text = "dry-run payments-api\n<release_package>\n- Version: 2.4.1"
    assert parse_command(text) == DryRun("payments-api\n<release_package>\n- Version: 2.4.1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("history", "`history` needs a service name: usage: `/release history SERVICE`"),
        ("rollback", "`rollback` needs a release ID: usage: `/release rollback RELEASE_ID"),
        ("pause", "`pause` needs a release ID: usage: `/release pause RELEASE_ID [reason…]`"),
        ("resume", "`resume` needs a release ID: usage: `/release resume RELEASE_ID`"),
        ("promote", "`promote` needs a release ID: usage: `/release promote RELEASE_ID`"),
        ("lock", "`lock` needs an environment (dev, staging, prod) or SERVICE/ENV"),
        ("unlock", "usage: `/release unlock ENV|SERVICE/ENV`"),
        ("dry-run", "`dry-run` needs a release line: usage: `/release dry-run LINE`"),
        ("dry-run   ", "`dry-run` needs a release line"),
        ("lock moon", "'moon' is not a lock scope: use an environment"),
        ("lock Payments/prod", "'Payments/prod' is not a lock scope"),
        ("unlock payments-api/qa", "'payments-api/qa' is not a lock scope"),
        ("status rel-1 rel-2", "`status` does not take 'rel-2': usage: `/release status"),
        ("list payments-api", "`list` does not take 'payments-api'"),
        ("resume rel-1 now", "`resume` does not take 'now'"),
        ("promote rel-1 please", "`promote` does not take 'please'"),
        ("unlock prod because", "`unlock` does not take 'because'"),
        ("history a b", "`history` does not take 'b'"),
    ],
)
def test_a_wrong_subcommand_names_its_usage(text: str, message: str) -> None:
    with pytest.raises(CommandError) as exc:
        parse_command(text)
    assert message in str(exc.value)


def test_subcommands_are_case_insensitive_but_arguments_are_kept() -> None:
    assert parse_command("Pause REL-1 Why") == Pause("REL-1", "Why")
    assert parse_command("DRY-RUN x 1.0") == DryRun("x 1.0")


def test_help_lists_every_subcommand() -> None:
    text = help_text()
    for usage, _ in USAGE.values():
        assert usage in text
    assert "opens the form" in text


def test_command_error_is_a_value_error() -> None:
    assert issubclass(CommandError, ValueError)
