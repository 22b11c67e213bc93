"""The agent's words about a release: explanations at stage boundaries and anomalies, the
final summary, and answers to "why?". The agent reads; this module loads and saves.

Narration is a job of its own, on its own thread in a real process, so no tick (and no
rollback) ever waits for the LLM. Without a model (say, restarted without the key) the due
moments still clear, as audited fallbacks.
"""

from __future__ import annotations

from bot.agent import flows
from bot.agent.checks import AgentReport
from bot.service.outbox import deliver
from bot.service.services import Services
from bot.service.tick import reconcile


def narrate(services: Services) -> int:
    """Explain each release's due moments once, after the tick has acted and delivered."""
    store, agent = services.store, services.agent()
    done = 0
    for release_id in store.narration_due_ids():
        release = store.get(release_id)
        if release.narration is None or not release.narration.due:
            continue
        due = list(release.narration.due)
        action, text, run = flows.speak(agent, release, due, list(store.events(release_id)))
        store.record_llm_calls(release_id, run.calls)
        with store.unit_of_work():
            fresh = store.get(release_id)
            narration = fresh.narration
            assert narration is not None
            del narration.due[: len(due)]
            flows.add_usage(narration, run.calls)
            if isinstance(run.value, AgentReport):
                narration.summary, narration.next_actions = (
                    run.value.summary,
                    run.value.next_actions,
                )
                narration.summary_status = fresh.status
            fresh.record_agent(action, text, services.clock.now(), moments=due)
            store.save(fresh)
        done += 1
    if done:
        deliver(services)
    return done


def answer_why(services: Services, release_id: str, question: str, asker: str) -> str | None:
    """The agent's answer to a question in the release's thread, or None (the rules answer)."""
    store = services.store
    release = store.get(release_id)
    if not services.llm.enabled or release.narration is None:
        return None
    answer, run = flows.answer(services.agent(), release, question, asker)
    store.record_llm_calls(release_id, run.calls)
    with store.unit_of_work():
        fresh = store.get(release_id)
        flows.add_usage(fresh.narration, run.calls)
        if answer is None:
            why = run.fallback or "no answer"
            fresh.record_agent("agent_fallback", f"why: rules, because {why}", services.clock.now())
        store.save(fresh)
    return answer


def reconcile_and_narrate(services: Services) -> list[str]:
    """One reconcile, then the narration, in turn: for tests and benchmarks that step virtual
    time themselves, where nothing runs in parallel and the order must be the same each run."""
    ids = reconcile(services)
    narrate(services)
    return ids
