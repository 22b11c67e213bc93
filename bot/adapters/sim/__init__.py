"""The simulated fleet: metrics and traffic (``fleet``), the CI that builds on request (``ci``),
injected faults and the services' profiles. The demo and test default, chosen explicitly."""
