"""Triage: how sure the operator is about what an incident is and which runbook fits it."""
