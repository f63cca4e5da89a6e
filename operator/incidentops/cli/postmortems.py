"""The plugin and Postmortems: which document an incident has, why it has none, and the gate on `close`.

Pure: each function takes the parsed incident (and what was read of its Postmortem) and decides,
so the messages are tested without a cluster. The operator applies the same gate (a refused close
becomes a StateChangeRefused timeline entry); the plugin says why at once, before writing.
"""

from __future__ import annotations

from incidentops.api.v1alpha1.incident import ENDED_STATES, IncidentState, current_severity
from incidentops.cli.actions import Incident, Refused

# The operator's default INCIDENTOPS_POSTMORTEM_SEVERITIES: the plugin cannot read the operator's
# setting, and only needs it while status.postmortem is absent (the operator has not looked yet).
POSTMORTEM_SEVERITIES = frozenset({"SEV1", "SEV2"})
DEFAULTS = "SEV1 and SEV2"
DOCUMENT_STATES = frozenset({"Draft", "InReview", "Published"})


def postmortem_name(incident: Incident | None, name: str) -> str:
    """The Postmortem to show: the one status names, else NAME (the operator names it after the incident)."""
    link = incident.status.postmortem if incident is not None else None
    return (link.name if link is not None and link.name else None) or name


def publish_hint(name: str, namespace: str = "") -> str:
    where = f" -n {namespace}" if namespace else ""
    return (
        f'kubectl patch pm {name}{where} --type merge -p \'{{"spec":{{"state":"Published"}}}}\' '
        f"(or kubectl edit pm {name}{where})"
    )


def why_none(incident: Incident) -> str:
    """Why the incident has no Postmortem to show, from status.postmortem (and its state, severity)."""
    name = incident.name
    status = incident.status
    link = status.postmortem
    severity = current_severity(incident.spec, status)
    if incident.spec.simulation is not None:
        return f'incident "{name}" is a simulation: simulations get no postmortem'
    if link is None:
        if status.state not in ENDED_STATES:
            return (
                f'incident "{name}" has no postmortem yet: it is not resolved ({status.state}). The operator writes '
                f"one at resolution when the severity is one of INCIDENTOPS_POSTMORTEM_SEVERITIES ({DEFAULTS} by "
                f"default); it is {severity} now"
            )
        return (
            f'incident "{name}" has no postmortem yet: it is {status.state} but the operator has not taken it up '
            "(is the operator running and watching this namespace?)"
        )
    if not link.required:
        return (
            f'incident "{name}" needs no postmortem: its severity {severity} is not one that requires one '
            f"(INCIDENTOPS_POSTMORTEM_SEVERITIES, {DEFAULTS} by default)"
        )
    if link.state == "Writing":
        failed = f"; the last attempt failed: {link.message}" if link.message else ""
        return (
            f'the postmortem of incident "{name}" is still being written (attempt {link.attempts}{failed}); '
            "try again in a minute"
        )
    if link.state == "Deleted":
        return f'the postmortem "{link.name or name}" of incident "{name}" was deleted'
    if link.state in DOCUMENT_STATES:
        return f'the postmortem "{link.name or name}" of incident "{name}" ({link.state}) was not found: deleted?'
    if link.attempts:
        return (
            f'the postmortem of incident "{name}" could not be written after {link.attempts} attempt'
            f"{'s' if link.attempts != 1 else ''}: {link.message or 'no reason recorded'} (see kubectl incident "
            f"timeline {name}; a Postmortem named {name} written by hand is used instead)"
        )
    return f'the postmortem of incident "{name}" is required ({severity}) and not written yet'


def required_postmortem(incident: Incident) -> str | None:
    """The Postmortem that must be Published before the incident closes, or None when it needs none.

    status.postmortem.required decides; before the operator has set it, a Resolved SEV1 or SEV2
    incident that is not a simulation needs one (the operator's default severities).
    """
    link = incident.status.postmortem
    if link is not None:
        required = link.required
    else:
        required = (
            incident.status.state == IncidentState.RESOLVED
            and str(current_severity(incident.spec, incident.status)) in POSTMORTEM_SEVERITIES
            and incident.spec.simulation is None
        )
    return postmortem_name(incident, incident.name) if required else None


def check_close(incident: Incident, postmortem_state: str | None) -> None:
    """Refused while the required Postmortem is not Published; postmortem_state None: it does not exist."""
    wanted = required_postmortem(incident)
    if wanted is None or postmortem_state == "Published":
        return
    name = incident.name
    severity = current_severity(incident.spec, incident.status)
    link = incident.status.postmortem
    if postmortem_state is not None:
        raise Refused(
            f'incident "{name}" cannot be closed: its postmortem "{wanted}" is {postmortem_state}, and closing needs '
            f"it Published. Review it (kubectl incident postmortem {name}), then publish it: "
            f"{publish_hint(wanted, incident.namespace)}"
        )
    if link is not None and link.state == "Writing":
        why = "is still being written; try again in a minute"
    elif link is not None and link.state is None and link.attempts:
        why = (
            f"could not be written ({link.message or 'no reason recorded'}); write Postmortem {wanted} yourself "
            "(see manifests/samples/postmortem.yaml) and publish it"
        )
    elif link is not None and link.state == "Deleted":
        why = f"{wanted} was deleted; recreate it and publish it"
    else:
        why = "is not written yet"
    raise Refused(f'incident "{name}" cannot be closed: its postmortem is required ({severity}) and {why}')
