"""The OpenAPI description of an event stream: each Server-Sent Event as an object with
`id`, `event` and `data` (JSON text), its payload's schema chosen by the event's name.
This is the shape OpenAPI 3.2 gives `text/event-stream` (`contentMediaType` +
`contentSchema` on `data`), which schemathesis checks every streamed event against."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from src.api.schemas import EVENT_MODELS


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with its `$defs` inlined: a schema placed inside the OpenAPI
    document can't point at `#/$defs/...` (those paths don't exist there)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


def event_stream_schema() -> dict[str, Any]:
    """One event of a turn's stream."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "id": {"type": "string", "description": "`<turn_id>:<n>`: resume after it"},
            "event": {"type": "string", "enum": list(EVENT_MODELS)},
            "data": {"type": "string", "contentMediaType": "application/json"},
        },
        "allOf": [
            {
                "if": {"properties": {"event": {"const": name}}},
                "then": {
                    "properties": {
                        "data": {
                            "contentMediaType": "application/json",
                            "contentSchema": inline_schema(model),
                        }
                    }
                },
            }
            for name, model in EVENT_MODELS.items()
        ],
    }
