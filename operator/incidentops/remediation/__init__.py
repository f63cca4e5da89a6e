"""Remediation: which runbook applies, whether it may act, what it would change (issue 8, in progress)."""
