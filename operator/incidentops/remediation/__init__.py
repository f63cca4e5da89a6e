"""Remediation: which runbook applies, whether it may act, what it would change, and doing it safely."""
