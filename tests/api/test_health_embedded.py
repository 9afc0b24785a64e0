"""With no reachable PostgreSQL the service starts an embedded one, and keeps its data."""

from __future__ import annotations

import socket
import uuid

import httpx

from src.api.app import create_app
from src.config.settings import load_settings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_embedded_fallback_serves_health_and_keeps_data(pg_dir) -> None:
    settings = load_settings(
        postgres_memory_host="127.0.0.1",
        postgres_memory_port=closed_port(),
        postgres_memory_embedded_dir=pg_dir,
        postgres_memory_pool_min=1,
        postgres_memory_pool_max=2,
        openai_api_key=None,
    )
    session = uuid.uuid4()
    for run in range(2):
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            store = app.state.store
            assert store.embedded is not None
            assert store.embedded.data_dir == (pg_dir).resolve()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/health")
                assert response.status_code == 200, response.text
                assert response.json()["database"] == "reachable"
                assert response.json()["embedded_database"] is True
                assert response.json()["model"].startswith("offline")
                if run == 0:
                    await store.pool.execute(
                        "INSERT INTO conversations (session_id) VALUES ($1)", session
                    )
                else:  # second start: same data folder, the row is still there
                    assert await store.get_messages(session) == []
                # database gone -> 503 with a JSON body
                store.embedded.stop()
                response = await client.get("/health")
                assert response.status_code == 503
                assert response.json()["database"] == "unreachable"


async def test_no_fallback_when_embedded_is_disabled(pg_dir) -> None:
    settings = load_settings(
        postgres_memory_host="127.0.0.1",
        postgres_memory_port=closed_port(),
        postgres_memory_embedded=False,
        postgres_memory_connect_timeout=2,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            raise AssertionError("start-up should fail without a database")
    except OSError:
        pass
