"""The agent's prompts, read from ``prompts/`` (a prompt change is a reviewed file change).

The static prefix is the tool definitions (``tools.json``), then the system prompt: our
operating rules (``system.md``) and the brief (``release-manager-agent.txt``) up to its
variable ``<inputs>``. Variable inputs go last, in the user message, filled from the request;
untrusted text is quoted so that it can never close the tags around it.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from bot.domain.request import ReleaseRequest
from bot.ports.llm import AgentTask, ToolHandler

BRIEF = "release-manager-agent.txt"
INPUTS_MARK = "<!-- Place variable inputs last"


def prompts_dir() -> Path:
    return Path(os.environ.get("RELEASE_BOT_PROMPTS") or Path(__file__).parents[2] / "prompts")


@cache
def _read(name: str) -> str:
    return (prompts_dir() / name).read_text(encoding="utf-8")


def brief_static() -> str:
    """The brief without its variable ``<inputs>`` template."""
    return _read(BRIEF).split(INPUTS_MARK)[0].rstrip()


def system_texts() -> tuple[str, ...]:
    """The system prompt's blocks: our operating rules, then the brief."""
    return (_read("system.md"), brief_static())


@cache
def tool_definitions() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(_read("tools.json")))


def agent_task(
    purpose: str,
    prompt: str,
    handlers: dict[str, ToolHandler],
    finish: frozenset[str] = frozenset(),
    **options: Any,
) -> AgentTask:
    """A task with the static prefix every task shares (so the model's cache holds it)."""
    return AgentTask(
        purpose,
        prompt,
        handlers,
        finish,
        tools=tool_definitions(),
        system=system_texts(),
        **options,
    )


def static_prefix_text() -> str:
    """The cached prefix as text (tools, then system), for measuring its length."""
    return json.dumps(list(tool_definitions())) + "\n".join(system_texts())


def escaped(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def tool_json(value: Any) -> str:
    """Tool output for the model: JSON with ``<`` and ``>`` escaped (see ``escaped``)."""
    return escaped(json.dumps(value, default=str))


def untrusted(source: str, text: str) -> str:
    """Text from people or systems, quoted as data: a JSON string inside tags it cannot close."""
    return f'<untrusted_data source="{source}">{tool_json(text)}</untrusted_data>'


def inputs_block(request: ReleaseRequest) -> str:
    """The brief's ``<inputs>`` template filled from the request (free text quoted)."""
    pkg, cfg, rails, ops = (
        request.release_package,
        request.deployment_config,
        request.guardrails,
        request.operational_context,
    )
    art = pkg.artifact
    artifact = art.image + "".join(
        f" ({x})" for x in (art.hash, art.build_id and f"build {art.build_id}") if x
    )

    def ranges(items: list[Any]) -> str:
        return ", ".join(r.describe() for r in items) or "none"

    return "\n".join(
        [
            "<inputs>",
            f"<service>{escaped(request.service)}</service>",
            "<release_package>",
            f"- Version: {escaped(pkg.version)}",
            f"- Build artifacts: {escaped(artifact)}",
            f"- Changes included: {untrusted('changes', pkg.changes)}",
            f"- Risk level: {pkg.risk}",
            f"- Change ticket: {escaped(pkg.change_ticket or 'none')}",
            "</release_package>",
            "<deployment_config>",
            f"- Target environments: {', '.join(cfg.environments)} "
            f"({', '.join(escaped(r) for r in cfg.regions)})",
            f"- Deployment strategy: {cfg.strategy}",
            "- Feature flags: "
            + (", ".join(f"{escaped(f.name)}:{f.percentage:g}%" for f in cfg.flags) or "none"),
            "- Rollout percentages: "
            + (", ".join(f"{s:g}%" for s in cfg.stages) if cfg.stages else "the rules' defaults"),
            "</deployment_config>",
            "<guardrails>",
            f"- Error rate threshold: {rails.error_rate.describe()}",
            f"- Latency budget: {', '.join(g.describe() for g in rails.latency)}",
            f"- Availability SLA: {rails.availability.describe()}",
            f"- Business KPIs: {', '.join(g.describe() for g in rails.kpis) or 'none'}",
            "</guardrails>",
            "<operational_context>",
            "- Current traffic: "
            + (f"{ops.traffic_rps:g} rps" if ops.traffic_rps is not None else "measured at start"),
            f"- Peak hours: {ranges(ops.peak_hours)}",
            f"- Maintenance windows: {ranges(ops.maintenance_windows)}",
            "- Dependencies status: "
            + (
                ", ".join(f"{escaped(d.name)} {d.health}" for d in ops.dependencies)
                or "probed live"
            ),
            "</operational_context>",
            "</inputs>",
        ]
    )
