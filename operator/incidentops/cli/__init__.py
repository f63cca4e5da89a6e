"""The `kubectl incident` plugin: list, describe and drive Incidents (ack, resolve, approve, escalate...).

It writes only spec (human intents: acknowledgement, resolution, approvals, requests); the
operator mirrors them into status. Pure formatting and filtering live in `format` and `selection` so they are tested
without a cluster; `main` holds the click commands.
"""
