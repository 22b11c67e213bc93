"""PagerDuty as a notification target: Events API v2 alerts (``notify``)."""
