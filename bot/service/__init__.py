"""Service functions: the one place where commands and the reconcile tick meet the ports.

Slack handlers, CLI commands and scheduler jobs all call these. Each command and each tick of
a release is one transaction: load, decide (pure domain), save with its events.

=============  ====================================================================
module         what
=============  ====================================================================
services       ``Services``: the ports, and the read-only view the agent gets
commands       start a release; approve, reject, pause, resume, promote, roll back;
               report a problem; decide a held step (extend, promote on an override);
               lock and unlock environments
tick           the reconcile tick: each active release one step, then converge
gates          the quality gates' evidence, read through the ports
narration      the agent's explanations, summary and "why?" answers, saved
outbox         delivering stored events to the chat
notifications  telling stakeholders of each start, completion, rollback, failure
dry_run        what a /release line would do, changing nothing
report         the release report (the brief's output contract)
evidence       files a team's CI uploads: read, checked, stored (all or none)
=============  ====================================================================
"""

from bot.service.commands import (
    approve,
    extend_bake,
    find,
    lock_env,
    pause,
    promote_now,
    promote_on_override,
    refused,
    reject,
    release_id_for,
    report_issue,
    resume,
    rollback,
    start_release,
    unlock_env,
)
from bot.service.dry_run import DryRun, dry_run
from bot.service.gates import auto_approves
from bot.service.narration import answer_why, narrate, reconcile_and_narrate
from bot.service.outbox import deliver
from bot.service.report import report
from bot.service.services import Services
from bot.service.tick import (
    SYNTHETIC_MIN_SUCCESS,
    converge,
    converge_ended,
    reconcile,
    reconcile_claimed,
    reconcile_one,
)

__all__ = [
    "SYNTHETIC_MIN_SUCCESS",
    "DryRun",
    "Services",
    "answer_why",
    "approve",
    "auto_approves",
    "converge",
    "converge_ended",
    "deliver",
    "dry_run",
    "extend_bake",
    "find",
    "lock_env",
    "narrate",
    "pause",
    "promote_now",
    "promote_on_override",
    "reconcile",
    "reconcile_and_narrate",
    "reconcile_claimed",
    "reconcile_one",
    "refused",
    "reject",
    "release_id_for",
    "report",
    "report_issue",
    "resume",
    "rollback",
    "start_release",
    "unlock_env",
]
