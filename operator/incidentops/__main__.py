"""`python -m incidentops`: Kopf and the HTTP server (webhooks, /healthz, /readyz, /metrics) in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from incidentops import allocator, logs, registry
from incidentops import config as config_module
from incidentops.deadlines import Deadlines
from incidentops.detection.service import Evaluator
from incidentops.handlers import readiness
from incidentops.handlers.deps import Deps, utc_now
from incidentops.handlers.http import Readiness, TokenSource, build_app, refresh_token, serve
from incidentops.handlers.operator import run_operator
from incidentops.incidents.feed import IncidentFeed
from incidentops.incidents.scheduler import IncidentScheduler
from incidentops.incidents.turn import Turns
from incidentops.ingest.episodes import EpisodeIndex
from incidentops.ingest.service import Ingestor
from incidentops.kube import AsyncKube, KubeClient, KubeError, load_api_client
from incidentops.lifecycle.concern import move
from incidentops.llm import CallBudget, Llm
from incidentops.prometheus import Prometheus
from incidentops.readiness.rechecks import Rechecks
from incidentops.redaction import origin

log = logging.getLogger("incidentops")


async def run(config: config_module.Config) -> None:
    allocator.limit_arenas()
    try:
        api_client = load_api_client(pool=config.kube_workers * 2)
    except Exception as error:  # the client raises its own ConfigException (and OSError for unreadable files)
        raise StartError(
            f"no Kubernetes connection could be configured: {str(error).rstrip('.')}. Set KUBECONFIG to a "
            "kubeconfig file (or ~/.kube/config), or run the operator in a pod with a ServiceAccount"
        ) from None
    kube = AsyncKube(KubeClient(api_client), workers=config.kube_workers)
    prometheus = await prometheus_of(config, kube)
    model = await llm_of(config, kube)
    deadlines = Deadlines(utc_now, concurrency=16)
    turns = Turns(kube, utc_now, mover=move)
    concerns = registry.concerns(kube, config, utc_now, prometheus, model)
    episodes = EpisodeIndex(config.namespaces)
    scheduler = IncidentScheduler(turns, concerns, deadlines, utc_now, [episodes])
    ingestor = Ingestor(kube, config, utc_now, turns, episodes)
    deps = Deps(config=config, kube=kube, ingestor=ingestor, deadlines=deadlines, scheduler=scheduler)
    deps.evaluator = Evaluator(kube, ingestor, config, utc_now, prometheus, deadlines, turns)
    if not config.remediation:
        log.warning("remediation is OFF (INCIDENTOPS_REMEDIATION=false): runbooks are never run")
    if not config.escalation:
        log.warning("escalation is OFF (INCIDENTOPS_ESCALATION=false): nobody is paged")
    tokens = TokenSource(config.webhook_token, config.webhook_token_secret)
    if config.webhook_auth == "none":
        log.warning(
            "webhook authentication is OFF (INCIDENTOPS_WEBHOOK_AUTH=none): "
            "anyone who can reach the port can open incidents"
        )
    kopf_ready, stop, listed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    background: list[asyncio.Task[None]] = []
    if config.webhook_token_secret:
        background.append(asyncio.create_task(refresh_token(deps, tokens)))
    background.append(asyncio.create_task(IncidentFeed(kube, scheduler, config.namespaces).run(listed)))
    background.append(asyncio.create_task(trim_after(listed)))
    background.append(asyncio.create_task(allocator.trim_periodically()))
    rechecks = Rechecks(kube, readiness.checked(deps), deadlines, utc_now, config.namespaces)
    deadlines.start()
    app = build_app(deps, tokens, Readiness(deps, kopf_ready.is_set, listed.is_set, token_pending=tokens.pending))
    try:
        runner = await serve(app, config.http_host, config.http_port)
    except OSError as error:
        kube.close()
        raise StartError(
            f"cannot listen on {config.http_host}:{config.http_port} ({error.strerror or error}); "
            "set INCIDENTOPS_HTTP_PORT to a free port (and INCIDENTOPS_HTTP_HOST to choose the interface)"
        ) from None
    scope = ", ".join(config.namespaces) if config.namespaces else "all namespaces"
    log.info(
        "incidentops starting: watching %s; incidents without a watched namespace go to %s",
        scope,
        config.home_namespace,
    )
    background.append(asyncio.create_task(rechecks.start_when(kopf_ready)))
    try:
        await run_operator(deps, kopf_ready, stop)
    finally:
        for task in background:
            task.cancel()
        await deadlines.stop()
        for concern in concerns:
            closing = getattr(concern, "close", None)
            if closing is not None:
                await closing()
        await runner.cleanup()
        kube.close()
        log.info("incidentops stopped")


async def prometheus_of(config: config_module.Config, kube: AsyncKube) -> Prometheus | None:
    """The Prometheus that verify queries and promql-check steps ask, if one is configured."""
    if not config.prometheus_url:
        log.warning(
            "no Prometheus configured (INCIDENTOPS_PROMETHEUS_URL): DetectionRules cannot be evaluated "
            "and runbook verification fails"
        )
        return None
    token = config.prometheus_token or None
    if config.prometheus_token_secret:
        namespace, name, key = config.prometheus_token_secret.split("/")
        try:
            token = await kube.secret_value(namespace, name, key)
        except KubeError as error:
            log.error("cannot read the Prometheus token from Secret %s/%s: %s", namespace, name, error)
    return Prometheus(config.prometheus_url, token=token, timeout=config.seconds("prometheus_timeout"))


async def trim_after(listed: asyncio.Event) -> None:
    """The start-up listing is the largest burst of allocations: give its pages back at once."""
    await listed.wait()
    allocator.trim()


async def llm_of(config: config_module.Config, kube: AsyncKube) -> Llm | None:
    """The language model triage may ask, when one is configured (a key, and INCIDENTOPS_LLM not off)."""
    if config.llm == "off":
        log.info("triage by a language model is off (INCIDENTOPS_LLM=off): rules triage only")
        return None
    key = os.environ.get("ANTHROPIC_API_KEY") or None
    if config.llm_api_key_secret:
        namespace, name, item = config.llm_api_key_secret.split("/")
        try:
            key = await kube.secret_value(namespace, name, item) or key
        except KubeError as error:
            log.error(
                "cannot read the Anthropic API key from Secret %s/%s: %s; rules triage only", namespace, name, error
            )
            return None
    if not key:
        log.info("no Anthropic API key (INCIDENTOPS_LLM_API_KEY_SECRET or ANTHROPIC_API_KEY): rules triage only")
        return None
    where = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    log.info(
        "triage asks %s at %s (at most %d calls an hour, %d tool calls and %d tokens an investigation, %s each)",
        config.llm_model, origin(where), config.llm_calls_per_hour, config.llm_max_tool_calls,
        config.llm_token_budget, config.llm_timeout,
    )  # fmt: skip
    model = Llm(
        api_key=key,
        model=config.llm_model,
        max_tokens=config.llm_max_tokens,
        budget=CallBudget(config.llm_calls_per_hour),
    )
    await model.load()
    return model


class StartError(Exception):
    """The operator cannot start; the message says why and what to change."""


def main() -> None:
    try:
        config = config_module.load()
    except config_module.ConfigError as error:
        print(f"incidentops: {error}", file=sys.stderr)
        sys.exit(2)
    logs.setup(config.log_format, config.log_level)
    for warning in config_module.unknown_settings():
        log.warning("%s", warning)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(config))
    except StartError as error:
        log.error("%s", error)
        sys.exit(2)


if __name__ == "__main__":
    main()
