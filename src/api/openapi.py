"""The OpenAPI document, adjusted to say exactly what the server does."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi


def _drop_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` -> `X`: in a query string or a header, null is spelled by
    leaving the parameter out (a client sending `?cursor=null` sends the text "null")."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    kept = [option for option in options if option != {"type": "null"}]
    if len(kept) != 1:
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    merged.update(kept[0])
    return merged


# Any request may meet the head limits (`MAX_HEADER_BYTES`, `MAX_HEADERS`).
HEADERS_TOO_LARGE = {
    "description": "`headers_too_large`: the request head is over `MAX_HEADER_BYTES`, or has "
    "more than `MAX_HEADERS` fields",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def install_openapi(app: FastAPI, *, keys_required: bool) -> None:
    """Serve the document with optional query and header parameters non-nullable, the
    431 every operation may answer and, on a server with no API key, no security scheme (a
    client must not be told to send a key that is never checked)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    for parameter in operation.get("parameters", []):
                        if parameter.get("in") in ("query", "header") and "schema" in parameter:
                            parameter["schema"] = _drop_null(parameter["schema"])
                    operation.setdefault("responses", {})["431"] = HEADERS_TOO_LARGE
                    if not keys_required:
                        operation.pop("security", None)
            if not keys_required:
                schema.get("components", {}).pop("securitySchemes", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
