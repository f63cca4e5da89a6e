"""The postmortem gate on `close`, and why `kubectl incident postmortem` has nothing to show (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from incidentops.cli.actions import Incident, Refused
from incidentops.cli.main import cli
from incidentops.cli.postmortems import check_close, postmortem_name, publish_hint, required_postmortem, why_none

PUBLISH = 'kubectl patch pm api-5xx -n prod --type merge -p \'{"spec":{"state":"Published"}}\''


def incident(
    state: str = "Resolved", severity: str = "SEV1", link: dict[str, Any] | None = None, **spec: Any
) -> Incident:
    status: dict[str, Any] = {"state": state, "severity": severity}
    if link is not None:
        status["postmortem"] = link
    return Incident.of(
        {
            "metadata": {"name": "api-5xx", "namespace": "prod", "resourceVersion": "7"},
            "spec": {"title": "API 5xx", "severity": severity, **spec},
            "status": status,
        }
    )


REQUIRED = {"required": True, "name": "api-5xx", "state": "Draft", "attempts": 1}
SIMULATION: dict[str, Any] = {"simulation": {"mode": "rehearsal", "by": "alice"}}


def refusal(target: Incident, state: str | None) -> str:
    with pytest.raises(Refused) as raised:
        check_close(target, state)
    return str(raised.value)


@pytest.mark.parametrize("state", ["Draft", "InReview"])
def test_required_and_not_published_is_refused_with_how_to_publish(state: str) -> None:
    message = refusal(incident(link={**REQUIRED, "state": state}), state)
    assert message.startswith(f'incident "api-5xx" cannot be closed: its postmortem "api-5xx" is {state}')
    assert PUBLISH in message
    assert "kubectl edit pm api-5xx -n prod" in message
    assert "kubectl incident postmortem api-5xx" in message


def test_published_is_allowed() -> None:
    check_close(incident(link={**REQUIRED, "state": "Published"}), "Published")
    # the document's own state decides, not the mirror (which may lag)
    check_close(incident(link={**REQUIRED, "state": "InReview"}), "Published")


def test_not_required_is_allowed_whatever_the_document() -> None:
    target = incident(severity="SEV3", link={"required": False})
    assert required_postmortem(target) is None
    check_close(target, None)
    check_close(target, "Draft")
    # required: false from the operator wins even over a SEV1 (its severities may be configured otherwise)
    check_close(incident(severity="SEV1", link={"required": False}), None)


def test_without_status_postmortem_a_resolved_sev1_or_sev2_needs_one() -> None:
    target = incident(severity="SEV1")
    assert target.status.postmortem is None
    assert required_postmortem(target) == "api-5xx"
    message = refusal(target, None)
    assert message == 'incident "api-5xx" cannot be closed: its postmortem is required (SEV1) and is not written yet'
    assert PUBLISH in refusal(target, "Draft")
    assert required_postmortem(incident(severity="SEV2")) == "api-5xx"
    check_close(incident(severity="SEV2"), "Published")


@pytest.mark.parametrize(
    "target",
    [
        incident(severity="SEV3"),  # not a severity that needs one
        incident(severity="SEV1", **SIMULATION),  # simulations never do
        incident(state="Closed", severity="SEV1"),  # only a Resolved incident is judged without status
    ],
)
def test_without_status_postmortem_others_need_none(target: Incident) -> None:
    assert required_postmortem(target) is None
    check_close(target, None)


def test_the_postmortem_status_names_is_the_one_checked() -> None:
    target = incident(link={**REQUIRED, "name": "api-5xx-review"})
    assert required_postmortem(target) == "api-5xx-review"
    assert 'its postmortem "api-5xx-review" is Draft' in refusal(target, "Draft")


def test_a_missing_document_says_what_status_knows() -> None:
    writing = refusal(incident(link={**REQUIRED, "state": "Writing"}), None)
    assert writing.endswith("is still being written; try again in a minute")
    failed = refusal(incident(link={**REQUIRED, "state": None, "attempts": 3, "message": "apiserver said 500"}), None)
    assert "could not be written (apiserver said 500)" in failed
    assert "write Postmortem api-5xx yourself" in failed
    deleted = refusal(incident(link={**REQUIRED, "state": "Deleted"}), None)
    assert "api-5xx was deleted; recreate it and publish it" in deleted


def test_publish_hint_without_a_namespace() -> None:
    assert publish_hint("x") == (
        'kubectl patch pm x --type merge -p \'{"spec":{"state":"Published"}}\' (or kubectl edit pm x)'
    )


def test_postmortem_name_is_status_s_else_the_name_given() -> None:
    assert postmortem_name(None, "given") == "given"
    assert postmortem_name(incident(), "api-5xx") == "api-5xx"
    assert postmortem_name(incident(link={"required": True, "name": "other"}), "api-5xx") == "other"
    assert postmortem_name(incident(link={"required": True}), "api-5xx") == "api-5xx"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            incident(state="Investigating", severity="SEV2"),
            'incident "api-5xx" has no postmortem yet: it is not resolved (Investigating). The operator writes one at '
            "resolution when the severity is one of INCIDENTOPS_POSTMORTEM_SEVERITIES (SEV1 and SEV2 by default); it "
            "is SEV2 now",
        ),
        (
            incident(severity="SEV4", link={"required": False}),
            'incident "api-5xx" needs no postmortem: its severity SEV4 is not one that requires one '
            "(INCIDENTOPS_POSTMORTEM_SEVERITIES, SEV1 and SEV2 by default)",
        ),
        (
            incident(link={**REQUIRED, "state": "Writing", "attempts": 2, "message": "timeout"}),
            'the postmortem of incident "api-5xx" is still being written (attempt 2; the last attempt failed: '
            "timeout); try again in a minute",
        ),
        (
            incident(link={**REQUIRED, "state": None, "attempts": 3, "message": "forbidden"}),
            'the postmortem of incident "api-5xx" could not be written after 3 attempts: forbidden (see kubectl '
            "incident timeline api-5xx; a Postmortem named api-5xx written by hand is used instead)",
        ),
        (
            incident(link={**REQUIRED, "state": "Deleted"}),
            'the postmortem "api-5xx" of incident "api-5xx" was deleted',
        ),
        (
            incident(link={**REQUIRED, "state": "InReview"}),
            'the postmortem "api-5xx" of incident "api-5xx" (InReview) was not found: deleted?',
        ),
        (
            incident(link={"required": True}),
            'the postmortem of incident "api-5xx" is required (SEV1) and not written yet',
        ),
        (
            incident(),
            'incident "api-5xx" has no postmortem yet: it is Resolved but the operator has not taken it up (is the '
            "operator running and watching this namespace?)",
        ),
        (
            incident(severity="SEV1", link={"required": False}, **SIMULATION),
            'incident "api-5xx" is a simulation: simulations get no postmortem',
        ),
    ],
)
def test_why_there_is_no_postmortem(target: Incident, expected: str) -> None:
    assert why_none(target) == expected


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["postmortem", "x", "-o", "html"], "'html' is not one of"),
        (["postmortem"], "Missing argument 'NAME'"),
        (["close"], "Missing argument 'NAME'"),
        (["close", "x", "--timeout", "soon"], "invalid duration"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert complaint in result.output
