"""The FastAPI application: settings checks, middleware, routes, and the lifespan that opens
the memory store and builds the graph on our checkpointer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from src.agent.errors import ModelHealth
from src.agent.graph import build_graph
from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
from src.agent.model import build_chat_model, model_label
from src.api import agent_server, metrics, tracing
from src.api.admission import TurnAdmission
from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_recovery import RunSweeper, sweeping_runs
from src.api.auth import AuthMiddleware
from src.api.checkpoint_retention import CheckpointRetention
from src.api.errors import SafeJSONResponse, install_error_handlers
from src.api.json_body import finite_json_body
from src.api.middleware import (
    HeaderLimitMiddleware,
    JSONCORSMiddleware,
    RequestBodyMiddleware,
    SecurityHeadersMiddleware,
    redact_access_log,
)
from src.api.openapi import install_openapi
from src.api.routes import (
    branches,
    chat,
    health,
    lifecycle,
    page,
    resume,
    sessions,
    turn_cancel,
    turn_status,
)
from src.api.security import KeyRing, LimitStorage, RateLimiter, limiter_storage
from src.api.session_directory import SessionDirectory
from src.api.session_erase import SessionEraser
from src.api.session_ttl import SessionSweeper, TTLPolicy, sweeping
from src.api.startup import OneLineStartupFailure
from src.api.turn_cancel import TurnCancels
from src.api.turn_events import TurnEventLog
from src.api.turn_leases import TurnLeases
from src.api.turns import TurnRunner
from src.config.settings import Settings, get_settings
from src.wiring import check_pooler, memory_options

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
    keys = KeyRing(settings)  # SettingsError for keys that are missing, malformed or short
    storage = LimitStorage(limiter_storage(settings.rate_limit_storage_uri))
    chat_model = model or build_chat_model(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_tracing = tracing.setup()  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
        store = PostgresMemoryStore(**memory_options(settings))
        await store.initialize()
        try:
            check_pooler(settings, store)  # SettingsError: the statement cache behind a pooler
        except BaseException:
            await store.close()
            raise
        checkpointer = ConversationCheckpointer(store)
        tracing.instrument_checkpointer(checkpointer)
        graph = build_graph(
            settings,
            model=chat_model,
            tools=tools,
            checkpointer=checkpointer,
            model_health=app.state.model_health,
        )
        app.state.store = store
        app.state.checkpointer = checkpointer
        events = TurnEventLog(store, ttl_seconds=settings.turn_events_ttl_seconds)
        await events.start()
        leases = TurnLeases(store, settings.session_lease_seconds)
        cancels = TurnCancels(store)
        await cancels.start()
        app.state.runner = TurnRunner(graph, leases, events, SessionDirectory(store), cancels)
        app.state.admission = TurnAdmission.from_settings(settings)
        app.state.eraser = SessionEraser(store, checkpointer, settings.session_lease_seconds)
        app.state.retention = CheckpointRetention.from_settings(checkpointer, settings)
        app.state.sweeper = sweeper = SessionSweeper(
            store,
            app.state.eraser,
            app.state.ttl_policy,
            settings.session_lease_seconds,
            retention=app.state.retention,
        )
        logger.info("memory database: %s; model: %s", store.describe(), app.state.model_label)
        base = f"http://{settings.api_host}:{settings.api_port}"
        docs_note = f" (docs at {base}/docs)" if settings.docs_enabled else ""
        logger.info("Vera API on %s%s", base, docs_note)
        try:
            runs = RunSweeper(app.state.runner, app.state.admission, RunBook(store))
            async with metrics.running(store, settings), sweeping(sweeper), sweeping_runs(runs):
                yield  # (pool gauges, METRICS_PORT; this worker's TTL and runs' sweeps)
        finally:
            await app.state.runner.drain(grace_seconds=settings.shutdown_grace_seconds)
            await cancels.close()
            await events.close()
            await store.close()
            if stop_tracing is not None:
                await asyncio.to_thread(stop_tracing)  # flushes the last spans

    docs = settings.docs_enabled
    app = FastAPI(
        title="Vera",
        version="0.1.0",
        summary="A conversational financial assistant: chat over Server-Sent Events.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        default_response_class=SafeJSONResponse,
        dependencies=[Depends(finite_json_body)],  # every route's body: finite numbers only
    )
    app.state.settings = settings
    app.state.model_label = model_label(chat_model)
    app.state.model_health = ModelHealth()
    app.state.ttl_policy = TTLPolicy.from_settings(settings)
    install_error_handlers(app)
    metrics.install(app)  # GET /metrics; after the error handlers (it counts 503s)
    # Added innermost first: a request meets the proxy headers, the security headers, the
    # header limits, CORS, authentication and rate limits, and only then its body.
    app.add_middleware(
        RequestBodyMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_body_timeout_seconds,
    )
    app.add_middleware(
        AuthMiddleware,
        keys=keys,
        requests=RateLimiter(settings.rate_limit_per_minute, storage, "vera-requests", "requests"),
        failures=RateLimiter(
            settings.auth_failures_per_minute, storage, "vera-auth-failures", "auth_failures"
        ),
    )
    app.add_middleware(
        JSONCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-User-Id", "Last-Event-ID"],
        max_age=600,
    )
    app.add_middleware(
        HeaderLimitMiddleware,
        max_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
    )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.environment == "production")
    if settings.forwarded_allow_ips:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.add_middleware(tracing.RequestContextMiddleware)  # request id, span
    app.add_middleware(OneLineStartupFailure)  # outermost: start-up failures in one line
    redact_access_log()
    install_openapi(app, keys_required=keys.required)
    app.include_router(health.router)
    app.include_router(chat.router)
    app.include_router(sessions.router)
    app.include_router(branches.router)
    app.include_router(turn_status.router)
    app.include_router(resume.router)
    app.include_router(turn_cancel.router)
    app.include_router(lifecycle.router)
    app.include_router(page.router)
    app.include_router(agent_server.router)  # the LangGraph SDK's door
    return app
