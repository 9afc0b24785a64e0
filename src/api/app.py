"""The FastAPI application: settings checks, middleware, routes, and the lifespan that opens
the memory store and builds the graph on our checkpointer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from src.agent.errors import ModelHealth
from src.agent.graph import build_graph
from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
from src.agent.memory.leases import TurnLeases
from src.agent.model import build_chat_model, model_label
from src.api.errors import SafeJSONResponse, install_error_handlers
from src.api.middleware import BodySizeLimitMiddleware, SecurityHeadersMiddleware
from src.api.routes import chat, health, sessions, turn_status
from src.api.security import RateLimiter
from src.api.turn_events import TurnEventLog
from src.api.turns import TurnRunner
from src.config.settings import Settings, SettingsError, get_settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    model: BaseChatModel | None = None,
    tools: list[BaseTool] | None = None,
) -> FastAPI:
    """Build the app; `settings` defaults to the environment's, `model` and `tools` to the
    ones the settings select (tests pass fakes)."""
    settings = settings or get_settings()
    if settings.environment == "production" and settings.api_key is None:
        raise SettingsError("API_KEY must be set when ENVIRONMENT=production")
    chat_model = model or build_chat_model(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = PostgresMemoryStore.from_settings(settings)
        await store.initialize()
        checkpointer = ConversationCheckpointer(store)
        graph = build_graph(settings, model=chat_model, tools=tools, checkpointer=checkpointer,
                            model_health=app.state.model_health)  # fmt: skip
        app.state.store = store
        events = TurnEventLog(store, ttl_seconds=settings.turn_events_ttl_seconds)
        await events.start()
        leases = TurnLeases(store, settings.session_lease_seconds)
        app.state.runner = TurnRunner(graph, leases, events)
        logger.info("memory database: %s; model: %s", store.describe(), app.state.model_label)
        base = f"http://{settings.api_host}:{settings.api_port}"
        docs_note = f" (docs at {base}/docs)" if settings.api_docs_enabled else ""
        logger.info("Vera API on %s%s", base, docs_note)
        try:
            yield
        finally:
            await app.state.runner.drain(grace_seconds=settings.shutdown_grace_seconds)
            await events.close()
            await store.close()

    docs = settings.api_docs_enabled
    app = FastAPI(
        title="Vera",
        version="0.1.0",
        summary="A conversational financial assistant: chat over Server-Sent Events.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        default_response_class=SafeJSONResponse,
    )
    app.state.settings = settings
    app.state.model_label = model_label(chat_model)
    app.state.model_health = ModelHealth()
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.environment == "production")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "Authorization", "X-API-Key", "Last-Event-ID"],
            max_age=600,
        )
    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(sessions.router)
    app.include_router(turn_status.router)
    return app
