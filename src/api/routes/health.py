"""`GET /health`: liveness, database reachability and the active model (no authentication)."""

from __future__ import annotations

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


@router.get("/health", response_model=HealthReport, responses={503: {"model": HealthReport}})
async def health(request: Request, store: StoreDep) -> JSONResponse:
    """200 when the database answers, 503 (same body) when it does not."""
    ok = await store.ping()
    report = HealthReport(
        status="ok" if ok else "degraded",
        database="reachable" if ok else "unreachable",
        embedded_database=store.embedded is not None,
        model=request.app.state.model_label,
    )
    return JSONResponse(report.model_dump(), status_code=200 if ok else 503)
