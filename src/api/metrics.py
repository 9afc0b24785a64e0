"""Prometheus metrics: their definitions, the helpers the API records them with, and the
`GET /metrics` route (authenticated like every other endpoint; `METRICS_PORT` also serves the
same text without a key on a port of its own).

With several worker processes, set `PROMETHEUS_MULTIPROC_DIR` (a folder, emptied at
start-up) before the workers start (`python -m src.api` does it itself when `API_WORKERS` is
over 1): each process then writes its values there and a scrape of any worker returns the
sum over all of them (prometheus_client's multiprocess mode). Pool gauges are per process
and summed over live ones (`livesum`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

from src.agent.memory.store import (
    PoolExhaustedError,
    PostgresMemoryStore,
    StorageUnavailableError,
)
from src.config.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # see src/api/workers.py

TURNS = Counter(
    "vera_turns",
    "Turns finished, by outcome (ok, cancelled: stopped by a request, or the error code)",
    ["outcome"],
)
TURN_CANCELS = Counter(
    "vera_turn_cancels",
    "Cancel requests, by outcome (requested: the running turn was told; finished: it had "
    "ended, nothing to stop)",
    ["outcome"],
)
TURN_SECONDS = Histogram(
    "vera_turn_duration_seconds",
    "Duration of a turn, from its start to its last event",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
)
FIRST_TOKEN_SECONDS = Histogram(
    "vera_turn_first_token_seconds",
    "Time from the start of a turn to its first answer token",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
MODEL_CALLS = Counter("vera_model_calls", "Model calls, by outcome (ok, error)", ["outcome"])
MODEL_TOKENS = Counter(
    "vera_model_tokens", "Tokens of model calls, by kind (input, output)", ["kind"]
)
TOOL_CALLS = Counter(
    "vera_tool_calls", "Tool calls, by tool and status (ok, error, declined)", ["tool", "status"]
)
STORAGE_ERRORS = Counter(
    "vera_storage_errors",
    "Requests and turns stopped because the database was unavailable, by where (request, turn)",
    ["where"],
)
INTERRUPTS = Counter("vera_interrupts", "Turns that paused for the user's approval of a tool call")
RESUMES = Counter(
    "vera_resumes",
    "Paused turns resumed with the user's answer, by decision (approved, declined, partial)",
    ["decision"],
)
OVERLOADED = Counter(
    "vera_overloaded",
    "Turns and requests answered `overloaded`, by where (admission: no turn place within "
    "TURN_QUEUE_SECONDS; request: no free pooled connection within POSTGRES_MEMORY_POOL_WAIT; "
    "turn: a running turn's write found none)",
    ["where"],
)
SESSION_BUSY = Counter("vera_session_busy", "Turns refused because the session had one running")
LEASE_TAKEOVERS = Counter(
    "vera_lease_takeovers", "Session leases taken over after their holder let them expire"
)
SESSIONS_DELETED = Counter(
    "vera_sessions_deleted",
    "Sessions deleted whole, by why (request: DELETE /sessions/{id}, ttl: the TTL sweep, "
    "forget: POST /admin/forget)",
    ["reason"],
)
DELETED_BYTES = Counter(
    "vera_deleted_bytes",
    "Bytes the rows of deleted sessions took as stored (TOAST included; reusable once "
    "vacuumed), by why",
    ["reason"],
)
TTL_SWEEPS = Counter("vera_ttl_sweeps", "TTL sweeps run, by outcome (ok, error)", ["outcome"])
CHECKPOINTS_PRUNED = Counter(
    "vera_checkpoints_pruned", "Checkpoints deleted by checkpoint retention (their sessions stay)"
)
PRUNED_BYTES = Counter(
    "vera_pruned_bytes",
    "Bytes the checkpoints, writes and blobs retention deleted took as stored (reusable "
    "once vacuumed)",
)
RETENTION_PASSES = Counter(
    "vera_retention_passes", "Checkpoint retention passes run, by outcome (ok, error)", ["outcome"]
)
RATE_LIMITED = Counter(
    "vera_rate_limited", "Requests answered 429, by limit (requests, auth_failures)", ["limit"]
)
RATE_LIMIT_FALLBACKS = Counter(
    "vera_rate_limit_fallbacks",
    "Rate-limit checks counted in this process because the shared storage (Redis) refused "
    "or was slower than 100 ms lately, by limit (requests, auth_failures)",
    ["limit"],
)
POOL_SIZE = Gauge(
    "vera_db_pool_connections", "Open connections of the database pool", multiprocess_mode="livesum"
)
POOL_MAX = Gauge(
    "vera_db_pool_max_connections", "Largest size of the database pool", multiprocess_mode="livesum"
)
POOL_IN_USE = Gauge(
    "vera_db_pool_in_use", "Pool connections lent out now", multiprocess_mode="livesum"
)
POOL_WAITING = Gauge(
    "vera_db_pool_waiting", "Callers waiting for a pool connection", multiprocess_mode="livesum"
)

RATE_LIMIT_LABELS = {"requests": "requests", "failed authentications": "auth_failures"}


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def turn_finished(outcome: str, seconds: float) -> None:
    TURNS.labels(outcome=outcome).inc()
    TURN_SECONDS.observe(seconds)
    if outcome == "storage_unavailable":
        STORAGE_ERRORS.labels(where="turn").inc()
    elif outcome == "overloaded":
        OVERLOADED.labels(where="turn").inc()


def overloaded(where: str) -> None:
    OVERLOADED.labels(where=where).inc()


def turn_cancel(outcome: str) -> None:
    TURN_CANCELS.labels(outcome=outcome).inc()


def first_token(seconds: float) -> None:
    FIRST_TOKEN_SECONDS.observe(seconds)


def tool_call(tool: str | None, status: str) -> None:
    TOOL_CALLS.labels(tool=tool or "unknown", status=status).inc()


def rate_limited(what: str) -> None:
    RATE_LIMITED.labels(limit=RATE_LIMIT_LABELS.get(what, what)).inc()


def rate_limit_fallback(limit: str) -> None:
    RATE_LIMIT_FALLBACKS.labels(limit=limit).inc()


def lease_taken_over() -> None:
    LEASE_TAKEOVERS.inc()


def interrupted() -> None:
    INTERRUPTS.inc()


def resumed(decision: str) -> None:
    RESUMES.labels(decision=decision).inc()


def session_busy() -> None:
    SESSION_BUSY.inc()


def sessions_deleted(reason: str, sessions: int, size: int) -> None:
    SESSIONS_DELETED.labels(reason=reason).inc(sessions)
    DELETED_BYTES.labels(reason=reason).inc(size)


def ttl_sweep(outcome: str) -> None:
    TTL_SWEEPS.labels(outcome=outcome).inc()


def retention_pass(outcome: str, checkpoints: int = 0, size: int = 0) -> None:
    RETENTION_PASSES.labels(outcome=outcome).inc()
    CHECKPOINTS_PRUNED.inc(checkpoints)
    PRUNED_BYTES.inc(size)


class ModelCallMetrics(BaseCallbackHandler):
    """A LangChain callback counting the model calls of a turn and their tokens."""

    run_inline = True  # cheap counters: no thread pool hop

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        MODEL_CALLS.labels(outcome="ok").inc()
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
                if usage:
                    MODEL_TOKENS.labels(kind="input").inc(usage.get("input_tokens", 0))
                    MODEL_TOKENS.labels(kind="output").inc(usage.get("output_tokens", 0))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        MODEL_CALLS.labels(outcome="error").inc()


MODEL_CALL_METRICS = ModelCallMetrics()


def observe_pool(store: PostgresMemoryStore) -> None:
    """Set the pool gauges from the store's asyncpg pool (no-op before it is open)."""
    try:
        pool = store.pool
    except RuntimeError:
        return
    POOL_SIZE.set(pool.get_size())
    POOL_MAX.set(pool.get_max_size())
    # Free slots wait in the pool's queue; who waits for one is among its getters.
    queue = getattr(pool, "_queue", None)
    if queue is not None:
        POOL_IN_USE.set(pool.get_max_size() - queue.qsize())
        POOL_WAITING.set(sum(not f.done() for f in getattr(queue, "_getters", ())))
    else:
        POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())


def scrape_registry() -> CollectorRegistry:
    """What a scrape reports: this process's registry, or every worker's files summed."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def serve_port(host: str, port: int) -> Callable[[], None]:
    """Serve the metrics, without authentication, on `host:port` (a thread of this
    process); the function that stops it."""
    server, thread = start_http_server(port, addr=host, registry=scrape_registry())

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


@contextlib.asynccontextmanager
async def running(
    store: PostgresMemoryStore, settings: Settings, period: float = 2.0
) -> AsyncIterator[None]:
    """While the block runs, keep this process's pool gauges fresh (a scrape reaches one
    worker, the others' gauges come from their files) and, for a single process with
    `METRICS_PORT`, serve that port (with several workers their supervisor does); on exit,
    drop this process's live gauges."""

    async def refresh() -> None:
        while True:
            observe_pool(store)
            await asyncio.sleep(period)

    task = asyncio.create_task(refresh())
    port = settings.metrics_port if settings.api_workers == 1 else None
    stop_port = serve_port(settings.api_host, port) if port is not None else None
    try:
        yield
    finally:
        if stop_port is not None:
            await asyncio.to_thread(stop_port)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if multiprocess_dir():
            multiprocess.mark_process_dead(os.getpid())


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The Prometheus text format: this process's metrics, or every worker's summed."""
    store = getattr(request.app.state, "store", None)
    if store is not None:
        observe_pool(store)
    return Response(generate_latest(scrape_registry()), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    """Add `/metrics` and count the requests the error handlers answer as storage errors
    or as out of pooled connections (call after `install_error_handlers`)."""
    app.include_router(router)
    for kind, count in (
        (StorageUnavailableError, STORAGE_ERRORS.labels(where="request").inc),
        (PoolExhaustedError, OVERLOADED.labels(where="request").inc),
    ):
        handler = app.exception_handlers.get(kind)
        if handler is not None:
            app.exception_handlers[kind] = _counted(handler, count)


def _counted(handler: Callable[..., Any], count: Callable[[], None]) -> Callable[..., Any]:
    async def counted(request: Request, exc: Exception) -> Any:
        count()
        result = handler(request, exc)
        return await result if isinstance(result, Awaitable) else result

    return counted
