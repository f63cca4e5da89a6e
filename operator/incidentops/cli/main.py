"""`kubectl incident`: the click commands. Parsing and printing only; logic lives next door.

kubectl runs the `kubectl-incident` executable with the arguments after `incident`, so the
connection flags (--kubeconfig, --context, -n) are accepted both before and after the verb.
Expected failures print one `error: ...` line on stderr and exit 1; usage errors exit 2.

Its size is the plugin's surface: one click command per verb, each a few lines of options and
help text that `kubectl incident --help` shows; splitting them would scatter that help.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from pydantic import ValidationError
from rich.text import Text

from incidentops.api.v1alpha1.common import Severity, format_time, located, parse_duration, parse_time, severity_aliases
from incidentops.api.v1alpha1.escalationpolicy import EscalationPolicySpec
from incidentops.api.v1alpha1.incident import EscalationRequest, IncidentState
from incidentops.api.v1alpha1.postmortem import PostmortemSpec
from incidentops.api.v1alpha1.resources import DETECTION_RULE, ESCALATION_POLICY, INCIDENT, POSTMORTEM, RUNBOOK
from incidentops.cli import format as fmt
from incidentops.cli.actions import (
    Incident,
    Refused,
    acknowledgement_patch,
    acknowledgement_recorded,
    check_acknowledge,
    check_escalate,
    check_note,
    check_open,
    check_resolve,
    check_severity,
    check_state,
    escalation_outcome,
    note_patch,
    resolution_patch,
    resolution_recorded,
    severity_patch,
    state_patch,
    state_recorded,
    still_firing,
    write_intent,
)
from incidentops.cli.oncall import next_shifts, oncall_rows
from incidentops.cli.postmortems import check_close, postmortem_name, required_postmortem, why_none
from incidentops.cli.remediation import approval_patch, candidates, check_mitigate, steps_to_approve, would_change
from incidentops.cli.selection import (
    IncidentSummary,
    SelectionError,
    parse_severities,
    parse_states,
    select,
    severity_notes,
)
from incidentops.cli.session import ApiClient, Session, SessionError, explain
from incidentops.cli.stats import compute, stats_json, stats_table
from incidentops.kube import KubeError, NotFound
from incidentops.postmortem.markdown import render

F = TypeVar("F", bound=Callable[..., Any])
WAIT_INTERVAL = 0.5
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Fail(click.ClickException):
    """An expected failure: one kubectl-style line on stderr, exit code 1, no traceback."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.message}", err=True, file=file)


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """A duration like kubectl's --timeout: "30s", "2m", "1m30s", or plain seconds."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_duration(value).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


def _now() -> datetime:
    return datetime.now(UTC)


def _console() -> Any:
    """Markup off: incident titles and alert text are untrusted and may contain [brackets]."""
    from rich.console import Console  # noqa: PLC0415 - loaded when there is something to print

    return Console(markup=False, highlight=False, emoji=False, soft_wrap=True)


def _print(text: Text) -> None:
    _console().print(text, end="")


def _set_connection(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Store a connection flag; given after the verb it overrides the same flag before it."""
    if value is not None and param.name:
        setattr(ctx.ensure_object(Session), param.name, value)


def connection_options(command: F) -> F:
    """--kubeconfig, --context and -n/--namespace, as kubectl spells them."""
    for option in reversed(
        (
            click.option(
                "--kubeconfig",
                metavar="PATH",
                expose_value=False,
                callback=_set_connection,
                help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
            ),
            click.option(
                "--context",
                metavar="NAME",
                expose_value=False,
                callback=_set_connection,
                help="Kubeconfig context to use (default: the current context).",
            ),
            click.option(
                "-n",
                "--namespace",
                metavar="NS",
                expose_value=False,
                callback=_set_connection,
                help="Namespace (default: the context's namespace, else 'default').",
            ),
        )
    ):
        command = option(command)
    return command


def handle_errors(command: F) -> F:
    """Turn the failures we expect (config, connection, API refusals) into `error: ...` lines."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = click.get_current_context().ensure_object(Session)
        try:
            return command(*args, **kwargs)
        except (SessionError, Refused) as error:
            raise Fail(str(error)) from None
        except KubeError as error:
            try:
                message = explain(error, session)
            except SessionError as config_error:
                message = str(config_error)
            raise Fail(message) from None

    return wrapper  # type: ignore[return-value]


def _elsewhere(name: str) -> list[str]:
    """Namespaces that hold an incident of that name, to point a responder at the right one."""
    session = click.get_current_context().ensure_object(Session)
    try:
        found = session.client().list(INCIDENT, None, field_selector=f"metadata.name={name}")
    except KubeError:  # no right to list cluster-wide: just say it is not here
        return []
    return sorted({str(o["metadata"]["namespace"]) for o in found})


@contextmanager
def about_incident(name: str, namespace: str) -> Iterator[None]:
    """Name the incident in NotFound and in validation errors; a missing CRD keeps its own message."""
    try:
        yield
    except NotFound as error:
        if "could not find the requested resource" in str(error):
            raise
        message = f'incident "{name}" not found in namespace "{namespace}"'
        others = _elsewhere(name)
        if others:
            message += f"; it exists in namespace {', '.join(others)} (use -n {others[0]})"
        raise Fail(message) from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Fail(f'incident "{name}": invalid value for {where}: {first["msg"]}') from None


def _fetch(session: Session, namespace: str, name: str) -> Incident:
    with about_incident(name, namespace):
        return Incident.of(session.client().get(INCIDENT, namespace, name))


def _wait_for(
    session: Session,
    namespace: str,
    name: str,
    done: Callable[[Incident], bool],
    timeout: float,
    what: str,
) -> Incident:
    """Poll until the operator reflects the intent in status; spec is already written either way."""
    deadline = time.monotonic() + timeout
    while True:
        incident = _fetch(session, namespace, name)
        if done(incident):
            return incident
        if time.monotonic() >= deadline:
            raise Fail(
                f'timed out after {timeout:g}s waiting for the operator to record the {what} of "{name}" '
                "(the request is saved in spec; is the operator running and watching this namespace?)"
            )
        time.sleep(WAIT_INTERVAL)


def _parse_filter(parse: Callable[[tuple[str, ...]], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Any:
        try:
            return parse(value)
        except SelectionError as error:
            raise click.BadParameter(str(error), ctx=ctx, param=param) from None

    return callback


def _severity_filter(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> frozenset[Severity]:
    try:
        chosen = parse_severities(value)
    except SelectionError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None
    for note in severity_notes(value):
        click.echo(f"({note})", err=True)
    return chosen


WAIT_OPTION = click.option("--wait/--no-wait", default=False, help="Wait until the operator has recorded it in status.")
TIMEOUT_OPTION = click.option(
    "--timeout",
    default="30s",
    callback=_duration,
    metavar="DURATION",
    show_default=True,
    help="How long --wait waits (e.g. 30s, 2m).",
)
BY_OPTION = click.option(
    "--by",
    metavar="WHO",
    help="Who is acting (default: you, as the API server knows you: `kubectl auth whoami`). "
    "With the chart's admission policy any other name is refused.",
)


@click.group(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Work with incidentops Incidents: list, describe, acknowledge, update, resolve, close; postmortems, stats.

    Every verb that acts writes only the Incident's spec (the same as `kubectl patch`); the
    operator records it in status, the timeline and an Event, and computes the metrics.
    """
    ctx.ensure_object(Session)


@cli.command("list", context_settings=CONTEXT_SETTINGS)
@connection_options
@click.option("-A", "--all-namespaces", is_flag=True, help="List incidents in every namespace.")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    callback=_parse_filter(parse_states),
    help=(
        "Only these states (repeatable or comma-separated, case-insensitive): "
        + ", ".join(IncidentState)
        + ", or 'open' for all unresolved."
    ),
)
@click.option(
    "--severity",
    "severities",
    multiple=True,
    metavar="SEV",
    callback=_severity_filter,
    help=f"Only these severities (repeatable or comma-separated): {', '.join(Severity)} or an alias of the "
    f"severity table ({severity_aliases()}; INCIDENTOPS_SEVERITY_MAP adds to it).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "csv"], case_sensitive=False),
    default="table",
    show_default=True,
    help="table for people; json is an array of summaries (namespace, name, severity, state, service, "
    "alerts, age, created, title) for scripts, use `kubectl get incidents -o json` for full objects; "
    "csv has the same fields with a header row.",
)
@handle_errors
def list_incidents(
    all_namespaces: bool,
    states: frozenset[IncidentState],
    severities: frozenset[Severity],
    output: str,
) -> None:
    """List incidents: most severe first, then youngest first."""
    session = click.get_current_context().ensure_object(Session)
    namespace = None if all_namespaces else session.resolved_namespace()
    objects = session.client().list(INCIDENT, namespace)
    now = _now()
    incidents = select([IncidentSummary.of(o) for o in objects], severities=severities, states=states)
    output = output.lower()
    if output == "json":
        click.echo(fmt.list_json(incidents, now))
    elif output == "csv":
        click.echo(fmt.list_csv(incidents, now), nl=False)
    elif not incidents:
        where = f' in namespace "{namespace}"' if namespace else ""
        filtered = " matching the filters" if (states or severities) and objects else ""
        click.echo(f"No incidents found{where}{filtered}.", err=True)
    else:
        _print(fmt.list_table(incidents, now, all_namespaces=all_namespaces))


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@handle_errors
def describe(name: str) -> None:
    """Show one incident: people, times, metrics, alerts, timeline."""
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    incident = _fetch(session, namespace, name)
    _print(fmt.describe(incident.meta, incident.spec, incident.status, _now(), has_status=incident.has_status))


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@handle_errors
def timeline(name: str) -> None:
    """Print an incident's timeline (time, type, actor, message)."""
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    incident = _fetch(session, namespace, name)
    if not incident.status.timeline:
        click.echo(f'No timeline entries for incident "{name}" yet.', err=True)
        return
    _print(fmt.timeline_table(incident.status))


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@BY_OPTION
@WAIT_OPTION
@TIMEOUT_OPTION
@handle_errors
def ack(name: str, by: str | None, wait: bool, timeout: float) -> None:
    """Acknowledge an incident (take it; stops escalation).

    Refused (exit 1) when it is already acknowledged, Resolved or Closed.
    """
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    who = by or session.default_actor()
    now = _now()
    with about_incident(name, namespace):
        patch = acknowledgement_patch(who, now)
        write_intent(session.client(), namespace, name, lambda i: check_acknowledge(i, now), patch)
    click.echo(f'incident "{name}" acknowledged by {who}')
    if wait:
        done = _wait_for(session, namespace, name, acknowledgement_recorded, timeout, "acknowledgement")
        took = fmt.format_duration(done.status.metrics.time_to_acknowledge_seconds)
        click.echo(f"recorded by the operator: state {done.status.state}, time to acknowledge {took}")


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.option("--summary", required=True, help="What happened and what fixed it (for the timeline and postmortem).")
@click.option("--root-cause", default="", help="The root cause, if known.")
@BY_OPTION
@WAIT_OPTION
@TIMEOUT_OPTION
@handle_errors
def resolve(name: str, summary: str, root_cause: str, by: str | None, wait: bool, timeout: float) -> None:
    """Resolve an incident with a summary and root cause.

    Refused (exit 1) when a person already resolved it or it is Closed. An incident the
    operator auto-resolved (its alerts cleared) can still be resolved: that records the summary.
    """
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    who = by or session.default_actor()
    with about_incident(name, namespace):
        patch = resolution_patch(who, _now(), summary, root_cause)
        written = write_intent(session.client(), namespace, name, check_resolve, patch)
    click.echo(f'incident "{name}" resolved by {who}')
    firing = still_firing(written)
    if firing:
        click.echo(
            f"warning: {firing} alert{'s are' if firing != 1 else ' is'} still firing; resolved anyway. "
            "If it keeps firing after the correlation window, the next delivery opens a new episode.",
            err=True,
        )
    if wait:
        done = _wait_for(session, namespace, name, lambda i: resolution_recorded(i, who), timeout, "resolution")
        took = fmt.format_duration(done.status.metrics.time_to_resolve_seconds)
        click.echo(f"recorded by the operator: state {done.status.state}, time to resolve {took}")


LIFECYCLE_STATES = ("investigating", "identified", "mitigating", "monitoring")


def _change_state(
    name: str,
    target: IncidentState,
    by: str | None,
    wait: bool,
    timeout: float,
    precheck: Callable[[Incident], None] | None = None,
) -> None:
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    who = by or session.default_actor()
    with about_incident(name, namespace):
        write_intent(
            session.client(),
            namespace,
            name,
            precheck or (lambda i: check_state(i, target)),
            state_patch(target, who, _now()),
        )
    click.echo(f'incident "{name}" moved to {target} by {who}')
    if wait:
        _wait_for(session, namespace, name, lambda i: state_recorded(i, target), timeout, f"move to {target}")
        click.echo(f"recorded by the operator: state {target}")


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.option(
    "--state",
    required=True,
    type=click.Choice(LIFECYCLE_STATES, case_sensitive=False),
    help="The lifecycle state to move to.",
)
@BY_OPTION
@WAIT_OPTION
@TIMEOUT_OPTION
@handle_errors
def update(name: str, state: str, by: str | None, wait: bool, timeout: float) -> None:
    """Move an incident along its lifecycle: investigating, identified, mitigating, monitoring.

    Refused (exit 1) when the lifecycle does not allow the move from the current state.
    """
    _change_state(name, IncidentState(state.capitalize()), by, wait, timeout)


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@BY_OPTION
@WAIT_OPTION
@TIMEOUT_OPTION
@handle_errors
def close(name: str, by: str | None, wait: bool, timeout: float) -> None:
    """Close a resolved incident (after its review); nothing about it changes afterwards.

    Refused (exit 1) while the postmortem it needs (SEV1 and SEV2 by default) is not Published.
    """
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()

    def precheck(incident: Incident) -> None:
        check_state(incident, IncidentState.CLOSED)
        wanted = required_postmortem(incident)
        if wanted is not None:
            check_close(incident, _postmortem_state(session.client(), namespace, wanted))

    _change_state(name, IncidentState.CLOSED, by, wait, timeout, precheck)


def _postmortem_state(client: ApiClient, namespace: str, name: str) -> str | None:
    """The Postmortem's spec.state, or None when there is none (nor, on an old install, the kind)."""
    try:
        found = client.get(POSTMORTEM, namespace, name)
    except NotFound:
        return None
    return str((found.get("spec") or {}).get("state") or "Draft")


POSTMORTEM_KIND_MISSING = (
    'the server doesn\'t have a resource type "postmortems": is the incidentops CRD installed (kubectl apply -f crds/)?'
)


def _kind_missing(error: NotFound) -> bool:
    return "could not find the requested resource" in str(error)


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["md", "json"], case_sensitive=False),
    default="md",
    show_default=True,
    help="md: Markdown to paste into a wiki; json: the whole Postmortem object.",
)
@handle_errors
def postmortem(name: str, output: str) -> None:
    """Print an incident's postmortem as Markdown for the wiki (NAME: the incident or the Postmortem).

    Exit 1, saying why, when there is none: not required for its severity, not resolved yet,
    still being written, or failed. Edit it with kubectl edit pm NAME.
    """
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    client = session.client()
    incident: Incident | None = None
    try:
        found = client.get(INCIDENT, namespace, name)
    except NotFound as error:
        if _kind_missing(error):
            raise
    else:
        with about_incident(name, namespace):
            incident = Incident.of(found)
    target = postmortem_name(incident, name)
    try:
        document = client.get(POSTMORTEM, namespace, target)
    except NotFound as error:
        if _kind_missing(error):
            raise Fail(POSTMORTEM_KIND_MISSING) from None
        if incident is not None:
            raise Fail(why_none(incident)) from None
        message = f'no incident or postmortem "{name}" in namespace "{namespace}"'
        others = _elsewhere(name)
        if others:
            message += f"; an incident of that name is in namespace {', '.join(others)} (use -n {others[0]})"
        raise Fail(message) from None
    if output.lower() == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    known = {field.alias or key for key, field in PostmortemSpec.model_fields.items()} | set(
        PostmortemSpec.model_fields
    )
    raw = {k: v for k, v in (document.get("spec") or {}).items() if k in known}  # a newer CRD's fields: ignored
    try:
        spec = PostmortemSpec.model_validate(raw)
    except ValidationError as error:
        raise Fail(f'postmortem "{target}" is invalid: {located(error)} (see it whole with -o json)') from None
    click.echo(render(document.get("metadata") or {}, spec), nl=False)


def _window(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--since: a duration like 24h, 7d or 30d; checked here, kept as written for the heading."""
    try:
        length = parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None
    if length <= timedelta(0):
        raise click.BadParameter("the window must be longer than 0s", ctx=ctx, param=param)
    return value


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.option(
    "--since",
    default="7d",
    show_default=True,
    metavar="DURATION",
    callback=_window,
    help="Count incidents detected within this long before now (24h, 7d, 30d, ...).",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Count incidents in every namespace.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"], case_sensitive=False),
    default="table",
    show_default=True,
    help="table for people; json is one object with every figure (seconds, counts and rates), for scripts.",
)
@handle_errors
def stats(since: str, all_namespaces: bool, output: str) -> None:
    """Response figures over a window: counts, MTTA/MTTM/MTTR, escalation, auto-remediation, postmortems.

    Incidents detected within --since, by severity and category (triage's, else spec's); mean and
    median times to acknowledge, mitigate and resolve per severity; the share escalated to level 2
    or higher, the share remediated by automatic steps, postmortems Published of those required,
    and the postmortems' open action items. Simulations are left out, and counted as such.
    """
    session = click.get_current_context().ensure_object(Session)
    namespace = None if all_namespaces else session.resolved_namespace()
    client = session.client()
    incidents = client.list(INCIDENT, namespace)
    try:
        postmortems = client.list(POSTMORTEM, namespace)
    except NotFound as error:
        if not _kind_missing(error):
            raise
        postmortems = []  # an install without the Postmortem CRD: no postmortems to count
    figures = compute(incidents, postmortems, _now(), parse_duration(since))
    if output.lower() == "json":
        click.echo(stats_json(figures, namespace))
    else:
        _print(stats_table(figures, namespace, since))


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.argument("user")
@handle_errors
def assign(name: str, user: str) -> None:
    """Assign an incident to USER (recorded in the timeline); "" unassigns it."""
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    if len(user) > 253:
        raise click.BadParameter("at most 253 characters", param_hint="USER")
    with about_incident(name, namespace):
        write_intent(session.client(), namespace, name, check_open, {"spec": {"assignee": user or None}})
    click.echo(f'incident "{name}" assigned to {user}' if user else f'incident "{name}" unassigned')


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.argument("text")
@BY_OPTION
@handle_errors
def note(name: str, text: str, by: str | None) -> None:
    """Add a note to an incident's timeline (what you tried, what you saw)."""
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    who = by or session.default_actor()
    if not text.strip() or len(text) > 1024:
        raise click.BadParameter("a note has 1 to 1024 characters", param_hint="TEXT")
    now = _now()
    with about_incident(name, namespace):
        write_intent(session.client(), namespace, name, check_note, lambda i: note_patch(i, who, now, text))
    click.echo(f'note added to incident "{name}"')


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.argument("level", metavar="SEVERITY")
@BY_OPTION
@handle_errors
def severity(name: str, level: str, by: str | None) -> None:
    """Set an incident's severity (SEV1..SEV5 or an alias such as p1, critical); alerts no longer change it."""
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    try:
        [chosen] = parse_severities([level])
    except (SelectionError, ValueError) as error:
        raise click.BadParameter(str(error) or "one severity", param_hint="SEVERITY") from None
    with about_incident(name, namespace):
        write_intent(
            session.client(),
            namespace,
            name,
            lambda i: check_severity(i, chosen),
            severity_patch(chosen, by or session.default_actor(), _now()),
        )
    click.echo(f'incident "{name}" severity set to {chosen}')


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.argument("steps", nargs=-1)
@BY_OPTION
@handle_errors
def approve(name: str, steps: tuple[str, ...], by: str | None) -> None:
    """Approve remediation STEPS of an incident's runbook (default: every step now awaiting approval).

    What each step would change is in `kubectl incident describe NAME` (the dry-run diff).
    """
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    who = by or session.default_actor()
    now = _now()
    approved: list[str] = []

    def patch(incident: Incident) -> dict[str, Any]:
        approved[:] = steps_to_approve(incident, steps, who)
        return approval_patch(incident, approved, who, now)

    with about_incident(name, namespace):
        write_intent(session.client(), namespace, name, check_open, patch)
    click.echo(f'incident "{name}": {", ".join(approved)} approved by {who}')


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.option("--runbook", "runbook", help="Run this Runbook (in the incident's namespace) for the incident.")
@click.option("--list", "show", is_flag=True, help="Show the runbooks that could run and what each would do.")
@handle_errors
def mitigate(name: str, runbook: str | None, show: bool) -> None:
    """Choose the runbook that remediates an incident (--runbook), or see the candidates (--list)."""
    if bool(runbook) == show:
        raise click.UsageError("give either --runbook NAME or --list")
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    client = session.client()
    with about_incident(name, namespace):
        incident = Incident.of(client.get(INCIDENT, namespace, name))
    if show:
        found = candidates(incident, client.list(RUNBOOK, namespace))
        if not found:
            click.echo(f"no runbooks in namespace {namespace}")
            return
        chosen = incident.status.remediation.runbook if incident.status.remediation else None
        dry_runs = session.full_client()
        for c in found:
            mark = "*" if c.name == chosen else " "
            fit = "matches" if c.fits else (c.problem or "does not match")
            mode = "automatic" if c.automatic else "approval"
            click.echo(f"{mark} {c.name}  ({fit}; {c.risk} risk, {mode})")
            for line in c.steps:
                click.echo(f"      {line}")
            if c.spec is not None:
                click.echo("    would change now (server-side dry run):")
                for line in would_change(dry_runs, incident, c.spec):
                    click.echo(f"      {line}")
        click.echo("(* the runbook chosen for the incident; run another with --runbook NAME)")
        return
    assert runbook is not None
    try:
        client.get(RUNBOOK, namespace, runbook)
    except NotFound:
        raise Fail(f'runbook "{runbook}" not found in namespace {namespace}') from None
    with about_incident(name, namespace):
        write_intent(
            client,
            namespace,
            name,
            lambda i: check_mitigate(i, runbook),
            {"spec": {"runbookRef": {"name": runbook}}},
        )
    click.echo(f'incident "{name}": runbook {runbook} requested; follow it with kubectl incident describe {name}')


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("name")
@click.option("--reason", default="", help="Why more help is needed (goes into the timeline).")
@BY_OPTION
@handle_errors
def escalate(name: str, reason: str, by: str | None) -> None:
    """Page the incident's next escalation level now, even if it was acknowledged."""
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    who = by or session.default_actor()
    if len(reason) > 1024:
        raise click.BadParameter("at most 1024 characters", param_hint="--reason")
    request = EscalationRequest(by=who, at=_now(), reason=reason)
    client = session.client()
    with about_incident(name, namespace):
        incident = write_intent(
            client, namespace, name, check_escalate, {"spec": {"escalationRequest": request.wire()}}
        )
    esc = incident.status.escalation
    level = (esc.level if esc else None) or 0
    policy = esc.policy if esc and esc.policy else ""
    levels = 0
    if policy:
        where, _, policy_name = policy.rpartition("/")
        try:
            found = client.get(ESCALATION_POLICY, where or namespace, policy_name)
            levels = len(EscalationPolicySpec.model_validate(found.get("spec") or {}).levels)
        except (KubeError, ValidationError):
            levels = 0
    click.echo(f'incident "{name}": escalation requested by {who}: {escalation_outcome(level, levels, policy or "?")}')


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("policy")
@click.option(
    "--at", "at_", metavar="TIME", help="Who is on call at another time: RFC 3339, or a duration from now (2h)."
)
@handle_errors
def oncall(policy: str, at_: str | None) -> None:
    """Show who each level of an EscalationPolicy reaches now (or --at TIME), and the next shifts."""
    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    at = _when_ahead(at_)
    try:
        obj = session.client().get(ESCALATION_POLICY, namespace, policy)
    except NotFound:
        raise Fail(f'escalationpolicy "{policy}" not found in namespace "{namespace}"') from None
    try:
        spec = EscalationPolicySpec.model_validate(obj.get("spec") or {})
    except ValidationError as error:
        raise Fail(f'escalationpolicy "{policy}" is invalid: {located(error)}') from None
    click.echo(f"On call for {namespace}/{policy} at {format_time(at)}:")
    _print(fmt.render_table(("LEVEL", "AFTER", "TARGET", "ON CALL", "UNTIL"), oncall_rows(spec, at)))
    shifts = next_shifts(spec, at)
    if shifts:
        click.echo("Next shifts:")
        _print(fmt.render_table(("SCHEDULE", "USER", "FROM", "UNTIL"), shifts))


def _when_ahead(text: str | None) -> datetime:
    if not text:
        return _now()
    try:
        return _now() + parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise click.BadParameter(
            "expected RFC 3339 (2026-01-05T09:00:00Z) or a duration (2h)", param_hint="--at"
        ) from None


@cli.command("test-rule", context_settings=CONTEXT_SETTINGS)
@connection_options
@click.argument("rule", metavar="FILE|NAME")
@click.option("--at", "at_", metavar="TIME", help="Evaluate at a past time: RFC 3339, or a duration ago (10m).")
@click.option(
    "--prometheus",
    envvar="INCIDENTOPS_PROMETHEUS_URL",
    metavar="URL",
    help="Prometheus to ask (default: $INCIDENTOPS_PROMETHEUS_URL); a token comes from $INCIDENTOPS_PROMETHEUS_TOKEN.",
)
@handle_errors
def test_rule(rule: str, at_: str | None, prometheus: str | None) -> None:
    """Evaluate a DetectionRule (a YAML file, or one in the cluster) on Prometheus now; opens nothing."""
    import os  # noqa: PLC0415

    from incidentops.cli.rules import parse_rule, rule_from_file, try_rule, when  # noqa: PLC0415 - loads Prometheus'
    from incidentops.prometheus import Prometheus  # noqa: PLC0415 - only this verb queries Prometheus

    if not prometheus:
        raise click.UsageError("no Prometheus: pass --prometheus URL or set INCIDENTOPS_PROMETHEUS_URL")
    session = click.get_current_context().ensure_object(Session)
    path = Path(rule)
    if path.exists():
        name, namespace, spec = rule_from_file(path)
        namespace = namespace or session.resolved_namespace()
    else:
        namespace, name = session.resolved_namespace(), rule
        try:
            obj = session.client().get(DETECTION_RULE, namespace, name)
        except NotFound:
            raise Fail(f'no file "{rule}" and no DetectionRule "{rule}" in namespace {namespace}') from None
        spec = parse_rule(obj.get("spec") or {})
    client = Prometheus(prometheus, token=os.environ.get("INCIDENTOPS_PROMETHEUS_TOKEN") or None)
    now = _now()
    for line in try_rule(name, namespace, spec, client, when(at_, now), now):
        click.echo(line)


@cli.command(context_settings=CONTEXT_SETTINGS)
@connection_options
@click.option("--service", required=True, help="The service the test incident is about.")
@click.option("--alert", "alert", default="SimulatedAlert", show_default=True, help="Its alert name.")
@click.option("--severity", "level", default="SEV3", show_default=True, help="SEV1..SEV5 or an alias.")
@click.option("--category", help="availability, performance, capacity, ...")
@click.option("--deployment", help="The Deployment it affects (runbook steps without a target act on it).")
@click.option("--runbook", help="A Runbook to run for it.")
@click.option("--policy", help="An EscalationPolicy to page with.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="An alert label (repeatable).")
@click.option("--live", is_flag=True, help="A live drill: runbooks act on the cluster and people are paged.")
@click.option("--yes", is_flag=True, help="With --live: yes, act and page for real.")
@BY_OPTION
@handle_errors
def simulate(
    service: str,
    alert: str,
    level: str,
    category: str | None,
    deployment: str | None,
    runbook: str | None,
    policy: str | None,
    labels: tuple[str, ...],
    live: bool,
    yes: bool,
    by: str | None,
) -> None:
    """Open a clearly labelled test incident, to see what the operator would do about it.

    By default a rehearsal: the operator chooses the runbook, runs its guards and server-side dry
    runs and decides who would be paged, and records it all (kubectl incident describe), but it
    changes nothing, pages nobody, and counts toward no guard, rate limit or metric. --live --yes
    opens a drill that acts and pages like a real incident, whose actions never hold a real
    incident back. Its title starts with [simulation] or [drill]; it carries the label
    incidentops.dev/simulation and spec.simulation.
    """
    from incidentops.cli.rules import live_warning, parse_labels, simulated_incident  # noqa: PLC0415

    session = click.get_current_context().ensure_object(Session)
    namespace = session.resolved_namespace()
    try:
        [severity] = parse_severities([level])
    except (SelectionError, ValueError) as error:
        raise click.BadParameter(str(error) or "one severity", param_hint="--severity") from None
    try:
        body = simulated_incident(
            namespace,
            service,
            alert,
            severity,
            parse_labels(labels),
            category=category,
            deployment=deployment,
            runbook=runbook,
            policy=policy,
            by=by or session.default_actor(),
            live=live,
        )
    except ValidationError as error:
        raise Fail(f"invalid simulation: {error.errors()[0]['msg']}") from None
    client = session.client()
    if live and not yes:
        for line in live_warning(Incident.of(body), client.list(RUNBOOK, namespace)):
            click.echo(line, err=True)
        raise Fail("a live drill acts and pages for real: run again with --live --yes to open it")
    created = client.create(INCIDENT, namespace, body)
    name = created["metadata"]["name"]
    what = "live drill: runbooks act, people are paged" if live else "rehearsal: nothing is changed or sent"
    click.echo(f'incident "{name}" opened ({what}); follow it with kubectl incident describe {name}')


def main() -> None:
    """Console-script entry point (`kubectl-incident`), named as kubectl users type it."""
    cli(prog_name="kubectl incident")
