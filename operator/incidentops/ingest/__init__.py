"""Alerts in: payload parsing, normalization, dedup and correlation, persistence as Incidents."""
