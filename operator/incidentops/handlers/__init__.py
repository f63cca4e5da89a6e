"""Thin adapters: Kopf handlers and the HTTP endpoints. Parse, call the domain, write status."""
