"""The FastAPI application: lifespan opens the memory store, `/health` reports on it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from src.agent.memory import PostgresMemoryStore
from src.agent.model import build_chat_model, model_label
from src.config.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class HealthReport(BaseModel):
    """Body of `GET /health`."""

    status: str
    database: str
    embedded_database: bool
    model: str


def get_store(request: Request) -> PostgresMemoryStore:
    return request.app.state.store


StoreDep = Annotated[PostgresMemoryStore, Depends(get_store)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; `settings` defaults to the environment's."""
    settings = settings or get_settings()
    active_model = model_label(build_chat_model(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = PostgresMemoryStore.from_settings(settings)
        await store.initialize()
        app.state.store = store
        logger.info(
            "memory store ready (%s)",
            f"embedded, data in {store.embedded.data_dir}" if store.embedded else "configured",
        )
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(title="Vera", version="0.1.0", lifespan=lifespan)

    @app.get("/health", response_model=HealthReport, responses={503: {"model": HealthReport}})
    async def health(store: StoreDep) -> JSONResponse:
        """Liveness, database reachability and the active model (no authentication)."""
        ok = await store.ping()
        report = HealthReport(
            status="ok" if ok else "degraded",
            database="reachable" if ok else "unreachable",
            embedded_database=store.embedded is not None,
            model=active_model,
        )
        return JSONResponse(report.model_dump(), status_code=200 if ok else 503)

    return app
