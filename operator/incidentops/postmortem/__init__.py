"""Postmortems: written once at resolution from a template (a model drafts the narrative when configured)."""
