"""notify: a message to the incident's people.

Until escalation channels exist, the message is a timeline entry and an Event on the Incident,
both written with the step's success (so it is recorded once). `$incident`, `$service`,
`$severity` and `$namespace` in the text are replaced; nothing else is interpreted.
"""

from __future__ import annotations

from string import Template
from typing import Any

from incidentops.kube import KubeClient
from incidentops.remediation.actions.base import Context, Plan, Replans, refused
from incidentops.remediation.targets import Target


class Notify(Replans):
    def plan(self, kube: KubeClient, target: Target, params: dict[str, Any], key: str, context: Context) -> Plan:
        text = params.get("message")
        if not text:
            return refused(target, "InvalidParams", "notify needs params.message")
        message = Template(str(text)).safe_substitute({"incident": context.incident, **context.facts})[:2048]
        return Plan(target, {"message": message}, [f"notify: {message}"], {}, reason=message)

    def apply(self, kube: KubeClient, plan: Plan) -> str | None:
        return plan.reason

    def happened(self, kube: KubeClient, plan: Plan, key: str) -> bool:
        return False  # the message is recorded with the step's result; in doubt it was not

    def undo(self, kube: KubeClient, target: Target, before: dict[str, Any], key: str, context: Context) -> Plan:
        return Plan(target, None, reason="a message cannot be taken back")


ACTION = Notify()
