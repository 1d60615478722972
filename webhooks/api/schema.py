"""The OpenAPI document's `webhooks` section (OpenAPI 3.1): one entry per event type of the catalogue,
describing the request Tessera sends — the event `{id, object, type, created, livemode, data}` (the
same object `/api/v1/events` lists), the Standard Webhooks
headers, and what the receiver should answer. A drf-spectacular post-processing hook
(SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"], the last one); the catalogue (webhooks.catalogue) is
the source.

`webhooks` exists from OpenAPI 3.1 on, so the hook also lifts drf-spectacular's 3.0 document to 3.1
(`nullable: true` becomes a `"null"` type). drf-spectacular can write 3.1 itself (OAS_VERSION), but
its 3.1 mode refuses some nullable fields the records API has (a nullable "any JSON" value)."""

from __future__ import annotations

from typing import Any

from webhooks import catalogue

HEADERS = [
    (
        "webhook-id",
        "The event's id (`evt_…`, as in the body and on `/api/v1/events`), the same on every retry: the "
        "idempotency key. Deliveries are at least once and their order is not guaranteed, so skip ids you have "
        "processed already.",
    ),
    ("webhook-timestamp", "When this attempt was signed (Unix seconds). Refuse old ones to stop replays."),
    (
        "webhook-signature",
        "Space-separated `v1,<base64 HMAC-SHA256>` signatures of `{webhook-id}.{webhook-timestamp}.{body}`, one "
        "per valid signing secret (two while a rotation's overlap lasts); any one that verifies is enough.",
    ),
    ("Tessera-Event-Version", f"The envelope's version (now `{catalogue.ENVELOPE_VERSION}`)."),
]


def _schema_of(value: Any) -> dict:
    """A JSON Schema that the example value fits (the shape partners can rely on)."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array", "items": _schema_of(value[0]) if value else {}}
    if isinstance(value, dict):
        return {
            "type": "object",
            "properties": {k: _schema_of(v) for k, v in value.items()},
            "additionalProperties": True,
        }
    return {}


_NOT_SCHEMAS = frozenset({"example", "examples", "default", "enum", "const"})


def _nullable_to_31(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` as OpenAPI 3.1 (JSON Schema 2020-12) says it, everywhere."""
    if isinstance(node, list):
        return [_nullable_to_31(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: (v if k in _NOT_SCHEMAS else _nullable_to_31(v)) for k, v in node.items()}
    if "nullable" not in node:
        return node
    if not node.pop("nullable"):
        return node
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    elif isinstance(kind, list):
        node["type"] = kind if "null" in kind else [*kind, "null"]
    elif "$ref" in node:
        node = {**{k: v for k, v in node.items() if k != "$ref"}, "oneOf": [{"$ref": node["$ref"]}, {"type": "null"}]}
    elif "allOf" in node:
        node["oneOf"] = [{"allOf": node.pop("allOf")}, {"type": "null"}]
    elif "oneOf" in node or "anyOf" in node:
        key = "oneOf" if "oneOf" in node else "anyOf"
        node[key] = [*node[key], {"type": "null"}]
    return node  # no type at all: any value, null included


def _component_name(event_type: str) -> str:
    return "WebhookEvent" + "".join(part.title() for part in event_type.replace("_", ".").split("."))


def webhooks_section(result, generator, request, public):
    """drf-spectacular post-processing hook: the document as OpenAPI 3.1, with the `webhooks` section and
    the events' schemas."""
    if str(result.get("openapi", "")).startswith("3.0"):
        result = _nullable_to_31(result)
        result["openapi"] = "3.1.0"
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    webhooks: dict[str, dict] = {}
    for event in catalogue.CATALOGUE.values():
        name = _component_name(event.name)
        schemas[name] = {
            "type": "object",
            "description": event.description,
            "required": ["id", "object", "type", "created", "livemode", "data"],
            "properties": {
                "id": {"type": "string", "description": "The event's id, also the `webhook-id` header."},
                "object": {"type": "string", "enum": ["event"]},
                "type": {"type": "string", "enum": [event.name]},
                "created": {"type": "string", "format": "date-time", "description": "When it happened (UTC)."},
                "livemode": {"type": "boolean", "description": "False for sandbox (test-mode) data."},
                "data": {**_schema_of(event.example), "description": "The object the event is about."},
            },
            "example": catalogue.event_example(event),
        }
        webhooks[event.name] = {
            "post": {
                "operationId": "webhook_" + event.name.replace(".", "_"),
                "summary": event.name,
                "description": f"{event.description}\n\nSent to every enabled endpoint whose `event_types` include "
                f"`{event.name}` or `{event.group}.*` (or that has none). Verify the signature before trusting it.",
                "tags": ["Webhook events"],
                "parameters": [
                    {
                        "name": header,
                        "in": "header",
                        "required": True,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for header, text in HEADERS
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                },
                "responses": {
                    "2XX": {"description": "Received. Answer within 15 seconds; do the work afterwards."},
                    "410": {"description": "Gone: Tessera disables the endpoint and sends nothing more."},
                    "429": {"description": "Slow down: Tessera retries after `Retry-After` seconds (503 too)."},
                    "default": {
                        "description": "Any other answer (or a redirect, or none in 15 s) is a failure: retried with "
                        "backoff for 3 days; after 5 days of failures the endpoint is disabled."
                    },
                },
            }
        }
    result["webhooks"] = webhooks
    tags = result.setdefault("tags", [])
    if not any(t.get("name") == "Webhook events" for t in tags):
        tags.append(
            {
                "name": "Webhook events",
                "description": "What Tessera POSTs to your webhook endpoints: signed (Standard Webhooks), at least "
                "once, in no guaranteed order.",
            }
        )
    return result
