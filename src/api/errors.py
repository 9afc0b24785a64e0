"""Every error answer is JSON `{code, message, details?}` (`ErrorBody`), never a stack trace."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from src.agent.memory.store import PoolExhaustedError, StorageUnavailableError
from src.api.admission import OverloadedError
from src.api.error_catalogue import CATALOGUE, message_of, status_of
from src.api.schemas import ErrorBody, ErrorCode
from src.api.turn_identity import ApprovalPendingError, TurnConflictError
from src.api.turn_leases import SessionBusyError

logger = logging.getLogger(__name__)

# The code of a framework error (404 route, 405 method, 413 body...), by its status.
_FRAMEWORK_STATUSES = (401, 403, 404, 408, 413, 415, 429)
_STATUS_CODES: dict[int, ErrorCode] = {
    kind.status: code for code, kind in CATALOGUE.items() if kind.status in _FRAMEWORK_STATUSES
}
_STATUS_CODES[405] = "invalid_request"


class ClientGone(Exception):
    """The client disconnected before its answer was ready (a waited run it asked to
    cancel on disconnect): nobody reads the answer."""


class ApiError(Exception):
    """An error answer with a stable code."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        headers: dict[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def error_response(
    status: int,
    code: ErrorCode,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(code=code, message=message, details=details)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


MAX_DETAILS = 10
MAX_FIELD_CHARS = 64
# An unknown field's name is repeated only when it looks like a name (not `password=...`).
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,39}$")


def _detail(error: dict) -> dict[str, str]:
    """One invalid field: where it is and what is wrong, never the value sent (it may be
    huge or a secret). A field name the schema does not know is not repeated either."""
    loc = tuple(error["loc"])
    if error["type"] == "json_invalid":
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return {"field": "body", "message": f"malformed JSON{where}"}
    parts = [str(p) for p in loc if p != "body"]
    if error["type"] == "extra_forbidden":
        name = parts[-1] if parts else ""
        shown = f" {name!r}" if _FIELD_NAME.match(name) else ""
        return {"field": ".".join(parts[:-1]) or "body", "message": f"unknown field{shown}"}
    field = ".".join(parts) or "body"
    if len(field) > MAX_FIELD_CHARS:
        field = field[: MAX_FIELD_CHARS - 1] + "…"
    return {"field": field, "message": str(error["msg"])[:200]}


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # A body that is not JSON (a bad path of a route without a body is a 422, as for GET).
    body_refused = any(error["loc"][:1] == ("body",) for error in exc.errors())
    if request.method in {"POST", "PUT", "PATCH"} and body_refused and not _is_json(request):
        return _known("unsupported_media_type")
    # The first MAX_DETAILS distinct details, the rest only counted: a body may hold tens
    # of thousands of unknown keys (a list's `in` over all of them was quadratic, seconds
    # of a blocked loop).
    errors = exc.errors()
    distinct: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    used = 0
    for error in errors:
        if len(distinct) == MAX_DETAILS:
            break
        used += 1
        detail = _detail(error)
        distinct.setdefault(tuple(detail.items()), detail)
    more = len(errors) - used
    details = list(distinct.values())
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    if more > 0:
        summary += f"; and {more} more"
    return error_response(422, "invalid_request", f"Invalid request: {summary}", details)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    fallback: ErrorCode = "invalid_request" if exc.status_code < 500 else "internal"
    code = _STATUS_CODES.get(exc.status_code, fallback)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def _known(code: ErrorCode, headers: dict[str, str] | None = None) -> JSONResponse:
    """The catalogue's answer for `code`."""
    return error_response(status_of(code), code, message_of(code), headers=headers)


async def _on_storage_down(request: Request, exc: Exception) -> JSONResponse:
    return _known("storage_unavailable", headers={"Retry-After": "5"})


# Seconds an `overloaded` answer asks to wait: running turns end within a few.
OVERLOADED_RETRY_AFTER = "2"


async def _on_overloaded(request: Request, exc: Exception) -> JSONResponse:
    return _known("overloaded", headers={"Retry-After": OVERLOADED_RETRY_AFTER})


async def _on_session_busy(request: Request, exc: Exception) -> JSONResponse:
    return _known("session_busy")


async def _on_turn_conflict(request: Request, exc: Exception) -> JSONResponse:
    return _known("turn_conflict")


async def _on_approval_pending(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApprovalPendingError)
    details = [{"turn_id": exc.turn_id}] if exc.turn_id else None  # the turn to answer
    return error_response(409, "approval_pending", str(exc), details)


async def _on_client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nginx's "client closed request": nobody reads it


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc
    )
    return _known("internal")


class SafeJSONResponse(JSONResponse):
    """JSON that renders any stored text: strings holding an unpaired surrogate (written
    by Studio, a tool or an older version) are sent as `\\uXXXX` escapes, valid JSON,
    instead of failing the response."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(
                content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
            ).encode("ascii")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(StorageUnavailableError, _on_storage_down)
    app.add_exception_handler(PoolExhaustedError, _on_overloaded)  # a subclass: its own answer
    app.add_exception_handler(OverloadedError, _on_overloaded)
    app.add_exception_handler(SessionBusyError, _on_session_busy)
    app.add_exception_handler(TurnConflictError, _on_turn_conflict)
    app.add_exception_handler(ApprovalPendingError, _on_approval_pending)
    app.add_exception_handler(ClientGone, _on_client_gone)
    app.add_exception_handler(Exception, _on_unexpected)
