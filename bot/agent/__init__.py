"""The LLM release agent: prompts, tools, tasks and the checks on what it proposes. The model
behind it is a port (``bot.ports.llm``, adapters in ``bot.adapters.llm``); everything here is
plain Python the rules can stand in for, and nothing here loads or saves."""
