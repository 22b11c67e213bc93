"""The Prometheus metrics provider: ``PrometheusMetrics`` reads baseline and canary windows
through Prometheus's HTTP API, configured by ``PrometheusSettings``."""
