"""The LLM release agent: prompts, tools and tasks. The loop itself is an adapter
(``bot.adapters.anthropic_llm``); everything here is plain Python the rules can stand in for."""
