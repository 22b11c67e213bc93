"""``make demo-live``: a real canary on one machine (two versions of a small service, HAProxy in
front, a load generator, Prometheus scraping them), driven by release-bot."""
