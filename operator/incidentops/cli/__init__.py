"""The `kubectl incident` plugin: list, describe, acknowledge and resolve Incidents.

It writes only spec intents (acknowledgement, resolution); the operator mirrors them into
status. Pure formatting and filtering live in `format` and `selection` so they are tested
without a cluster; `main` holds the click commands.
"""
