"""The incident lifecycle: a pure state machine and the reconciliation of human intents in spec."""
