"""The pure core: models, planner rules, gates, the release state machine. No I/O here."""
