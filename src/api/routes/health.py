"""`GET` and `HEAD /health`: liveness, database reachability and the active model (no auth)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from src.api.deps import StoreDep

router = APIRouter(tags=["health"])


class HealthReport(BaseModel):
    """Body of `GET /health`."""

    status: str
    database: str
    embedded_database: bool
    model: str
    model_status: Literal["unknown", "ok", "rejected"] = "unknown"
    model_status_since: datetime | None = None
    model_error: str | None = None


@router.get("/health", response_model=HealthReport, responses={503: {"model": HealthReport}})
async def health(request: Request, store: StoreDep) -> JSONResponse:
    """200 when the database answers, 503 (same body) when it does not. `model_status` is
    `rejected` (since `model_status_since`, for `model_error`) after the provider refused
    the key, permissions or model name, until a call succeeds; it does not change the HTTP
    status, so an orchestrator does not restart the service over it."""
    ok = await store.ping()
    model = request.app.state.model_health
    report = HealthReport(
        status="ok" if ok else "degraded",
        database="reachable" if ok else "unreachable",
        embedded_database=store.embedded is not None,
        model=request.app.state.model_label,
        model_status=model.status,
        model_status_since=model.since,
        model_error=model.error,
    )
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if ok else 503)


# HEAD for load balancers and monitors that only look at the status (no second operation in
# the OpenAPI document).
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)
