"""Benchmarks: the canary-judge harness (``python -m bench.judge_bench``), its synthetic
scenarios and the Flagger-style and Kayenta-style reference judges."""
