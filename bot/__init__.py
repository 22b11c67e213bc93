"""release-bot: a ChatOps release manager with progressive rollouts and automatic rollback."""
