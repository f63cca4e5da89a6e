"""Escalation: which policy pages an incident, who is on call, and the outbox that tells them."""
