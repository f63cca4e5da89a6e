"""The dry-run diff an approver sees: the change, not the bookkeeping around it."""

from __future__ import annotations

import copy
from typing import Any

from incidentops.remediation.diff import spec_diff

LIVE: dict[str, Any] = {
    "metadata": {"name": "checkout", "resourceVersion": "100", "generation": 4, "managedFields": [{"manager": "x"}]},
    "spec": {
        "replicas": 2,
        "template": {"metadata": {"annotations": {}}, "spec": {"containers": [{"name": "app", "image": "shop:bad"}]}},
    },
    "status": {"replicas": 2},
}


def test_only_the_intent_shows() -> None:
    planned = copy.deepcopy(LIVE)
    planned["metadata"] |= {"resourceVersion": "101", "generation": 5, "managedFields": []}
    planned["spec"]["replicas"] = 4
    planned["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = "2026-11-23T06:00:00Z"
    planned["status"] = {"replicas": 4}
    assert spec_diff(LIVE, planned) == [
        "spec.replicas: 2 -> 4",
        'spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt: <none> -> "2026-11-23T06:00:00Z"',
    ]


def test_a_rollback_shows_the_image_it_brings_back() -> None:
    planned = copy.deepcopy(LIVE)
    planned["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:v1"
    assert spec_diff(LIVE, planned) == ['spec.template.spec.containers[0].image: "shop:bad" -> "shop:v1"']
    assert spec_diff(LIVE, copy.deepcopy(LIVE)) == []
