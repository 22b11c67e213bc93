"""``release-bot serve``: the entry point that runs the Slack app (the listeners of
``handlers/``), the reconcile ticker, /healthz and /metrics in one process."""
