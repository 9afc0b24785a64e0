"""Several worker processes: `API_WORKERS=N python -m src.api` runs uvicorn's supervisor
with N copies of the app on one port.

Each worker opens its own pool (up to `POSTGRES_MEMORY_POOL_MAX` connections) and one more
connection for LISTEN (turn events), so before any worker starts the server's
`max_connections`, less its reserved slots, must hold N x (pool max + 1); start-up stops
with a message saying so otherwise. Metrics are summed over the workers through
`PROMETHEUS_MULTIPROC_DIR` (a temporary folder when it is not set); sessions, leases and
turn events already live in PostgreSQL, and `RATE_LIMIT_STORAGE_URI=redis://...` makes the
rate limits shared too.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI

from src.api import logs, sql
from src.config.settings import Settings, SettingsError, get_settings

logger = logging.getLogger("vera.workers")

# prometheus_client reads it when a metric is made: set (and the folder ready) before any
# worker imports `src.api.metrics`; this module does not import it.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LISTEN_CONNECTIONS_PER_WORKER = 1  # TurnEventLog's LISTEN, outside the pool


async def connection_budget(settings: Settings, workers: int) -> str:
    """Check that `workers` pools and LISTEN connections fit in the server's connections;
    a line saying so, or `SettingsError` naming the numbers and what to change."""
    address = f"{settings.postgres_memory_host}:{settings.postgres_memory_port}"
    try:
        conn = await asyncpg.connect(
            settings.postgres_memory_dsn(),
            timeout=settings.postgres_memory_connect_timeout,
            statement_cache_size=0,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise SettingsError(
            f"API_WORKERS={workers} needs a reachable PostgreSQL, and {address} is not "
            f"({type(exc).__name__}: {exc}); the embedded fallback serves one process only"
        ) from None
    try:
        if conn.get_server_pid() != await conn.fetchval(sql.BACKEND_PID):
            return (
                f"{address} is a connection pooler: API_WORKERS={workers} x "
                "POSTGRES_MEMORY_POOL_MAX is bounded by its max_client_conn, not "
                "checked here"
            )
        max_connections = int(await conn.fetchval(sql.MAX_CONNECTIONS))
        reserved = int(await conn.fetchval(sql.SUPERUSER_RESERVED_CONNECTIONS))
        # PostgreSQL 16+: slots for pg_use_reserved_connections too
        with contextlib.suppress(asyncpg.UndefinedObjectError):
            reserved += int(await conn.fetchval(sql.RESERVED_CONNECTIONS))
    finally:
        await conn.close()
    per_worker = settings.postgres_memory_pool_max + LISTEN_CONNECTIONS_PER_WORKER
    needed, available = workers * per_worker, max_connections - reserved
    sums = (
        f"API_WORKERS={workers} x (POSTGRES_MEMORY_POOL_MAX="
        f"{settings.postgres_memory_pool_max} + {LISTEN_CONNECTIONS_PER_WORKER} LISTEN) = "
        f"{needed} connections"
    )
    limit = (
        f"{available} usable on {address} (max_connections {max_connections} - {reserved} reserved)"
    )
    if needed > available:
        raise SettingsError(
            f"Invalid configuration: {sums}, but the server has only {limit}: lower "
            "API_WORKERS or POSTGRES_MEMORY_POOL_MAX, raise max_connections, or put PgBouncer "
            "in front (docs/pgbouncer.md)"
        )
    return f"{sums} of {limit}"


def app() -> FastAPI:
    """The factory each worker imports (`src.api.workers:app`): logging, then the app from
    the environment's settings."""
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    from src.api.app import create_app  # imported in the worker, after the metrics dir is set

    return create_app(settings)


def prepare_multiprocess_dir(path: str) -> None:
    """Create the folder and remove the files of an earlier run (their counts would add)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(path, name))


def serve(settings: Settings, options: dict[str, Any]) -> None:
    """Check the connection budget, prepare the metrics folder, and run
    `settings.api_workers` workers with uvicorn's `options`."""
    workers = settings.api_workers
    try:
        logger.info("%s", asyncio.run(connection_budget(settings, workers)))
    except SettingsError as exc:
        sys.exit(str(exc))
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        folder = tempfile.mkdtemp(prefix="vera-metrics-")
        os.environ[MULTIPROC_ENV] = folder  # inherited by the workers
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    prepare_multiprocess_dir(folder)
    logger.info("starting %d workers (metrics summed in %s)", workers, folder)
    if settings.metrics_port is not None:  # one port for all: served by this supervisor
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(settings.metrics_port, addr=settings.api_host, registry=registry)
    uvicorn.run("src.api.workers:app", factory=True, workers=workers, **options)
