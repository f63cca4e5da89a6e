"""The OpenAPI document of the ingestion endpoints, generated from the models that read them.

Served at /openapi.json; the fuzz suite (schemathesis) generates bodies from it, and the
answers the endpoints give are built from the response models below, so the document cannot
drift from what the code does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from incidentops.ingest.payloads import AlertmanagerWebhook, Event, EventBatch

ALERTMANAGER_PATH = "/api/v1/alertmanager"
EVENTS_PATH = "/api/v1/events"


class IncidentRef(BaseModel):
    """An Incident the request opened or updated."""

    namespace: str
    name: str
    created: bool = Field(description="Whether this request opened it.")


class Accepted(BaseModel):
    """Every readable alert is persisted: it opened or joined an Incident (or resolved an alert)."""

    alerts: int = Field(description="Alerts read from the body.")
    incidents: list[IncidentRef]
    warnings: list[str] = Field(default=[], description="Fields that could not be read and were ignored.")
    rejected: list[str] = Field(default=[], description="Entries of the body that could not be read at all.")


class Problem(BaseModel):
    """Why the request was refused."""

    error: str = Field(description="A stable reason code: unauthorized, too_large, invalid_json, unreadable, ...")
    message: str


def _responses(ok: str) -> dict[str, Any]:
    def problem(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": _ref("Problem")}}}

    return {
        "200": {"description": ok, "content": {"application/json": {"schema": _ref("Accepted")}}},
        "400": problem(
            "The body cannot be read at all (not JSON, not an object, no alerts); the message names the field."
        ),
        "401": problem("Missing or wrong bearer token."),
        "413": problem("The body is larger than INCIDENTOPS_MAX_BODY_BYTES."),
        "503": problem("The Kubernetes API cannot be reached; retry."),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(summary: str, body: dict[str, Any], ok: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": _responses(ok),
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document for the two webhook endpoints."""
    models: list[tuple[type[BaseModel], Any]] = [
        (AlertmanagerWebhook, "validation"),
        (Event, "validation"),
        (EventBatch, "validation"),
        (Accepted, "serialization"),
        (Problem, "serialization"),
    ]
    _, schemas = models_json_schema(models, by_alias=True, ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "incidentops ingestion",
            "version": "v1",
            "description": "Alerts in: Alertmanager's webhook (version 4) and a generic event for any other source.",
        },
        "paths": {
            ALERTMANAGER_PATH: {
                "post": _operation(
                    "An Alertmanager notification (webhook_configs, version 4)",
                    _ref("AlertmanagerWebhook"),
                    "Every readable alert opened, joined or resolved an Incident.",
                )
            },
            EVENTS_PATH: {
                "post": _operation(
                    "One generic event, or several as {events: [...]}",
                    {"oneOf": [_ref("Event"), _ref("EventBatch")]},
                    "Every readable event opened, joined or resolved an Incident.",
                )
            },
        },
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
