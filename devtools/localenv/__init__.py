"""Local development environment: a real control plane, Prometheus, Alertmanager and a demo workload.

Everything here runs on loopback addresses without a container engine, so that tests exercise
real servers instead of mocks.
"""
