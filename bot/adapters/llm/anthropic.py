"""The agent loop on Anthropic's Messages API: our own loop, with a cap on turns and time.

Each task is one short conversation. The model reads through read tools and proposes
through propose tools; a proposal is checked by the task's handler (deterministic policy)
and a rejected one goes back as a tool error with the reason, a bounded number of times.
No tool approves, promotes or deploys. Every failure of the API or the model ends in an
``AgentRun`` with a ``fallback`` reason, never an exception: the rules do that step.

The static prefix (the tool definitions, then the system prompt) is marked with
``cache_control`` so repeated tasks read it from the cache; variable inputs come last.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import anthropic
from anthropic.types import Message

from bot.adapters.llm.settings import DEFAULT_MODEL, AnthropicSettings
from bot.ports.llm import AbstractLLM, AgentRun, AgentTask, LlmCall, ToolError, ToolOutcome

log = logging.getLogger(__name__)

CACHE = {"type": "ephemeral"}


def _describe(exc: anthropic.APIError) -> str:
    match exc:
        case anthropic.RateLimitError():
            return "rate limited (429)"
        case anthropic.APIStatusError() if exc.status_code == 529:
            return "overloaded (529)"
        case anthropic.AuthenticationError():
            return "the API key was refused (401)"
        case anthropic.APIStatusError():
            return f"the API answered {exc.status_code}"
        case anthropic.APITimeoutError():
            return "the API timed out"
        case anthropic.APIConnectionError():
            return "the API could not be reached"
        case anthropic.APIResponseValidationError():
            return "a malformed response"
    return f"an API error ({type(exc).__name__})"


def _dump(block: Any) -> dict[str, Any]:
    """An assistant content block as the API wants it back (no SDK-only fields)."""
    data: dict[str, Any] = block.model_dump(exclude_none=True, warnings=False)
    if data.get("type") == "text":
        return {"type": "text", "text": data.get("text", "")}
    if data.get("type") == "tool_use":
        return {k: data[k] for k in ("type", "id", "name", "input")}
    return data


def _cached_last(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the last block cacheable: the prefix up to it is cached as one."""
    if blocks:
        blocks[-1]["cache_control"] = CACHE
    return blocks


class AnthropicLLM(AbstractLLM):
    def __init__(
        self,
        client: anthropic.Anthropic,
        model: str = DEFAULT_MODEL,
        deadline_seconds: float = 60.0,
    ) -> None:
        self.client = client
        self.model = model
        self.deadline_seconds = deadline_seconds

    @classmethod
    def from_settings(cls, settings: AnthropicSettings) -> AnthropicLLM:
        assert settings.anthropic_api_key is not None
        client = anthropic.Anthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            timeout=settings.release_bot_llm_timeout,
            max_retries=settings.release_bot_llm_retries,
        )
        return cls(client, settings.release_bot_model, settings.release_bot_llm_deadline)

    def request(self, task: AgentTask, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The Messages API arguments: tools, then system, both cached; the task last."""
        return {
            "model": self.model,
            "max_tokens": task.max_tokens,
            "tools": _cached_last([dict(t) for t in task.tools]),
            "system": _cached_last([{"type": "text", "text": t} for t in task.system]),
            "messages": messages,
        }

    def run(self, task: AgentTask) -> AgentRun:
        run = AgentRun()
        try:
            return self._run(task, run)
        except Exception as exc:  # a bug on the agent path must not stop a release: rules
            log.exception("agent %s failed", task.purpose)
            run.value = None
            run.fallback = f"an unexpected error ({type(exc).__name__}: {exc!s:.200})"
            return run

    def _run(self, task: AgentTask, run: AgentRun) -> AgentRun:
        messages: list[dict[str, Any]] = [{"role": "user", "content": task.prompt}]
        started = time.monotonic()
        for _ in range(task.max_iterations):
            if time.monotonic() - started > self.deadline_seconds:
                run.fallback = f"the agent took longer than {self.deadline_seconds:g}s"
                return run
            try:
                reply = self._call(task, messages, run, started)
            except anthropic.APIError as exc:
                run.fallback = _describe(exc)
                log.warning("agent %s: %s", task.purpose, run.fallback)
                return run
            content = [_dump(b) for b in reply.content]
            stop = reply.stop_reason
            if stop == "refusal":
                run.fallback = "the model refused"
                return run
            if stop == "max_tokens":
                run.fallback = "the reply was cut at max_tokens"
                return run
            uses = [b for b in content if b.get("type") == "tool_use"]
            if stop == "tool_use" and uses:
                messages.append({"role": "assistant", "content": content})
                results, done = self._tools(task, uses, run)
                if done or run.fallback:
                    return run
                messages.append({"role": "user", "content": results})
                continue
            if stop == "pause_turn":
                messages.append({"role": "assistant", "content": content})
                continue
            text = "".join(b.get("text", "") for b in content if b.get("type") == "text").strip()
            if task.text_ok and text:
                run.value = text
                return run
            # It stopped without the proposal the task needs: ask once more, within the cap.
            messages.append(
                {"role": "assistant", "content": content or [{"type": "text", "text": "…"}]}
            )
            wanted = " or ".join(sorted(task.finish)) or "a short answer"
            messages.append({"role": "user", "content": f"Please finish by calling {wanted}."})
        run.fallback = f"no usable result after {task.max_iterations} turns"
        return run

    def _timeout(self, started: float) -> float:
        """Each attempt gets what is left of the task's deadline, shared with the SDK's
        retries, so no task outlives its deadline by more than the retries' backoff."""
        left = max(self.deadline_seconds - (time.monotonic() - started), 1.0)
        attempts = self.client.max_retries + 1
        timeout = self.client.timeout
        per_call = timeout if isinstance(timeout, int | float) else self.deadline_seconds
        return min(float(per_call), left / attempts)

    def _call(
        self, task: AgentTask, messages: list[dict[str, Any]], run: AgentRun, started: float
    ) -> Message:
        began = time.monotonic()
        raw = self.client.messages.with_raw_response.create(
            **self.request(task, messages), timeout=self._timeout(started)
        )
        # The SDK builds its models without validation (a tool_use without an id, usage
        # without token counts, content as a string all get through): validate it here.
        try:
            reply = Message.model_validate(raw.http_response.json())
        except ValueError as exc:  # undecodable JSON, or pydantic's ValidationError
            raise anthropic.APIResponseValidationError(
                response=raw.http_response, body=None, message=f"not a Message: {exc!s:.300}"
            ) from None
        usage = reply.usage
        run.calls.append(
            LlmCall(
                purpose=task.purpose,
                model=self.model,
                request_id=raw.headers.get("request-id", ""),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_input_tokens or 0,
                cache_write_tokens=usage.cache_creation_input_tokens or 0,
                stop_reason=str(reply.stop_reason),
                milliseconds=round((time.monotonic() - began) * 1000),
                at=datetime.now(UTC),
            )
        )
        return reply

    def _tools(
        self, task: AgentTask, uses: list[dict[str, Any]], run: AgentRun
    ) -> tuple[list[dict[str, Any]], bool]:
        """Answer every tool_use block (several may come at once); True when a proposal was
        accepted. Too many rejected proposals set ``run.fallback``."""
        results: list[dict[str, Any]] = []
        for use in uses:
            name = str(use.get("name"))
            run.tools_used.append(name)
            outcome = self._one(task, name, use.get("input"))
            if outcome.accepted is not None and name in task.finish:
                run.value = outcome.accepted
                return results, True
            if outcome.error and name in task.finish:
                run.rejected.append(outcome.content)
                if len(run.rejected) > task.max_rejections:
                    run.fallback = (
                        f"{len(run.rejected)} proposals rejected; last: {outcome.content}"
                    )
                    return results, False
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": use.get("id"),
                    "content": outcome.content,
                    "is_error": outcome.error,
                }
            )
        return results, False

    @staticmethod
    def _one(task: AgentTask, name: str, arguments: Any) -> ToolOutcome:
        handler = task.handlers.get(name)
        if handler is None:
            known = {str(t.get("name")) for t in task.tools}
            why = (
                f"{name} is not available for this task ({task.purpose}); use "
                + ", ".join(sorted(task.handlers))
                if name in known
                else f"unknown tool {name!r}; the tools are " + ", ".join(sorted(known))
            )
            return ToolOutcome(why, error=True)
        if not isinstance(arguments, dict):
            return ToolOutcome("the input must be a JSON object", error=True)
        try:
            return handler(arguments)
        except ToolError as exc:
            return ToolOutcome(str(exc), error=True)
