"""The agent's model: Anthropic's Messages API, or none (the rules do every step); and the rule
planner behind the planner port."""
