"""Request bodies hold only JSON numbers. Python's parser (the one FastAPI reads bodies
with) also takes `NaN`, `Infinity` and numbers out of the float range (`1e999`, read as
infinity): no JSON encoder writes them and no later JSON dump takes them (a stored value's,
an answer's), so a route would fail half-way with a 500. One app-wide dependency refuses
them, 422 naming the field, before any route's own dependencies or code run."""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import Request

from src.api.errors import MAX_FIELD_CHARS, ApiError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A key is repeated in the answer only when it looks like a name (not `password=...`).
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,39}$")

Trail = tuple[str | int, "Trail"] | None  # a value's place: its key, then its parent's


def _field(trail: Trail) -> str:
    parts: list[str] = []
    while trail is not None:
        key, trail = trail
        parts.append(str(key) if isinstance(key, int) or _KEY.match(key) else "…")
    field = ".".join(reversed(parts)) or "body"
    return field if len(field) <= MAX_FIELD_CHARS else field[: MAX_FIELD_CHARS - 1] + "…"


def non_finite(value: Any) -> tuple[str, float] | None:
    """The first non-finite float of a parsed body (its field, itself), or None. Iterative:
    a body may nest as deep as the parser allows."""
    pending: list[tuple[Any, Trail]] = [(value, None)]
    while pending:
        item, trail = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return _field(trail), item
        elif isinstance(item, dict):
            pending.extend((child, (key, trail)) for key, child in item.items())
        elif isinstance(item, list):
            pending.extend((child, (index, trail)) for index, child in enumerate(item))
    return None


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type in {"", "application/json"} or media_type.endswith("+json")


async def finite_json_body(request: Request) -> None:
    """422 `invalid_request` for a JSON body holding `NaN`, `Infinity` or an out-of-range
    number. The body is the one FastAPI parsed already (`Request.json` keeps it)."""
    if request.method not in BODY_METHODS or not _is_json(request):
        return
    try:
        body = await request.json() if await request.body() else None
    except Exception:  # not JSON at all: the route's own parse answers that
        return
    found = non_finite(body)
    if found is None:
        return
    field, number = found
    what = "NaN" if math.isnan(number) else "Infinity or a number out of the float range"
    message = f"{what} is no JSON number (numbers must be finite)"
    raise ApiError(
        422,
        "invalid_request",
        f"Invalid JSON in request body: {field}: {message}",
        details=[{"field": field, "message": message}],
    )
