"""HTTP probes: dependency health endpoints and synthetic transactions."""
