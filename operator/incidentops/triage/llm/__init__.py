"""Triage by a language model: read-only tools, one answer through submit_triage, validated by code."""
